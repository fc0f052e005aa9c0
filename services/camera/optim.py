"""Levenberg-Marquardt core for bundle adjustment, independent of the front end.

The problem is handed over as residual / Jacobian blocks: every observation has a
2-vector residual, Jacobians with respect to up to two 6-dof pose blocks (the
observing camera and the point's anchor camera) and one scalar point parameter
(inverse depth). Points are eliminated with the Schur complement (their block of
the normal equations is diagonal), leaving a small dense pose system.
This module knows nothing about cameras or images: it is the part a later issue
moves into CUDA kernels (the scatter-adds below are the hot loops).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

POSE_DOF = 6


@dataclass
class LinearizedProblem:
    residuals: np.ndarray  # (M,2)
    weights: np.ndarray  # (M,) robust IRLS weight per observation (0 = ignored)
    pose_index: np.ndarray  # (M,B) free pose block of each Jacobian block, -1 = fixed / absent
    pose_jacobians: np.ndarray  # (M,B,2,6)
    point_index: np.ndarray  # (M,) scalar point parameter, -1 = none
    point_jacobians: np.ndarray  # (M,2)
    # Diagonal prior on the point parameters: cost sum prior_weight * (x - prior_target)^2,
    # given here already linearised as its gradient/hessian contribution.
    point_prior_hessian: np.ndarray | None = None  # (P,)
    point_prior_gradient: np.ndarray | None = None  # (P,) = -H_prior * (x - target)


def cauchy_weights(residuals: np.ndarray, scale: float) -> np.ndarray:
    """IRLS weights of the Cauchy loss on each observation's residual norm."""
    sq = (residuals**2).sum(-1) / scale**2
    return 1.0 / (1.0 + sq)


def cauchy_cost(residuals: np.ndarray, scale: float) -> float:
    sq = (residuals**2).sum(-1) / scale**2
    return float(0.5 * scale**2 * np.log1p(sq).sum())


def solve_normal_equations(
    lin: LinearizedProblem, num_poses: int, num_points: int, damping: float
) -> tuple[np.ndarray, np.ndarray]:
    """One damped Gauss-Newton step: returns (pose update (num_poses,6), point update (num_points,))."""
    n_c = num_poses * POSE_DOF
    w = lin.weights
    r = lin.residuals
    M, B = lin.pose_index.shape
    # Per observation: all pose columns (B*6) stacked; fixed blocks are zeroed and sent to a trash block.
    free = lin.pose_index >= 0
    J = lin.pose_jacobians * free[:, :, None, None]
    J = np.transpose(J, (0, 2, 1, 3)).reshape(M, 2, B * POSE_DOF)
    block = np.where(free, lin.pose_index, num_poses)  # trash block index = num_poses
    col = (block[:, :, None] * POSE_DOF + np.arange(POSE_DOF)).reshape(M, B * POSE_DOF)
    nc_trash = (num_poses + 1) * POSE_DOF

    # Dense pose Jacobian (2M x 6P): the pose system is small, so one BLAS product beats scatter-adds.
    # Within one observation the blocks are distinct (only the discarded trash block may repeat).
    dense = np.zeros((2 * M, nc_trash))
    dense[np.repeat(np.arange(2 * M)[:, None], B * POSE_DOF, 1), np.repeat(col, 2, axis=0)] = J.reshape(2 * M, B * POSE_DOF)
    dense = dense[:, :n_c]
    sw = np.sqrt(np.repeat(w, 2))[:, None]
    Dw = dense * sw
    Hcc = Dw.T @ Dw
    gc = -dense.T @ (np.repeat(w, 2) * r.ravel())

    if num_points == 0:
        Hcc = Hcc + np.diag(damping * np.diag(Hcc) + 1e-9 + damping * 1e-6)
        try:
            dc = np.linalg.solve(Hcc, gc)
        except np.linalg.LinAlgError:
            dc = np.linalg.lstsq(Hcc, gc, rcond=None)[0]
        return dc.reshape(num_poses, POSE_DOF), np.zeros(0)

    has_pt = lin.point_index >= 0
    pidx = np.where(has_pt, lin.point_index, 0)
    jp = lin.point_jacobians * has_pt[:, None]
    Hpp = np.bincount(pidx, w * (jp**2).sum(1), minlength=num_points).astype(float)
    gp = np.bincount(pidx, -w * (jp * r).sum(1), minlength=num_points).astype(float)
    if lin.point_prior_hessian is not None:
        Hpp += lin.point_prior_hessian
        gp += lin.point_prior_gradient
    Hcp_obs = np.einsum("mki,mk->mi", J * w[:, None, None], jp)  # (M, B6)
    flat_cp = (col * num_points + pidx[:, None]).ravel()
    Hcp = np.bincount(flat_cp, Hcp_obs.ravel(), minlength=nc_trash * num_points).reshape(nc_trash, num_points)[:n_c]

    # Levenberg-Marquardt damping (multiplicative on the diagonal, plus a floor for unobserved directions).
    Hcc = Hcc + np.diag(damping * np.diag(Hcc) + 1e-9 + damping * 1e-6)
    Hpp = Hpp * (1.0 + damping) + 1e-9
    inv_pp = 1.0 / Hpp
    S = Hcc - (Hcp * inv_pp) @ Hcp.T
    b = gc - Hcp @ (gp * inv_pp)
    if n_c:
        try:
            dc = np.linalg.solve(S, b)
        except np.linalg.LinAlgError:
            dc = np.linalg.lstsq(S, b, rcond=None)[0]
    else:
        dc = np.zeros(0)
    dp = (gp - Hcp.T @ dc) * inv_pp
    return dc.reshape(num_poses, POSE_DOF), dp


@dataclass
class LMResult:
    cost: float
    initial_cost: float
    iterations: int
    converged: bool


def levenberg_marquardt(
    linearize: Callable[[object], tuple[LinearizedProblem, float]],
    cost: Callable[[object], float],
    retract: Callable[[object, np.ndarray, np.ndarray], object],
    state: object,
    num_poses: int,
    num_points: int,
    max_iterations: int = 10,
    damping: float = 1e-3,
    tolerance: float = 1e-6,
) -> tuple[object, LMResult]:
    """Generic LM loop: ``linearize(state) -> (blocks, cost)``, ``retract(state, dpose, dpoint) -> state``."""
    lin, current = linearize(state)
    initial = current
    converged = False
    it = 0
    for it in range(1, max_iterations + 1):
        dc, dp = solve_normal_equations(lin, num_poses, num_points, damping)
        candidate = retract(state, dc, dp)
        new_cost = cost(candidate)
        if np.isfinite(new_cost) and new_cost < current:
            gain = (current - new_cost) / max(current, 1e-12)
            state, current = candidate, new_cost
            damping = max(damping / 3.0, 1e-7)
            if gain < tolerance:
                converged = True
                break
            lin, current = linearize(state)
        else:
            damping *= 8.0
            if damping > 1e6:
                converged = True
                break
    return state, LMResult(cost=current, initial_cost=initial, iterations=it, converged=converged)
