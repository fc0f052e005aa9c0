"""Inverse-depth bundle adjustment: the camera model's residuals and Jacobians.

Cameras are camera-to-world (R, C) in OpenCV axes; a point is a unit-depth bearing
``b`` in its anchor camera ``a`` plus an inverse depth ``rho``, so points at infinity
(pure rotation, sky) are ordinary values (rho = 0) rather than a degenerate case.
Seen from camera i the point's direction is

    h = R_i^T (R_a b + rho (C_a - C_i)),   residual = f * (h_xy / h_z - observed)

in pixels. Updates: R <- R Exp(dtheta) (camera frame), C <- C + dc, rho <- rho + drho.
The linear algebra lives in ``optim``; this module only builds the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from services.camera.geometry import skew, so3_exp
from services.camera import optim
from services.camera.optim import LinearizedProblem, LMResult, cauchy_cost, cauchy_weights, levenberg_marquardt

MIN_DEPTH_Z = 1e-3
# An observation whose point crosses behind its camera costs this many squared loss scales (far above any
# inlier's Cauchy cost): the optimiser backs off such steps instead of flipping points through the camera.
BEHIND_CAMERA_COST = 10.0
# Observations linearised at once: the Jacobian temporaries cost about 1.5 KB per observation, so a
# window over a whole clip (tens of thousands of observations) is linearised and reduced in ~3 MB chunks.
OBSERVATIONS_PER_CHUNK = 2048


@dataclass
class BundleProblem:
    R: np.ndarray  # (K,3,3) camera-to-world rotations of every camera involved
    C: np.ndarray  # (K,3) camera centres
    free: np.ndarray  # (K,) index of the camera among the free poses, -1 = held fixed
    anchor: np.ndarray  # (P,) camera index of each point's anchor
    bearing: np.ndarray  # (P,3) normalised ray (x, y, 1) in the anchor camera
    rho: np.ndarray  # (P,) inverse depth
    rho_free: bool  # optimise inverse depths (False: pose-only refinement)
    rho_prior: np.ndarray  # (P,) prior inverse depth (a weak gauge / scale hold)
    rho_prior_weight: np.ndarray  # (P,) in squared-pixel units per unit of rho
    obs_cam: np.ndarray  # (M,) observing camera
    obs_point: np.ndarray  # (M,)
    obs_xy: np.ndarray  # (M,2) normalised image coordinates
    focal_px: float  # converts normalised residuals to pixels
    loss_scale_px: float = 1.0
    # Self-calibration: log(focal) becomes one more unknown (a 6-wide block whose first column is used).
    focal_free: bool = False
    # Cameras whose centre is held (rotation-only keyframes: no translation is invented).
    centre_locked: np.ndarray | None = None  # (K,) bool

    @property
    def num_free_poses(self) -> int:
        return int(self.free.max() + 1) if len(self.free) and self.free.max() >= 0 else 0

    @property
    def num_free(self) -> int:
        return self.num_free_poses + (1 if self.focal_free else 0)


def _directions(p: BundleProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a, i, j = p.anchor[p.obs_point], p.obs_cam, p.obs_point
    Ri_t = np.transpose(p.R[i], (0, 2, 1))
    Rab = np.einsum("mij,mj->mi", p.R[a], p.bearing[j])
    dC = p.C[a] - p.C[i]
    h = np.einsum("mij,mj->mi", Ri_t, Rab + p.rho[j, None] * dC)
    return h, Ri_t, dC, a


def residuals(p: BundleProblem) -> tuple[np.ndarray, np.ndarray]:
    """(M,2) pixel residuals and (M,) validity (point in front of the camera)."""
    h, _, _, _ = _directions(p)
    valid = h[:, 2] > MIN_DEPTH_Z
    z = np.where(valid, h[:, 2], 1.0)
    r = p.focal_px * (h[:, :2] / z[:, None] - p.obs_xy)
    r[~valid] = 0.0
    return r, valid


def _prior_cost(p: BundleProblem) -> float:
    if not p.rho_free:
        return 0.0
    return float((p.rho_prior_weight * (p.rho - p.rho_prior) ** 2).sum())


def _observation_chunks(p: BundleProblem):
    """The problem restricted to consecutive chunks of its observations (one chunk when it is small)."""
    M = len(p.obs_cam)
    if M <= OBSERVATIONS_PER_CHUNK:
        yield p
        return
    for start in range(0, M, OBSERVATIONS_PER_CHUNK):
        part = slice(start, start + OBSERVATIONS_PER_CHUNK)
        yield replace(p, obs_cam=p.obs_cam[part], obs_point=p.obs_point[part], obs_xy=p.obs_xy[part])


def _observation_cost(p: BundleProblem) -> float:
    r, valid = residuals(p)
    return cauchy_cost(r, p.loss_scale_px) + (~valid).sum() * p.loss_scale_px**2 * BEHIND_CAMERA_COST


def total_cost(p: BundleProblem) -> float:
    return sum(_observation_cost(chunk) for chunk in _observation_chunks(p)) + _prior_cost(p)


def _point_prior(p: BundleProblem) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The inverse-depth prior's Hessian diagonal and gradient (None for a pose-only problem)."""
    if not p.rho_free:
        return None, None
    return p.rho_prior_weight.copy(), -p.rho_prior_weight * (p.rho - p.rho_prior)


