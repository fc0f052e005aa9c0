"""The numpy normal-equation build of services/camera/optim.py as it was before the kernels
(commit 81dbda0 plus the camera engineer's dense-Jacobian rewrite), frozen here as the target that
``spatialvid::ba_normal_equations`` must reproduce."""

from __future__ import annotations

import numpy as np

POSE_DOF = 6


def normal_equations(residuals, weights, pose_index, pose_jacobians, point_index, point_jacobians,
                     num_poses: int, num_points: int):
    n_c = num_poses * POSE_DOF
    w, r = weights, residuals
    M, B = pose_index.shape
    free = pose_index >= 0
    J = pose_jacobians * free[:, :, None, None]
    J = np.transpose(J, (0, 2, 1, 3)).reshape(M, 2, B * POSE_DOF)
    block = np.where(free, pose_index, num_poses)
    col = (block[:, :, None] * POSE_DOF + np.arange(POSE_DOF)).reshape(M, B * POSE_DOF)
    nc_trash = (num_poses + 1) * POSE_DOF
    dense = np.zeros((2 * M, nc_trash))
    dense[np.repeat(np.arange(2 * M)[:, None], B * POSE_DOF, 1), np.repeat(col, 2, axis=0)] = J.reshape(2 * M, B * POSE_DOF)
    dense = dense[:, :n_c]
    Dw = dense * np.sqrt(np.repeat(w, 2))[:, None]
    Hcc = Dw.T @ Dw
    gc = -dense.T @ (np.repeat(w, 2) * r.ravel())
    if num_points == 0:  # the original returned before the point blocks
        return Hcc, gc, np.zeros(0), np.zeros(0), np.zeros((n_c, 0))
    has_pt = point_index >= 0
    pidx = np.where(has_pt, point_index, 0)
    jp = point_jacobians * has_pt[:, None]
    Hpp = np.bincount(pidx, w * (jp**2).sum(1), minlength=num_points).astype(float)[:num_points]
    gp = np.bincount(pidx, -w * (jp * r).sum(1), minlength=num_points).astype(float)[:num_points]
    Hcp_obs = np.einsum("mki,mk->mi", J * w[:, None, None], jp)
    flat_cp = (col * num_points + pidx[:, None]).ravel()
    Hcp = np.bincount(flat_cp, Hcp_obs.ravel(), minlength=nc_trash * num_points).reshape(nc_trash, num_points)[:n_c]
    return Hcc, gc, Hpp, gp, Hcp
