"""The rules for input videos: resuming a clipped one, duplicates by content, failed and stale ones."""

from __future__ import annotations

from collections.abc import Callable

from services.recordbook import RecordBook
from services.records import VideoRecord, VideoState
from services.stages.base import VideoOutcome

# claim(sha256, source) -> the source that first claimed this content (``source`` itself when first).
Claim = Callable[[str, str], str]


def reusable(previous: VideoRecord | None, fingerprint: str, force: bool) -> bool:
    """Whether an earlier run's clipping of this input stands (same settings, finished, not forced)."""
    return (previous is not None and not force and previous.state is VideoState.done
            and previous.config == fingerprint)


def duplicate_reason(claim: Claim, sha256: str, source: str, name_of: Callable[[str], str] = str) -> str | None:
    """Why the input is skipped when another input of the run has the same content (the first one
    claimed wins), or None when it is the first."""
    first = claim(sha256, source)
    return None if first == source else f"same content as {name_of(first)}"


def failed(video: VideoRecord, reason: str) -> VideoOutcome:
    """The outcome of an input that cannot be clipped at all: no clips, the reason on its record."""
    return VideoOutcome(video=video.model_copy(update={"state": VideoState.failed, "error": reason}), clips=[])


def unreadable(video: VideoRecord, exc: OSError) -> VideoOutcome:
    return failed(video, f"cannot read {video.source}: {exc.strerror or exc}")


def stale_clip_ids(previous: VideoRecord | None, outcome: VideoOutcome) -> set[str]:
    """Clips of an earlier clipping of the input that this one no longer makes."""
    return set(previous.clip_ids) - {c.id for c in outcome.clips} if previous else set()


def save_outcome(book: RecordBook, outcome: VideoOutcome, previous: VideoRecord | None) -> None:
    """A clipped video's records, for a re-run to resume from: stale clips go, the clips are saved, and
    the video's record last (it marks the video as done)."""
    for stale in stale_clip_ids(previous, outcome):
        book.delete_clip(stale)
    for clip in outcome.clips:
        book.save_clip(clip)
    book.save_video(outcome.video)
