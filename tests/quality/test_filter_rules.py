"""The filter's optional rules on the quality verdict (off by default)."""

from __future__ import annotations

from services.scoring.rules import describe, evaluate
from services.settings import FilterSettings

KEPT = {"aesthetic": 5.0, "luminance_mean": 80.0, "motion": 5.0, "ocr": 0.0}
FLAGGED = dict(KEPT, pose_quality=0.4, depth_quality=0.9, mask_quality=0.3,
               qc_flags="pose:focal-unconstrained,masks:low-contrast")


def test_verdict_rules_are_off_by_default():
    verdict = evaluate(FLAGGED, FilterSettings())
    assert verdict.failed == [] and verdict.skipped == {}
    assert "quality" not in describe(FilterSettings())


def test_minimum_qualities_name_the_failed_rule():
    cfg = FilterSettings(min_pose_quality=0.5, min_depth_quality=0.5, min_mask_quality=0.5)
    assert evaluate(FLAGGED, cfg).failed == ["pose_quality", "mask_quality"]
    assert evaluate(dict(FLAGGED, pose_quality=0.5, mask_quality=0.9), cfg).failed == []
    assert "pose_quality >= 0.5" in describe(cfg)


def test_reject_flags_by_whole_flag_or_by_concern():
    assert evaluate(FLAGGED, FilterSettings(reject_qc_flags=["pose:focal-unconstrained"])).failed == ["qc_flags"]
    assert evaluate(FLAGGED, FilterSettings(reject_qc_flags=["masks:"])).failed == ["qc_flags"]
    assert evaluate(FLAGGED, FilterSettings(reject_qc_flags=["depth:", "pose:few-inliers"])).failed == []
    # "pose" without the colon names no flag: a concern is given with its colon
    assert evaluate(FLAGGED, FilterSettings(reject_qc_flags=["pose"])).failed == []
    assert evaluate(dict(KEPT, qc_flags=""), FilterSettings(reject_qc_flags=["pose:"])).failed == []


def test_rules_on_a_verdict_not_yet_computed_are_skipped_with_the_reason():
    verdict = evaluate(KEPT, FilterSettings(min_pose_quality=0.5, reject_qc_flags=["depth:"]))
    assert verdict.failed == []
    assert set(verdict.skipped) == {"pose_quality", "qc_flags"}
    assert "camera and depth stages" in verdict.skipped["qc_flags"]
