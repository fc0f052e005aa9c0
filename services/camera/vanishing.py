"""Focal length from vanishing points, for clips whose motion cannot tell it.

A pure translation or a roll leaves the focal unobservable (a scene stretched along the
optical axis fits as well), but man-made scenes show it in single frames: the images of
two orthogonal scene directions meet at vanishing points v1, v2 with

    (v1 - c) . (v2 - c) = -f^2        (square pixels, principal point c at the centre)

Per sampled frame: LSD line segments -> up to three vanishing points by RANSAC over pairs of
segments (support = summed length of segments pointing at the point) -> f from each pair of
finite points; where a third point is found it must agree with the direction orthogonal to
the other two at that f, else the frame says nothing (two dominant directions need not be
orthogonal outside a Manhattan scene). A clip's estimate is the median over frames, accepted
only when enough frames agree closely; otherwise the caller keeps its prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.degenerate import attempt, finite_rows

MAX_POINTS = 3  # a man-made scene has at most three orthogonal directions, so three vanishing points
REFINE_ROUNDS = 3  # least-squares refinements of a point against its inlier segments (they settle in one or two)
NORM_FLOOR = 1e-12  # a segment whose midpoint is the point itself has no direction to compare
MIN_HYPOTHESIS_NORM = 1e-9  # two parallel (identical) segments intersect nowhere: no hypothesis
MIN_FINITE_W = 1e-9  # a vanishing point this close to infinity (w ~ 0) says nothing about the focal


@dataclass
class VanishingConfig:
    min_length_frac: float = 0.04  # shortest segment used, as a share of the image width
    inlier_deg: float = 1.5  # a segment supports a point if it points at it within this angle
    iterations: int = 300  # RANSAC hypotheses per vanishing point
    min_lines: int = 8  # segments a vanishing point needs
    hfov_range: tuple[float, float] = (20.0, 120.0)
    third_point_deg: float = 3.0  # agreement a third vanishing point must show with the other two
    min_frames: int = 3  # frames that must give an estimate ...
    min_share: float = 0.5  # ... and the share of sampled frames they must be
    max_spread: float = 0.015  # accepted spread (median absolute deviation / median) over frames


@dataclass
class VanishingFocal:
    f: float  # pixels
    frames: int  # frames that gave an estimate
    sampled: int  # frames looked at
    spread: float  # median absolute deviation over the median


def line_segments(gray: np.ndarray, min_length: float) -> np.ndarray:
    """(n,4) x1,y1,x2,y2 of LSD segments at least ``min_length`` pixels long."""
    found = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD).detect(gray)[0]
    if found is None:
        return np.zeros((0, 4))
    seg = found.reshape(-1, 4).astype(np.float64)
    return seg[np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]) >= min_length]


def _homogeneous(seg: np.ndarray, centre: np.ndarray, scale: float):
    """Lines (normal part unit length), midpoints and lengths in centred, scaled coordinates."""
    p1 = np.column_stack([(seg[:, :2] - centre) / scale, np.ones(len(seg))])
    p2 = np.column_stack([(seg[:, 2:] - centre) / scale, np.ones(len(seg))])
    lines = np.cross(p1, p2)
    lines /= np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
    return lines, 0.5 * (p1 + p2), np.linalg.norm(p2[:, :2] - p1[:, :2], axis=1)


def _misalignment(lines: np.ndarray, mids: np.ndarray, v: np.ndarray) -> np.ndarray:
    """|sin| of the angle between each segment and the line from its midpoint to ``v``."""
    through = np.cross(mids, v)
    norm = np.linalg.norm(through[:, :2], axis=1)
    sin = np.abs(lines[:, 0] * through[:, 1] - lines[:, 1] * through[:, 0]) / np.maximum(norm, NORM_FLOOR)
    return np.where(norm > NORM_FLOOR, sin, 1.0)


def _refine(lines: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The point closest to all ``lines`` (weighted least squares on the homogeneous equations); None where
    the system has no solution (non-finite lines)."""
    A = (lines * weights[:, None]).T @ lines
    if not np.isfinite(A).all():
        return None
    found = attempt(np.linalg.eigh, A)
    return None if found is None else found[1][:, 0]


