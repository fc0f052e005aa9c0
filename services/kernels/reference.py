"""The maths of every kernel in plain vectorised torch, on any device.

These functions are the contract: they are the CPU implementation of the
``spatialvid::`` operators, the "plain torch on the GPU" baseline of
``bench/cuda_tracking.py`` when given CUDA tensors, and what the CUDA kernels
in ``cuda_kernels/`` are tested against. No Python loops over observations or
pixels; the only loops are over views (a handful).
"""

from __future__ import annotations

import torch

POSE_DOF = 6


def ba_normal_equations(
    residuals: torch.Tensor,  # (M,2) float64
    weights: torch.Tensor,  # (M,) robust weight per observation (0 = ignored)
    pose_index: torch.Tensor,  # (M,B) int64 free pose block of each Jacobian block, < 0 = fixed / absent
    pose_jacobians: torch.Tensor,  # (M,B,2,6)
    point_index: torch.Tensor,  # (M,) int64 scalar point parameter, < 0 = none
    point_jacobians: torch.Tensor,  # (M,2)
    num_poses: int,
    num_points: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gauss-Newton blocks of a bundle adjustment with scalar points (no damping, no prior).

    Returns (Hcc (6P,6P), gc (6P,), Hpp (N,), gp (N,), Hcp (6P,N)) with g = -J^T W r. Jacobian
    blocks of one observation that name the same pose add up (the exact derivative)."""
    M, B = pose_index.shape
    nc = num_poses * POSE_DOF
    nc_trash = nc + POSE_DOF  # fixed blocks go to a trash block that is cut off at the end
    dev, dt = residuals.device, residuals.dtype
    free = pose_index >= 0
    J = pose_jacobians * free[:, :, None, None]
    J = J.permute(0, 2, 1, 3).reshape(M, 2, B * POSE_DOF)
    block = torch.where(free, pose_index, num_poses)
    col = (block[:, :, None] * POSE_DOF + torch.arange(POSE_DOF, device=dev)).reshape(M, B * POSE_DOF)
    Jw = J * weights[:, None, None]
    Hcc, gc = _pose_system(J, col, weights, residuals, nc_trash, nc)

    has_pt = point_index >= 0
    pidx = torch.where(has_pt, point_index, 0)
    jp = point_jacobians * has_pt[:, None]
    Hpp = torch.zeros(num_points, dtype=dt, device=dev)
    gp = torch.zeros(num_points, dtype=dt, device=dev)
    Hcp = torch.zeros(nc_trash * num_points, dtype=dt, device=dev)
    if num_points:
        Hpp.index_add_(0, pidx, weights * (jp * jp).sum(1))
        gp.index_add_(0, pidx, -weights * (jp * residuals).sum(1))
        Hcp_obs = (Jw * jp[:, :, None]).sum(1)
        Hcp.index_add_(0, (col * num_points + pidx[:, None]).reshape(-1), Hcp_obs.reshape(-1))
    Hcp = Hcp.view(nc_trash, num_points)[:nc].contiguous()
    return Hcc, gc, Hpp, gp, Hcp


# Pose columns above which the blocks are scattered instead: the product costs 2 x 6(P+1) x 6(P+1) per
# observation and the scatter a constant (6B)^2. Up to 16 poses the two are within a few tens of percent
# and the product (the odometry's and the 16-keyframe refinement's windows) is kept; past it the product's
# cost climbs with the square of the window (x20 at 128 poses, bench/results/ba_build.log).
PRODUCT_MAX_POSE_COLUMNS = 96
# Observations per chunk of the scatter: each holds a (6B x 6B) block of doubles (1.2 KB with B = 2), so a
# window over a whole clip is built in ~5 MB pieces instead of one array per observation.
SCATTER_CHUNK_OBSERVATIONS = 4096


def _pose_system(J: torch.Tensor, col: torch.Tensor, weights: torch.Tensor, residuals: torch.Tensor,
                 nc_trash: int, nc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hcc and gc: one product for a small pose system, scattered blocks for a large one."""
    if nc_trash <= PRODUCT_MAX_POSE_COLUMNS:
        return _pose_system_product(J, col, weights, residuals, nc_trash, nc)
    return _pose_system_scatter(J, col, weights, residuals, nc_trash, nc)


def _pose_system_product(J, col, weights, residuals, nc_trash: int, nc: int):
    """The dense pose Jacobian (2m x 6(P+1)) and one matrix product: for a small pose system a single GEMM
    beats per-observation outer products scattered into H (on CPU and GPU alike)."""
    m, width = col.shape
    dev, dt = residuals.device, residuals.dtype
    rows = torch.arange(2 * m, device=dev)[:, None].expand(2 * m, width)
    cols = col.repeat_interleave(2, dim=0)
    dense = torch.zeros(2 * m, nc_trash, dtype=dt, device=dev)
    dense.index_put_((rows, cols), J.reshape(2 * m, width), accumulate=True)
    dense = dense[:, :nc]
    w2 = weights.repeat_interleave(2)
    return (dense * w2[:, None]).T @ dense, -(dense.T @ (w2 * residuals.reshape(-1)))


def _pose_system_scatter(J, col, weights, residuals, nc_trash: int, nc: int):
    """Per observation, its (6B x 6B) block of J^T W J and (6B,) of -J^T W r, added into one H and g."""
    dev, dt = residuals.device, residuals.dtype
    H = torch.zeros(nc_trash * nc_trash, dtype=dt, device=dev)
    g = torch.zeros(nc_trash, dtype=dt, device=dev)
    for start in range(0, len(col), SCATTER_CHUNK_OBSERVATIONS):
        part = slice(start, start + SCATTER_CHUNK_OBSERVATIONS)
        Jw = J[part] * weights[part, None, None]
        c = col[part]
        H.index_add_(0, (c[:, :, None] * nc_trash + c[:, None, :]).reshape(-1),
                     torch.einsum("mri,mrj->mij", Jw, J[part]).reshape(-1))
        g.index_add_(0, c.reshape(-1), -torch.einsum("mri,mr->mi", Jw, residuals[part]).reshape(-1))
    return H.view(nc_trash, nc_trash)[:nc, :nc], g[:nc]


def _pixel_coordinates(h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(h*w,) float64 u and v of every pixel, row-major."""
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=device),
                          torch.arange(w, dtype=torch.float64, device=device), indexing="ij")
    return u.reshape(-1), v.reshape(-1)


def _apply(pixel_maps: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows of (V,3,3) @ (u, v, 1): three (V,n) tensors (component-wise: small batched matmuls and
    norms over a size-2 axis are slow on the CPU)."""
    H = pixel_maps[:, :, :, None]
    return tuple(H[:, r, 0] * u + H[:, r, 1] * v + H[:, r, 2] for r in range(3))


def _hypot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x * x + y * y)


def flow_triangulate(
    pixel_maps: torch.Tensor,  # (V,3,3) float64: K R K^-1, a reference pixel's image at infinite depth
    parallax_dirs: torch.Tensor,  # (V,3) float64: K t, the image motion per unit inverse depth
    flow: torch.Tensor,  # (V,h,w,2) float32 reference -> source
    usable: torch.Tensor,  # (V,h,w) bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form per-pixel inverse depth from flows to V views with known poses.

    Returns (inv_depth, parallax_px, residual_px) float32 (h,w) and views_used uint8 (h,w); the
    maths of ``services.depth.triangulate`` (one-unknown least squares per pixel, then the worst
    reprojection residual and the parallax at the solution)."""
    V, h, w = usable.shape
    u, v = _pixel_coordinates(h, w, flow.device)
    a0, a1, a2 = _apply(pixel_maps, u, v)
    b0, b1, b2 = (parallax_dirs[:, k, None] for k in range(3))
    f = flow.reshape(V, -1, 2).to(torch.float64)
    q0, q1 = u + f[..., 0], v + f[..., 1]
    m = usable.reshape(V, -1).to(torch.float64)
    A0, A1 = b0 - q0 * b2, b1 - q1 * b2
    B0, B1 = q0 * a2 - a0, q1 * a2 - a1
    num = (m * (A0 * B0 + A1 * B1)).sum(0)
    den = (m * (A0 * A0 + A1 * A1)).sum(0)
    inv = num / den.clamp_min(1e-12)
    inv = torch.where(den <= 1e-12, torch.zeros_like(inv), inv)

    x2 = a2 + inv * b2
    z = torch.where(x2.abs() < 1e-9, torch.full_like(x2, 1e-9), x2)
    p0, p1 = (a0 + inv * b0) / z, (a1 + inv * b1) / z
    r = _hypot(p0 - q0, p1 - q1)  # (V,n)
    used_v = m > 0
    residual = torch.where(used_v, r, torch.zeros_like(r)).amax(0).clamp_min(0.0)
    jac = _hypot(b0 - p0 * b2, b1 - p1 * b2) / z.abs()
    sens2 = (m * jac * jac).sum(0)
    parallax = inv.abs() * sens2.sqrt()
    used = used_v.sum(0).to(torch.uint8)
    return (inv.reshape(h, w).float(), parallax.reshape(h, w).float(), residual.reshape(h, w).float(),
            used.reshape(h, w))


def flow_residual_score(
    pixel_maps: torch.Tensor,  # (V,3,3) float64
    parallax_dirs: torch.Tensor,  # (V,3) float64
    flow: torch.Tensor,  # (V,h,w,2) float32 observed reference -> source flow
    inv_depth: torch.Tensor,  # (h,w) float32 inverse depth everywhere (hole-filled), 0 = far
    measured: torch.Tensor,  # (h,w) bool: depth measured here (else judge against the whole epipolar stretch)
    noise_px: float,
    parallax_tolerance: float,
) -> torch.Tensor:
    """(h,w) float32 min over the views that see the pixel of |observed - rigid| / (noise + tol * |parallax|).

    The maths of ``services.depth.motion.motion_score``: where depth is not measured the residual is
    the distance to the segment between the rotation-only (infinite depth) and the rigid flow."""
    V, h, w = flow.shape[:3]
    u, v = _pixel_coordinates(h, w, flow.device)
    a0, a1, a2 = _apply(pixel_maps, u, v)
    inv = inv_depth.reshape(1, -1).to(torch.float64)
    b0, b1, b2 = (parallax_dirs[:, k, None] for k in range(3))
    x2 = a2 + inv * b2
    z = torch.where(x2.abs() < 1e-9, torch.full_like(x2, 1e-9), x2)
    # float32 flow maps, like the numpy original's rigid_flow / rotation_flow
    rg0, rg1 = ((a0 + inv * b0) / z - u).float(), ((a1 + inv * b1) / z - v).float()
    ro0, ro1 = (a0 / a2 - u).float(), (a1 / a2 - v).float()
    f = flow.reshape(V, -1, 2)
    f0, f1 = f[..., 0], f[..., 1]
    ab0, ab1 = rg0 - ro0, rg1 - ro1
    parallax = _hypot(ab0, ab1)
    direct = _hypot(f0 - rg0, f1 - rg1)
    t = ((f0 - ro0) * ab0 + (f1 - ro1) * ab1) / (ab0 * ab0 + ab1 * ab1).clamp_min(1e-9)
    t = t.clamp(0.0, 1.0)
    segment = _hypot(f0 - (ro0 + t * ab0), f1 - (ro1 + t * ab1))
    resid = torch.where(measured.reshape(1, -1), direct, segment)
    score = resid / (noise_px + parallax_tolerance * parallax)
    # A view counts only where it sees the pixel (p + rigid flow inside the image), and a
    # pixel no view sees carries no evidence (0), as motion_score does.
    xs, ys = u.float() + rg0, v.float() + rg1
    seen = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    score = torch.where(seen, score, torch.full_like(score, float("inf"))).amin(0)
    return torch.where(torch.isfinite(score), score, torch.zeros_like(score)).reshape(h, w)
