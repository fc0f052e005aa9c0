"""Cleaning, hole filling and re-projection of depth maps (0 = invalid throughout)."""

from __future__ import annotations

import cv2
import numpy as np

from services.depth.geometry import pixel_grid


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
    count, labels, stats, _ = cv2.connectedComponentsWithStats(invalid, connectivity=4)
    small = np.zeros(count, bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] <= max_area
    fillable = small[labels]
    if not fillable.any():
        return depth
    out = depth.astype(np.float32).copy()
    filled = out
    for radius in (1, 2, 4, 8):
        filled = normalised_box_fill(filled, radius, min_support=0.05)
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


def reproject_depth(depth: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Forward-warp a z-depth map into another camera (X' = R X + t) with a z-buffer; 0 where nothing lands."""
    h, w = depth.shape
    valid = depth.ravel() > 0
    p = pixel_grid(h, w)[:, valid]
    z = depth.ravel()[valid].astype(np.float64)
    X = (np.linalg.inv(K) @ p) * z
    Xc = R @ X + t[:, None]
    zc = Xc[2]
    front = zc > 1e-9
    proj = K @ Xc[:, front]
    u = np.rint(proj[0] / proj[2]).astype(np.int64)
    v = np.rint(proj[1] / proj[2]).astype(np.int64)
    zc = zc[front]
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    idx, zc = v[inside] * w + u[inside], zc[inside]
    out = np.zeros(h * w, np.float32)
    if idx.size:
        order = np.lexsort((zc, idx))  # by pixel, nearest first
        idx, zc = idx[order], zc[order]
        first = np.ones(idx.size, bool)
        first[1:] = idx[1:] != idx[:-1]
        out[idx[first]] = zc[first]
    out = out.reshape(h, w)
    # close the one-pixel cracks that forward splatting leaves
    cracks = normalised_box_fill(out, 1, min_support=0.5)
    return cracks
