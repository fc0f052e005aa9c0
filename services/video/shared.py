"""One decode of a clip for every stage of this process that reads its frames.

The camera, depth and caption stages each read a clip's frames, each at its own size and step. When they run
one after the other on the same clip in one process (the embedded run, the ``annotate`` task), the clip is
decoded once: one ffmpeg pass splits the decoded frames into one output per reader, each through the filters
``read_frames`` would apply to it alone, so every reader gets the bytes its own decode would give.

The outputs wait in memory until the clip's stages are done, in one buffer that the next clip reuses: fresh
memory costs a page fault per 4 KiB, which at 720p costs more than the decode saved (measured in
bench/shared_decode.py). The buffer is at most ``max_bytes``; a clip needing more is not shared (each stage
decodes it on its own).
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from services.settings import VideoSettings
from services.video.decode import DecodeError, FrameRequest, decode_threads, read_frames
from services.video.probe import probe
from services.video.tools import ffmpeg_path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class _Output:
    """One reader's frames in the shared buffer: ``data`` holds ``frames`` frames of ``shape``."""

    shape: tuple[int, ...]
    data: np.ndarray
    frames: int = 0


@dataclasses.dataclass
class _OpenClip:
    """The clip whose stages run now: its local file, what its readers asked for, and their outputs once decoded."""

    clip_key: str
    path: str
    requests: tuple[FrameRequest, ...]
    outputs: dict[FrameRequest, _Output] | None = None
    error: str = ""


class DecodedClips:
    """A process's decoded clip: ``open(...)`` around one clip's stages, ``frames(...)`` from each stage.

    State: at most one clip is open. Its outputs are decoded, all in one ffmpeg pass, when the first reader asks,
    and forgotten when the clip is closed (the buffer stays, for the next clip, as long as this object). ``passes``
    counts the shared passes and ``cpu_seconds`` their ffmpeg CPU time (for the benchmark)."""

    def __init__(self, settings: VideoSettings, max_bytes: int) -> None:
        self.settings = settings
        self.max_bytes = max_bytes
        self.passes = 0
        self.cpu_seconds = 0.0
        self._open: _OpenClip | None = None
        self._buffer = np.empty(0, np.uint8)

    @classmethod
    def for_settings(cls, settings: VideoSettings) -> DecodedClips:
        """One within the memory the video section allows it (``share_decode_max_mb``)."""
        return cls(settings, settings.share_decode_max_mb << 20)

    @contextmanager
    def open(self, store, clip, requests: Sequence[FrameRequest]) -> Iterator[None]:
        """Serve ``requests`` (what the clip's stages will ask for) of ``clip`` from one decode while inside."""
        wanted = tuple(dict.fromkeys(requests))
        if self._open is not None:
            raise RuntimeError(f"{self._open.clip_key} is still open")
        if not wanted or _planned_bytes(clip, wanted) > self.max_bytes or not store.exists(clip.clip_key):
            yield  # nothing to share: each stage decodes on its own
            return
        with store.local_path(clip.clip_key) as path:
            self._open = _OpenClip(clip.clip_key, str(path), wanted)
            try:
                yield
            finally:
                self._open = None

    def frames(self, clip, request: FrameRequest) -> Iterator[np.ndarray] | None:
        """The open clip's frames as ``request`` asks, or None when this clip or request is not planned."""
        shared = self._open
        if shared is None or shared.clip_key != clip.clip_key or request not in shared.requests:
            return None
        return self._stream(shared, request, clip)

    def _stream(self, shared: _OpenClip, request: FrameRequest, clip) -> Iterator[np.ndarray]:
        # a generator, like read_frames: the decode (and its error) comes with the first frame asked for
        if shared.outputs is None:
            self._decode(shared, clip)
        if shared.error:
            raise DecodeError(shared.error)
        out = shared.outputs[request]
        frame_bytes = math.prod(out.shape)
        for i in range(out.frames):
            frame = out.data[i * frame_bytes:(i + 1) * frame_bytes].reshape(out.shape).copy()
            frame.flags.writeable = False  # as read_frames gives them
            yield frame

    def _decode(self, shared: _OpenClip, clip) -> None:
        info = probe(shared.path, self.settings)
        grid = f"fps={info.fps:.6f}," if info.variable_frame_rate else ""  # as read_frames puts VFR on a grid
        n = len(shared.requests)
        chains = [f"[0:v]{grid}split={n}" + "".join(f"[s{i}]" for i in range(n))]
        chains += [f"[s{i}]{','.join(r.filters()) or 'null'}[o{i}]" for i, r in enumerate(shared.requests)]
        cmd = [ffmpeg_path(self.settings), "-nostdin", "-v", "error", "-threads", str(decode_threads(self.settings)),
               "-i", shared.path, "-an", "-sn", "-filter_complex", ";".join(chains)]
        # each output into its own slice of the buffer (planned from the clip's frame count; more frames than
        # planned go to a spill list), read by one thread per output so that ffmpeg never waits on a full pipe
        sizes = [_request_bytes(clip, r) for r in shared.requests]
        if self._buffer.size < sum(sizes):
            self._buffer = np.empty(sum(sizes), np.uint8)
        pipes, outputs, offset = [], {}, 0
        for i, (r, size) in enumerate(zip(shared.requests, sizes)):
            read_end, write_end = os.pipe()
            pipes.append((read_end, write_end))
            cmd += ["-map", f"[o{i}]", *r.output_args(), f"pipe:{write_end}"]
            outputs[r] = _Output(r.shape(info.width, info.height), self._buffer[offset:offset + size])
            offset += size
        cpu = _children_cpu()
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                        pass_fds=[w for _, w in pipes])
            finally:
                for _, write_end in pipes:
                    os.close(write_end)
            readers = [threading.Thread(target=_fill, args=(read_end, out), daemon=True)
                       for (read_end, _), out in zip(pipes, outputs.values())]
            for t in readers:
                t.start()
            for t in readers:
                t.join()
            proc.wait()
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines()
        self.cpu_seconds += _children_cpu() - cpu
        self.passes += 1
        shared.outputs = outputs
        if not any(out.frames for out in outputs.values()):
            shared.error = f"no frames decoded from {shared.path}" + (f": {lines[-1]}" if lines else "")