def vanishing_points(seg: np.ndarray, centre: np.ndarray, scale: float, cfg: VanishingConfig,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Up to three vanishing points (unit homogeneous 3-vectors, centred scaled coordinates)."""
    seg = seg[finite_rows(seg) & (np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]) > 0)]  # no line without length
    lines, mids, length = _homogeneous(seg, centre, scale)
    tol = np.sin(np.radians(cfg.inlier_deg))
    free = np.ones(len(lines), bool)
    found = []
    for _ in range(MAX_POINTS):
        idx = np.flatnonzero(free)
        if len(idx) < cfg.min_lines:
            break
        p = length[idx] / length[idx].sum()
        pairs = rng.choice(idx, size=(cfg.iterations, 2), p=p)
        hyp = np.cross(lines[pairs[:, 0]], lines[pairs[:, 1]])
        ok = np.linalg.norm(hyp, axis=1) > MIN_HYPOTHESIS_NORM
        hyp = hyp[ok]
        if not len(hyp):
            break
        # every hypothesis against every free segment at once: (hypotheses, segments)
        through = np.cross(mids[idx][None, :, :], hyp[:, None, :])
        norm = np.linalg.norm(through[..., :2], axis=2)
        sin = np.abs(lines[idx, 0] * through[..., 1] - lines[idx, 1] * through[..., 0]) / np.maximum(norm, NORM_FLOOR)
        support = ((sin < tol) & (norm > NORM_FLOOR)) @ length[idx]
        best = hyp[int(np.argmax(support))]
        v = best / np.linalg.norm(best)
        for _ in range(REFINE_ROUNDS):
            inl = idx[_misalignment(lines[idx], mids[idx], v) < tol]
            if len(inl) < 2:
                break
            refined = _refine(lines[inl], length[inl])
            if refined is None:
                break
            v = refined
        inl = idx[_misalignment(lines[idx], mids[idx], v) < tol]
        if len(inl) < cfg.min_lines:
            break
        found.append(v)
        free[inl] = False
    return found


def _focal_from_pair(v1: np.ndarray, v2: np.ndarray) -> float | None:
    if abs(v1[2]) < MIN_FINITE_W or abs(v2[2]) < MIN_FINITE_W:
        return None  # a point at infinity says nothing about the focal
    f2 = -float(np.dot(v1[:2] / v1[2], v2[:2] / v2[2]))
    return float(np.sqrt(f2)) if f2 > 0 else None


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = abs(np.dot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(min(1.0, c))))


def frame_focal(gray: np.ndarray, cfg: VanishingConfig, rng: np.random.Generator) -> float | None:
    """The focal (pixels) one frame's orthogonal vanishing points give, or None."""
    h, w = gray.shape[:2]
    centre, scale = np.array([w / 2.0, h / 2.0]), float(w)
    seg = line_segments(gray, cfg.min_length_frac * w)
    vps = vanishing_points(seg, centre, scale, cfg, rng)
    lo, hi = (0.5 / np.tan(np.radians(x) / 2.0) for x in (cfg.hfov_range[1], cfg.hfov_range[0]))
    estimates = []
    for i in range(len(vps)):
        for j in range(i + 1, len(vps)):
            f = _focal_from_pair(vps[i], vps[j])
            if f is None or not lo <= f <= hi:
                continue
            others = [vps[k] for k in range(len(vps)) if k not in (i, j)]
            if others:
                # the direction orthogonal to the pair, at this focal, must be where the third point is
                K_inv = np.diag([1.0 / f, 1.0 / f, 1.0])
                third = np.cross(K_inv @ vps[i], K_inv @ vps[j])
                if _angle_deg(third, K_inv @ others[0]) > cfg.third_point_deg:
                    continue
            estimates.append(f * scale)
    return float(np.median(estimates)) if estimates else None


def combine(per_frame: list[float | None], cfg: VanishingConfig) -> VanishingFocal | None:
    """The clip's focal from per-frame estimates, or None when they are too few or disagree."""
    values = np.array([f for f in per_frame if f is not None])
    if len(values) < cfg.min_frames or len(values) < cfg.min_share * len(per_frame):
        return None
    f = float(np.median(values))
    spread = float(np.median(np.abs(values - f)) / f)
    if spread > cfg.max_spread:
        return None
    return VanishingFocal(f, len(values), len(per_frame), spread)
