"""Keyframe visual odometry: incremental poses with sliding-window bundle adjustment,
then every other frame posed against the finished map (a real pose estimate).

Points are track ids from the front end, parameterised by inverse depth in the
first keyframe that saw them (see ``bundle``). The gauge: the first keyframe is the
identity; scale is held by the two oldest keyframes of a full window and by a weak
prior on each point's inverse depth (initially 1, i.e. scene depth ~ 1 unit), which
also keeps translation at zero when nothing shows parallax (pure rotation, tripod).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from services.camera import bundle
from services.camera.frontend import FrameTracks
from services.camera.geometry import slerp_pose
from services.camera.params import CameraSettings
from services.camera.twoview import relative_motion

INITIAL_POINT_CAPACITY = 4096  # track ids the point map holds before it grows (a few seconds of tracking)
MIN_SCALE_RHO = 1e-6  # inverse-depth scale floor: a map of points at infinity still gives finite prior weights
MIN_POSE_OBSERVATIONS = 6  # a pose has six unknowns: fewer observations leave it undetermined
# A keyframe's pose is refined against the map from this many triangulated tracks on (fewer: the two-view guess
# stands); the same count of triangulated points sets the clip's unit of length.
MIN_POSE_POINTS = 30
RETRIANGULATE_GAIN = 1.5  # a point is triangulated again when a new view gives it this much more parallax
BASELINE_FLOOR = 1e-18  # a zero baseline (squared, normalised units) leaves the point's inverse depth at zero
MIN_SCALE_POINTS = 10  # points whose median sets the inverse-depth scale (fewer: the last scale stands)
# The unit of length is the near scene depth: the 90th percentile of inverse depth is the 10th of depth.
NEAR_INVERSE_DEPTH_PERCENTILE = 90


@dataclass
class SfmConfig:
    """The solver's fixed tuning; the tunable windows are the camera section's (``camera.window``,
    ``camera.refine_window``), passed down as is."""

    camera: CameraSettings = field(default_factory=CameraSettings)
    ba_iterations: int = 6
    pose_iterations: int = 6
    loss_scale_px: float = 1.0
    inlier_px: float = 2.0
    min_inliers: int = 20
    init_gap: int = 2  # keyframes back for the two-view initialisation
    parallax_px: float = 0.6  # below this translational parallax a pair is rotation-only
    min_tri_parallax_px: float = 2.0
    min_triangulated_fraction: float = 0.5
    lock_rotation_only: bool = True  # hold the centre of keyframes the two-view test finds rotation-only
    rotation_only: bool = False  # hold every centre: the segment is a pure rotation (see services/camera/movers.py)
    max_ba_points: int = 300  # points per window BA (evenly sampled track ids)
    prior_new: float = 0.02  # rho prior weight (px^2 per 100% change) for a fresh point
    prior_per_old_obs: float = 0.5  # extra weight per keyframe observation that left the window
    # After odometry, bundle-adjust longer overlapping windows of ``camera.refine_window`` keyframes with every
    # point they share. Memory and time stay linear in clip length, unlike one global adjustment.
    refine_overlap: int = 8
    # points of a refinement window (evenly sampled track ids): at least refine_points, and refine_points_per_keyframe
    # in a longer window, which samples as densely as a short one (the relative poses depth triangulates against
    # need it)
    refine_points: int = 1200
    refine_points_per_keyframe: int = 75
    refine_iterations: int = 8


@dataclass
class Intrinsics:
    f: float  # pixels at the working resolution
    cx: float
    cy: float


@dataclass
class SfmResult:
    R: np.ndarray  # (N,3,3) camera-to-world of every frame of the segment
    C: np.ndarray  # (N,3)
    keyframes: np.ndarray  # positions (into the segment) of keyframes
    inliers: np.ndarray  # (N,) inlier observations per frame
    rms_px: np.ndarray  # (N,) robust RMS reprojection error of inliers per frame
    failure: str | None = None
    odometry: "KeyframeOdometry | None" = None


class _PointMap:
    """Dense arrays indexed by track id (ids are small consecutive integers)."""

    def __init__(self) -> None:
        self.size = 0
        self._alloc(INITIAL_POINT_CAPACITY)

    def _alloc(self, n: int) -> None:
        old = self.size
        def grow(a, fill, shape=()):
            b = np.full((n,) + shape, fill, dtype=a.dtype if a is not None else float)
            if a is not None:
                b[:old] = a[:old]
            return b
        self.anchor = grow(getattr(self, "anchor", None), -1, ()).astype(np.int64)
        self.bearing = grow(getattr(self, "bearing", None), 0.0, (3,))
        self.rho = grow(getattr(self, "rho", None), 0.0)
        self.prior = grow(getattr(self, "prior", None), 0.0)
        self.old_obs = grow(getattr(self, "old_obs", None), 0.0)
        self.tri_parallax = grow(getattr(self, "tri_parallax", None), 0.0)
        self.last_kf = grow(getattr(self, "last_kf", None), -1, ()).astype(np.int64)
        self.size = n

    def ensure(self, max_id: int) -> None:
        if max_id >= self.size:
            self._alloc(max(max_id + 1, 2 * self.size))


def _normalise(xy: np.ndarray, K: Intrinsics) -> np.ndarray:
    return np.stack([(xy[:, 0] - K.cx) / K.f, (xy[:, 1] - K.cy) / K.f], axis=1)


def _sampled(ids: np.ndarray, keep_every: int) -> np.ndarray:
    return ids % keep_every == 0 if keep_every > 1 else np.ones(len(ids), bool)


class KeyframeOdometry:
    def __init__(self, K: Intrinsics, cfg: SfmConfig, point_stride: int = 1):
        self.K, self.cfg, self.stride = K, cfg, point_stride
        self.map = _PointMap()
        self.R: list[np.ndarray] = []
        self.C: list[np.ndarray] = []
        self.obs: list[tuple[np.ndarray, np.ndarray]] = []  # per keyframe: (ids, normalised xy)
        self.obs_px: list[tuple[np.ndarray, np.ndarray]] = []  # per keyframe: (ids, pixel xy) for the focal search
        self.scale_rho = 1.0
        self.rotation_only: list[bool] = []

    # -- problem assembly -------------------------------------------------------------------
    def _build(self, kf_free: list[int], kf_fixed: list[int], obs: list[tuple[int, np.ndarray, np.ndarray]],
               rho_free: bool, point_ids: np.ndarray | None, extra_cams: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
               old_obs_prior: bool = True):
        """obs: (camera key, ids, xy). Camera keys are keyframe numbers, or negative keys in extra_cams."""
        m = self.map
        cams = list(kf_free) + [k for k in kf_fixed if k not in kf_free]
        all_ids = np.concatenate([o[1] for o in obs]) if obs else np.zeros(0, np.int64)
        cand = np.unique(all_ids) if point_ids is None else point_ids
        cand = cand[(cand < m.size)]
        cand = cand[m.anchor[cand] >= 0]
        anchors = np.unique(m.anchor[cand])
        for a in anchors:
            if a not in cams:
                cams.append(int(a))
        cam_index = {k: n for n, k in enumerate(cams)}
        Rs, Cs = [], []
        for k in cams:
            if extra_cams and k in extra_cams:
                Rs.append(extra_cams[k][0]); Cs.append(extra_cams[k][1])
            else:
                Rs.append(self.R[k]); Cs.append(self.C[k])
        free = np.full(len(cams), -1)
        free[: len(kf_free)] = np.arange(len(kf_free))
        pt_of_id = {}
        pid = np.full(int(cand.max()) + 1 if len(cand) else 1, -1)
        pid[cand] = np.arange(len(cand))
        oc, op, oxy = [], [], []
        for key, ids, xy in obs:
            sel = ids < len(pid)
            ids_s, xy_s = ids[sel], xy[sel]
            p = pid[ids_s]
            ok = p >= 0
            ok &= m.anchor[ids_s] != key  # the anchor observation defines the bearing
            oc.append(np.full(ok.sum(), cam_index[key]))
            op.append(p[ok])
            oxy.append(xy_s[ok])
        obs_cam = np.concatenate(oc) if oc else np.zeros(0, int)
        obs_pt = np.concatenate(op) if op else np.zeros(0, int)
        obs_xy = np.concatenate(oxy) if oxy else np.zeros((0, 2))
        del pt_of_id
        old = m.old_obs[cand] if old_obs_prior else np.zeros(len(cand))
        prior_w = (self.cfg.prior_new + self.cfg.prior_per_old_obs * old) / max(self.scale_rho, MIN_SCALE_RHO) ** 2
        prob = bundle.BundleProblem(
            R=np.array(Rs), C=np.array(Cs), free=free, anchor=np.array([cam_index[a] for a in m.anchor[cand]], int),
            bearing=m.bearing[cand], rho=m.rho[cand].copy(), rho_free=rho_free, rho_prior=m.prior[cand],
            rho_prior_weight=prior_w, obs_cam=obs_cam, obs_point=obs_pt, obs_xy=obs_xy,
            focal_px=self.K.f, loss_scale_px=self.cfg.loss_scale_px)
        return prob, cams, cand

    # -- steps ------------------------------------------------------------------------------
    def _pose_only(self, R0, C0, ids, xy, lock_centre: bool = False):
        prob, cams, _ = self._build([-1], [], [(-1, ids, xy)], False, None, extra_cams={-1: (R0, C0)})
        if len(prob.obs_cam) < MIN_POSE_OBSERVATIONS:
            return R0, C0, 0, np.inf
        if lock_centre:
            prob.centre_locked = np.array([c == -1 for c in cams])
        prob, _ = bundle.optimise(prob, self.cfg.pose_iterations)
        r, valid = bundle.residuals(prob)
        e = np.linalg.norm(r, axis=1)
        inl = valid & (e < self.cfg.inlier_px)
        rms = float(np.sqrt(np.mean(e[inl] ** 2))) if inl.any() else np.inf
        return prob.R[0], prob.C[0], int(inl.sum()), rms

    def _initial_pose(self, k: int, ids: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two-view estimate against an earlier keyframe (model selection E vs rotation)."""
        ref = max(0, k - self.cfg.init_gap)
        ref_ids, ref_xy = self.obs[ref]
        common, i0, i1 = np.intersect1d(ref_ids, ids, return_indices=True)
        K = self.K
        px0 = ref_xy[i0] * K.f + (K.cx, K.cy)
        px1 = xy[i1] * K.f + (K.cx, K.cy)
        # a pure-rotation segment takes every pair's rotation-only model (an infinite parallax threshold)
        threshold = np.inf if self.cfg.rotation_only else self.cfg.parallax_px
        rel = relative_motion(px0, px1, K.f, K.cx, K.cy, threshold)
        if rel is None:
            self._last_rotation_only = self.cfg.rotation_only
            return self.R[-1].copy(), self.C[-1].copy()
        R = self.R[ref] @ rel.R.T
        self._last_rotation_only = rel.rotation_only
        if rel.rotation_only:
            return R, self.C[-1].copy()
        step = np.linalg.norm(self.C[-1] - self.C[-2]) * (k - ref) if k >= 2 else 0.0
        if step <= 0:
            step = rel.parallax_px / (K.f * max(self.scale_rho, MIN_SCALE_RHO))
        centre_in_ref = -rel.R.T @ rel.t
        return R, self.C[ref] + self.R[ref] @ centre_in_ref * step

    def _triangulate(self, R: np.ndarray, C: np.ndarray, ids: np.ndarray, xy: np.ndarray) -> None:
        """Closed-form inverse depth of points whose parallax towards this camera beats the one they had."""
        m = self.map
        ok = ids < m.size
        ids, xy = ids[ok], xy[ok]
        a = m.anchor[ids]
        ok = a >= 0
        ids, xy, a = ids[ok], xy[ok], a[ok]
        if not len(ids):
            return
        Ra = np.array(self.R)[a]
        Ca = np.array(self.C)[a]
        x = np.column_stack([xy, np.ones(len(xy))])
        u = np.cross(x, np.einsum("ji,njk,nk->ni", R, Ra, m.bearing[ids]))
        v = np.cross(x, (Ca - C) @ R)
        vv = (v * v).sum(1)
        par = self.K.f * np.sqrt(vv) * np.maximum(m.rho[ids], self.scale_rho)  # pixels of parallax at current depth
        better = (par > self.cfg.min_tri_parallax_px) & (par > RETRIANGULATE_GAIN * m.tri_parallax[ids])
        rho = -(u * v).sum(1) / np.maximum(vv, BASELINE_FLOOR)
        better &= rho >= 0
        sel = ids[better]
        m.rho[sel] = rho[better]
        m.prior[sel] = rho[better]
        m.tri_parallax[sel] = par[better]

    def _add_points(self, k: int, ids: np.ndarray, xy: np.ndarray) -> None:
        m = self.map
        if len(ids) == 0:
            return
        m.ensure(int(ids.max()))
        new = m.anchor[ids] < 0
        known = ids[~new]
        rho0 = float(np.median(m.rho[known])) if len(known) >= MIN_SCALE_POINTS else self.scale_rho
        n = ids[new]
        m.anchor[n] = k
        m.bearing[n] = np.concatenate([xy[new], np.ones((new.sum(), 1))], axis=1)
        m.rho[n] = rho0
        m.prior[n] = rho0

    def add_keyframe(self, ft: FrameTracks) -> tuple[int, float]:
        sel = _sampled(ft.ids, self.stride)
        ids, xy = ft.ids[sel], _normalise(ft.xy[sel].astype(float), self.K)
        k = len(self.R)
        self._last_rotation_only = False
        if k == 0:
            R, C = np.eye(3), np.zeros(3)
            inl, rms = len(ids), 0.0
        else:
            R, C = self._initial_pose(k, ids, xy)
            m = self.map
            good = (ids < m.size)
            good[good] &= m.tri_parallax[ids[good]] >= self.cfg.min_tri_parallax_px
            if good.sum() >= MIN_POSE_POINTS:
                R, C, inl, rms = self._pose_only(R, C, ids[good], xy[good])
            self._triangulate(R, C, ids, xy)
        self.R.append(R)
        self.C.append(C)
        self.rotation_only.append(bool(self._last_rotation_only) and self.cfg.lock_rotation_only)
        self.obs.append((ids, xy))
        self.obs_px.append((ids, ft.xy[sel].astype(float)))
        self._add_points(k, ids, xy)
        if k > 0:
            self._window_ba(k)
            inl, rms = self.frame_fit(self.R[k], self.C[k], ids, xy)
        return inl, rms

    def _errors(self, R: np.ndarray, C: np.ndarray, ids: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Track ids seen by one camera and their reprojection errors (pixels; inf behind the camera)."""
        ok = ids < self.map.size
        prob, _, cand = self._build([-1], [], [(-1, ids[ok], xy[ok])], False, None, extra_cams={-1: (R, C)})
        if len(prob.obs_cam) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        r, valid = bundle.residuals(prob)
        return cand[prob.obs_point], np.where(valid, np.linalg.norm(r, axis=1), np.inf)

    def frame_fit(self, R: np.ndarray, C: np.ndarray, ids: np.ndarray, xy: np.ndarray) -> tuple[int, float]:
        """Inlier count and inlier RMS (pixels) of one camera against the map, without optimising."""
        _, e = self._errors(R, C, ids, xy)
        if len(e) == 0:
            return 0, np.inf
        inl = e < self.cfg.inlier_px
        return int(inl.sum()), (float(np.sqrt(np.mean(e[inl] ** 2))) if inl.any() else np.inf)

    def track_errors(self) -> tuple[np.ndarray, np.ndarray]:
        """Each track's median reprojection error (pixels) over the keyframes that saw it, its anchor
        excepted: how well this motion model explains the track as a static scene point. Tracks seen by
        their anchor alone have no error and are left out."""
        per_kf = []
        for k in range(1, len(self.R)):
            ids, xy = self.obs[k]
            ids, xy = ids[ids < self.map.size], xy[ids < self.map.size]
            seen_before = self.map.anchor[ids] != k  # (the anchor observation is exact by construction)
            per_kf.append(self._errors(self.R[k], self.C[k], ids[seen_before], xy[seen_before]))
        if not per_kf:
            return np.zeros(0, np.int64), np.zeros(0)
        ids = np.concatenate([p[0] for p in per_kf])
        err = np.concatenate([p[1] for p in per_kf])
        order = np.lexsort((err, ids))
        ids, err = ids[order], err[order]
        uniq, start, count = np.unique(ids, return_index=True, return_counts=True)
        lo, hi = start + (count - 1) // 2, start + count // 2  # the two middle values of each sorted run
        return uniq, 0.5 * (err[lo] + err[hi])

    def _adjust(self, win: list[int], fixed: int, max_points: int, iterations: int, min_observations: int = 1,
                old_obs_prior: bool = True) -> np.ndarray | None:
        """Bundle adjustment of keyframes ``win`` (the first ``fixed`` held) with the points they observe
        (at least ``min_observations`` times, anchor included; at most ``max_points``, evenly sampled by id).
        Returns the ids of the points adjusted, or None when no keyframe is free."""
        m = self.map
        fixed_kf, free = win[:fixed], win[fixed:]
        if not free:
            return None
        obs = [(w, *self.obs[w]) for w in win]
        ids, counts = np.unique(np.concatenate([o[1] for o in obs]), return_counts=True)
        ids = ids[(counts >= min_observations) & (ids < m.size)]
        ids = ids[m.anchor[ids] >= 0]
        if len(ids) > max_points:
            ids = ids[np.linspace(0, len(ids) - 1, max_points).astype(int)]
        # with every centre held, depths move no residual: leave them out of the problem
        rho_free = not self.cfg.rotation_only
        prob, cams, cand = self._build(free, fixed_kf, obs, rho_free, ids, old_obs_prior=old_obs_prior)
        prob.centre_locked = np.array([self.rotation_only[c] for c in cams])
        prob, _ = bundle.optimise(prob, iterations)
        for n, kk in enumerate(cams):
            if prob.free[n] >= 0:
                self.R[kk], self.C[kk] = prob.R[n], prob.C[n]
        if rho_free:
            m.rho[cand] = prob.rho
        return ids

    def _window_ba(self, k: int) -> None:
        cfg, m = self.cfg, self.map
        first = max(0, k - cfg.camera.window + 1)
        ids_win = self._adjust(list(range(first, k + 1)), 1 if first == 0 else 2, cfg.max_ba_points, cfg.ba_iterations)
        if ids_win is None:
            return
        # keyframes about to leave the window hand their observations to the points' priors
        leaving = k - cfg.camera.window + 1
        if leaving >= 0:
            lids = self.obs[leaving][0]
            m.old_obs[lids] += 1
            m.prior[lids] = m.rho[lids]
        seen = m.rho[ids_win]
        if len(seen) > MIN_SCALE_POINTS:
            self.scale_rho = float(np.median(seen[seen > 0])) if (seen > 0).sum() > MIN_SCALE_POINTS else self.scale_rho

    def refine(self, first: int, last: int, fixed: int) -> None:
        """Bundle adjustment of keyframes [first, last] with every point seen twice among them (a longer window
        than the odometry's: points seen over many keyframes tie the poses together). Every observation of the
        window is in the problem: the priors that stand in for observations which left the odometry's window
        would count them twice."""
        keyframes = last - first + 1
        self._adjust(list(range(first, last + 1)), fixed, max(self.cfg.refine_points, self.cfg.refine_points_per_keyframe * keyframes),
                     self.cfg.refine_iterations,
                     min_observations=2, old_obs_prior=False)

    def pose_frame(self, ft: FrameTracks, R0: np.ndarray, C0: np.ndarray, lock_centre: bool = False):
        sel = _sampled(ft.ids, self.stride)
        ids, xy = ft.ids[sel], _normalise(ft.xy[sel].astype(float), self.K)
        ok = ids < self.map.size
        return self._pose_only(R0, C0, ids[ok], xy[ok], lock_centre)


def keyframe_positions(n: int, stride: int) -> np.ndarray:
    kf = list(range(0, n, stride))
    if kf[-1] != n - 1:
        kf.append(n - 1)
    return np.array(kf)


def refine_keyframes(vo: KeyframeOdometry, cfg: SfmConfig) -> None:
    """Second pass over the finished odometry in windows of ``cfg.camera.refine_window`` keyframes.

    The odometry's 8-keyframe window with 300 points leaves relative poses that disagree a little with
    points tracked for longer; the depth stage triangulates against exactly these relative poses, where
    0.03 deg of rotation or 0.3 deg of heading near the focus of expansion is a visible depth error.
    A window that holds the whole clip also keeps the direction of travel consistent along it: the headings
    of separate short windows can each settle a little differently in the rotation/translation trade-off,
    which bends the path against the orientations. Each window holds its first two keyframes (already refined by
    the previous window; the first window only keyframe 0) so gauge and scale carry over from window to window.
    """
    size = cfg.camera.refine_window
    count = len(vo.R)
    if size < 2 or count < 2:
        return
    step = max(1, size - cfg.refine_overlap)
    first = 0
    while True:
        last = min(count - 1, first + size - 1)
        vo.refine(first, last, 1 if first == 0 else 2)
        if last == count - 1:
            break
        first += step


def run_segment(frames: list[FrameTracks], K: Intrinsics, cfg: SfmConfig, stride: int,
                point_stride: int = 1, fill: bool = True) -> SfmResult:
    n = len(frames)
    kfs = keyframe_positions(n, stride)
    vo = KeyframeOdometry(K, cfg, point_stride)
    inliers = np.zeros(n, int)
    rms = np.full(n, np.nan)
    failure = None
    for pos in kfs:
        inl, e = vo.add_keyframe(frames[pos])
        inliers[pos], rms[pos] = inl, e
        if failure is None and len(vo.R) > 1 and inl < cfg.min_inliers:
            failure = f"tracking lost at frame {frames[pos].index}: {inl} inlier points"
    refine_keyframes(vo, cfg)
    Rk, Ck = np.array(vo.R), np.array(vo.C)
    # Unit of length: the near scene depth (10th percentile of triangulated points), so that
    # thresholds in the reference's units (label floor, anomaly) mean "relative to what is seen".
    m = vo.map
    tri = (m.anchor[: m.size] >= 0) & (m.tri_parallax[: m.size] >= cfg.min_tri_parallax_px) & (m.rho[: m.size] > 0)
    # Only when most of the map that could show parallax does: a tripod shot's few "triangulated" points are
    # movers. Points first seen from a keyframe the next one did not move away from (a pan before a dolly) are
    # not counted: they had no baseline to show parallax on.
    held = np.array(vo.rotation_only[1:] + vo.rotation_only[-1:], bool)  # keyframe k -> k+1 is a pure rotation
    moving = ~held
    anchored = m.anchor[: m.size]
    could = (anchored >= 0) & moving[np.maximum(anchored, 0)]
    enough = (tri & could).sum() >= max(MIN_POSE_POINTS, cfg.min_triangulated_fraction * could.sum())
    unit = float(np.percentile(m.rho[: m.size][tri], NEAR_INVERSE_DEPTH_PERCENTILE)) if enough else 1.0
    if unit > 0 and np.isfinite(unit):
        Ck = Ck * unit
        m.rho[: m.size] = m.rho[: m.size] / unit
        vo.C = list(Ck)
    R = np.zeros((n, 3, 3)); C = np.zeros((n, 3))
    R[kfs], C[kfs] = Rk, Ck
    for a, b, ka in zip(kfs[:-1], kfs[1:], range(len(kfs) - 1)):
        for t in range(a + 1, b):
            R0, C0 = slerp_pose(Rk[ka], Ck[ka], Rk[ka + 1], Ck[ka + 1], (t - a) / (b - a))
            if fill:
                # between keyframes of a rotation-only stretch the centre stays where they are
                R0, C0, inl, e = vo.pose_frame(frames[t], R0, C0, lock_centre=vo.rotation_only[ka + 1])
                inliers[t], rms[t] = inl, e
            R[t], C[t] = R0, C0
    return SfmResult(R, C, kfs, inliers, rms, failure, vo)
