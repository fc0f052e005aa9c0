"""numpy in, numpy out: the bundle-adjustment normal equations through ``spatialvid::ba_normal_equations``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from services.kernels import backend as kb
from services.kernels import reference
from services.kernels.ops import ba_normal_equations as _op


@dataclass
class NormalEquations:
    Hcc: np.ndarray  # (6P,6P) pose-pose block
    gc: np.ndarray  # (6P,) -J_c^T W r
    Hpp: np.ndarray  # (N,) diagonal point block
    gp: np.ndarray  # (N,)
    Hcp: np.ndarray  # (6P,N) pose-point block


def build_normal_equations(
    residuals: np.ndarray, weights: np.ndarray, pose_index: np.ndarray, pose_jacobians: np.ndarray,
    point_index: np.ndarray, point_jacobians: np.ndarray, num_poses: int, num_points: int,
) -> NormalEquations:
    """Reduce per-observation residuals and Jacobian blocks into H and g on the current backend."""
    be = kb.current()
    kb.announce("ba_normal_equations", be)

    def put(a, dtype=torch.float64):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).to(be.device, non_blocking=True)

    args = (put(residuals), put(weights), put(pose_index, torch.int64), put(pose_jacobians),
            put(point_index, torch.int64), put(point_jacobians), int(num_poses), int(num_points))
    fn = _op if be.use_kernels else reference.ba_normal_equations
    if be.use_kernels and be.device.type == "cuda":
        from services.kernels.ops import enable_cuda_kernels

        enable_cuda_kernels()
    with kb.single_threaded_on_cpu(be.device):
        return NormalEquations(*(t.cpu().numpy() for t in fn(*args)))
