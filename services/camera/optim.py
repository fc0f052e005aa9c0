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
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse

from services.degenerate import attempt
from services.kernels import bundle_ops

POSE_DOF = 6

# Levenberg-Marquardt damping: a floor on the diagonal for directions no observation constrains (a point seen
# once, a gauge freedom), plus DAMPING_FLOOR per unit of damping so a zero diagonal still gets damped.
DIAGONAL_FLOOR = 1e-9
DAMPING_FLOOR = 1e-6
# A successful step relaxes the damping by DAMPING_DECREASE (towards Gauss-Newton, never below MIN_DAMPING); a
# failed one raises it by DAMPING_INCREASE, and past MAX_DAMPING the steps are too small to matter: converged.
DAMPING_DECREASE = 3.0
DAMPING_INCREASE = 8.0
MIN_DAMPING = 1e-7
MAX_DAMPING = 1e6
# Pose-point entries (6 x free poses x points) above which a problem is solved reduced, with a sparse
# pose-point block (``bundle.linearize_reduced``): a dense block for a window over a whole clip (about
# 800 x 10,000) would cost ~60 MB and a 6-GFLOP Schur product per step.
DENSE_SCHUR_MAX_ENTRIES = 1 << 20
COST_FLOOR = 1e-12  # the relative gain of a step from a zero cost is not divided by zero


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


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A x = b; least squares where A is singular; no step (zeros) where neither has a solution (NaNs in
    a degenerate window): the LM loop then sees no decrease and raises its damping."""
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        return np.zeros_like(b)
    x = attempt(np.linalg.solve, A, b)
    if x is None:
        found = attempt(np.linalg.lstsq, A, b, rcond=None)
        x = found[0] if found is not None else np.zeros_like(b)
    return x


@dataclass
class ReducedProblem:
    """The normal equations of a long window, summed over chunks of observations: the pose system is
    dense (small), the pose-point block sparse (each point is seen by a few of the window's poses), so
    memory and the Schur product grow with the observations, not with poses x points."""

    Hcc: np.ndarray  # (6P,6P)
    gc: np.ndarray  # (6P,)
    Hpp: np.ndarray  # (N,) diagonal point block, point prior included once added
    gp: np.ndarray  # (N,)
    Hcp: sparse.csr_matrix  # (6P,N)

    def accumulate(self, other: ReducedProblem) -> ReducedProblem:
        """Adds another chunk's equations in place (the dense blocks are not copied)."""
        self.Hcc += other.Hcc
        self.gc += other.gc
        self.Hpp += other.Hpp
        self.gp += other.gp
        self.Hcp += other.Hcp
        return self

    def with_point_prior(self, hessian: np.ndarray | None, gradient: np.ndarray | None) -> ReducedProblem:
        if hessian is None:
            return self
        return replace(self, Hpp=self.Hpp + hessian, gp=self.gp + gradient)


def reduce(lin: LinearizedProblem, num_poses: int, num_points: int) -> ReducedProblem:
    """One chunk's normal equations (its point prior included): the pose system from the operator
    (without its dense point blocks), the point blocks here."""
    no_points = np.full(len(lin.point_index), -1, np.int64)
    ne = bundle_ops.build_normal_equations(lin.residuals, lin.weights, lin.pose_index, lin.pose_jacobians,
                                           no_points, lin.point_jacobians, num_poses, 0)
    has_pt = lin.point_index >= 0
    pidx = lin.point_index[has_pt]
    w, jp, r = lin.weights[has_pt], lin.point_jacobians[has_pt], lin.residuals[has_pt]
    Hpp = np.bincount(pidx, w * (jp * jp).sum(1), minlength=num_points)
    gp = np.bincount(pidx, -w * (jp * r).sum(1), minlength=num_points)
    # (m,B,6): w J_pose^T J_point of each Jacobian block; fixed / absent blocks dropped
    per_block = np.einsum("mbrk,mr->mbk", lin.pose_jacobians[has_pt], jp * w[:, None])
    keep = lin.pose_index[has_pt] >= 0
    rows = lin.pose_index[has_pt][keep][:, None] * POSE_DOF + np.arange(POSE_DOF)
    cols = np.repeat(np.broadcast_to(pidx[:, None], keep.shape)[keep], POSE_DOF)
    Hcp = sparse.csr_matrix((per_block[keep].ravel(), (rows.ravel(), cols)),
                            shape=(num_poses * POSE_DOF, num_points))  # duplicate entries add up
    return ReducedProblem(ne.Hcc, ne.gc, Hpp, gp, Hcp).with_point_prior(lin.point_prior_hessian,
                                                                        lin.point_prior_gradient)


def solve_normal_equations(
    lin: LinearizedProblem | ReducedProblem, num_poses: int, num_points: int, damping: float
) -> tuple[np.ndarray, np.ndarray]:
    """One damped Gauss-Newton step: returns (pose update (num_poses,6), point update (num_points,))."""
    if isinstance(lin, ReducedProblem):
        return _reduced_step(lin, num_poses, damping)
    # H and g from the per-observation blocks: the spatialvid::ba_normal_equations operator (torch on
    # the CPU, a CUDA kernel on a GPU worker; services.kernels picks by settings kernels.device).
    ne = bundle_ops.build_normal_equations(lin.residuals, lin.weights, lin.pose_index, lin.pose_jacobians,
                                           lin.point_index, lin.point_jacobians, num_poses, num_points)
    Hcc = _damped_pose_block(ne.Hcc, damping)
    if num_points == 0:
        dc = _solve(Hcc, ne.gc)
        return dc.reshape(num_poses, POSE_DOF), np.zeros(0)

    Hpp, gp, Hcp = ne.Hpp, ne.gp, ne.Hcp
    if lin.point_prior_hessian is not None:
        Hpp, gp = Hpp + lin.point_prior_hessian, gp + lin.point_prior_gradient
    inv_pp = 1.0 / (Hpp * (1.0 + damping) + DIAGONAL_FLOOR)
    S = Hcc - (Hcp * inv_pp) @ Hcp.T
    b = ne.gc - Hcp @ (gp * inv_pp)
    dc = _solve(S, b) if num_poses else np.zeros(0)
    dp = (gp - Hcp.T @ dc) * inv_pp
    return dc.reshape(num_poses, POSE_DOF), dp


def _damping_diagonal(Hcc: np.ndarray, damping: float) -> np.ndarray:
    """Levenberg-Marquardt damping: multiplicative on the diagonal, plus a floor for unobserved directions."""
    return damping * np.diag(Hcc) + DIAGONAL_FLOOR + damping * DAMPING_FLOOR


def _damped_pose_block(Hcc: np.ndarray, damping: float) -> np.ndarray:
    return Hcc + np.diag(_damping_diagonal(Hcc, damping))


def _reduced_step(red: ReducedProblem, num_poses: int, damping: float) -> tuple[np.ndarray, np.ndarray]:
    """The Schur complement step of ``solve_normal_equations`` with the sparse pose-point block; S is built
    in one array (a long window's pose system is a few MB per copy)."""
    inv_pp = 1.0 / (red.Hpp * (1.0 + damping) + DIAGONAL_FLOOR)
    if len(inv_pp):
        S = (red.Hcp @ sparse.diags(inv_pp) @ red.Hcp.T).toarray()
        np.negative(S, out=S)
        S += red.Hcc
    else:
        S = red.Hcc.copy()
    S[np.diag_indices_from(S)] += _damping_diagonal(red.Hcc, damping)
    b = red.gc - red.Hcp @ (red.gp * inv_pp)
    dc = _solve(S, b) if num_poses else np.zeros(0)
    dp = (red.gp - red.Hcp.T @ dc) * inv_pp
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
            gain = (current - new_cost) / max(current, COST_FLOOR)
            state, current = candidate, new_cost
            damping = max(damping / DAMPING_DECREASE, MIN_DAMPING)
            if gain < tolerance:
                converged = True
                break
            lin, current = linearize(state)
        else:
            damping *= DAMPING_INCREASE
            if damping > MAX_DAMPING:
                converged = True
                break
    return state, LMResult(cost=current, initial_cost=initial, iterations=it, converged=converged)
