"""Counting a run: its summary, drops and failures, a clip's end state and a job's final state."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from services.records import ClipRecord, StageState, StageStatus, VideoRecord, VideoState

SKIPPED = "skipped"  # a video's state in a job's status when it duplicates another input


class RunSummary(BaseModel):
    stages: list[str]
    videos_in: int = 0
    videos_failed: dict[str, str] = Field(default_factory=dict)  # source -> reason
    videos_skipped: dict[str, str] = Field(default_factory=dict)  # duplicates
    clips_out: int = 0
    clips_kept: int = 0
    # Shots that became no clip, and clips dropped by a filter rule, by reason.
    dropped: dict[str, int] = Field(default_factory=dict)
    failed_by_stage: dict[str, int] = Field(default_factory=dict)
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    stage_items: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    output: str = ""


def count_video(summary: RunSummary, source: str, state: str, error: str | None, dropped: dict[str, int]) -> None:
    """A failed or skipped input into the summary (``dropped``: a skipped one's reason)."""
    if state == VideoState.failed.value:
        summary.videos_failed[source] = error or "unknown error"
    elif state == SKIPPED:
        summary.videos_skipped[source] = next(iter(dropped), SKIPPED)


def count_skipped(summary: RunSummary, source: str, reason: str) -> None:
    """An input skipped (the same content as another input) into the summary, with its reason."""
    count_video(summary, source, SKIPPED, None, {reason: 1})


def count_video_record(summary: RunSummary, video: VideoRecord) -> None:
    """A video's record into the summary: its failure, and the shots that became no clip."""
    count_video(summary, video.source, video.state.value, video.error, video.dropped)
    count_shots_dropped(summary, [video])


def count_shots_dropped(summary: RunSummary, videos: Iterable[VideoRecord]) -> None:
    """Shots that became no clip, by reason, over the videos' records."""
    for video in videos:
        for reason, n in video.dropped.items():
            key = f"clip: {reason}"
            summary.dropped[key] = summary.dropped.get(key, 0) + n


def count_clips(summary: RunSummary, clips: list[ClipRecord]) -> None:
    """The run's clips into the summary: kept, filtered by rule, failed by stage, stage notes."""
    summary.clips_out = len(clips)
    summary.clips_kept = sum(1 for c in clips if c.active)
    rules = Counter(rule for c in clips for rule in c.filtered_by)
    for rule, n in rules.items():
        summary.dropped[f"filter: {rule}"] = n
    failures = Counter(c.failed_stage for c in clips if c.failed_stage)
    summary.failed_by_stage = dict(failures)
    # Stage notes, e.g. "filter: rule aesthetic skipped (no aesthetic score)", counted over clips.
    notes = Counter(f"{name}: {status.note}" for c in clips for name, status in c.stages.items() if status.note)
    summary.notes += [f"{text} ({n} clip{'s' if n > 1 else ''})" for text, n in notes.items()]


def resume_note(stage: str, clips: list[ClipRecord], ran: list[ClipRecord]) -> str | None:
    """What a re-run skipped of a stage because it was done already."""
    skipped = sum(1 for c in clips if c.is_done(stage)) - sum(1 for c in ran if c.is_done(stage))
    return f"{stage}: {skipped} clip(s) already done, skipped (use --force to redo)" if skipped > 0 else None


def note_resumed(summary: RunSummary, stage: str, clips: list[ClipRecord], ran: list[ClipRecord]) -> None:
    """The summary's note of what a re-run skipped of a stage (``ran``: the clips' records before it ran)."""
    note = resume_note(stage, clips, ran)
    if note:
        summary.notes.append(note)


@dataclass
class StageTally:
    """Stages run clip by clip (one decode of a clip serving all of them): the clips each ran on, as their
    records were before it ran, and the seconds it took over them."""

    ran: dict[str, list[ClipRecord]]
    seconds: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, stages: Iterable[str]) -> StageTally:
        return cls({name: [] for name in stages})

    @contextlib.contextmanager
    def timed(self, stage: str, clip: ClipRecord) -> Iterator[None]:
        """Count a run of ``stage`` on ``clip`` (its record before the run) and the block's seconds."""
        self.ran[stage].append(clip)
        started = time.perf_counter()
        yield
        self.seconds[stage] += time.perf_counter() - started

    def count(self, summary: RunSummary, clips: list[ClipRecord]) -> None:
        """Each stage's time, clip count and resume note into the summary (``clips``: every clip it was offered)."""
        for name, done in self.ran.items():
            summary.stage_seconds[name] = self.seconds[name]
            summary.stage_items[name] = len(done)
            note_resumed(summary, name, clips, done)


def store_fault(failed: bool, store_errors: list[Exception]) -> Exception | None:
    """The store's error behind an item's failure, or None: then the store failed, not the item (retry it)."""
    return store_errors[-1] if failed and store_errors else None


def lost_worker(stage: str, deliveries: int, max_deliveries: int) -> str | None:
    """Why a clip fails when its stage was delivered more often than allowed (its worker was lost each time: a
    poison clip fails alone), or None."""
    if deliveries <= max_deliveries:
        return None
    return f"its worker was lost {deliveries - 1} times while running {stage} on this clip"


def end_state(clip: ClipRecord) -> str:
    """How a clip's chain ended: ``failed:<stage>``, ``filtered`` or ``done``."""
    if clip.failed_stage:
        return f"failed:{clip.failed_stage}"
    return "filtered" if clip.filtered_by else "done"


def failed_in(clip: ClipRecord, stage: str, reason: str) -> ClipRecord:
    """The clip failed in ``stage`` for a reason outside the stage (its worker lost, an outage)."""
    clip = clip.model_copy(deep=True)
    clip.stages[stage] = StageStatus(state=StageState.failed, error=reason)
    return clip


def final_state(cancelled: bool, listing_failed: bool, video_states: list[str], clips: list[ClipRecord]) -> str:
    """A finished job's state: cancelled, failed (nothing listed, every video or every clip failed),
    partially_failed (some did) or succeeded."""
    failed_videos = sum(1 for s in video_states if s == VideoState.failed.value)
    failed_clips = sum(1 for c in clips if c.failed_stage)
    if cancelled:
        return "cancelled"
    if not video_states and listing_failed:
        return "failed"
    if video_states and failed_videos == len(video_states) or clips and failed_clips == len(clips):
        return "failed"
    return "partially_failed" if failed_videos or failed_clips else "succeeded"


def job_report(state: str, clips: list[ClipRecord], summary: RunSummary, video_states: list[str]) -> str:
    """The log line of a finished job: its clips, the failed ones, its failed videos."""
    failed_videos = sum(1 for s in video_states if s == VideoState.failed.value)
    return (f"job {state}: {len(clips)} clip(s), {sum(summary.failed_by_stage.values())} failed, "
            f"{failed_videos} of {len(video_states)} video(s) failed")
