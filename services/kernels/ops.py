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


# Plain torch.library definitions (not custom_op): no torch._dynamo import on the first call and
# less Python per call, which matters at ~1,000 small normal-equation builds per clip.
_LIB = torch.library.Library("spatialvid", "DEF")
_SCHEMAS = {
    "ba_normal_equations": "ba_normal_equations(Tensor residuals, Tensor weights, Tensor pose_index, "
    "Tensor pose_jacobians, Tensor point_index, Tensor point_jacobians, int num_poses, int num_points) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    "flow_triangulate": "flow_triangulate(Tensor pixel_maps, Tensor parallax_dirs, Tensor flow, Tensor usable) "
    "-> (Tensor, Tensor, Tensor, Tensor)",
    "flow_residual_score": "flow_residual_score(Tensor pixel_maps, Tensor parallax_dirs, Tensor flow, "
    "Tensor inv_depth, Tensor measured, float noise_px, float parallax_tolerance) -> Tensor",
}
for _name, _schema in _SCHEMAS.items():
    _LIB.define(_schema)
    # every device: the torch maths; a CUDA registration (enable_cuda_kernels) takes precedence for CUDA tensors
    _LIB.impl(_name, getattr(reference, _name), "CompositeExplicitAutograd")

ba_normal_equations = torch.ops.spatialvid.ba_normal_equations
flow_triangulate = torch.ops.spatialvid.flow_triangulate
flow_residual_score = torch.ops.spatialvid.flow_residual_score


@torch.library.register_fake("spatialvid::ba_normal_equations", lib=_LIB)
def _(residuals, weights, pose_index, pose_jacobians, point_index, point_jacobians, num_poses, num_points):
    nc = 6 * num_poses
    new = residuals.new_empty
    return new((nc, nc)), new((nc,)), new((num_points,)), new((num_points,)), new((nc, num_points))


@torch.library.register_fake("spatialvid::flow_triangulate", lib=_LIB)
def _(pixel_maps, parallax_dirs, flow, usable):
    h, w = usable.shape[1:]
    return (flow.new_empty((h, w)), flow.new_empty((h, w)), flow.new_empty((h, w)),
            usable.new_empty((h, w), dtype=torch.uint8))


@torch.library.register_fake("spatialvid::flow_residual_score", lib=_LIB)
def _(pixel_maps, parallax_dirs, flow, inv_depth, measured, noise_px, parallax_tolerance):
    return inv_depth.new_empty(inv_depth.shape)


_CUDA_LIB: list[torch.library.Library] = []  # kept alive: dropping a Library unregisters its kernels


@functools.cache
def enable_cuda_kernels() -> bool:
    """Register the compiled kernels for CUDA tensors if they exist (once); True when they run."""
    status = kernel_status()
    if not status.cuda:
        return False
    lib = torch.library.Library("spatialvid", "IMPL")
    for name in _SCHEMAS:
        lib.impl(name, getattr(status.module, name), "CUDA")
    _CUDA_LIB.append(lib)
    return True


def implementation(device: torch.device | str) -> str:
    """Which code runs the operators for tensors on ``device`` (for logs and provenance)."""
    if torch.device(device).type == "cuda":
        return "cuda-kernels" if enable_cuda_kernels() else "torch-cuda"
    return "torch-cpu"
