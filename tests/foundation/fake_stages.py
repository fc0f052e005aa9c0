"""Tiny stand-in stages that exercise the runner's bookkeeping, not any maths."""

from __future__ import annotations

from services.records import ClipRecord
from services.stages.base import ClipFailed, ClipOutcome, PerClipStage, VideoFailed, VideoOutcome, VideoStage

CALLS: list[tuple[str, str]] = []


class FakeClip(VideoStage):
    """The input file holds the number of clips to make, or 'bad'."""

    name = "clip"

    def run(self, video, local_path, ctx):
        CALLS.append(("clip", video.source_id))
        text = local_path.read_text().strip()
        if text == "bad":
            raise VideoFailed("not a video (test)")
        n = int(text) if text.isdigit() else 1
        clips = []
        for i in range(n):
            clip = ClipRecord(
                id=f"{video.source_id}_{i}", source=video.source, source_id=video.source_id,
                num_frames=10, height=36, width=64, fps=10.0,
                timestamp_start=i, timestamp_end=i + 1, frame_start=10 * i, frame_end=10 * i + 10,
            )
            ctx.store.put_text(clip.clip_key, f"clip {i}")
            clips.append(clip)
        video.num_shots = n + ctx.settings.clip.min_scene_frames % 1
        if ctx.settings.clip.min_seconds > 5:
            video.dropped = {"shorter than min": n}
            for clip in clips:
                ctx.store.delete(clip.clip_key)
            clips = []
        return VideoOutcome(video=video, clips=clips)

    def whole_video(self, video, local_path, ctx):
        return VideoOutcome(video=video, clips=[ClipRecord(
            id=video.source_id, source=video.source, source_id=video.source_id, num_frames=5, height=36,
            width=64, fps=10.0, timestamp_start=0, timestamp_end=0.5, frame_start=0, frame_end=5,
        )])


class FakeScore(PerClipStage):
    name = "score"

    def run(self, clip, ctx):
        CALLS.append(("score", clip.id))
        if clip.id.startswith("poison"):
            raise ClipFailed("poison clip (test)")
        if clip.id.startswith("crash"):
            raise ZeroDivisionError("bug (test)")
        ctx.store.put_text(clip.annotation_key("score.txt"), "1")
        return ClipOutcome(columns={"score": float(clip.frame_start)}, provenance={"score": "fake 1.0"})


class FakeFilter(PerClipStage):
    name = "filter"

    def run(self, clip, ctx):
        CALLS.append(("filter", clip.id))
        limit = ctx.settings.filter.motion_max
        return ClipOutcome(filtered_by=["score"] if clip.columns["score"] > limit else [])


class FakeCamera(PerClipStage):
    name = "camera"
    config_sections = ("camera",)

    def run(self, clip, ctx):
        CALLS.append(("camera", clip.id))
        return ClipOutcome(columns={"success": True})
