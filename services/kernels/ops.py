"""The ``spatialvid::`` custom operators: one contract, implementation chosen by the tensors' device.

Every operator's default implementation is the vectorised torch of ``reference``
(CPU, and CUDA when no compiled kernels exist); ``enable_cuda_kernels()`` registers
the kernels of ``cuda_kernels/`` for the CUDA dispatch key once they are found.
Callers use ``torch.ops.spatialvid.<name>`` or the functions below; the stages do
not change when the device does.
"""

from __future__ import annotations

import functools

import torch

from services.kernels import reference
from services.kernels.loader import kernel_status


@torch.library.custom_op("spatialvid::ba_normal_equations", mutates_args=())
def ba_normal_equations(
    residuals: torch.Tensor, weights: torch.Tensor, pose_index: torch.Tensor, pose_jacobians: torch.Tensor,
    point_index: torch.Tensor, point_jacobians: torch.Tensor, num_poses: int, num_points: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return reference.ba_normal_equations(residuals, weights, pose_index, pose_jacobians, point_index,
                                         point_jacobians, num_poses, num_points)


@ba_normal_equations.register_fake
def _(residuals, weights, pose_index, pose_jacobians, point_index, point_jacobians, num_poses, num_points):
    nc = 6 * num_poses
    new = residuals.new_empty
    return new((nc, nc)), new((nc,)), new((num_points,)), new((num_points,)), new((nc, num_points))


@torch.library.custom_op("spatialvid::flow_triangulate", mutates_args=())
def flow_triangulate(
    pixel_maps: torch.Tensor, parallax_dirs: torch.Tensor, flow: torch.Tensor, usable: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return reference.flow_triangulate(pixel_maps, parallax_dirs, flow, usable)


@flow_triangulate.register_fake
def _(pixel_maps, parallax_dirs, flow, usable):
    h, w = usable.shape[1:]
    f = flow.new_empty((h, w))
    return f, flow.new_empty((h, w)), flow.new_empty((h, w)), usable.new_empty((h, w), dtype=torch.uint8)


@torch.library.custom_op("spatialvid::flow_residual_score", mutates_args=())
def flow_residual_score(
    pixel_maps: torch.Tensor, parallax_dirs: torch.Tensor, flow: torch.Tensor, inv_depth: torch.Tensor,
    measured: torch.Tensor, noise_px: float, parallax_tolerance: float,
) -> torch.Tensor:
    return reference.flow_residual_score(pixel_maps, parallax_dirs, flow, inv_depth, measured, noise_px,
                                         parallax_tolerance)


@flow_residual_score.register_fake
def _(pixel_maps, parallax_dirs, flow, inv_depth, measured, noise_px, parallax_tolerance):
    return inv_depth.new_empty(inv_depth.shape)


@functools.cache
def enable_cuda_kernels() -> bool:
    """Register the compiled kernels for CUDA tensors if they exist (once); True when they run."""
    status = kernel_status()
    if not status.cuda:
        return False
    ext = status.module
    ba_normal_equations.register_kernel("cuda")(ext.ba_normal_equations)
    flow_triangulate.register_kernel("cuda")(ext.flow_triangulate)
    flow_residual_score.register_kernel("cuda")(ext.flow_residual_score)
    return True


def implementation(device: torch.device | str) -> str:
    """Which code runs the operators for tensors on ``device`` (for logs and provenance)."""
    if torch.device(device).type == "cuda":
        return "cuda-kernels" if enable_cuda_kernels() else "torch-cuda"
    return "torch-cpu"
