"""Aligning an affine-invariant relative disparity to a reference depth: one scale and shift per frame.

Depth Anything V2 predicts disparity up to an unknown scale and shift. The
reference (SpatialVID, after MegaSaM) fixes both per frame against UniDepth V2's
metric depth, in disparity space; here the same fit also takes the geometric
multi-view depth as its reference (then the result is in the poses' units).

The fit is robust: least squares, then iteratively reweighted least squares
with Huber and then Tukey biweight weights on residuals scaled by their MAD,
so that a minority of wrong reference pixels (a moving object, a bad match,
UniDepth's sky) does not pull the line. Pure functions, arrays in and out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HUBER_K = 1.345
TUKEY_C = 4.685
MAD_TO_SIGMA = 1.4826
MIN_SPREAD = 1e-20  # x spread (per unit weight) below which x has none: no line through it is determined
SIGMA_FLOOR_SHARE = 1e-9  # sigma's floor as a share of |y|'s largest value: an exact fit must not divide by zero
TINY = 1e-30  # keeps the floors above zero when every value is zero
RESIDUAL_FLOOR = 1e-12  # a zero residual gets Huber's full weight, not a division by zero
CONVERGED_CHANGE = 1e-10  # relative change of scale and shift below which the reweighting has converged


@dataclass(frozen=True)
class ScaleShift:
    scale: float
    shift: float
    inlier_share: float  # share of the used pixels with non-zero final Tukey weight
    used: int  # pixels the fit saw (after subsampling)
    residual_sigma: float  # robust (MAD) sigma of the final residuals, in target units


@dataclass(frozen=True)
class Alignment:
    depth: np.ndarray  # (h, w) float32 z-depth in the reference's units, 0 = invalid
    fit: ScaleShift | None
    reason: str = ""  # why the frame could not be aligned (depth all 0), else ""

    @property
    def ok(self) -> bool:
        return self.fit is not None


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float] | None:
    """Weighted least squares y ~ s x + t (closed form of the 2x2 normal equations)."""
    sw = w.sum()
    if sw <= 0:
        return None
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    dx = x - mx
    sxx = (w * dx * dx).sum()
    if sxx <= MIN_SPREAD * max(sw, 1.0):
        return None
    s = (w * dx * (y - my)).sum() / sxx
    return float(s), float(my - s * mx)


def _robust_sigma(r: np.ndarray) -> float:
    return MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))


def fit_scale_shift(
    x: np.ndarray,
    y: np.ndarray,
    max_samples: int = 40_000,
    huber_iterations: int = 5,
    tukey_iterations: int = 5,
) -> ScaleShift | None:
    """Robust y ~ scale * x + shift over 1-d samples (None when x has no spread).

    Deterministic: more than ``max_samples`` points are thinned by a fixed stride.
    """
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in size: {x.size} vs {y.size}")
    if x.size > max_samples:
        step = int(np.ceil(x.size / max_samples))
        x, y = x[::step], y[::step]
    if x.size < 2:
        return None
    line = _weighted_line(x, y, np.ones_like(x))
    if line is None:
        return None
    # The spread of y sets the floor under sigma: an exact fit must not divide by zero.
    floor = SIGMA_FLOOR_SHARE * max(float(np.abs(y).max()), TINY)
    weights = np.ones_like(x)
    for iteration in range(huber_iterations + tukey_iterations):
        r = y - (line[0] * x + line[1])
        sigma = max(_robust_sigma(r), floor)
        u = np.abs(r) / sigma
        if iteration < huber_iterations:
            weights = np.minimum(1.0, HUBER_K / np.maximum(u, RESIDUAL_FLOOR))
        else:
            weights = np.where(u < TUKEY_C, (1.0 - (u / TUKEY_C) ** 2) ** 2, 0.0)
        new = _weighted_line(x, y, weights)
        if new is None:
            break
        converged = abs(new[0] - line[0]) <= CONVERGED_CHANGE * max(abs(line[0]), TINY) and abs(
            new[1] - line[1]) <= CONVERGED_CHANGE * (
            abs(line[1]) + floor
        )
        line = new
        if converged and iteration >= huber_iterations:
            break
    r = y - (line[0] * x + line[1])
    sigma = max(_robust_sigma(r), floor)
    inliers = float(np.mean(np.abs(r) / sigma < TUKEY_C))
    return ScaleShift(scale=line[0], shift=line[1], inlier_share=inliers, used=int(x.size), residual_sigma=sigma)


def align_disparity_to_depth(
    relative_disparity: np.ndarray,
    reference_depth: np.ndarray,
    valid: np.ndarray | None = None,
    min_valid_share: float = 0.01,
    min_valid_pixels: int = 200,
    min_inlier_share: float = 0.5,
    max_depth_ratio: float = 10.0,
) -> Alignment:
    """Fit ``1 / reference_depth ~ scale * relative_disparity + shift`` on the valid pixels; return z-depth.

    ``relative_disparity`` and ``reference_depth`` share one (h, w) grid; ``valid`` (default: reference > 0
    and finite) picks the pixels the fit may use. The aligned disparity becomes depth where it is positive
    and the depth stays within ``max_depth_ratio`` times the reference's far end (its 1st-percentile
    disparity); elsewhere (sky, behind the camera under the fitted shift) 0 = invalid. A frame with too
    few valid pixels, a non-positive scale (the model's ordering contradicts the reference) or too few
    inliers is not aligned: its depth is all 0 and ``reason`` says why; no scale is invented.
    """
    rel = np.asarray(relative_disparity, np.float32)
    ref = np.asarray(reference_depth, np.float32)
    if rel.shape != ref.shape:
        raise ValueError(f"relative disparity {rel.shape} and reference depth {ref.shape} differ in shape")
    empty = np.zeros(rel.shape, np.float32)
    ok = np.isfinite(ref) & (ref > 0) & np.isfinite(rel)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    count = int(ok.sum())
    needed = max(min_valid_pixels, int(np.ceil(min_valid_share * rel.size)))
    if count < needed:
        return Alignment(empty, None, f"{count} reference pixels (< {needed})")
    target = 1.0 / ref[ok].astype(np.float64)
    fit = fit_scale_shift(rel[ok], target)
    if fit is None:
        return Alignment(empty, None, "relative disparity is flat on the reference pixels")
    if not fit.scale > 0:
        return Alignment(empty, None, f"non-positive scale {fit.scale:.3g} (the model's depth order contradicts the reference)")
    if fit.inlier_share < min_inlier_share:
        return Alignment(empty, None, f"only {fit.inlier_share:.0%} of reference pixels fit one scale and shift")
    disparity = fit.scale * rel.astype(np.float64) + fit.shift
    min_disparity = float(np.percentile(target, 1)) / max_depth_ratio
    keep = np.isfinite(disparity) & (disparity > min_disparity)
    depth = np.where(keep, 1.0 / np.where(keep, disparity, 1.0), 0.0).astype(np.float32)
    return Alignment(depth, fit)
