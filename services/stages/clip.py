"""The clip stage: one input video in, its clips (and why other shots made none) out.

probe -> shot detection on small frames -> spans (trim, 3..15 s, split) ->
frame-accurate cut of each span. The maths lives in ``services.video.shots``
and ``services.video.spans``; this module only moves files and fills records.
Without the clip stage, ``whole_video`` takes each input file as one clip.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from services.records import ClipRecord, VideoRecord
from services.settings import ClipSettings, VideoSettings
from services.artifacts import CLIP_VIDEO
from services.stages.base import Files, StageContext, VideoFailed, VideoOutcome, VideoStage
from services.video.cut import CutError, cut_clip
from services.video.decode import DecodeError, read_frames
from services.video.probe import ProbeError, VideoInfo, probe
from services.video.shots import ShotDetection, analysis_size, detect_shots
from services.video.spans import plan_spans, seconds_text
from services.video.tools import ffmpeg_path

# Containers whose file can serve as a clip as is (no re-encode) when there is no clip stage.
_MP4_FAMILY = {".mp4", ".m4v", ".mov"}
# A video whose decodable frames fall this far short of what its container lists is broken.
_MIN_DECODED_SHARE = 0.9


class ShotClippingStage(VideoStage):
    name = "clip"
    config_sections = ("clip",)

    def outputs(self, settings) -> Files:
        return Files(required=(CLIP_VIDEO,))  # one per clip

    def run(self, video: VideoRecord, local_path: Path, ctx: StageContext) -> VideoOutcome:
        settings = ctx.settings.clip
        info = probe_video(local_path, ctx.settings.video)
        if info.duration < settings.min_seconds:
            raise VideoFailed(
                f"too short: {info.duration:.2f} s, clips need at least {seconds_text(settings.min_seconds)} s"
            )
        detection = detect_video_shots(local_path, info, settings, ctx)
        plan = plan_spans(detection.shots, info.fps, settings)
        provenance = {"clip": _provenance(settings, ctx.settings.video)}
        clips: list[ClipRecord] = []
        try:
            for index, span in enumerate(plan.spans):
                clip_id = f"{video.source_id}_{index}"
                key = f"clips/{clip_id}.mp4"
                with ctx.store.writer(key, ".mp4") as tmp:
                    cut = cut_clip(local_path, tmp, span.start, span.num_frames, info, settings, ctx.settings.video)
                end = span.start + cut.num_frames
                clips.append(
                    ClipRecord(
                        id=clip_id,
                        source=video.source,
                        source_id=video.source_id,
                        num_frames=cut.num_frames,
                        height=cut.height,
                        width=cut.width,
                        fps=info.fps,
                        timestamp_start=round(span.start / info.fps, 6),
                        timestamp_end=round(end / info.fps, 6),
                        frame_start=span.start,
                        frame_end=end,
                        columns={"shot_index": span.shot_index},
                        provenance=dict(provenance),
                    )
                )
                _report(ctx, 0.5 + 0.5 * (index + 1) / len(plan.spans))
        except CutError as exc:
            for clip in clips:  # a video is clipped whole or not at all
                ctx.store.delete(clip.clip_key)
            raise VideoFailed(str(exc)) from exc
        updated = _described(
            video, info, num_frames=detection.num_frames, num_shots=len(detection.shots),
            dropped=plan.dropped_reasons(),
        )
        return VideoOutcome(video=updated, clips=clips)

    def whole_video(self, video: VideoRecord, local_path: Path, ctx: StageContext) -> VideoOutcome:
        """Without clipping: the input file is one clip, id = the source id."""
        info = probe_video(local_path, ctx.settings.video)
        clip = whole_clip(info, video.source, video.source_id)
        clip = store_whole_clip(local_path, clip, info, ctx)
        return VideoOutcome(video=_described(video, info, num_frames=info.num_frames), clips=[clip])


class WholeVideoStage(VideoStage):
    """Without the clip stage, each input file is one whole clip."""

    name = "clip"

    def __init__(self, clipper: ShotClippingStage) -> None:
        self.clipper = clipper

    def outputs(self, settings) -> Files:
        return self.clipper.outputs(settings)

    def run(self, video: VideoRecord, local_path: Path, ctx: StageContext) -> VideoOutcome:
        return self.clipper.whole_video(video, local_path, ctx)


def ingest_stage(clipper: ShotClippingStage, clipping: bool, settings) -> tuple[VideoStage, str]:
    """What turns an input into clips in this run (both modes ask here), and its
    fingerprint: the clip stage, or the whole file as one clip."""
    if clipping:
        return clipper, clipper.fingerprint(settings)
    return WholeVideoStage(clipper), "whole"


def _described(video: VideoRecord, info: VideoInfo, num_frames: int, **extra) -> VideoRecord:
    """The video record with what probing and decoding found out."""
    return video.model_copy(update={
        "fps": info.fps, "width": info.width, "height": info.height,
        "num_frames": num_frames, "duration": round(num_frames / info.fps, 6), **extra,
    })


def probe_video(path: Path, settings: VideoSettings | None = None) -> VideoInfo:
    try:
        return probe(path, settings)
    except ProbeError as exc:
        raise VideoFailed(str(exc)) from exc


def detect_video_shots(path: Path, info: VideoInfo, settings: ClipSettings, ctx: StageContext) -> ShotDetection:
    """Decode small frames (on the constant ``info.fps`` grid) and find the cuts."""
    size = analysis_size(info.width, info.height, settings.analysis_width)
    frames = read_frames(path, size=size, pix_fmt="bgr24", fps=info.fps, settings=ctx.settings.video)
    try:
        detection = detect_shots(_with_progress(frames, info.num_frames, ctx), settings)
    except DecodeError as exc:
        raise VideoFailed(f"not decodable: {exc}") from exc
    if detection.num_frames < _MIN_DECODED_SHARE * info.num_frames:
        raise VideoFailed(
            f"truncated or corrupt: only {detection.num_frames} of {info.num_frames} frames decode"
        )
    return detection


def whole_clip(video_info: VideoInfo, source: str, source_id: str) -> ClipRecord:
    """The record of an input file taken whole as one clip (no clip stage)."""
    return ClipRecord(
        id=source_id,
        source=source,
        source_id=source_id,
        num_frames=video_info.num_frames,
        height=video_info.height,
        width=video_info.width,
        fps=video_info.fps,
        timestamp_start=0.0,
        timestamp_end=round(video_info.duration, 6),
        frame_start=0,
        frame_end=video_info.num_frames,
    )


def store_whole_clip(local_path: Path, clip: ClipRecord, info: VideoInfo, ctx: StageContext) -> ClipRecord:
    """Put the input file at ``clips/{id}.mp4``: copied when it already is an mp4, else re-encoded.

    Returns the record, updated to what was written (a re-encode may make an odd size even).
    """
    if Path(local_path).suffix.lower() in _MP4_FAMILY:
        ctx.store.put_file(clip.clip_key, local_path)
        return clip
    try:
        with ctx.store.writer(clip.clip_key, ".mp4") as tmp:
            cut = cut_clip(local_path, tmp, 0, clip.num_frames, info, ctx.settings.clip, ctx.settings.video)
    except CutError as exc:
        raise VideoFailed(str(exc)) from exc
    return clip.model_copy(
        update={
            "num_frames": cut.num_frames,
            "width": cut.width,
            "height": cut.height,
            "frame_end": cut.num_frames,
            "timestamp_end": round(cut.num_frames / info.fps, 6),
            "provenance": {"clip": f"whole file re-encoded to mp4 with {_ffmpeg_version(ctx.settings.video)}"},
        }
    )


def _with_progress(frames: Iterator[np.ndarray], expected: int, ctx: StageContext) -> Iterator[np.ndarray]:
    if ctx.progress is None:
        yield from frames
        return
    for index, frame in enumerate(frames):
        if index % 64 == 0:
            _report(ctx, 0.5 * min(1.0, index / max(1, expected)))
        yield frame


def _report(ctx: StageContext, fraction: float) -> None:
    if ctx.progress is not None:
        ctx.progress(fraction)


def _provenance(settings: ClipSettings, video: VideoSettings) -> str:
    return (
        f"shots: spatialvid content+adaptive detector (PySceneDetect rules: content {settings.content_threshold:g}, "
        f"adaptive {settings.adaptive_threshold:g} luma, min {settings.min_scene_frames} frames, "
        f"every {settings.frame_step} frame(s)); cut: {_ffmpeg_version(video)} libx264 crf {settings.crf} "
        f"{settings.preset}"
    )


@functools.cache
def _ffmpeg_version_of(binary: str) -> str:
    try:
        first = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        return "ffmpeg"
    parts = first.split()
    return f"ffmpeg {parts[2]}" if len(parts) > 2 else "ffmpeg"


def _ffmpeg_version(video: VideoSettings) -> str:
    return _ffmpeg_version_of(ffmpeg_path(video))
