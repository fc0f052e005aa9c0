"""Luminance: Rec. 709 luma of the sampled frames, as the reference computes it."""

from __future__ import annotations

import numpy as np

from services.scoring.base import SampledFrames, Scalar, Scorer

REC709 = np.array([0.2126, 0.7152, 0.0722], np.float32)


def frame_luminance(rgb: np.ndarray) -> np.ndarray:
    """Mean 0.2126 R + 0.7152 G + 0.0722 B of each frame in (K, H, W, 3) uint8 RGB, in 0..255."""
    channel_means = rgb.reshape(rgb.shape[0], -1, 3).mean(axis=1, dtype=np.float64)
    return channel_means @ REC709.astype(np.float64)  # linear, so the mean of luma = luma of the means


class LuminanceScorer(Scorer):
    name = "luminance"
    columns = ("luminance_mean", "luminance_min", "luminance_max")

    def score(self, frames: SampledFrames) -> dict[str, Scalar]:
        values = frame_luminance(frames.rgb)
        return {
            "luminance_mean": float(values.mean()),
            "luminance_min": float(values.min()),
            "luminance_max": float(values.max()),
        }

    def provenance(self) -> dict[str, str]:
        return {c: "Rec.709 luma (0.2126 R + 0.7152 G + 0.0722 B) on sampled frames" for c in self.columns}
