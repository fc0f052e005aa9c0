"""numpy in, numpy out: KLT point tracking with the forward-backward check, on the current backend.

``kernels.device=cpu`` (the default without a GPU) runs OpenCV's ``calcOpticalFlowPyrLK``, the reference;
a CUDA backend runs the same algorithm as torch ops on the GPU (``services.kernels.klt``), keeping the
newest frame's pyramid there for the next pair. The camera front end calls ``forward_backward`` at its
one seam (services.camera.frontend.KLTTracker._track).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from services.kernels import backend as kb
from services.kernels import klt

OP = "klt_forward_backward"


@dataclass(frozen=True)
class LKParams:
    window: int  # square search window (px)
    levels: int  # pyramid levels above the image
    iterations: int  # Gauss-Newton steps per level at most
    eps: float  # a step shorter than this (px) ends a level


class _PyramidCache:
    """The last frame's pyramid on the device: frame t's pyramid serves the pairs (t-1, t) and (t, t+1)."""

    def __init__(self) -> None:
        self.frame: np.ndarray | None = None  # held, so that its identity cannot be reused
        self.device: torch.device | None = None
        self.params: LKParams | None = None
        self.pyramid: klt.Pyramid | None = None

    def get(self, frame: np.ndarray, device: torch.device, params: LKParams) -> klt.Pyramid:
        if self.frame is frame and self.device == device and self.params == params:
            return self.pyramid
        pyramid = klt.build_pyramid(torch.from_numpy(np.ascontiguousarray(frame)).to(device), params.window,
                                    params.levels)
        self.frame, self.device, self.params, self.pyramid = frame, device, params, pyramid
        return pyramid


_cache = _PyramidCache()


def opencv_forward_backward(prev: np.ndarray, cur: np.ndarray, points: np.ndarray,
                            params: LKParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference: OpenCV forwards, then backwards from where it landed."""
    lk = dict(winSize=(params.window, params.window), maxLevel=params.levels,
              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, params.iterations, params.eps))
    p0 = points.reshape(-1, 1, 2)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **lk)
    p0b, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **lk)
    fb = np.linalg.norm((p0 - p0b).reshape(-1, 2), axis=1)
    return p1.reshape(-1, 2), (st1.ravel() == 1) & (st2.ravel() == 1), fb


def torch_forward_backward(prev: np.ndarray, cur: np.ndarray, points: np.ndarray, params: LKParams,
                           device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same on ``device`` with torch ops (services.kernels.klt)."""
    # thousands of small ops per pair: threads only add waits on the CPU (kb.single_threaded_on_cpu)
    with torch.no_grad(), kb.single_threaded_on_cpu(device):
        p_prev = _cache.get(prev, device, params)  # cached since the last pair, where it was ``cur``
        p_cur = _cache.get(cur, device, params)
        p0 = torch.from_numpy(np.ascontiguousarray(points, np.float32)).to(device)
        p1, st1 = klt.track(p_prev, p_cur, p0, params.window, params.iterations, params.eps)
        p0b, st2 = klt.track(p_cur, p_prev, p1, params.window, params.iterations, params.eps)
        fb = torch.linalg.vector_norm(p0 - p0b, dim=1)
    return p1.cpu().numpy(), (st1 & st2).cpu().numpy(), fb.cpu().numpy()


def implementation(be: kb.Backend) -> str:
    return "opencv-cpu" if be.device.type == "cpu" else f"torch-{be.device.type}"


def forward_backward(prev: np.ndarray, cur: np.ndarray, points: np.ndarray,
                     params: LKParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Track (n,2) float32 ``points`` of 8-bit grey ``prev`` into ``cur`` and back.

    Returns the (n,2) float32 positions in ``cur``, (n,) bool found both ways, and (n,) the distance
    (px) between each point and where tracking back returned it."""
    be = kb.current()
    kb.announce(OP, be, implementation(be))
    if be.device.type == "cpu":
        return opencv_forward_backward(prev, cur, points, params)
    return torch_forward_backward(prev, cur, points, params, be.device)