def linearize(p: BundleProblem) -> tuple[LinearizedProblem, float]:
    lin, cost = _linearize_observations(p)
    lin.point_prior_hessian, lin.point_prior_gradient = _point_prior(p)
    return lin, cost + _prior_cost(p)


def linearize_reduced(p: BundleProblem) -> tuple[optim.ReducedProblem, float]:
    """``linearize`` for a long window: chunk by chunk, each chunk reduced to its normal equations at once,
    so only one chunk's Jacobians are ever held."""
    n_points = len(p.rho) if p.rho_free else 0
    reduced, cost = None, 0.0
    for chunk in _observation_chunks(p):
        lin, chunk_cost = _linearize_observations(chunk)
        part = optim.reduce(lin, p.num_free, n_points)
        reduced, cost = (part if reduced is None else reduced.accumulate(part)), cost + chunk_cost
    return reduced.with_point_prior(*_point_prior(p)), cost + _prior_cost(p)


def _linearize_observations(p: BundleProblem) -> tuple[LinearizedProblem, float]:
    """Residual and Jacobian blocks of every observation, without the point prior, and their cost."""
    h, Ri_t, dC, a = _directions(p)
    i, j = p.obs_cam, p.obs_point
    valid = h[:, 2] > MIN_DEPTH_Z
    z = np.where(valid, h[:, 2], 1.0)
    uv = h[:, :2] / z[:, None]
    r = p.focal_px * (uv - p.obs_xy)
    r[~valid] = 0.0
    # d(pixel)/dh
    P = np.zeros((len(h), 2, 3))
    P[:, 0, 0] = P[:, 1, 1] = p.focal_px / z
    P[:, :, 2] = -p.focal_px * uv / z[:, None]
    rho = p.rho[j][:, None, None]
    Jh_obs = np.concatenate([skew(h), -rho * Ri_t], axis=2)  # (M,3,6) w.r.t. observing camera
    Jh_anchor = np.concatenate([-Ri_t @ p.R[a] @ skew(p.bearing[j]), rho * Ri_t], axis=2)
    if p.centre_locked is not None:
        Jh_obs[p.centre_locked[i], :, 3:] = 0.0
        Jh_anchor[p.centre_locked[a], :, 3:] = 0.0
    J = np.stack([P @ Jh_obs, P @ Jh_anchor], axis=1)  # (M,2,2,6)
    pose_index = np.stack([p.free[i], p.free[a]], axis=1)
    if p.focal_free:
        # r = f*proj(h) - (pixel - c); the anchor bearing's x,y scale with 1/f as well
        db = np.zeros((len(h), 3))
        db[:, :2] = -p.bearing[j][:, :2]
        d_logf = p.focal_px * uv + np.einsum("mki,mi->mk", P, np.einsum("mij,mjk,mk->mi", Ri_t, p.R[a], db))
        Jf = np.zeros((len(h), 1, 2, 6))
        Jf[:, 0, :, 0] = d_logf
        J = np.concatenate([J, Jf], axis=1)
        pose_index = np.column_stack([pose_index, np.full(len(h), p.num_free_poses)])
    w = cauchy_weights(r, p.loss_scale_px) * valid
    if p.rho_free:
        jp = np.einsum("mki,mi->mk", P, np.einsum("mij,mj->mi", Ri_t, dC))
        pidx = j
    else:
        jp = np.zeros((len(h), 2))
        pidx = np.full(len(h), -1)
    lin = LinearizedProblem(r, w, pose_index, J, pidx, jp)
    return lin, cauchy_cost(r, p.loss_scale_px) + (~valid).sum() * p.loss_scale_px**2 * BEHIND_CAMERA_COST


def retract(p: BundleProblem, d_pose: np.ndarray, d_point: np.ndarray) -> BundleProblem:
    R, C = p.R.copy(), p.C.copy()
    moving = p.free >= 0
    if moving.any():
        d = d_pose[p.free[moving]]
        R[moving] = R[moving] @ so3_exp(d[:, :3])
        C[moving] = C[moving] + d[:, 3:]
    rho = p.rho
    if p.rho_free and len(d_point):
        rho = np.maximum(p.rho + d_point, 0.0)
    out = replace(p, R=R, C=C, rho=rho)
    if p.focal_free:
        ratio = float(np.exp(-np.clip(d_pose[p.num_free_poses, 0], -0.5, 0.5)))  # f_old / f_new
        bearing = p.bearing.copy()
        bearing[:, :2] *= ratio
        out = replace(out, bearing=bearing, obs_xy=p.obs_xy * ratio, focal_px=p.focal_px / ratio)
    return out


def optimise(p: BundleProblem, max_iterations: int = 10) -> tuple[BundleProblem, LMResult]:
    n_points = len(p.rho) if p.rho_free else 0
    long_window = optim.POSE_DOF * p.num_free * n_points > optim.DENSE_SCHUR_MAX_ENTRIES
    return levenberg_marquardt(linearize_reduced if long_window else linearize, total_cost, retract, p,
                               p.num_free, n_points, max_iterations)
