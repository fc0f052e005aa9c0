"""Run one stage on one item and fold its outcome into the records.

This is the only place that knows how an outcome changes a record; the
embedded runner and the Celery workers both call it, so the two modes cannot
drift apart. A stage's declared inputs and outputs are checked around its run
(``services/orchestration/contracts.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.orchestration.contracts import missing_clip_videos, missing_input, output_fault
from services.records import ClipRecord, StageState, StageStatus, VideoRecord, VideoState
from services.stages.base import ClipFailed, PerClipStage, StageContext, VideoFailed, VideoOutcome, VideoStage
from services.stages.registry import STAGES
from services.threads import one_blas_thread
from services.video.probe import ProbeError

log = logging.getLogger(__name__)

STAGE_ORDER = list(STAGES)

_scratch_dirs: dict[int, Path] = {}


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """An empty scratch folder for one stage run: one per process, emptied after each run (a fresh
    temporary folder per run cost two filesystem round trips on every clip-stage, about 4-9 ms apiece
    on a busy machine, while most stages write nothing there)."""
    folder = _scratch_dirs.get(os.getpid())
    if folder is None or not folder.is_dir():
        folder = _scratch_dirs[os.getpid()] = Path(tempfile.mkdtemp(prefix=f"spatialvid-{os.getpid()}-"))
    try:
        yield folder
    finally:
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)


def run_clip_stage(stage: PerClipStage, clip: ClipRecord, ctx: StageContext, fingerprint: str) -> ClipRecord:
    """Run the stage on the clip and return the updated record (never raises for clip faults)."""
    started = time.perf_counter()
    clip = clip.model_copy(deep=True)
    # A stage that runs again makes every later stage's result stale.
    for later in STAGE_ORDER[STAGE_ORDER.index(stage.name) + 1:] if stage.name in STAGE_ORDER else []:
        clip.stages.pop(later, None)
    with scratch_folder() as scratch:
        ctx.workdir = scratch
        try:
            _check(missing_input(stage, clip, ctx), ClipFailed)
            with one_blas_thread():
                outcome = stage.run(clip, ctx)
            _check(output_fault(stage, clip, ctx, outcome), ClipFailed)
        except ClipFailed as exc:
            clip.stages[stage.name] = StageStatus(
                state=StageState.failed, seconds=time.perf_counter() - started, error=str(exc), config=fingerprint
            )
            return clip
        except Exception as exc:  # a bug or a broken clip: record it, keep the run going
            log.error("stage %s failed on clip %s:\n%s", stage.name, clip.id, traceback.format_exc())
            clip.stages[stage.name] = StageStatus(
                state=StageState.failed,
                seconds=time.perf_counter() - started,
                error=f"{type(exc).__name__}: {exc}",
                config=fingerprint,
            )
            return clip
    clip.columns.update(outcome.columns)
    clip.provenance.update(outcome.provenance)
    if outcome.filtered_by is not None:
        clip.filtered_by = list(outcome.filtered_by)
    clip.stages[stage.name] = StageStatus(
        state=StageState.done, seconds=time.perf_counter() - started, note=outcome.note, config=fingerprint
    )
    return clip


def run_video_stage(
    stage: VideoStage, video: VideoRecord, local_path: Path, ctx: StageContext, fingerprint: str
) -> VideoOutcome:
    """Clip one video; a bad input comes back as a failed record with its reason."""
    started = time.perf_counter()
    with scratch_folder() as scratch:
        ctx.workdir = scratch
        try:
            with one_blas_thread():
                outcome = stage.run(video, local_path, ctx)
            _check(missing_clip_videos(stage, outcome, ctx), VideoFailed)
        except (VideoFailed, ProbeError) as exc:
            failed = video.model_copy(update={"state": VideoState.failed, "error": str(exc)})
            outcome = VideoOutcome(video=failed, clips=[])
        except Exception as exc:
            log.error("clipping failed on %s:\n%s", video.source, traceback.format_exc())
            failed = video.model_copy(update={"state": VideoState.failed, "error": f"{type(exc).__name__}: {exc}"})
            outcome = VideoOutcome(video=failed, clips=[])
    outcome.video.seconds = time.perf_counter() - started
    outcome.video.config = fingerprint
    if outcome.video.state is VideoState.pending:
        outcome.video.state = VideoState.done
    outcome.video.clip_ids = [clip.id for clip in outcome.clips]
    for clip in outcome.clips:
        clip.stages[stage.name] = StageStatus(state=StageState.done, config=fingerprint)
    return outcome


def _check(fault: str | None, failure: type[Exception]) -> None:
    """A broken stage contract (services/orchestration/contracts.py) fails the item like the stage would."""
    if fault is not None:
        raise failure(fault)
