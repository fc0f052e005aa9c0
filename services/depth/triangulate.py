"""Per-pixel inverse depth from dense correspondences with known relative poses.

A reference pixel p seen in a source view at q = p + flow satisfies
q = proj(a + w b) (see geometry.epipolar_terms), which is linear in the inverse
depth w once multiplied out:  w (b_k - q_k b_2) = q_k a_2 - a_k  for k = u, v.
Stacking both image axes of every source view gives a one-unknown least
squares per pixel, solved in closed form (vectorised over the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.depth.geometry import DIVISION_FLOOR, epipolar_terms, pixel_grid

MIN_RAY_DEPTH = 1e-9  # a ray parallel to the image plane is projected as if barely in front of it


@dataclass(frozen=True)
class ViewFlow:
    """One source view of a reference frame: relative pose, observed flow and which flow pixels to trust."""

    R: np.ndarray  # (3, 3) reference -> source rotation
    t: np.ndarray  # (3,) reference -> source translation
    flow: np.ndarray  # (h, w, 2) reference -> source
    usable: np.ndarray  # (h, w) bool (forward-backward consistent, inside the source image)
    source_index: int = -1  # which frame of the stream the source is


@dataclass(frozen=True)
class Triangulation:
    inv_depth: np.ndarray  # (h, w) float32, 1 / z in 1/pose-units (may be <= 0 where unusable)
    parallax_px: np.ndarray  # (h, w) translation-induced image motion at that depth, summed over views in quadrature
    residual_px: np.ndarray  # (h, w) worst reprojection residual over the views that were used
    views_used: np.ndarray  # (h, w) uint8 number of views used


def triangulate_inverse_depth(K: np.ndarray, views: list[ViewFlow]) -> Triangulation:
    h, w = views[0].flow.shape[:2]
    p = pixel_grid(h, w)
    num = np.zeros(h * w)
    den = np.zeros(h * w)
    terms = []
    for view in views:
        a, b = epipolar_terms(K, view.R, view.t, h, w)
        q = p[:2] + view.flow.reshape(-1, 2).T.astype(np.float64)
        m = view.usable.ravel().astype(np.float64)
        A = b[:2, None] - q * b[2]  # (2, n)
        B = q * a[2] - a[:2]
        num += m * (A * B).sum(0)
        den += m * (A * A).sum(0)
        terms.append((a, b, q, m))
    inv_depth = num / np.maximum(den, DIVISION_FLOOR)
    inv_depth[den <= DIVISION_FLOOR] = 0.0

    residual = np.zeros(h * w)
    sens2 = np.zeros(h * w)
    used = np.zeros(h * w, np.uint8)
    for a, b, q, m in terms:
        x = a + inv_depth * b[:, None]
        z = np.where(np.abs(x[2]) < MIN_RAY_DEPTH, MIN_RAY_DEPTH, x[2])
        pred = x[:2] / z
        r = np.linalg.norm(pred - q, axis=0)
        residual = np.where(m > 0, np.maximum(residual, r), residual)
        # d proj / d w = (b_xy - pred * b_z) / z : image motion per unit inverse depth
        jac = np.linalg.norm(b[:2, None] - pred * b[2], axis=0) / np.abs(z)
        sens2 += m * jac**2
        used += (m > 0).astype(np.uint8)
    parallax = np.abs(inv_depth) * np.sqrt(sens2)
    return Triangulation(
        inv_depth=inv_depth.reshape(h, w).astype(np.float32),
        parallax_px=parallax.reshape(h, w).astype(np.float32),
        residual_px=residual.reshape(h, w).astype(np.float32),
        views_used=used.reshape(h, w),
    )


def triangulate_views(K: np.ndarray, views: list[ViewFlow]) -> Triangulation:
    """The same maths through the ``spatialvid::flow_triangulate`` operator: its CUDA
    kernel on a GPU worker, its vectorised torch twin elsewhere (equal to the numpy
    above; tests/kernels checks both against it)."""
    from services.kernels.flow_ops import triangulate

    inv_depth, parallax, residual, used = triangulate(K, views)
    return Triangulation(inv_depth=inv_depth, parallax_px=parallax, residual_px=residual, views_used=used)

