"""Luminance on made frames and a dark real clip; the filter rules."""

from __future__ import annotations

import numpy as np
import pytest

from services.scoring.luminance import frame_luminance
from services.scoring.rules import evaluate
from services.settings import FilterSettings

from .conftest import read_rgb_frame


def test_rec709_weights_on_pure_colours():
    frames = np.zeros((3, 4, 4, 3), np.uint8)
    frames[0, ..., 0] = 255
    frames[1, ..., 1] = 255
    frames[2] = 100
    np.testing.assert_allclose(frame_luminance(frames), [0.2126 * 255, 0.7152 * 255, 100.0], rtol=1e-6)


def test_dark_clip_fails_luminance(clips):
    frames = np.stack([read_rgb_frame(clips["dark"], i) for i in (9, 48, 86)])
    mean = float(frame_luminance(frames).mean())
    assert mean < 20
    verdict = evaluate({"luminance_mean": mean, "motion": 5.0, "ocr": 0.0, "aesthetic": 5.0}, FilterSettings())
    assert verdict.failed == ["luminance"]


def test_every_failed_rule_is_listed():
    columns = {"aesthetic": 3.0, "luminance_mean": 200.0, "motion": 20.0, "ocr": 0.5}
    assert evaluate(columns, FilterSettings()).failed == ["aesthetic", "luminance", "motion", "ocr"]
    kept = {"aesthetic": 4.0, "luminance_mean": 20.0, "motion": 14.0, "ocr": 0.3}  # bounds are inclusive
    assert evaluate(kept, FilterSettings()).failed == []


def test_missing_aesthetic_skips_its_rule_and_says_so():
    verdict = evaluate({"aesthetic": None, "luminance_mean": 80.0, "motion": 1.0, "ocr": 0.0}, FilterSettings())
    assert verdict.failed == ["motion"]
    assert "aesthetic" in verdict.skipped and "no aesthetic score" in verdict.skipped["aesthetic"]


def test_thresholds_are_configurable():
    columns = {"aesthetic": 4.5, "luminance_mean": 80.0, "motion": 1.0, "ocr": 0.0}
    assert evaluate(columns, FilterSettings(motion_min=0.5, aesthetic_min=5.0)).failed == ["aesthetic"]