def _fill(fd: int, out: _Output) -> None:
    """Read one output's pipe to its end: into ``out.data``, then, past it, into a grown copy."""
    frame_bytes = math.prod(out.shape)
    view, filled = memoryview(out.data), 0
    spill = bytearray()
    with open(fd, "rb", buffering=0) as pipe:
        while filled < len(view) and (got := pipe.readinto(view[filled:])):
            filled += got
        while chunk := pipe.read(1 << 22):
            spill += chunk
    if spill:  # more frames than the clip record said
        out.data = np.concatenate([out.data[:filled], np.frombuffer(spill, np.uint8)])
        filled = out.data.size
    out.frames = filled // frame_bytes


def _request_bytes(clip, request: FrameRequest) -> int:
    frames = math.ceil(clip.num_frames / request.step)
    return min(frames, request.count or frames) * math.prod(request.shape(clip.width, clip.height))


def _planned_bytes(clip, requests: Sequence[FrameRequest]) -> int:
    return sum(_request_bytes(clip, r) for r in requests)


@contextmanager
def clip_frames(ctx, clip, request: FrameRequest) -> Iterator[Iterator[np.ndarray]]:
    """A stage's way to read its clip's frames: from the process's shared decode when it holds this clip and
    request (``ctx.decoded``), else decoded now, on their own."""
    shared = ctx.decoded.frames(clip, request) if ctx.decoded is not None else None
    if shared is not None:
        yield shared
        return
    with ctx.store.local_path(clip.clip_key) as path:
        yield read_frames(path, settings=ctx.settings.video, **dataclasses.asdict(request))


def decode_groups(stages: Sequence, share: bool) -> list[list]:
    """The clip stages in order, in groups that run clip by clip: consecutive stages that read frames together
    (one decode of a clip then serves them all) when ``share``, every other stage alone."""
    groups: list[list] = []
    for stage in stages:
        if share and stage.reads_frames and groups and groups[-1][-1].reads_frames:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return groups
