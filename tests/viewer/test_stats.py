"""The report's figures from a small made-up dataset: counts land where they belong."""

from __future__ import annotations

from services.records import ClipRecord, StageState, StageStatus, VideoRecord
from services.viewer.dataset import table_row
from services.viewer.report import render_report
from services.viewer.stats import compute_figures, histogram
from services.viewer.table import column_kinds


def clip(i: int, seconds: float) -> ClipRecord:
    return ClipRecord(id=f"v_{i}", source="v.mp4", source_id="v", num_frames=30, height=10, width=10, fps=10.0,
                      timestamp_start=0, timestamp_end=3, frame_start=0, frame_end=30,
                      stages={"score": StageStatus(state=StageState.done, seconds=seconds)})


def test_figures_count_states_rules_labels_and_timings():
    rows = [table_row({"id": "v_0", "num_frames": 30, "fps": 10.0, "motion": 1.0, "distLevel": 0,
                       "filtered_by": "motion,ocr", "failed_stage": "", "error": ""}, None),
            table_row({"id": "v_1", "num_frames": 60, "fps": 10.0, "motion": 5.0, "distLevel": 3,
                       "filtered_by": "", "failed_stage": "depth", "error": "boom"}, ["Pan Left"]),
            table_row({"id": "v_2", "num_frames": 90, "fps": 10.0, "motion": 6.0, "distLevel": 3,
                       "filtered_by": "", "failed_stage": "", "error": ""}, ["Pan Left", "Dolly In"])]
    segments = {"v_1": [{"start": 0, "end": 60, "labels": ["Pan Left"]}],
                "v_2": [{"start": 0, "end": 30, "labels": ["Pan Left"]}, {"start": 30, "end": 90, "labels": ["Dolly In"]}]}
    videos = [VideoRecord(source="v.mp4", source_id="v", seconds=2.0, dropped={"shorter than 3.0 s": 2})]
    figures = compute_figures(rows, column_kinds(rows), segments, [clip(0, 1.0), clip(1, 3.0)], videos)
    assert (figures.kept, figures.filtered, figures.failed) == (1, 1, 1)
    assert figures.filter_rules == {"motion": 1, "ocr": 1} and figures.failed_stages == {"depth": 1}
    assert figures.label_clips == {"Pan Left": 2, "Dolly In": 1}
    assert figures.label_frames == {"Pan Left": 90, "Dolly In": 60}
    assert figures.dropped_shots == {"shorter than 3.0 s": 2}
    timing = {t.stage: t for t in figures.timings}
    assert timing["clip"].total_s == 2.0 and timing["score"].total_s == 4.0 and timing["score"].mean_s == 2.0
    by_name = {h.column: h for h in figures.histograms}
    assert by_name["distLevel"].labels == ["0", "3"] and by_name["distLevel"].counts == [1, 2]
    assert sum(by_name["duration"].counts) == 3 and by_name["moveDist"].counts == []  # no such column: "no values"
    html = render_report(figures, "t")
    assert 'data-plot="moveDist" data-bars="0"' in html and 'data-plot="failed stages" data-bars="1"' in html


def test_histogram_bins_continuous_values_and_counts_missing():
    h = histogram("x", [0.0, 0.5, 1.0, None, float("nan")])
    assert sum(h.counts) == 3 and h.missing == 2 and len(h.counts) >= 5
