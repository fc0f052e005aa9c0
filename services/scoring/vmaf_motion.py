"""VMAF motion (``integer_motion2``), computed the way libvmaf 3 computes it.

libvmaf's integer ``motion`` feature, per frame n >= 1: take the difference of
the luma planes of frames n-1 and n, blur it with the 5-tap integer Gaussian
[3571, 16004, 26386, 16004, 3571] / 65536 (vertical pass rounded back by >> 8,
horizontal pass by >> 16, mirrored edges without repeating the edge sample),
and score the sum of absolute values / 256 / (width * height). ``motion2`` of a
frame is the smaller of the scores on both sides of it (0 for frame 0, the last
frame keeps its own); the clip's motion is the mean of ``motion2`` over all of
its frames, which is what libvmaf's pooled mean reports.

The arithmetic is exact: every intermediate value is an integer that float32
(vertical pass, |x| < 2^24) or float64 (horizontal pass) represents exactly, so
OpenCV's SIMD filters give libvmaf's bits. Older libvmaf (2.x) blurred each
frame before differencing and mirrored the bottom edge differently; its values
differ by about 1e-4.
"""

from __future__ import annotations

import numpy as np
import cv2

from services.scoring.base import SampledFrames, Scalar, Scorer

LIBVMAF_FILTER = np.array([3571, 16004, 26386, 16004, 3571], np.float64)
_ONE = np.ones(1, np.float64)


_FILTER32 = LIBVMAF_FILTER.astype(np.float32)
_ONE32 = _ONE.astype(np.float32)
# libvmaf's mirror(): -1 -> 1, -2 -> 2, n -> n-2, n+1 -> n-3, i.e. OpenCV's reflect-101.
_MIRROR = cv2.BORDER_REFLECT_101


def motion_sad_score(prev_luma: np.ndarray, luma: np.ndarray) -> float:
    """libvmaf's per-frame motion score between two uint8 luma planes (HxW)."""
    h, w = luma.shape
    diff = cv2.subtract(prev_luma, luma, dtype=cv2.CV_32F)
    vertical = cv2.sepFilter2D(diff, cv2.CV_32F, _ONE32, _FILTER32, borderType=_MIRROR)
    vertical += 128.0  # (acc + 2^7) >> 8, an arithmetic shift: floor
    vertical *= 1.0 / 256.0
    np.floor(vertical, out=vertical)
    horizontal = cv2.sepFilter2D(vertical, cv2.CV_64F, LIBVMAF_FILTER, _ONE, borderType=_MIRROR)
    horizontal += 32768.0  # (acc + 2^15) >> 16
    horizontal *= 1.0 / 65536.0
    np.floor(horizontal, out=horizontal)
    sad = cv2.norm(horizontal, cv2.NORM_L1)
    return sad / 256.0 / (w * h)


def motion2_scores(motion: np.ndarray) -> np.ndarray:
    """Per-frame ``motion2`` from per-frame motion scores (motion[0] is unused)."""
    motion = np.asarray(motion, np.float64)
    if motion.size <= 1:
        return np.zeros_like(motion)
    out = np.minimum(motion, np.r_[motion[1:], motion[-1]])
    out[0] = 0.0
    return out


class MotionAccumulator:
    """A FrameSink: feeds frames through ``motion_sad_score`` as they stream by."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self._scores: list[float] = []

    def push(self, luma: np.ndarray) -> None:
        self._scores.append(0.0 if self._prev is None else motion_sad_score(self._prev, luma))
        self._prev = luma  # the decoder never reuses a frame's buffer (FrameSink contract)

    def finish(self) -> dict[str, Scalar]:
        motion2 = motion2_scores(np.array(self._scores))
        return {"motion": float(motion2.mean()) if motion2.size else None}


class VmafMotionScorer(Scorer):
    name = "motion"
    columns = ("motion",)

    def open_sink(self) -> MotionAccumulator:
        return MotionAccumulator()

    def score(self, frames: SampledFrames) -> dict[str, Scalar]:
        return {"motion": frames.sink_results[self.name]["motion"]}

    def provenance(self) -> dict[str, str]:
        return {"motion": "libvmaf 3 integer_motion2 (exact re-implementation, mean over all frames)"}
