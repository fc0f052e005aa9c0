"""Camera motion in words: labels, summaries, pose-derived trends."""

from __future__ import annotations

import numpy as np
import pytest

from services.caption.context import MotionSegment, parse_instructions
from services.caption.motion import (
    describe_segments,
    distance_sentence,
    net_rotation_degrees,
    quantised_translations,
    summarise_segments,
    trends_from_poses,
    trends_from_segments,
)
from tests import data


def test_parse_instructions_sorts_and_validates():
    segments = parse_instructions({"40->96": ["Pan Left"], "0->40": ["Dolly In", "Pan Right"]})
    assert segments == [MotionSegment(0, 40, ("Dolly In", "Pan Right")), MotionSegment(40, 96, ("Pan Left",))]
    with pytest.raises(ValueError, match="unknown label"):
        parse_instructions({"0->10": ["Zoom In"]})
    with pytest.raises(ValueError, match="bad segment key"):
        parse_instructions({"0-10": ["Stay"]})


def test_sentence_walks_through_the_segments():
    segments = [MotionSegment(0, 36, ("Dolly In",)), MotionSegment(36, 66, ("Pan Left",)),
                MotionSegment(66, 96, ("Tilt Up",))]
    assert describe_segments(segments) == (
        "The camera first moves forward, then pans left, and finally tilts up.")
    assert describe_segments(segments, fps=24).startswith("The camera first moves forward (0.0-1.5 s)")
    combined = [MotionSegment(0, 50, ("Pan Right", "Dolly In", "Tilt Down"))]
    assert describe_segments(combined) == (
        "Throughout the shot, the camera moves forward while panning right and tilting down.")


def test_flickers_are_dropped_and_runs_merged():
    segments = [MotionSegment(0, 40, ("Pan Left",)), MotionSegment(40, 42, ("Stay",)),
                MotionSegment(42, 80, ("Pan Left",)), MotionSegment(80, 100, ("Stay",))]
    assert summarise_segments(segments) == [MotionSegment(0, 80, ("Pan Left",)), MotionSegment(80, 100, ("Stay",))]
    assert trends_from_segments(segments) == ["left pan", "static hold"]
    assert trends_from_segments([MotionSegment(0, 9, ("Dolly In",))], slight=True) == ["slight forward translate"]


def _gt_c2w(case: str) -> np.ndarray:
    return np.load(data.CASES / case / "gt_poses.npy")


def test_rotation_signs_on_ground_truth_poses():
    cut = _gt_c2w("cut_room_street_dyn1")  # roll_cw 0-26, pan_right 26-52
    assert net_rotation_degrees(cut[:26])[2] > 10
    assert net_rotation_degrees(cut[26:52])[0] > 20
    yaw, pitch, _ = net_rotation_degrees(_gt_c2w("room_plain"))  # pan_left then tilt_up
    assert yaw < -20 and pitch > 3
    assert net_rotation_degrees(_gt_c2w("street_dark_dyn1"))[1] < -5  # tilt_down


@pytest.mark.parametrize("case, expected", [
    ("room_plain", {"forward translate", "left pan", "upward tilt"}),
    ("street_dyn3", {"forward translate", "right pan"}),
    ("street_dark_dyn1", {"left translate", "downward tilt"}),
    ("room_static_dyn3", {"static hold"}),
])
def test_trends_from_ground_truth_poses(case, expected):
    assert set(trends_from_poses(_gt_c2w(case))) == expected


def test_quantised_translations():
    q = quantised_translations(_gt_c2w("room_plain"), max_points=16)
    assert q.shape == (3, 16) and q.dtype.kind == "i"
    assert np.abs(q).max() == 100 and (q[:, 0] == 0).all()
    assert q[2, -1] == 100  # the dolly goes forward (+z) and z is the largest coordinate
    still = quantised_translations(np.tile(np.eye(4), (5, 1, 1)))
    assert (still == 0).all()


def test_distance_sentence():
    text = distance_sentence(1, 0.12, 4.0, 0)
    assert text == ("Overall, it moves only slightly (a path of 0.12 scene units, distance level 1 of 4), "
                    "it turns through about 4 degrees in all and its heading never changes sharply.")
    assert distance_sentence(None, None, None, None) == ""
