"""Decode a clip once for every scorer.

One ffmpeg process streams every frame as raw yuv420p at the clip's own size:
the luma plane of each frame goes to the frame sinks (VMAF motion reads every
frame at native resolution, as libvmaf does), and only the few frames the
frame-based scorers need are converted to RGB and resized in Python. Nothing
is decoded twice and nothing but the sampled frames is kept in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from services.scoring.base import FrameSink, SampledFrames, ScoringError
from services.video.decode import FramePipe


def sample_indices(num_frames: int, points: Sequence[float]) -> list[int]:
    """Frame numbers at the given fractions of the clip (0.1, 0.5, 0.9 by default)."""
    last = max(num_frames - 1, 0)
    return [min(last, max(0, int(p * num_frames))) for p in points]


def flow_pair_starts(num_frames: int, pairs: int) -> list[int]:
    """First frames of ``pairs`` consecutive-frame pairs spread evenly over the clip."""
    if num_frames < 2 or pairs <= 0:
        return []
    starts = {min(num_frames - 2, int((k + 0.5) / pairs * (num_frames - 1))) for k in range(pairs)}
    return sorted(starts)


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited-range yuv420p -> RGB (what ffmpeg's default rgb24 conversion does)."""
    h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2  # odd sizes: drop the last row/column
    planar = np.concatenate(
        [y[:h, :w].reshape(-1), u[: h // 2, : w // 2].reshape(-1), v[: h // 2, : w // 2].reshape(-1)]
    ).reshape(h * 3 // 2, w)
    return cv2.cvtColor(planar, cv2.COLOR_YUV2RGB_I420)


def decode_for_scoring(
    path: Path,
    frame_size: tuple[int, int],
    expected_frames: int,
    size: tuple[int, int],
    sample_points: Sequence[float],
    flow_pairs: int,
    sinks: dict[str, FrameSink],
    ffmpeg: str = "ffmpeg",
    threads: int = 2,
) -> SampledFrames:
    """Stream ``path`` once; return the sampled frames and every sink's result.

    ``frame_size`` is the decoded (width, height), after any rotation, and
    ``expected_frames`` places the samples (both from the clip record or a probe);
    if the stream turns out shorter, samples past its end come from its last
    frames instead.
    """
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-threads", str(threads), "-i", str(path),
           "-map", "0:v:0", "-an", "-sn", "-fps_mode", "passthrough",
           "-pix_fmt", "yuv420p", "-f", "rawvideo", "pipe:1"]
    width, height = frame_size
    cw, ch = (width + 1) // 2, (height + 1) // 2
    y_bytes, c_bytes = width * height, cw * ch
    frame_bytes = y_bytes + 2 * c_bytes
    wanted = sample_indices(expected_frames, sample_points)
    starts = flow_pair_starts(expected_frames, flow_pairs)
    flow_wanted = set(starts) | {s + 1 for s in starts}
    out_w, out_h = size

    samples: dict[int, np.ndarray] = {}
    flow_frames: dict[int, np.ndarray] = {}
    last_two: list[tuple[int, bytes]] = []  # for clips shorter than announced
    pipe = FramePipe(cmd, frame_bytes)
    n = 0
    for buf in pipe:
        luma = np.frombuffer(buf, np.uint8, y_bytes).reshape(height, width)
        for sink in sinks.values():
            sink.push(luma)
        if n in wanted:
            samples[n] = _to_rgb(buf, width, height, cw, ch, (out_w, out_h))
        if n in flow_wanted:
            flow_frames[n] = cv2.resize(luma, (out_w, out_h), interpolation=cv2.INTER_AREA)
        last_two = (last_two + [(n, buf)])[-2:]
        n += 1
    detail = pipe.last_error or "ffmpeg produced no frames"
    if n == 0:
        raise ScoringError(f"cannot decode clip: {detail}")
    if pipe.returncode != 0 and n < 0.9 * expected_frames:
        raise ScoringError(f"clip decodes only {n} of {expected_frames} frames: {detail}")
    indices = _samples_within(wanted, n, last_two, samples, (width, height, cw, ch, (out_w, out_h)))
    pairs, flow = _flow_pairs(starts, flow_frames, (out_w, out_h))
    return SampledFrames(
        rgb=np.stack([samples[i] for i in indices]) if indices else np.zeros((0, out_h, out_w, 3), np.uint8),
        indices=indices,
        flow_pairs=flow,
        flow_indices=[a for a, _ in pairs],
        num_frames=n,
        source_size=(width, height),
        sink_results={name: sink.finish() for name, sink in sinks.items()},
    )


def _samples_within(wanted, n: int, last_two: list[tuple[int, bytes]], samples: dict[int, np.ndarray],
                    geometry: tuple) -> list[int]:
    """The sample indices within a stream of ``n`` frames: a stream shorter than announced gives the missing
    samples from its last frame (converted into ``samples`` by ``_to_rgb`` with the frames' ``geometry``)."""
    indices = [i if i < n else last_two[-1][0] for i in wanted]
    for i in indices:
        if i not in samples:
            buf = dict(last_two)[i]
            samples[i] = _to_rgb(buf, *geometry)
    return indices


def _flow_pairs(starts, flow_frames: dict[int, np.ndarray], size: tuple[int, int]):
    """The consecutive-frame pairs the stream gave both frames of: their starts, and the pairs (P, 2, h, w)."""
    out_w, out_h = size
    pairs = [(s, s + 1) for s in starts if s + 1 in flow_frames and s in flow_frames]
    flow = (np.stack([np.stack([flow_frames[a], flow_frames[b]]) for a, b in pairs])
            if pairs else np.zeros((0, 2, out_h, out_w), np.uint8))
    return pairs, flow


def _to_rgb(buf: bytes, width: int, height: int, cw: int, ch: int, size: tuple[int, int]) -> np.ndarray:
    y_bytes, c_bytes = width * height, cw * ch
    y = np.frombuffer(buf, np.uint8, y_bytes).reshape(height, width)
    u = np.frombuffer(buf, np.uint8, c_bytes, y_bytes).reshape(ch, cw)
    v = np.frombuffer(buf, np.uint8, c_bytes, y_bytes + c_bytes).reshape(ch, cw)
    rgb = yuv420_to_rgb(y, u, v)
    if rgb.shape[1] != size[0] or rgb.shape[0] != size[1]:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return rgb

