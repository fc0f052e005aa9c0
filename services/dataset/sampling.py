"""Pure sampling maths for the loader: which rows, poses as matrices, K in pixels, nearest resizing."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import cv2
import numpy as np
from scipy.spatial.transform import Rotation


def rows_needed(num_frames: int | None, stride: int) -> int:
    return 1 if num_frames is None else (num_frames - 1) * stride + 1


def pick_rows(total: int, num_frames: int | None, stride: int, start: int) -> np.ndarray:
    """Annotated rows ``start, start+stride, ...``: ``num_frames`` of them, or all that fit when None."""
    if num_frames is None:
        return np.arange(start, total, stride)
    rows = start + stride * np.arange(num_frames)
    if rows[-1] >= total:
        raise ValueError(f"clip has {total} annotated frames, fewer than {rows_needed(num_frames, stride)} needed")
    return rows


def w2c_matrices(poses: np.ndarray) -> np.ndarray:
    """(N, 7) world-to-camera ``tx, ty, tz, qx, qy, qz, qw`` -> (N, 4, 4) world-to-camera matrices."""
    poses = np.asarray(poses, np.float64)
    out = np.tile(np.eye(4), (len(poses), 1, 1))
    out[:, :3, :3] = Rotation.from_quat(poses[:, 3:7]).as_matrix()
    out[:, :3, 3] = poses[:, :3]
    return out


def invert_rigid(m: np.ndarray) -> np.ndarray:
    """Inverse of (N, 4, 4) rigid transforms (R^T, -R^T t)."""
    out = np.tile(np.eye(4), (len(m), 1, 1))
    rt = np.transpose(m[:, :3, :3], (0, 2, 1))
    out[:, :3, :3] = rt
    out[:, :3, 3] = -np.einsum("nij,nj->ni", rt, m[:, :3, 3])
    return out


def pixel_intrinsics(normalised: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) ``fx/W, fy/H, cx/W, cy/H`` -> (N, 3, 3) K in pixels of a ``width`` x ``height`` image."""
    n = np.asarray(normalised, np.float64)
    K = np.zeros((len(n), 3, 3))
    K[:, 0, 0], K[:, 1, 1] = n[:, 0] * width, n[:, 1] * height
    K[:, 0, 2], K[:, 1, 2] = n[:, 2] * width, n[:, 3] * height
    K[:, 2, 2] = 1.0
    return K


def resize_nearest(stack: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, h, w) maps to (N, height, width) by nearest neighbour: invalid depth (0) and mask edges are
    never blended into their neighbours."""
    if stack.shape[1:] == (height, width):
        return stack
    dtype = stack.dtype
    work = stack.astype(np.uint8) if dtype == bool else stack
    out = np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in work])
    return out.astype(dtype)


Filter = Callable[[dict], bool] | Mapping[str, object] | None


def _matches(value, rule) -> bool:
    if callable(rule):
        return bool(rule(value))
    if isinstance(rule, tuple) and len(rule) == 2:  # inclusive range, None = open
        lo, hi = rule
        try:
            return (lo is None or value >= lo) and (hi is None or value <= hi)
        except TypeError:
            return False
    if isinstance(rule, (list, set, frozenset)):
        return value in rule
    return value == rule


def row_matches(row: dict, filters: Filter) -> bool:
    """``filters``: a predicate on the row, or {column: value | (lo, hi) | [allowed...] | predicate}."""
    if filters is None:
        return True
    if callable(filters):
        return bool(filters(row))
    for column, rule in filters.items():
        if column not in row:
            raise KeyError(f"filter on unknown metadata column {column!r}")
        if not _matches(row[column], rule):
            return False
    return True


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def is_kept(row: dict) -> bool:
    """Not dropped by a filter and not failed (empty ``filtered_by`` and ``failed_stage``)."""
    return all(is_missing(row.get(c)) or row.get(c) == "" for c in ("filtered_by", "failed_stage"))
