"""Optical-flow magnitude: what tells a tripod shot from a pan.

VMAF motion measures temporal change of the picture, which a still camera
filming moving people also produces. The mean DIS optical-flow magnitude (in
pixels per frame at the scoring size) measures how far the content moves.
"""

from __future__ import annotations

import cv2
import numpy as np

from services.scoring.base import SampledFrames, Scalar, Scorer

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def mean_flow_magnitude(pairs: np.ndarray, preset: str) -> float | None:
    """Mean DIS flow magnitude over (P, 2, H, W) uint8 gray frame pairs; None without pairs."""
    if len(pairs) == 0:
        return None
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    means = []
    for first, second in pairs:
        flow = dis.calc(first, second, None)
        means.append(float(cv2.magnitude(flow[..., 0], flow[..., 1]).mean()))
    return float(np.mean(means))


class FlowScorer(Scorer):
    name = "flow"
    columns = ("flow_magnitude",)

    def __init__(self, preset: str) -> None:  # the score section's flow_preset
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r} (known: {', '.join(PRESETS)})")
        self.preset = preset

    def score(self, frames: SampledFrames) -> dict[str, Scalar]:
        return {"flow_magnitude": mean_flow_magnitude(frames.flow_pairs, self.preset)}

    def provenance(self) -> dict[str, str]:
        return {"flow_magnitude": f"OpenCV {cv2.__version__} DIS optical flow ({self.preset}), px/frame"}
