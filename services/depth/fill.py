"""Cleaning, hole filling and re-projection of depth maps (0 = invalid throughout)."""

from __future__ import annotations

import cv2
import numpy as np

from services.depth.geometry import pixel_grid

HOLE_CONNECTIVITY = 4  # a hole is enclosed when the valid depth around it is connected through edges
# Small holes are filled from their borders at these growing box radii (px); a box counts where the valid depth
# inside it weighs at least HOLE_FILL_SUPPORT (a hole's own middle fills from its rim, not from nothing).
HOLE_FILL_RADII = (1, 2, 4, 8)
HOLE_FILL_SUPPORT = 0.05
MIN_SPLAT_DEPTH = 1e-9  # points at or behind the camera's centre are not projected


def normalised_box_fill(depth: np.ndarray, radius: int, min_support: float = 0.3) -> np.ndarray:
    """Fill invalid pixels with the mean of valid ones within ``radius`` where they make up at least ``min_support``."""
    valid = (depth > 0).astype(np.float32)
    k = (2 * radius + 1, 2 * radius + 1)
    total = cv2.boxFilter(depth.astype(np.float32) * valid, -1, k, normalize=True, borderType=cv2.BORDER_REPLICATE)
    support = cv2.boxFilter(valid, -1, k, normalize=True, borderType=cv2.BORDER_REPLICATE)
    out = depth.astype(np.float32).copy()
    hole = (valid == 0) & (support >= min_support)
    out[hole] = total[hole] / support[hole]
    return out


def fill_small_holes(depth: np.ndarray, max_area: int) -> np.ndarray:
    """Fill invalid regions no larger than ``max_area`` pixels that are enclosed by valid depth, from their border.

    Larger regions (sky, unobserved areas, no parallax) stay invalid: nothing there is measured."""
    invalid = (depth <= 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(invalid, connectivity=HOLE_CONNECTIVITY)
    small = np.zeros(count, bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] <= max_area
    fillable = small[labels]
    if not fillable.any():
        return depth
    out = depth.astype(np.float32).copy()
    filled = out
    for radius in HOLE_FILL_RADII:
        filled = normalised_box_fill(filled, radius, min_support=HOLE_FILL_SUPPORT)
        if (filled[fillable] > 0).all():
            break
    out[fillable] = filled[fillable]
    return out


def median_clean(depth: np.ndarray) -> np.ndarray:
    """3x3 median over valid pixels only (isolated wrong matches go, edges stay)."""
    valid = depth > 0
    med = cv2.medianBlur(depth.astype(np.float32), 3)
    out = np.where(valid & (med > 0), med, depth).astype(np.float32)
    out[~valid] = 0
    return out


def _splat(X: np.ndarray, K: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points X (3, N) into an h x w image with a z-buffer: (z-depth (h, w), 0 where nothing lands;
    index into X of the point kept at each pixel (h, w), -1 there)."""
    depth = np.zeros(h * w, np.float32)
    kept = np.full(h * w, -1, np.int64)
    front = np.nonzero(X[2] > MIN_SPLAT_DEPTH)[0]
    proj = K @ X[:, front]
    u = np.rint(proj[0] / proj[2]).astype(np.int64)
    v = np.rint(proj[1] / proj[2]).astype(np.int64)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    idx, which = v[inside] * w + u[inside], front[inside]
    if idx.size:
        order = np.lexsort((X[2, which], idx))  # by pixel, nearest first
        idx, which = idx[order], which[order]
        first = np.ones(idx.size, bool)
        first[1:] = idx[1:] != idx[:-1]
        depth[idx[first]] = X[2, which[first]]
        kept[idx[first]] = which[first]
    return depth.reshape(h, w), kept.reshape(h, w)


def depth_to_points(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """(h, w, 3) world points of a z-depth map seen from camera-to-world ``c2w``; NaN where the depth is 0."""
    h, w = depth.shape
    X = (np.linalg.inv(K) @ pixel_grid(h, w)) * depth.ravel().astype(np.float64)
    world = (c2w[:3, :3] @ X + c2w[:3, 3:4]).T.reshape(h, w, 3)
    return np.where((depth > 0)[..., None], world, np.nan).astype(np.float32)


def carry_points(points: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (h, w, 3; NaN for none) seen from camera-to-world ``c2w``: (z-depth with the one-pixel
    cracks of splatting closed, 0 where nothing lands; the world point kept at each pixel, NaN where none
    landed, crack fills included).

    Carrying points rather than the depth raster keeps each point where it is: re-splatting a raster rounds
    every pixel's position at every frame, and through a 30-frame tilt those roundings moved the ground's
    depth up the image by several pixels (its median about a tenth too near, with exact poses)."""
    h, w = points.shape[:2]
    flat = points.reshape(-1, 3).astype(np.float64)
    has = np.nonzero(np.isfinite(flat[:, 0]))[0]
    w2c = np.linalg.inv(c2w)
    X = w2c[:3, :3] @ flat[has].T + w2c[:3, 3:4]
    depth, kept = _splat(X, K, h, w)
    landed = np.full((h, w, 3), np.nan, np.float32)
    where = kept >= 0
    landed[where] = flat[has[kept[where]]]
    return normalised_box_fill(depth, 1, min_support=0.5), landed
