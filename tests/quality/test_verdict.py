"""The verdict on synthetic evidence: each check flags what it is for, and quality < 0.5 comes with a flag."""

from __future__ import annotations

import numpy as np

from services.quality.evidence import TrackEvidence, ViewEvidence
from services.quality.verdict import GEOMETRY, clip_verdict, worse_above, worse_below
from services.settings import QualitySettings

CFG = QualitySettings()


def good_track(**kw) -> TrackEvidence:
    return TrackEvidence(**dict(dict(success=True, focal_from_prior=False, camera_moves=True,
                                     inlier_tracks_p10=400.0, segments=[(0, 48)]), **kw))


def good_views(**kw) -> ViewEvidence:
    n = 10
    base = dict(pairs=n, pose_residual_px=[0.3] * n, depth_transfer_px=[0.3] * n, depth_photometric_excess=[0.0] * n,
                flow_noise_px=[0.25] * n, contrast=[45.0] * n, shots_with_depth=1, mask_instability=0.12,
                mask_share=0.05)
    return ViewEvidence(**dict(base, **kw))


def test_good_evidence_gives_no_flag_and_high_quality():
    v = clip_verdict(good_track(), good_views(), CFG)
    assert v.flags == []
    assert min(v.pose_quality, v.depth_quality, v.mask_quality) > 0.8
    assert v.columns()["qc_flags"] == ""


def test_each_check_flags_its_own_concern():
    cases = {
        "pose:tracking-failed": (good_track(success=False), good_views()),
        "pose:focal-unconstrained": (good_track(focal_from_prior=True), good_views()),
        "pose:few-inliers": (good_track(inlier_tracks_p10=12.0), good_views()),
        "pose:high-reprojection-error": (good_track(), good_views(pose_residual_px=[0.3] * 5 + [3.0] * 5)),
        "depth:high-transfer-error": (good_track(), good_views(depth_transfer_px=[2.5] * 10)),
        "depth:photometric-error": (good_track(), good_views(depth_photometric_excess=[9.0] * 10)),
        "depth:scale-drift": (good_track(), good_views(shots_with_depth=2)),
        "pose:heading-uncertain": (good_track(heading_disagreement_deg=9.0), good_views()),
        "depth:inconsistent": (good_track(), good_views(depth_consistency=[0.25] * 10)),
        "masks:noisy-flow": (good_track(), good_views(flow_noise_px=[1.6] * 10)),
        "masks:low-contrast": (good_track(), good_views(contrast=[8.0] * 10)),
        "masks:unstable": (good_track(), good_views(mask_instability=0.8)),
    }
    for flag, (track, views) in cases.items():
        v = clip_verdict(track, views, CFG)
        # depth and masks are built on the poses' geometry: a geometric pose flag reaches them too
        inherited = ["depth:pose-unreliable", "masks:pose-unreliable"] if flag.split(":")[1] in GEOMETRY else []
        assert v.flags == [flag, *inherited], (flag, v.flags)
        concern = {"pose": v.pose_quality, "depth": v.depth_quality, "masks": v.mask_quality}[flag.split(":")[0]]
        assert concern <= 0.5, flag


def test_still_camera_needs_no_focal_and_tiny_masks_are_not_judged_for_flicker():
    v = clip_verdict(good_track(focal_from_prior=True, camera_moves=False),
                     good_views(mask_instability=0.9, mask_share=0.0005, depth_transfer_px=[], shots_with_depth=0,
                                depth_photometric_excess=[]), CFG)
    assert v.flags == []
    assert v.depth_quality is None  # no depth to judge (a tripod shot publishes none)


def test_camera_stage_verdict_uses_the_tracker_alone():
    # (the camera stage has no depth or masks yet: only the pose concern is judged)
    v = clip_verdict(good_track(focal_from_prior=True), None, CFG)
    assert v.flags == ["pose:focal-unconstrained"]
    assert v.pose_quality == CFG.unconstrained_focal_quality and v.depth_quality is None
    assert set(v.columns()) == {"qc_flags", "pose_quality"}


