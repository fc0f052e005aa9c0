"""Two-view motion between keyframes: essential matrix vs rotation-only model selection.

Used to initialise each new keyframe inside the right basin of the bundle
adjustment (local descent alone confuses a small sideways translation with a
rotation). The parallax test decides the model: after removing the rotation, if
the remaining (translational) image motion is below a pixel threshold the pair is
explained by a rotation only and no translation is invented.

Degenerate pairs (too few, non-finite, collinear or coincident points) give no estimate (None); a pair the
essential-matrix solver cannot handle (no translation at all: OpenCV 5.1 raises, 4.x returns nothing) is
rotation-only (see services/degenerate.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.camera.geometry import project_to_so3
from services.degenerate import attempt, finite_rows, spread_px

ROTATION_REWEIGHTS = 5  # reweighting rounds of the rotation-only fit: outliers' weights settle within a few
RANSAC_CONFIDENCE = 0.999  # the essential matrix's RANSAC stops when an outlier-free sample is this likely found
MIN_ESSENTIAL_INLIERS = 12  # fewer inliers than this do not pin a translation direction (five-point + checks)
NORM_FLOOR = 1e-12  # a zero translation is not normalised by its zero length


@dataclass
class RelativeMotion:
    R: np.ndarray  # rotation taking camera-0 coordinates to camera-1 coordinates (x1 = R x0 + t)
    t: np.ndarray  # unit translation direction (zero for a rotation-only pair)
    parallax_px: float  # median translational image motion after derotation
    rotation_only: bool
    inliers: int


def _rotation_from_bearings(b0: np.ndarray, b1: np.ndarray) -> np.ndarray | None:
    """Least-squares rotation with b1 ~ R b0 (Kabsch on unit bearings); None where it has no solution."""
    M = b1.T @ b0
    return attempt(project_to_so3, M)


def relative_motion(px0: np.ndarray, px1: np.ndarray, f: float, cx: float, cy: float,
                    parallax_threshold_px: float = 0.6, ransac_px: float = 1.0,
                    min_points: int = 12) -> RelativeMotion | None:
    """The pair's motion, or None when the points cannot give one: fewer than ``min_points`` finite pairs,
    or points that span no area (one spot or one line, narrower than the RANSAC threshold)."""
    finite = finite_rows(px0, px1)
    p0 = np.asarray(px0, np.float64)[finite]
    p1 = np.asarray(px1, np.float64)[finite]
    if len(p0) < min_points or min(spread_px(p0), spread_px(p1)) < ransac_px:
        return None
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    b0 = np.column_stack([(p0 - (cx, cy)) / f, np.ones(len(p0))])
    b1 = np.column_stack([(p1 - (cx, cy)) / f, np.ones(len(p1))])
    b0 /= np.linalg.norm(b0, axis=1, keepdims=True)
    b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
    # Rotation-only model: robust Kabsch (RANSAC-free, iteratively reweighted).
    Rr = np.eye(3)
    w = np.ones(len(b0))
    for _ in range(ROTATION_REWEIGHTS):
        Rr = _rotation_from_bearings(b0 * w[:, None], b1)
        if Rr is None:
            return None
        err = f * np.linalg.norm(np.cross(b0 @ Rr.T, b1), axis=1)
        w = 1.0 / (1.0 + (err / ransac_px) ** 2)
    if not np.isfinite(parallax_threshold_px):  # the caller wants the rotation-only model whatever the parallax
        return RelativeMotion(Rr, np.zeros(3), float(np.median(err)), True, int((err < 2 * ransac_px).sum()))
    rotation_only = RelativeMotion(Rr, np.zeros(3), 0.0, True, int((err < 2 * ransac_px).sum()))
    found = attempt(cv2.findEssentialMat, p0, p1, K, method=cv2.RANSAC, prob=RANSAC_CONFIDENCE, threshold=ransac_px)
    E, mask = found if found is not None else (None, None)
    if E is None or E.shape != (3, 3) or mask is None or not np.isfinite(E).all():
        return rotation_only  # no translation the five-point solver could find
    pose = attempt(cv2.recoverPose, E, p0, p1, K, mask=mask.copy())
    if pose is None:
        return rotation_only
    n_in, Re, te, _ = pose
    inl = mask.ravel() > 0
    # translational parallax: residual motion after removing each model's rotation
    err_e = f * np.linalg.norm(np.cross(b0[inl] @ Re.T, b1[inl]), axis=1)
    err_r = f * np.linalg.norm(np.cross(b0[inl] @ Rr.T, b1[inl]), axis=1)
    parallax = float(np.median(err_e)) if inl.any() else 0.0
    rot_fit = float(np.median(err_r)) if inl.any() else np.inf
    if rot_fit < parallax_threshold_px or n_in < MIN_ESSENTIAL_INLIERS:
        return RelativeMotion(Rr, np.zeros(3), rot_fit, True, int(inl.sum()))
    return RelativeMotion(Re, te.ravel() / max(np.linalg.norm(te), NORM_FLOOR), rot_fit, False, int(n_in))
