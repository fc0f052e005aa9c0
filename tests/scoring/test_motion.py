"""VMAF motion: exact agreement with libvmaf, and what still vs moving footage scores."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from services.scoring.frames import decode_for_scoring
from services.scoring.vmaf_motion import MotionAccumulator, motion2_scores, motion_sad_score
from services.scoring.flow import FlowScorer
from services.settings import ScoreSettings
from services.scoring.vmaf_motion import VmafMotionScorer
from services.video.probe import probe

from .conftest import FFMPEG, has_libvmaf


def run_motion(path):
    info = probe(path)
    frames = decode_for_scoring(path, (info.width, info.height), info.num_frames, (640, 360), [0.1, 0.5, 0.9], 4,
                                {"motion": MotionAccumulator()}, ffmpeg=FFMPEG)
    flow = FlowScorer(ScoreSettings().flow_preset)
    return VmafMotionScorer().score(frames)["motion"], flow.score(frames)["flow_magnitude"], frames


def test_identical_frames_score_zero_and_a_shift_scores_more():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (36, 64), dtype=np.uint8)
    assert motion_sad_score(frame, frame) == 0.0
    assert motion_sad_score(frame, np.roll(frame, 3, axis=1)) > 10


def test_motion2_is_min_of_neighbours_with_zero_first_and_last_kept():
    assert motion2_scores(np.array([0.0, 4.0, 2.0, 6.0])).tolist() == [0.0, 2.0, 2.0, 6.0]


@pytest.mark.skipif(not has_libvmaf(FFMPEG), reason="no ffmpeg with libvmaf (imageio-ffmpeg's static build has it)")
def test_matches_libvmaf_integer_motion2_frame_by_frame(clips, tmp_path):
    log = tmp_path / "vmaf.json"
    subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(clips["pan"]), "-i", str(clips["pan"]), "-lavfi",
         f"[0:v][1:v]libvmaf=feature=name=motion:log_fmt=json:log_path={log}", "-f", "null", "-"],
        check=True,
    )
    report = json.loads(log.read_text())
    expected = np.array([f["metrics"]["integer_motion2"] for f in report["frames"]])
    acc = MotionAccumulator()
    info = probe(clips["pan"])
    decode_for_scoring(clips["pan"], (info.width, info.height), info.num_frames, (640, 360), [0.5], 0,
                       {"motion": acc}, ffmpeg=FFMPEG)
    ours = motion2_scores(np.array(acc._scores))
    assert len(ours) == len(expected)
    # libvmaf's JSON prints 6 decimals: agreement to that precision on every frame.
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)
    assert acc.finish()["motion"] == pytest.approx(report["pooled_metrics"]["integer_motion2"]["mean"], abs=1e-6)
    assert expected.mean() > 1  # the clip really moves: the comparison is not 0 == 0


def test_still_clip_near_zero_and_pan_clearly_above(clips):
    still_motion, still_flow, _ = run_motion(clips["still"])
    pan_motion, pan_flow, _ = run_motion(clips["pan"])
    assert still_motion < 0.2
    assert still_flow < 0.1
    assert pan_motion > 2.0  # inside the reference's kept range [2, 14]
    assert pan_motion > 20 * max(still_motion, 0.01)
    assert pan_flow > 1.0


def test_vtest_fixed_camera_low_motion_but_nonzero_flow(clips):
    motion, flow, frames = run_motion(clips["vtest"])
    assert frames.source_size == (768, 576)  # motion is measured at native resolution
    assert motion < 2.0  # below the reference's motion_min: a tripod shot
    assert 0.02 < flow < 1.0  # people walk: the flow is not zero, yet far below a pan's
