"""What a video file is: size, frame rate, frame count, rotation, VFR or not."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel

from services.settings import VideoSettings
from services.video.tools import ffprobe_path


class ProbeError(ValueError):
    """The file is not a readable video; the message says why in plain words."""


class VideoInfo(BaseModel):
    path: str
    codec: str
    width: int  # as displayed, after any rotation metadata
    height: int
    fps: float  # the constant rate frames are numbered at (the average rate for VFR)
    num_frames: int
    duration: float
    rotation: int = 0
    variable_frame_rate: bool = False
    # Where the video stream starts after the file's start, in seconds (ffmpeg's
    # -ss counts from the file's start; frame 0 is the first video frame).
    start_offset: float = 0.0


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value) if value > 0 else 0.0


def probe(path: Path, settings: VideoSettings | None = None) -> VideoInfo:
    path = Path(path)
    _check_readable(path)
    cmd = [
        ffprobe_path(settings), "-v", "error", "-count_packets",
        "-show_entries",
        "stream=codec_type,codec_name,width,height,r_frame_rate,avg_frame_rate,nb_read_packets,nb_frames,duration,start_time"
        ":stream_tags=rotate:stream_side_data=rotation:format=duration,format_name,start_time",
        "-of", "json", str(path),
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except PermissionError:
        raise ProbeError(f"permission denied: {path}") from None
    if result.returncode != 0:
        raise ProbeError(_failure_reason(path, result.stderr))
    data = json.loads(result.stdout or "{}")
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        kinds = sorted({s.get("codec_type", "?") for s in streams})
        raise ProbeError(f"no video stream (found: {', '.join(kinds) or 'nothing'})")
    r_rate, avg_rate = _rate(video.get("r_frame_rate")), _rate(video.get("avg_frame_rate"))
    fps = avg_rate or r_rate
    if fps <= 0:
        raise ProbeError("video stream has no usable frame rate")
    num_frames = int(video.get("nb_read_packets") or 0)
    listed = _int(video.get("nb_frames"))
    if listed > 0 and num_frames < _MIN_PRESENT_SHARE * listed:
        raise ProbeError(f"truncated: the container lists {listed} frames but only {num_frames} are in the file")
    duration = float(video.get("duration") or data.get("format", {}).get("duration") or 0.0)
    if num_frames <= 0:
        raise ProbeError("video stream has no frames (truncated or empty)")
    if duration <= 0:
        duration = num_frames / fps
    rotation = int(video.get("tags", {}).get("rotate", 0) or 0)
    for side in video.get("side_data_list", []) or []:
        if "rotation" in side:
            rotation = int(side["rotation"])
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise ProbeError("video stream has no frame size")
    if abs(rotation) % 180 == 90:  # ffmpeg auto-rotates on decode; report what is seen
        width, height = height, width
    return VideoInfo(
        path=str(path),
        codec=str(video.get("codec_name", "")),
        width=width,
        height=height,
        fps=fps,
        num_frames=num_frames,
        duration=duration,
        rotation=rotation,
        variable_frame_rate=bool(r_rate and avg_rate and abs(r_rate - avg_rate) / avg_rate > 0.01),
        start_offset=max(0.0, _seconds(video.get("start_time")) - _seconds(data.get("format", {}).get("start_time"))),
    )


def _check_readable(path: Path) -> None:
    """Plain reasons for files ffprobe cannot even open (its own message is vague)."""
    try:
        if not path.exists():
            raise ProbeError(f"file not found: {path}")
        if not path.is_file():
            raise ProbeError(f"not a file: {path}")
        if path.stat().st_size == 0:
            raise ProbeError("empty file (0 bytes)")
        with open(path, "rb"):
            pass
    except PermissionError:
        raise ProbeError(f"permission denied: {path}") from None


# A file holding fewer frames than this share of what its header lists is cut short.
_MIN_PRESENT_SHARE = 0.9


def _failure_reason(path: Path, stderr: str) -> str:
    """Plain words for why ffprobe could not open the file."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    detail = lines[-1].replace(f"{path}: ", "") if lines else "unknown error"
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head[4:8] == b"ftyp" and "moov atom not found" in stderr:
        return "truncated or incomplete mp4: its index (moov atom) is missing"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"not a video: the file holds plain text ({detail})"
    return f"not a readable video ({detail})"


def _int(text: str | None) -> int:
    try:
        return int(text) if text not in (None, "N/A") else 0
    except ValueError:
        return 0


def _seconds(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "N/A") else 0.0
    except ValueError:
        return 0.0
