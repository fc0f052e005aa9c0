"""Pinhole and pose algebra shared by the depth and motion-mask maths.

Conventions: poses are camera-to-world 4x4 (OpenCV camera axes), any scale;
K is the 3x3 pinhole matrix of the image it is used with; a pixel (u, v)
sees the ray K^-1 [u, v, 1]. Inverse depth ``w = 1/z`` is in 1/pose-units.
"""

from __future__ import annotations

import numpy as np

# Smallest depth, inverse depth or squared length a division takes: below it the quantity counts as none
# (0 on output), never as a huge reciprocal.
DIVISION_FLOOR = 1e-12


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K of an image resized by (sx, sy) with the area convention (pixel centres move by half a pixel)."""
    Ks = np.asarray(K, np.float64).copy()
    Ks[0, 0] *= sx
    Ks[0, 2] = (Ks[0, 2] + 0.5) * sx - 0.5
    Ks[1, 1] *= sy
    Ks[1, 2] = (Ks[1, 2] + 0.5) * sy - 0.5
    return Ks


def intrinsics_from_normalised(row: np.ndarray, width: int, height: int) -> np.ndarray:
    """The reference's N x 4 row (fx/W, fy/H, cx/W, cy/H) as a 3x3 K for a W x H image."""
    fx, fy, cx, cy = (float(x) for x in row)
    return np.array([[fx * width, 0, cx * width], [0, fy * height, cy * height], [0, 0, 1]], np.float64)


def relative_pose(c2w_ref: np.ndarray, c2w_src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with X_src = R X_ref + t for points in the two cameras' frames."""
    T = np.linalg.inv(np.asarray(c2w_src, np.float64)) @ np.asarray(c2w_ref, np.float64)
    return T[:3, :3], T[:3, 3]


def pixel_grid(h: int, w: int) -> np.ndarray:
    """(3, h*w) homogeneous pixel coordinates, row-major."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([u.ravel(), v.ravel(), np.ones(h * w)])


def epipolar_terms(K: np.ndarray, R: np.ndarray, t: np.ndarray, h: int, w: int,
                   pixels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For every reference pixel p, its image in the source is proj(a + w b):
    a = K R K^-1 p (the rotation-only image, w = 0), b = K t (the parallax direction scaled by inverse depth).
    Returns a (3, n) and b (3,); ``pixels`` (3, n) homogeneous picks the pixels (default: the whole h x w grid)."""
    a = (K @ R @ np.linalg.inv(K)) @ (pixel_grid(h, w) if pixels is None else pixels)
    return a, K @ t


def rotation_flow(K: np.ndarray, R: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w, 2) flow that the rotation alone induces (the flow at infinite depth)."""
    p = pixel_grid(h, w)
    a, _ = epipolar_terms(K, R, np.zeros(3), h, w, p)
    q = a[:2] / a[2]
    return (q - p[:2]).T.reshape(h, w, 2).astype(np.float32)


def rigid_flow(K: np.ndarray, R: np.ndarray, t: np.ndarray, inv_depth: np.ndarray) -> np.ndarray:
    """(h, w, 2) flow that the camera motion induces on a static scene with this inverse depth."""
    h, w = inv_depth.shape
    p = pixel_grid(h, w)
    a, b = epipolar_terms(K, R, t, h, w)
    x = a + inv_depth.reshape(1, -1).astype(np.float64) * b[:, None]
    z = np.where(np.abs(x[2]) < 1e-9, 1e-9, x[2])
    q = x[:2] / z
    return (q - p[:2]).T.reshape(h, w, 2).astype(np.float32)
