"""Small SO(3)/SE(3) helpers shared by the camera modules (batched numpy)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def skew(v: np.ndarray) -> np.ndarray:
    """(...,3) -> (...,3,3) cross-product matrices."""
    v = np.asarray(v, float)
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def so3_exp(w: np.ndarray) -> np.ndarray:
    """Rodrigues: (...,3) axis-angle -> (...,3,3)."""
    return Rotation.from_rotvec(np.asarray(w, float).reshape(-1, 3)).as_matrix().reshape(np.shape(w)[:-1] + (3, 3))


def so3_log(R: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(np.asarray(R, float).reshape(-1, 3, 3)).as_rotvec().reshape(np.shape(R)[:-2] + (3,))


def project_to_so3(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt))
    return U @ D @ Vt


def slerp_pose(R0: np.ndarray, C0: np.ndarray, R1: np.ndarray, C1: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic interpolation of a camera-to-world pose (used only as an initial guess)."""
    dR = so3_exp(t * so3_log(R0.T @ R1))
    return R0 @ dR, (1.0 - t) * C0 + t * C1


def c2w_matrices(R: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(N,3,3), (N,3) -> (N,4,4) camera-to-world."""
    T = np.tile(np.eye(4), (len(R), 1, 1))
    T[:, :3, :3] = R
    T[:, :3, 3] = C
    return T


def c2w_to_w2c_quat(c2w: np.ndarray) -> np.ndarray:
    """(N,4,4) camera-to-world -> (N,7) world-to-camera ``tx,ty,tz,qx,qy,qz,qw`` (published layout)."""
    R = c2w[:, :3, :3]
    C = c2w[:, :3, 3]
    Rt = np.transpose(R, (0, 2, 1))
    t = -np.einsum("nij,nj->ni", Rt, C)
    q = Rotation.from_matrix(Rt).as_quat()  # x, y, z, w
    q *= np.where(q[:, 3:4] < 0, -1.0, 1.0)  # canonical hemisphere
    return np.concatenate([t, q], axis=1)
