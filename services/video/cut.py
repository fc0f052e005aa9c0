"""Frame-accurate cutting with ffmpeg: exactly the frames of a span, re-encoded.

Stream copy can only start on a keyframe, so clips are re-encoded (libx264,
crf/preset from the settings). The span's first frame is found by an input
seek to half a frame before its timestamp (ffmpeg decodes from the previous
keyframe and drops everything earlier), and ``-frames:v`` stops after exactly
the span's length. Frame rate and size are kept, except: ``max_height`` scales
larger videos down (aspect kept), and an odd width or height loses its last
pixel column/row, because 4:2:0 H.264 needs even sizes. Variable-frame-rate
input goes through ffmpeg's ``fps`` filter at the video's average rate, the
same grid shot detection numbered its frames on.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.settings import ClipSettings, VideoSettings
from services.video.probe import VideoInfo
from services.video.tools import ffmpeg_path


class CutError(RuntimeError):
    pass


@dataclass(frozen=True)
class CutResult:
    num_frames: int
    width: int
    height: int


def output_size(width: int, height: int, max_height: int | None) -> tuple[int, int]:
    """The clip's frame size: the source's, scaled to ``max_height`` if taller, made even."""
    if max_height and height > max_height:
        width, height = round(width * max_height / height), max_height
    return max(2, width - width % 2), max(2, height - height % 2)


def cut_command(
    source: Path,
    dest: Path,
    start_frame: int,
    num_frames: int,
    info: VideoInfo,
    clip: ClipSettings,
    video: VideoSettings | None = None,
) -> list[str]:
    width, height = output_size(info.width, info.height, clip.max_height)
    cmd = [ffmpeg_path(video), "-nostdin", "-v", "error", "-y"]
    if start_frame > 0 and not info.variable_frame_rate:
        cmd += ["-ss", f"{info.start_offset + (start_frame - 0.5) / info.fps:.6f}"]
    cmd += ["-i", str(source), "-map", "0:v:0", "-an", "-sn", "-dn"]
    filters = []
    if info.variable_frame_rate:
        # Where the fps filter's grid starts after a seek differs between ffmpeg
        # versions, so VFR input is put on the grid from its start and trimmed by frame.
        filters.append(f"fps={info.fps:.6f}")
        if start_frame > 0:
            filters += [f"trim=start_frame={start_frame}", "setpts=PTS-STARTPTS"]
    if (width, height) != (info.width, info.height):
        if clip.max_height and info.height > clip.max_height:
            filters.append(f"scale={width}:{height}:flags=lanczos")
        else:
            filters.append(f"crop={width}:{height}:0:0")
    if filters:
        cmd += ["-vf", ",".join(filters)]
    cmd += [
        "-fps_mode", "passthrough",
        "-frames:v", str(num_frames),
        "-c:v", "libx264", "-crf", str(clip.crf), "-preset", clip.preset, "-pix_fmt", "yuv420p",
        "-movflags", "+faststart",
        "-progress", "pipe:1", "-nostats",
        "-f", "mp4", str(dest),
    ]
    return cmd


def cut_clip(
    source: Path,
    dest: Path,
    start_frame: int,
    num_frames: int,
    info: VideoInfo,
    clip: ClipSettings,
    video: VideoSettings | None = None,
) -> CutResult:
    """Write frames ``[start_frame, start_frame + num_frames)`` of ``source`` to ``dest`` (mp4)."""
    if num_frames <= 0:
        raise ValueError("num_frames must be positive")
    cmd = cut_command(source, dest, start_frame, num_frames, info, clip, video)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        raise CutError(f"ffmpeg could not cut frames {start_frame}..{start_frame + num_frames}: {detail}")
    written = _frames_written(result.stdout)
    if written <= 0:
        raise CutError(f"ffmpeg wrote no frames for {start_frame}..{start_frame + num_frames}")
    width, height = output_size(info.width, info.height, clip.max_height)
    return CutResult(num_frames=written, width=width, height=height)


def _frames_written(progress: str) -> int:
    """The last ``frame=N`` of ffmpeg's ``-progress`` report."""
    frames = [line.split("=", 1)[1] for line in progress.splitlines() if line.startswith("frame=")]
    try:
        return int(frames[-1]) if frames else 0
    except ValueError:
        return 0
