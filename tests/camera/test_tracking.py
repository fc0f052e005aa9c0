"""Tracking on the shared ground-truth cases against the issue's targets (a few cases;
bench/tracking.py runs all of them)."""

from __future__ import annotations

import numpy as np
import pytest

from services.camera.labels import motion_instructions, trajectory_stats

from .helpers import evaluate_module, label_frames, need_cases, tracked


def _scores(case: str):
    ev = evaluate_module()
    track, meta = tracked(case)
    gt = np.load(need_cases() / case / "gt_poses.npy")
    shots = [(s["start"], s["end"]) for s in meta["shots"]]
    pose, aligned = ev.pose_metrics(gt, track.c2w, np.arange(len(track.c2w)), shots)
    n = meta["num_frames"]
    instr = motion_instructions(track.c2w, meta["fps"], track.frame_indices, track.segments)
    labels = ev.label_metrics(ev.segments_to_frames(meta["camera_motion_labels"], n), label_frames(instr, n),
                              meta["camera_motion_labels"], 3)
    K = np.load(need_cases() / case / "gt_intrinsics.npy")
    focal_err = np.abs(track.intrinsics[:, 0] * meta["width"] / K[0, 0] - 1)
    return track, meta, pose, aligned, labels, focal_err, gt


def test_output_layout_and_conventions():
    track, meta = tracked("room_plain")
    n = meta["num_frames"]
    assert track.c2w.shape == (n, 4, 4) and track.intrinsics.shape == (n, 4)
    assert np.array_equal(track.frame_indices, np.arange(n))
    assert np.allclose(track.c2w[0], np.eye(4))
    R = track.c2w[:, :3, :3]
    assert np.allclose(np.einsum("nji,njk->nik", R, R), np.eye(3), atol=1e-9)
    assert np.allclose(track.intrinsics[:, 2:], 0.5)
    assert track.backend.startswith("geometric-")


def test_dolly_pan_tilt_meets_targets():
    track, meta, pose, aligned, labels, focal_err, gt = _scores("room_plain")
    assert track.success, track.reason
    assert pose["rot_err_after_alignment_deg"]["mean"] < 0.5
    assert pose["ate"]["rmse_over_path_length"] < 0.01
    assert all(track.focal_estimated) and focal_err.max() < 0.03
    assert labels["exact_match"] >= 0.9
    # no translation invented while the camera only pans and tilts (frames 36..95)
    still = aligned[37:, :3, 3]
    invented = np.linalg.norm(np.diff(still, axis=0), axis=1).sum()
    path = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum()
    assert invented < 0.05 * path


def test_static_tripod_with_moving_objects_stays():
    track, meta, pose, aligned, labels, focal_err, gt = _scores("room_static_dyn3")
    assert track.success
    assert pose["rot_err_after_alignment_deg"]["mean"] < 0.5
    st = trajectory_stats(track.c2w, meta["fps"])
    # units: near scene depth; a drone-dragged pose would wander by a sizeable fraction of it
    assert st["moveDist"] < 0.05 and st["distLevel"] == 0
    assert labels["exact_match"] >= 0.9


def test_hard_cut_is_tracked_as_two_segments():
    track, meta, pose, aligned, labels, focal_err, gt = _scores("cut_room_street_dyn1")
    cut = meta["scene_cuts"][0] if meta["scene_cuts"] else 52
    cut = cut if isinstance(cut, int) else cut.get("frame", 52)
    assert len(track.segments) == 2 and abs(track.segments[1][0] - cut) <= 1
    assert track.notes and "hard cut" in track.notes[0]
    assert pose["rot_err_after_alignment_deg"]["mean"] < 0.5
    assert pose["ate"]["rmse_over_path_length"] < 0.01
    assert labels["exact_match"] >= 0.9


def _relative_errors(c2w: np.ndarray, gt: np.ndarray, shots, gap: int = 8) -> tuple[float, float]:
    """Mean rotation error (deg) and heading error (deg, translating pairs) of the motion between frames i
    and i+gap: what the depth stage triangulates against."""
    rot, heading = [], []
    for a, b in shots:
        for i in range(a, b - gap):
            j = i + gap
            rel_gt, rel = gt[i, :3, :3].T @ gt[j, :3, :3], c2w[i, :3, :3].T @ c2w[j, :3, :3]
            rot.append(np.degrees(np.arccos(np.clip((np.trace(rel_gt.T @ rel) - 1) / 2, -1, 1))))
            t_gt = gt[i, :3, :3].T @ (gt[j, :3, 3] - gt[i, :3, 3])
            t = c2w[i, :3, :3].T @ (c2w[j, :3, 3] - c2w[i, :3, 3])
            if np.linalg.norm(t_gt) > 1e-2 and np.linalg.norm(t) > 0:
                cos = t_gt @ t / np.linalg.norm(t_gt) / np.linalg.norm(t)
                heading.append(np.degrees(np.arccos(min(1.0, cos))))
    return float(np.mean(rot)), float(np.mean(heading))


def test_windowed_refinement_sharpens_the_relative_poses():
    """The second bundle-adjustment pass (16-keyframe windows, every shared point) against the odometry alone,
    on street_dyn3: the 8-frame relative rotations come out markedly closer to the truth (0.020 -> 0.014 deg
    when measured) and the heading no worse."""
    from services.camera.track import track_camera
    from services.settings import CameraSettings
    from services.video.decode import read_frames

    case = "street_dyn3"
    refined, meta = tracked(case)
    d = need_cases() / case
    odometry = track_camera(read_frames(d / "video.mp4"), meta["fps"], CameraSettings(refine_window=0))
    gt = np.load(d / "gt_poses.npy")
    shots = [(s["start"], s["end"]) for s in meta["shots"]]
    rot_on, heading_on = _relative_errors(refined.c2w, gt, shots)
    rot_off, heading_off = _relative_errors(odometry.c2w, gt, shots)
    assert rot_on < 0.85 * rot_off, (rot_on, rot_off)
    assert heading_on < 1.05 * heading_off, (heading_on, heading_off)


def test_clip_long_refinement_keeps_the_direction_of_travel():
    """A dolly, a truck, then a roll (d00_room, copied from the devset): refined in 16-keyframe windows, each
    window settles the rotation/translation trade-off its own way and the path comes out bent against the
    orientations (1.26 deg after the path alignment when measured); one window over the clip
    (``camera.refine_window: 128``) holds every heading to the same points (0.19 deg)."""
    import json

    from services.camera.track import track_camera
    from services.settings import CameraSettings
    from services.video.decode import read_frames
    from tests.data import devset_case_dir

    d = devset_case_dir("d00_room")
    meta = json.loads((d / "meta.json").read_text())
    gt = np.load(d / "gt_poses.npy")
    shots = [(s["start"], s["end"]) for s in meta["shots"]]
    ev = evaluate_module()

    def rotation_error(settings: CameraSettings) -> float:
        track = track_camera(read_frames(d / "video.mp4"), meta["fps"], settings)
        pose, _ = ev.pose_metrics(gt, track.c2w, np.arange(len(track.c2w)), shots)
        return pose["rot_err_after_alignment_deg"]["mean"]

    clip_long, short = rotation_error(CameraSettings(refine_window=128)), rotation_error(CameraSettings())
    assert clip_long < 0.5, clip_long
    assert clip_long < 0.5 * short, (clip_long, short)
