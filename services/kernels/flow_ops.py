"""numpy in, numpy out: per-pixel flow geometry through ``spatialvid::flow_triangulate`` and
``spatialvid::flow_residual_score`` (the maths of services.depth.triangulate and .motion).

``views`` are anything with ``R`` (3,3), ``t`` (3,), ``flow`` (h,w,2) float32 and ``usable``
(h,w) bool: services.depth.triangulate.ViewFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from services.kernels import backend as kb
from services.kernels import reference
from services.kernels.ops import enable_cuda_kernels, flow_residual_score, flow_triangulate


def view_geometry(K: np.ndarray, views: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(V,3,3) K R K^-1 and (V,3) K t per view, in the same operation order as services.depth.geometry."""
    K = np.asarray(K, np.float64)
    K_inv = np.linalg.inv(K)
    maps = np.stack([K @ v.R @ K_inv for v in views])
    dirs = np.stack([K @ np.asarray(v.t, np.float64) for v in views])
    return maps, dirs


def _backend(op: str) -> kb.Backend:
    be = kb.current()
    kb.announce(op, be)
    if be.use_kernels and be.device.type == "cuda":
        enable_cuda_kernels()
    return be


def _put(a: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).to(device, non_blocking=True)


def triangulate(K: np.ndarray, views: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(inv_depth, parallax_px, residual_px) float32 (h,w) and views_used uint8 (h,w)."""
    be = _backend("flow_triangulate")
    maps, dirs = view_geometry(K, views)
    args = (_put(maps, torch.float64, be.device), _put(dirs, torch.float64, be.device),
            _put(np.stack([v.flow for v in views]), torch.float32, be.device),
            _put(np.stack([v.usable for v in views]), torch.bool, be.device))
    fn = flow_triangulate if be.use_kernels else reference.flow_triangulate
    return tuple(t.cpu().numpy() for t in fn(*args))


def residual_score(K: np.ndarray, views: Sequence, inv_depth: np.ndarray, measured: np.ndarray,
                   noise_px: float, parallax_tolerance: float) -> np.ndarray:
    """(h,w) float32 min over views of the normalised flow residual (services.depth.motion.motion_score)."""
    be = _backend("flow_residual_score")
    maps, dirs = view_geometry(K, views)
    args = (_put(maps, torch.float64, be.device), _put(dirs, torch.float64, be.device),
            _put(np.stack([v.flow for v in views]), torch.float32, be.device),
            _put(inv_depth, torch.float32, be.device), _put(measured, torch.bool, be.device),
            float(noise_px), float(parallax_tolerance))
    fn = flow_residual_score if be.use_kernels else reference.flow_residual_score
    return fn(*args).cpu().numpy()
