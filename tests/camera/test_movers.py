"""Whose motion is a segment's translation: the movers' (dropped) or a static scene's parallax (kept)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from services.camera.frontend import FrameTracks
from services.camera.intrinsics import hfov_to_focal
from services.camera.movers import translation_from_movers
from services.camera.params import CameraSettings
from services.camera.sfm import Intrinsics, KeyframeOdometry, SfmConfig, run_segment

W, H = 640, 360
K = Intrinsics(hfov_to_focal(60.0, W), W / 2, H / 2)


def _project(X: np.ndarray, R: np.ndarray, C: np.ndarray, rng, f: float = K.f) -> tuple[np.ndarray, np.ndarray]:
    Xc = (X - C) @ R
    xy = f * Xc[:, :2] / Xc[:, 2:] + (K.cx, K.cy)
    xy += rng.normal(0.0, 0.3, xy.shape)
    seen = (Xc[:, 2] > 0) & (xy[:, 0] > 0) & (xy[:, 0] < W) & (xy[:, 1] > 0) & (xy[:, 1] < H)
    return seen, xy


def _keyframes(scene_depth: tuple[float, float], truck_per_frame: float, mover_speed: float, n_mover: int = 250,
               n: int = 24, seed: int = 0, hfov_deg: float = 60.0) -> list[FrameTracks]:
    """A camera panning 0.3 deg per keyframe (and trucking), a static scene at ``scene_depth`` and one rigid
    object (a board 6 units away) moving sideways at ``mover_speed`` units per keyframe. ``hfov_deg``
    narrows the lens (the scene, the board and the pan shrink with it: the same share of the view)."""
    rng = np.random.default_rng(seed)
    f, zoom = hfov_to_focal(hfov_deg, W), hfov_to_focal(hfov_deg, W) / K.f
    P = 500
    dirs = np.column_stack([rng.uniform(-0.7, 0.7, P) / zoom, rng.uniform(-0.35, 0.35, P) / zoom, np.ones(P)])
    scene = dirs * rng.uniform(*scene_depth, P)[:, None]
    board = np.column_stack([rng.uniform(-1.5, 1.5, n_mover) / zoom, rng.uniform(-0.6, 0.9, n_mover) / zoom,
                             np.full(n_mover, 6.0)])
    out = []
    for k in range(n):
        R = Rotation.from_rotvec(np.radians([0.0, 0.3 * k / zoom, 0.0])).as_matrix()  # camera-to-world, pan right
        C = np.array([truck_per_frame * k, 0.0, 0.0])
        seen_s, xy_s = _project(scene, R, C, rng, f)
        seen_b, xy_b = _project(board + (mover_speed * k / zoom - 0.5 * mover_speed * n / zoom, 0.0, 0.0), R, C, rng, f)
        ids = np.concatenate([np.flatnonzero(seen_s), P + np.flatnonzero(seen_b)])
        xy = np.concatenate([xy_s[seen_s], xy_b[seen_b]])
        out.append(FrameTracks(k, 0, ids.astype(np.int64), xy.astype(np.float32)))
    return out


def _verdict(keyframes: list[FrameTracks], cfg: SfmConfig = SfmConfig(), focal_trusted: bool = True):
    res = run_segment(keyframes, K, cfg, stride=1)
    assert not all(res.odometry.rotation_only[1:]), "the static-world model should have found a translation"
    return translation_from_movers(keyframes, K, cfg, res.odometry, focal_trusted)


def test_a_rigid_mover_in_front_of_a_panning_camera_is_not_camera_translation():
    keyframes = _keyframes(scene_depth=(60.0, 200.0), truck_per_frame=0.0, mover_speed=0.06)
    verdict = _verdict(keyframes)
    assert verdict.drop and "move rigidly" in verdict.why, verdict
    board = np.arange(500, 750)
    # the board's tracks are what the camera's rotation does not explain, and nothing much besides
    assert np.isin(verdict.mover_ids, board).mean() > 0.9, verdict
    assert np.isin(board, verdict.mover_ids).sum() > 0.8 * verdict.carriers, verdict


def test_a_telephoto_shot_tracked_at_a_wide_prior_focal_is_judged_at_a_narrower_one():
    """At a 60 deg prior a 15 deg lens's pan and the board's slide leave perspective misfits that only
    translation absorbs; the rotation hypothesis is also tried at narrower fields of view."""
    keyframes = _keyframes(scene_depth=(60.0, 200.0), truck_per_frame=0.0, mover_speed=0.2, hfov_deg=15.0)
    verdict = _verdict(keyframes, focal_trusted=False)
    assert verdict.drop and "move rigidly" in verdict.why, verdict
    # judged at the wide prior alone, the board's slide does not fit a rotation of its own: kept
    assert not _verdict(keyframes, focal_trusted=True).drop


def test_a_trucking_camera_keeps_its_translation_despite_the_same_mover():
    # parallax graded by depth over the static scene: no single rotation of their own explains the carriers
    verdict = _verdict(_keyframes(scene_depth=(4.0, 20.0), truck_per_frame=0.03, mover_speed=0.06))
    assert not verdict.drop, verdict
    assert verdict.carriers > 0.3 * verdict.judged and verdict.rigid < 0.2 * verdict.carriers, verdict


def test_a_translation_that_hardly_any_track_needs_is_dropped():
    # a distant scene shows no parallax; only a handful of tracks on the board need the translation, which the
    # odometry's two-view test would refuse: a parallax threshold of 0 makes it fit one on every pair
    keyframes = _keyframes(scene_depth=(60.0, 200.0), truck_per_frame=0.0, mover_speed=0.06, n_mover=16)
    verdict = _verdict(keyframes, SfmConfig(parallax_px=0.0))
    assert verdict.drop and verdict.why.startswith("only"), verdict


def test_track_errors_leave_the_anchor_out():
    """A track seen by two keyframes has one measured error: the anchor's own (exact) one must not halve it."""
    keyframes = _keyframes(scene_depth=(60.0, 200.0), truck_per_frame=0.0, mover_speed=0.0, n=6)
    track = int(np.intersect1d(keyframes[2].ids, keyframes[3].ids)[0])
    keyframes[3].xy[keyframes[3].ids == track] += (4.0, 3.0)  # 5 px off in its second keyframe
    vo = KeyframeOdometry(K, SfmConfig(rotation_only=True, camera=CameraSettings(refine_window=0)))
    for k, ft in enumerate(keyframes):
        keep = (ft.ids != track) | (k in (2, 3))  # the track exists only in keyframes 2 and 3
        vo.add_keyframe(FrameTracks(ft.index, 0, ft.ids[keep], ft.xy[keep]))
    ids, err = vo.track_errors()
    assert err[ids == track][0] > 4.0
    assert np.median(err) < 1.0
