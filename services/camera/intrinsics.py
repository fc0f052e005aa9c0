"""Focal length from the video itself: a 1-D search minimising bundle-adjustment error.

A pure translation or a roll about the optical axis says nothing about the focal
length (a different focal gives an equally consistent, stretched scene), while pans,
tilts and orbits pin it down. So the search runs on the stretch of keyframes with
the most pan/tilt rotation (found by a first pass at a prior focal), re-solves that
stretch's bundle adjustment for each candidate focal (warm-started from its
neighbour), and keeps the minimum. A flat cost curve means the clip does not
determine the focal: the prior is kept and reported as such.
Principal point: the image centre; pixels: square (both assumed, not estimated).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from services.camera import bundle
from services.camera.geometry import so3_log
from services.camera.frontend import FrameTracks
from services.camera.sfm import Intrinsics, KeyframeOdometry, SfmConfig
from services.camera.twoview import relative_motion

# Smallest cost (per observation, normalised units) a ratio divides by: an exact fit's cost is zero.
COST_FLOOR = 1e-9


@dataclass
class FocalEstimate:
    f: float  # pixels at the working resolution
    estimated: bool  # False: not observable here, the prior is returned
    source: str  # "ba-search" or "prior: ..."
    curve: list[tuple[float, float]]  # (hfov deg, cost per observation)


@dataclass(frozen=True)
class FocalSearch:
    """How the focal search runs: fixed tuning, not settings (every field changes what ``estimated`` means)."""

    # keyframes in the stretch of pure rotation the search prefers (a homography pins the focal best)
    chunk: int = 10
    # keyframes in a stretch with translation: rotation with translation determines the focal more weakly
    general_chunk: int = 20
    min_pan_tilt_deg: float = 3.0  # pan and tilt a stretch needs before it can observe the focal at all
    # points in the search's bundle adjustments: a fixed size, so that the focal's sigma compares across clips
    max_points: int = 160
    refine_points: int = 400  # points in the final refinement, once the clip is known to pin the focal
    hfov_range: tuple[float, float] = (12.0, 120.0)  # fields of view searched: long telephoto to wide angle
    max_sigma: float = 0.015  # relative focal uncertainty above which the clip does not determine the focal
    grid_points: int = 13  # coarse grid over the range (log focal): about 20% apart, inside one cost basin each
    coarse_iterations: int = 8  # bundle-adjustment iterations per cold-started grid point
    calibrate_iterations: int = 40  # iterations of a self-calibrating (focal-free) bundle adjustment
    profile_iterations: int = 15  # iterations of a profile fit beside the minimum (warm-started)
    profile_step: float = 1.06  # profile points 6% either side of the minimum: the cost's curvature
    profile_offset: float = 0.06  # profile_step - 1 written out exactly: the step that scales the focal's sigma
    max_restarts: int = 3  # self-calibration restarts from a better profile side before giving up on improving
    # chi-square (1 degree of freedom, ~3 sigma) beyond which a pure rotation's profile excludes the prior
    chi2_limit: float = 9.0


def hfov_to_focal(hfov_deg: float, width: float) -> float:
    return 0.5 * width / np.tan(np.radians(hfov_deg) / 2.0)


def focal_to_hfov(f: float, width: float) -> float:
    return float(np.degrees(2.0 * np.arctan(0.5 * width / f)))




def keyframe_problem(vo: KeyframeOdometry, kfs: list[int], f: float, cx: float, cy: float, max_points: int,
                     R: np.ndarray, C: np.ndarray) -> bundle.BundleProblem:
    """A bundle problem over keyframes ``kfs`` of ``vo`` (pixel tracks re-normalised at focal ``f``)."""
    ids_all = np.concatenate([vo.obs_px[k][0] for k in kfs])
    uniq, counts = np.unique(ids_all, return_counts=True)
    pts = uniq[counts >= 3]
    if len(pts) > max_points:
        pts = pts[np.linspace(0, len(pts) - 1, max_points).astype(int)]
    pid = {int(i): n for n, i in enumerate(pts)}
    anchor = np.full(len(pts), -1)
    bearing = np.zeros((len(pts), 3))
    oc, op, oxy = [], [], []
    for n, k in enumerate(kfs):
        ids, px = vo.obs_px[k]
        inside = np.isin(ids, pts)
        for i, p in zip(ids[inside], px[inside]):
            j = pid[int(i)]
            xy = ((p[0] - cx) / f, (p[1] - cy) / f)
            if anchor[j] < 0:
                anchor[j] = n
                bearing[j] = (xy[0], xy[1], 1.0)
            else:
                oc.append(n); op.append(j); oxy.append(xy)
    obs_cam, obs_pt, obs_xy = np.array(oc, int), np.array(op, int), np.array(oxy, float).reshape(-1, 2)
    # closed-form inverse depths from the current poses (the same algebra as the odometry)
    x = np.column_stack([obs_xy, np.ones(len(obs_xy))])
    Ri, Ci = R[obs_cam], C[obs_cam]
    Ra, Ca = R[anchor[obs_pt]], C[anchor[obs_pt]]
    u = np.cross(x, np.einsum("nji,njk,nk->ni", Ri, Ra, bearing[obs_pt]))
    v = np.cross(x, np.einsum("nji,nj->ni", Ri, Ca - Ci))
    num = np.bincount(obs_pt, -(u * v).sum(1), minlength=len(pts))
    den = np.bincount(obs_pt, (v * v).sum(1), minlength=len(pts))
    rho = np.maximum(num / np.maximum(den, 1e-12), 0.0)
    scale = float(np.median(rho[rho > 0])) if (rho > 0).sum() > 5 else 1.0
    rho = np.where(den > 1e-10, rho, scale)
    free = np.arange(len(kfs)) - 1  # first keyframe of the stretch holds the gauge
    return bundle.BundleProblem(R=R.copy(), C=C.copy(), free=free, anchor=anchor, bearing=bearing, rho=rho,
                                rho_free=True, rho_prior=np.full(len(pts), scale),
                                rho_prior_weight=np.full(len(pts), 1e-3 / scale**2), obs_cam=obs_cam,
                                obs_point=obs_pt, obs_xy=obs_xy, focal_px=f, loss_scale_px=1.0)


def pan_tilt_from_pairs(keyframes: list[FrameTracks], f: float, cx: float, cy: float) -> np.ndarray:
    """Cheap pan/tilt magnitude (radians) between consecutive keyframes from two-view geometry."""
    out = np.zeros(max(len(keyframes) - 1, 0))
    rot_only = np.zeros(len(out), bool)
    for n in range(len(keyframes) - 1):
        a, b = keyframes[n], keyframes[n + 1]
        _, i0, i1 = np.intersect1d(a.ids, b.ids, return_indices=True)
        rel = relative_motion(a.xy[i0], b.xy[i1], f, cx, cy)
        if rel is not None:
            out[n] = np.linalg.norm(so3_log(rel.R)[:2])
            rot_only[n] = rel.rotation_only
    return out, rot_only


def estimate_focal(keyframes: list[FrameTracks], f_prior: float, width: float, height: float, prior_label: str,
                   cfg: SfmConfig, search: FocalSearch = FocalSearch()) -> FocalEstimate:
    """``keyframes``: the segment's keyframe tracks. Returns the focal in working-resolution pixels."""
    cx, cy = width / 2.0, height / 2.0
    if len(keyframes) < 4:
        return FocalEstimate(f_prior, False, f"prior ({prior_label}): too few keyframes", [])
    stretch = _observing_stretch(keyframes, f_prior, cx, cy, search)
    if stretch is None:
        return FocalEstimate(f_prior, False, f"prior ({prior_label}): no pan/tilt to observe the focal", [])
    fits = _StretchFits.at_prior(keyframes, *stretch, f_prior, cx, cy, cfg, search.max_points)
    # coarse grid (cold starts) to land in the right basin
    lo, hi = hfov_to_focal(search.hfov_range[1], width), hfov_to_focal(search.hfov_range[0], width)
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), search.grid_points))
    coarse = [fits.solve(f, fits.R0, fits.C0, search.coarse_iterations)[0] for f in grid]
    b = int(np.argmin(coarse))
    if b in (0, len(grid) - 1):
        return _prior_or_bound(grid, f_prior, prior_label, "focal search hit the range limit",
                               fits.curve, width, fits.from_start, search)
    best_cost, prob, sides = _self_calibrate(fits, grid[b], search)
    sigma = _log_focal_sigma(best_cost, prob, sides, search)
    if sigma > search.max_sigma:
        return _prior_or_bound(grid, f_prior, prior_label,
                               f"focal not determined (sigma {100 * sigma:.1f}%)", fits.curve, width,
                               fits.from_start, search)
    # Whether the clip pins the focal is judged on a fixed-size problem (above: its sigma shrinks with
    # the number of points while a near-degenerate motion's bias does not); once it does, all points refine it.
    _, fine = fits.solve(float(prob.focal_px), prob.R, prob.C, search.calibrate_iterations, focal_free=True,
                         points=search.refine_points)
    f_best = float(fine.focal_px)
    return FocalEstimate(f_best, True, f"self-calibrating BA (sigma {100 * sigma:.2f}%)", _curve(fits.curve, width))


