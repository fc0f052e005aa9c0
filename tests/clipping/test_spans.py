"""From shots to spans: trim, keep 3..15 s, split long shots, every dropped piece with its reason."""

from __future__ import annotations

import pytest

from services.settings import ClipSettings
from services.video.spans import Span, plan_spans


def test_long_shot_is_split_into_15_s_pieces_and_a_kept_rest():
    plan = plan_spans([(0, 795)], fps=10.0)  # vtest.avi: one 79.5 s shot
    assert plan.spans == [
        Span(3, 153, 0), Span(153, 303, 0), Span(303, 453, 0), Span(453, 603, 0), Span(603, 753, 0),
        Span(753, 792, 0),
    ]
    assert plan.dropped == []


def test_rest_shorter_than_minimum_is_dropped_with_reason():
    plan = plan_spans([(0, 25 * 32)], fps=25.0)  # 32 s: trim 8 frames, 15 + 15 + 1.36 s
    assert [s.num_frames for s in plan.spans] == [375, 375]
    assert plan.dropped_reasons() == {"rest of a long shot shorter than 3.0 s": 1}


def test_short_shots_are_dropped_with_reason():
    plan = plan_spans([(0, 30), (30, 76), (76, 137)], fps=25.0)
    assert plan.spans == []
    assert plan.dropped_reasons() == {"shorter than 3.0 s": 3}


def test_trim_is_at_least_the_asked_seconds():
    # 0.3 s at 25 fps is 7.5 frames: 8 are removed at each end.
    plan = plan_spans([(100, 300)], fps=25.0)
    assert plan.spans == [Span(108, 292, 0)]


def test_exactly_max_length_is_one_clip_and_limits_hold():
    fps = 30000 / 1001
    plan = plan_spans([(0, 1000)], fps=fps, lengths=ClipSettings(trim_seconds=0.0, min_seconds=3.0, max_seconds=15.0))
    for span in plan.spans:
        assert 3.0 <= span.num_frames / fps <= 15.0 + 1e-9
    exact = plan_spans([(0, 150)], fps=10.0, lengths=ClipSettings(trim_seconds=0.0))
    assert exact.spans == [Span(0, 150, 0)]


def test_lower_minimum_keeps_short_shots():
    plan = plan_spans([(0, 30), (30, 76), (242, 250)], fps=25.0,
                      lengths=ClipSettings(trim_seconds=0.0, min_seconds=0.3))
    assert plan.spans == [Span(0, 30, 0), Span(30, 76, 1), Span(242, 250, 2)]


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError):
        plan_spans([(0, 10)], fps=0.0)
    with pytest.raises(ValueError):
        plan_spans([(0, 10)], fps=10.0, lengths=ClipSettings.model_construct(min_seconds=5, max_seconds=4))
