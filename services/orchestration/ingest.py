"""The rules for input videos: resuming a clipped one, duplicates by content, failed and stale ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.execution import run_video_stage
from services.inputs import file_digest
from services.orchestration.accounting import RunSummary, count_video_record
from services.recordbook import RecordBook
from services.records import VideoRecord, VideoState
from services.stages.base import StageContext, VideoOutcome, VideoStage

# claim(sha256, source) -> the source that first claimed this content (``source`` itself when first).
Claim = Callable[[str, str], str]


@dataclass(frozen=True)
class Skipped:
    """An input that is not clipped: another input of the run has the same content."""

    reason: str


def first_claims() -> Claim:
    """The claim of a run in one process: the first input with each content wins."""
    first: dict[str, str] = {}  # content -> the first input with it
    return first.setdefault


def reusable(previous: VideoRecord | None, fingerprint: str, force: bool) -> bool:
    """Whether an earlier run's clipping of this input stands (same settings, finished, not forced)."""
    return (previous is not None and not force and previous.state is VideoState.done
            and previous.config == fingerprint)


def resume(previous: VideoRecord, source: str, claim: Claim, summary: RunSummary) -> list[str]:
    """An earlier run's clipping of the input stands (``reusable``): the input still claims its content (a later
    input with the same content is its duplicate) and counts as it did then. Returns the ids of its clips."""
    claim(previous.sha256, source)
    count_video_record(summary, previous)
    return previous.clip_ids


def clip_input(stage: VideoStage, video: VideoRecord, path: Path, ctx: StageContext, fingerprint: str,
               claim: Claim) -> VideoOutcome | Skipped:
    """An input file of this machine into clips: a failed outcome when it cannot be read, ``Skipped`` when an
    earlier input of the run has its content (claimed by ``video.source``), else the clipping stage's outcome."""
    try:
        video.sha256 = file_digest(path)
    except OSError as exc:
        return unreadable(video, exc)
    reason = duplicate_reason(claim, video.sha256, video.source)
    return Skipped(reason) if reason else run_video_stage(stage, video, path, ctx, fingerprint)


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


def clips_in_flight(video: VideoRecord | None, finished: set[str]) -> list[str]:
    """The clips of a registered input whose chain has not ended (a redelivered ingest sends them on again)."""
    return [clip_id for clip_id in (video.clip_ids if video else []) if clip_id not in finished]


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