def _observing_stretch(keyframes: list[FrameTracks], f_prior: float, cx: float, cy: float,
                       search: FocalSearch) -> tuple[int, int, bool] | None:
    """The stretch of keyframes with the most pan/tilt, as (start, length, pure rotation), or None when even
    that one has too little pan/tilt to observe the focal."""
    pt, rot_only = pan_tilt_from_pairs(keyframes, f_prior, cx, cy)
    L = min(search.chunk, len(keyframes))
    sums = np.convolve(pt, np.ones(L - 1), mode="valid")
    all_rot = np.convolve(rot_only.astype(float), np.ones(L - 1), mode="valid") >= L - 1 - 1e-9
    enough = np.degrees(sums) >= search.min_pan_tilt_deg
    # a stretch of pure rotation pins the focal best (homography self-calibration): prefer one
    if (all_rot & enough).any():
        start = int(np.argmax(np.where(all_rot & enough, sums, -1.0)))
    else:
        # rotation with translation determines the focal more weakly: use a longer stretch
        L = min(search.general_chunk, len(keyframes))
        sums = np.convolve(pt, np.ones(L - 1), mode="valid")
        start = int(np.argmax(sums))
    if np.degrees(sums[start]) < search.min_pan_tilt_deg:
        return None
    # a stretch of pure rotation: points at infinity, centres out of the problem (a homography fit)
    return start, L, bool(rot_only[start : start + L - 1].all())


