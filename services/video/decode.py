"""Stream decoded frames out of ffmpeg as numpy arrays, one at a time.

Decoding goes through an ffmpeg pipe rather than OpenCV so that every stage
decodes the same way (same rotation handling, same VFR policy, same scaler),
frames can be downscaled inside ffmpeg before they cross the pipe, and memory
holds one frame, whatever the clip's length.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.settings import VideoSettings
from services.video.probe import probe
from services.video.tools import ffmpeg_path

_CHANNELS = {"rgb24": 3, "bgr24": 3, "gray": 1}


class DecodeError(RuntimeError):
    pass


@dataclass(frozen=True)
class FrameRequest:
    """Which frames of a clip a reader wants, on the clip's frame grid: every ``step``-th from the first (at
    most ``count``), scaled inside ffmpeg to ``size`` (width, height; None: as decoded), as ``pix_fmt``."""

    size: tuple[int, int] | None = None
    pix_fmt: str = "rgb24"
    step: int = 1
    count: int | None = None

    def __post_init__(self) -> None:
        if self.pix_fmt not in _CHANNELS:
            raise ValueError(f"unsupported pix_fmt {self.pix_fmt}")

    def filters(self) -> list[str]:
        """ffmpeg filters after the frame grid is set (frames are picked, then scaled)."""
        picked = [f"select=not(mod(n\\,{self.step}))"] if self.step > 1 else []
        return picked + ([f"scale={self.size[0]}:{self.size[1]}:flags=area"] if self.size is not None else [])

    def output_args(self) -> list[str]:
        """ffmpeg's options for this reader's raw output (before the output's name)."""
        frames = ["-frames:v", str(self.count)] if self.count is not None else []
        return ["-fps_mode", "passthrough", *frames, "-pix_fmt", self.pix_fmt, "-f", "rawvideo"]

    def shape(self, width: int, height: int) -> tuple[int, ...]:
        """One frame's array shape, given the decoded (width, height) when ``size`` is None."""
        width, height = self.size or (width, height)
        return (height, width) if self.pix_fmt == "gray" else (height, width, 3)


def read_frames(
    path: Path,
    size: tuple[int, int] | None = None,
    pix_fmt: str = "rgb24",
    start: int = 0,
    count: int | None = None,
    step: int = 1,
    fps: float | None = None,
    settings: VideoSettings | None = None,
) -> Iterator[np.ndarray]:
    """Yield frames ``start, start+step, ...`` (at most ``count``) as HxWxC uint8.

    ``size`` is (width, height) to scale to inside ffmpeg. ``fps`` resamples to
    a constant rate first (how VFR input is put on a fixed frame grid); frame
    numbers then count on that grid. Pass the video's probed fps for CFR input.
    """
    request = FrameRequest(size=size, pix_fmt=pix_fmt, step=step, count=count)
    info = probe(path, settings) if (size is None or fps is None) else None
    rate = fps or info.fps
    filters = []
    resample = info is None or info.variable_frame_rate
    if resample:
        filters.append(f"fps={rate:.6f}")
        if start > 0:
            # Where the fps filter's grid starts after a seek differs between ffmpeg
            # versions: put the whole input on the grid and trim by frame instead.
            filters.append(f"trim=start_frame={start}")
    filters += request.filters()
    cmd = [ffmpeg_path(settings), "-nostdin", "-v", "error"]
    cmd += ["-threads", str(decode_threads(settings))]
    if start > 0 and not resample:
        # Input seeking is frame-accurate when decoding (ffmpeg's accurate_seek drops
        # frames before the point); half a frame early so rounding never drops frame `start`.
        offset = info.start_offset if info is not None else 0.0
        cmd += ["-ss", f"{offset + (start - 0.5) / rate:.6f}"]
    cmd += ["-i", str(path), "-an", "-sn"]
    if filters:
        cmd += ["-vf", ",".join(filters)]
    cmd += [*request.output_args(), "pipe:1"]
    shape = request.shape(info.width, info.height) if info is not None else request.shape(*size)
    frame_bytes = int(np.prod(shape))
    pipe = FramePipe(cmd, frame_bytes)
    yielded = 0
    for buf in pipe:
        yield np.frombuffer(buf, np.uint8).reshape(shape)
        yielded += 1
    if yielded == 0:
        raise DecodeError(f"no frames decoded from {path}" + (f": {pipe.last_error}" if pipe.last_error else ""))


def decode_threads(settings: VideoSettings | None) -> int:
    return settings.decode_threads if settings else 2


class FramePipe:
    """An ffmpeg command writing fixed-size raw frames to stdout: iterate it for each
    frame's bytes; afterwards ``returncode`` and ``last_error`` say how ffmpeg ended.

    stderr goes to a temporary file, not a pipe: a broken stream can log more than a
    pipe holds, and ffmpeg would stall on it while we wait for frames."""

    def __init__(self, cmd: list[str], frame_bytes: int) -> None:
        self.cmd, self.frame_bytes = cmd, frame_bytes
        self.returncode: int | None = None
        self.last_error = ""

    def __iter__(self) -> Iterator[bytes]:
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=errors, bufsize=self.frame_bytes * 2)
            try:
                while len(buf := proc.stdout.read(self.frame_bytes)) == self.frame_bytes:
                    yield buf
            finally:
                proc.stdout.close()
                if proc.poll() is None:
                    proc.kill()
                self.returncode = proc.wait()
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                self.last_error = lines[-1] if lines else ""
