"""A stage's declared files, checked: its required inputs exist before it runs, and after it ran it
reported writing every required output and nothing it did not declare.

A per-clip stage reports what it wrote in ``ClipOutcome.artifacts`` (its writes go through the store,
which raises when one fails), so the output check costs no round trip; a video stage's clip videos
are looked up in the store, one lookup per clip.
"""

from __future__ import annotations

from services.artifacts import CLIP_VIDEO, WRITTEN_BY
from services.records import ClipRecord
from services.stages.base import ClipOutcome, PerClipStage, StageContext, VideoOutcome, VideoStage


def artifact_key(clip: ClipRecord, name: str) -> str:
    """Where a declared file of the clip lives in the store."""
    return clip.clip_key if name == CLIP_VIDEO else clip.annotation_key(name)


def missing_input(stage: PerClipStage, clip: ClipRecord, ctx: StageContext) -> str | None:
    """Why the stage cannot run on the clip: its first required input that is not there, or None."""
    for name in stage.inputs(ctx.settings).required:
        key = artifact_key(clip, name)
        if not ctx.store.exists(key):
            if name == CLIP_VIDEO:
                return f"clip file {key} is missing"
            return f"{key} is missing (run the {WRITTEN_BY[name]} stage first)"
    return None


def output_fault(stage: PerClipStage, clip: ClipRecord, ctx: StageContext, outcome: ClipOutcome) -> str | None:
    """What the stage's outcome breaks of its declaration (a required output not written, a file written
    that it did not declare), or None."""
    declared = stage.outputs(ctx.settings)
    written = set(outcome.artifacts)
    absent = [name for name in declared.required if artifact_key(clip, name) not in written]
    if absent:
        return f"stage {stage.name} did not write {', '.join(absent)}"
    undeclared = written - {artifact_key(clip, name) for name in declared.names}
    if undeclared:
        return f"stage {stage.name} wrote {', '.join(sorted(undeclared))} without declaring it"
    return None


def missing_clip_videos(stage: VideoStage, outcome: VideoOutcome, ctx: StageContext) -> str | None:
    """Which clips of the outcome have no video in the store, when the stage declares writing them."""
    if CLIP_VIDEO not in stage.outputs(ctx.settings).required:
        return None
    absent = [clip.clip_key for clip in outcome.clips if not ctx.store.exists(clip.clip_key)]
    return f"stage {stage.name} did not write {', '.join(absent)}" if absent else None