@dataclass
class _StretchFits:
    """Bundle adjustments of one stretch of keyframes at a given focal, each fit's cost recorded in ``curve``."""

    vo: KeyframeOdometry  # the stretch's odometry at the prior focal: its tracks
    kfs: list[int]  # the stretch's keyframes in ``vo``
    R0: np.ndarray  # the odometry's poses: where the cold-started fits begin
    C0: np.ndarray
    cx: float
    cy: float
    rotation_only: bool  # the stretch is a pure rotation: fit it as one (points at infinity, centres held)
    max_points: int
    curve: dict[float, float]  # focal -> cost per observation, of every fit

    @classmethod
    def at_prior(cls, keyframes: list[FrameTracks], start: int, L: int, rotation_only: bool, f_prior: float,
                 cx: float, cy: float, cfg: SfmConfig, max_points: int) -> _StretchFits:
        # odometry on that stretch alone at the prior focal gives the starting point
        vo = KeyframeOdometry(Intrinsics(f_prior, cx, cy), cfg, point_stride=2)
        for ft in keyframes[start : start + L]:
            vo.add_keyframe(ft)
        return cls(vo, list(range(L)), np.array(vo.R), np.array(vo.C), cx, cy, rotation_only, max_points, {})

    def solve(self, f: float, R: np.ndarray, C: np.ndarray, iterations: int, focal_free: bool = False,
              rotation: bool | None = None, points: int | None = None) -> tuple[float, bundle.BundleProblem]:
        """The stretch's bundle adjustment from focal ``f`` and poses ``R``, ``C``: cost per observation, problem."""
        prob = keyframe_problem(self.vo, self.kfs, f, self.cx, self.cy, self.max_points if points is None else points,
                                R, C)
        prob = replace(prob, focal_free=focal_free)
        if self.rotation_only if rotation is None else rotation:
            prob = replace(prob, rho=np.zeros_like(prob.rho), rho_free=False, C=np.zeros_like(prob.C))
        prob, res = bundle.optimise(prob, iterations)
        per_obs = res.cost / max(len(prob.obs_cam), 1)
        self.curve[prob.focal_px] = per_obs
        return per_obs, prob

    def from_start(self, f: float, iterations: int, rotation: bool = True, focal_free: bool = False):
        """A fit from the odometry's poses (as a rotation unless told otherwise): what ``_prior_or_bound`` asks."""
        return self.solve(f, self.R0, self.C0, iterations, focal_free, rotation)


def _self_calibrate(fits: _StretchFits, f_start: float, search: FocalSearch):
    """Self-calibrating bundle adjustment from ``f_start`` (log focal is one more unknown), restarted from a
    better side of its profile while there is one. Returns its cost, its problem and the profile's two fits."""
    best_cost, prob = fits.solve(f_start, fits.R0, fits.C0, search.calibrate_iterations, focal_free=True)
    for _ in range(search.max_restarts):
        f_best = float(prob.focal_px)
        # profile cost either side (other unknowns re-optimised): curvature, and a check that
        # the self-calibration reached the minimum (else restart from the better side)
        sides = [fits.solve(f_best * k, prob.R, prob.C, search.profile_iterations)
                 for k in (1 / search.profile_step, search.profile_step)]
        better = min(sides, key=lambda s: s[0])
        if better[0] >= best_cost:
            break
        best_cost, prob = fits.solve(float(better[1].focal_px), better[1].R, better[1].C, search.calibrate_iterations,
                                     focal_free=True)
    return best_cost, prob, sides