def test_quality_below_half_always_comes_with_a_flag():
    rng = np.random.default_rng(3)
    for _ in range(300):
        track = good_track(success=bool(rng.random() > 0.1), focal_from_prior=bool(rng.random() > 0.7),
                           inlier_tracks_p10=float(rng.uniform(5, 300)))
        views = good_views(pose_residual_px=list(rng.uniform(0, 4, 6)), depth_transfer_px=list(rng.uniform(0, 3, 6)),
                           depth_photometric_excess=list(rng.uniform(-2, 10, 6)),
                           flow_noise_px=list(rng.uniform(0, 2, 6)), contrast=list(rng.uniform(3, 60, 6)),
                           mask_instability=float(rng.uniform(0, 1)), shots_with_depth=int(rng.integers(0, 3)))
        v = clip_verdict(track, views, CFG)
        for prefix, q in (("pose", v.pose_quality), ("depth", v.depth_quality), ("masks", v.mask_quality)):
            if q is None:
                continue
            assert 0.0 <= q <= 1.0
            assert (q <= 0.5) == any(f.startswith(prefix + ":") for f in v.flags), (prefix, q, v.flags)


def test_scores_are_half_at_the_threshold_and_monotone():
    assert worse_above(2.0, 2.0) == 0.5 and worse_below(2.0, 2.0) == 0.5
    assert worse_above(1.0, 2.0) > 0.8 > 0.1 > worse_above(4.0, 2.0)
    assert worse_below(4.0, 2.0) > 0.8 > 0.1 > worse_below(1.0, 2.0)
    assert worse_below(0.0, 2.0) == 0.0


def test_labels_resting_on_a_threshold_are_flagged():
    from services.quality.evidence import label_sensitivity

    n, fps = 120, 24.0
    steady = np.tile(np.eye(4), (n, 1, 1))
    steady[:, 2, 3] = np.linspace(0, 2, n)  # a clear dolly in
    assert label_sensitivity(steady, fps, np.arange(n), [(0, n)]) < CFG.label_sensitivity
    # a slow pan where the labeller's vote turns from "Stay" to "Pan": its labels flip with the thresholds
    from scipy.spatial.transform import Rotation

    slow = np.tile(np.eye(4), (n, 1, 1))
    step = 0.5 / int(0.2 * fps)  # 0.5 deg per reference sample step
    slow[:, :3, :3] = Rotation.from_euler("y", (np.arange(n) * step)[:, None], degrees=True).as_matrix()
    assert label_sensitivity(slow, fps, np.arange(n), [(0, n)]) > CFG.label_sensitivity
    v = clip_verdict(good_track(label_sensitivity=0.3), good_views(), CFG)
    assert v.flags == ["pose:labels-ambiguous"]


def _tracks_of_a_truck(heading_error_deg: float):
    """Front-end tracks of a camera trucking right past random points 4-12 units away, and poses whose direction
    of travel is turned by ``heading_error_deg`` about the vertical axis."""
    from scipy.spatial.transform import Rotation

    from services.camera.frontend import FrameTracks

    rng = np.random.default_rng(3)
    points = np.column_stack([rng.uniform(-6, 6, 400), rng.uniform(-3, 3, 400), rng.uniform(4, 12, 400)])
    f, w, h, n = 500.0, 640, 360, 30
    turn = Rotation.from_euler("y", heading_error_deg, degrees=True).as_matrix()
    frames, c2w = [], np.tile(np.eye(4), (n, 1, 1))
    for k in range(n):
        centre = np.array([0.05 * k, 0.0, 0.0])
        cam = points - centre
        xy = np.column_stack([f * cam[:, 0] / cam[:, 2] + w / 2, f * cam[:, 1] / cam[:, 2] + h / 2])
        xy += rng.normal(0, 0.3, xy.shape)  # tracking noise
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        frames.append(FrameTracks(k, 0, np.flatnonzero(inside).astype(np.int64), xy[inside].astype(np.float32)))
        c2w[k, :3, 3] = turn @ centre
    return frames, c2w, np.full(n, f), (w, h)


def test_heading_disagreement_measures_a_turned_direction_of_travel():
    from services.quality.evidence import heading_disagreement

    right = heading_disagreement(*_tracks_of_a_truck(0.0), span=12)
    turned = heading_disagreement(*_tracks_of_a_truck(10.0), span=12)
    assert right < 0.5 * CFG.heading_disagreement_deg
    assert abs(turned - 10.0) < 2.0
    assert clip_verdict(good_track(heading_disagreement_deg=turned), good_views(), CFG).flags[0] == \
        "pose:heading-uncertain"
