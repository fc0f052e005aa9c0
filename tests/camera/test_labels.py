"""Motion labels and trajectory statistics on exact ground-truth poses (no tracking)."""

from __future__ import annotations

import numpy as np
import pytest

from services.camera.labels import motion_instructions, trajectory_stats

from .helpers import evaluate_module, gt_relative, label_frames

NON_ORBIT = ["room_plain", "room_dyn2", "street_dyn3", "room_static_dyn3", "street_dark_dyn1", "cut_room_street_dyn1"]


@pytest.mark.parametrize("case", NON_ORBIT)
def test_labels_from_exact_poses_agree_with_ground_truth(case):
    ev = evaluate_module()
    P, meta = gt_relative(case)
    shots = [(s["start"], s["end"]) for s in meta["shots"]]
    instr = motion_instructions(P, meta["fps"], segments=shots)
    n = meta["num_frames"]
    gt = meta["camera_motion_labels"]
    score = ev.label_metrics(ev.segments_to_frames(gt, n), label_frames(instr, n), gt, 3)
    assert score["exact_match"] >= 0.9, (instr, gt)


def test_instruction_keys_cover_the_clip_in_frame_indices():
    P, meta = gt_relative("room_plain")
    instr = motion_instructions(P, meta["fps"])
    spans = [tuple(map(int, k.split("->"))) for k in instr]
    assert spans[0][0] == 0 and spans[-1][1] == len(P)
    assert all(a < b for a, b in spans) and all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))


def test_trajectory_stats_follow_the_reference_definitions():
    P, meta = gt_relative("street_dyn3")  # dolly 1.25 m/s then dolly+pan: ~4.2 m, no turns
    st = trajectory_stats(P, meta["fps"])
    path = np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1).sum()
    assert st["moveDist"] == pytest.approx(path, rel=0.02)
    assert st["distLevel"] == 4
    assert st["rotAngle"] == pytest.approx(np.radians(13.2 * 40 / 24), rel=0.1)
    assert st["anomaly"] is False
    static, _ = gt_relative("room_static_dyn3")
    s0 = trajectory_stats(static, 24.0)
    assert s0["moveDist"] == 0 and s0["distLevel"] == 0 and s0["rotAngle"] == pytest.approx(0, abs=1e-9)
    # a jump in the trajectory is an anomaly
    jumpy = P.copy()
    jumpy[50:, :3, 3] += 0.5
    assert trajectory_stats(jumpy, meta["fps"])["anomaly"] is True