def _log_focal_sigma(best_cost: float, prob: bundle.BundleProblem, sides: list, search: FocalSearch) -> float:
    """One sigma of log focal: where the cost's parabola through the profile points rises by chi2 = 1."""
    rise = (min(s[0] for s in sides) - best_cost) / max(best_cost, COST_FLOOR)
    chi2 = 2.0 * len(prob.obs_cam) * rise
    return search.profile_offset / np.sqrt(chi2) if chi2 > 0 else np.inf


def _prior_or_bound(grid: np.ndarray, f_prior: float, prior_label: str, why: str,
                    curve: dict[float, float], width: float, fit, search: FocalSearch = FocalSearch()) -> FocalEstimate:
    """The focal is not pinned down, but a pure rotation may still exclude the prior: a telephoto pan
    fitted at a 60 deg prior leaves a perspective misfit that translation and depths then soak up.

    1. Is the stretch a pure rotation? The rotation-only model (points at infinity, centres held:
       a homography sequence) at its best grid focal against the full model at its best: the
       likelihood ratio 2 n (cost_rot - cost_full) / cost_full (noise level from the full fit)
       against BIC's penalty k ln(2n), k = the full model's extra parameters (one inverse depth per
       point, three centre coordinates per keyframe less the scale): translation has to explain
       clearly more than noise (movers and rolling shutter included). Only a rotation's profile
       is trusted: with translation in the model the narrow-field end is a degenerate direction
       (the affine limit), which would pull any truck or pedestal shot to a telephoto.
    2. Does its profile exclude the prior (chi2 > ``search.chi2_limit``, converged fits)? Then the focal
       inside the confidence region nearest the prior is used: a bound, not an estimate, reported
       as such (the widest field of view, i.e. the largest rotation, the data allow).
    """
    full_curve = _curve(curve, width)  # the search's own curve (the fits below are not added to it)
    prior_est = FocalEstimate(f_prior, False, f"prior ({prior_label}): {why}", full_curve)
    chi2_limit, iterations = search.chi2_limit, search.calibrate_iterations
    cost = np.array([fit(float(f), search.coarse_iterations)[0] for f in grid])
    b = int(np.argmin(cost))
    rot_best, rot_prob = fit(float(grid[b]), iterations, True, True)  # self-calibrating: off the grid
    rot_best = max(rot_best, COST_FLOOR)
    full_best, full_prob = min((fit(float(rot_prob.focal_px), iterations, False), fit(f_prior, iterations, False)),
                               key=lambda r: r[0])
    n_obs = len(full_prob.obs_cam)
    extra = len(full_prob.rho) + 3 * (len(full_prob.R) - 1) - 1
    lr = 2.0 * n_obs * (rot_best - full_best) / max(full_best, COST_FLOOR)
    if not np.isfinite(lr) or lr > extra * np.log(2.0 * n_obs):
        return prior_est  # translation (or movers) needed: the rotation profile says nothing
    chi2 = 2.0 * n_obs * (np.maximum(cost, rot_best) - rot_best) / rot_best
    chi2[b] = 0.0
    prior_chi2 = 2.0 * n_obs * (fit(f_prior, iterations)[0] - rot_best) / rot_best
    if prior_chi2 <= chi2_limit or not np.isfinite(prior_chi2):
        return prior_est
    logf = np.log(grid)
    inside = chi2 <= chi2_limit
    # the confidence region's edge nearest the prior, interpolated between grid points (log focal)
    k = int(np.argmin(np.where(inside, np.abs(logf - np.log(f_prior)), np.inf)))
    step = 1 if f_prior > grid[k] else -1
    f_edge = float(grid[k])
    if 0 <= k + step < len(grid) and not inside[k + step]:
        t = (chi2_limit - chi2[k]) / max(chi2[k + step] - chi2[k], 1e-12)
        f_edge = float(np.exp(logf[k] + t * (logf[k + step] - logf[k])))
    bic = extra * np.log(2.0 * n_obs)
    return FocalEstimate(f_edge, False, f"bound: {why}; pure rotation (LR {lr:.0f} <= BIC {bic:.0f}) excludes the "
                         f"prior ({prior_label}, chi2 {prior_chi2:.0f}); confidence edge nearest it, "
                         f"hfov {focal_to_hfov(f_edge, width):.1f} deg", full_curve)


def _curve(curve: dict[float, float], width: float) -> list[tuple[float, float]]:
    return [(focal_to_hfov(f, width), float(curve[f])) for f in sorted(curve)]
