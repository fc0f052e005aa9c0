"""Dense optical flow (OpenCV DIS) and its forward-backward consistency."""

from __future__ import annotations

import cv2
import numpy as np

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class DisFlow:
    """DIS optical flow on 8-bit grey images; one instance per stream (it keeps scratch buffers)."""

    def __init__(self, preset: str) -> None:
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])

    def __call__(self, ref: np.ndarray, src: np.ndarray) -> np.ndarray:
        """(h, w, 2) float32 flow: pixel p of ``ref`` matches p + flow[p] in ``src``."""
        return self._dis.calc(ref, src, None)


def warp_by_flow(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at p + flow[p] (bilinear, border replicated)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def forward_backward_error(fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    """|fwd(p) + bwd(p + fwd(p))| in pixels: large where p is occluded in the other image or the flow is wrong."""
    back = warp_by_flow(bwd, fwd)
    err = np.linalg.norm(fwd + back, axis=2)
    h, w = fwd.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x, y = gx + fwd[..., 0], gy + fwd[..., 1]
    outside = (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
    err[outside] = np.inf
    return err
