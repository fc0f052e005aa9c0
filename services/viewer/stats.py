"""The figures of a dataset's statistics report, computed from its table and records (no drawing here)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from services.metadata import STATE_COLUMNS
from services.records import BASE_COLUMNS, ClipRecord, VideoRecord

# Histograms the report always has, even when a stage did not run (the figure then says "no values").
REQUIRED_HISTOGRAMS = ("moveDist", "distLevel", "rotAngle", "dynamicRatio", "duration")
# Numeric columns that are bookkeeping, not measures of the clip.
NOT_MEASURES = {*BASE_COLUMNS, "shot_index"}
# Bins of a continuous histogram: at most enough to show a shape at a few hundred clips and few enough to read;
# a small dataset gets two per cube root of its size (Rice's rule) so that its bars are not mostly empty.
HISTOGRAM_BINS = 20
MIN_BINS = 5
# A column with at most this many distinct integer values (distLevel 0-4, trajTurns) gets one bar per value.
DISCRETE_VALUES = 12


@dataclass
class Histogram:
    column: str
    labels: list[str]  # one per bar: a bin range or a discrete value
    counts: list[int]
    missing: int  # clips without a value


@dataclass
class StageTiming:
    stage: str
    items: int
    total_s: float
    mean_s: float
    p95_s: float


@dataclass
class Figures:
    clips: int
    kept: int
    filtered: int
    failed: int
    videos: int
    histograms: list[Histogram]
    # Camera-motion labels: clips showing each label, and the share of annotated frames it covers.
    label_clips: dict[str, int]
    label_frames: dict[str, int]
    filter_rules: dict[str, int]  # clips failing each rule (a clip may fail several)
    failed_stages: dict[str, int]
    dropped_shots: dict[str, int]  # shots that became no clip, by reason
    timings: list[StageTiming] = field(default_factory=list)


def _label(value: float) -> str:
    return f"{value:.3g}"


def histogram(column: str, values: list) -> Histogram:
    present = np.array([float(v) for v in values if v is not None and not isinstance(v, str)
                        and np.isfinite(float(v))], np.float64)
    missing = len(values) - len(present)
    if present.size == 0:
        return Histogram(column, [], [], missing)
    distinct = np.unique(present)
    if distinct.size <= DISCRETE_VALUES and np.all(distinct == np.round(distinct)):
        counts = Counter(present.tolist())
        return Histogram(column, [_label(v) for v in distinct], [counts[v] for v in distinct.tolist()], missing)
    low, high = float(present.min()), float(present.max())
    if high == low:
        return Histogram(column, [_label(low)], [int(present.size)], missing)
    bins = int(min(HISTOGRAM_BINS, max(MIN_BINS, np.ceil(2 * np.cbrt(present.size)))))
    counts, edges = np.histogram(present, bins=bins, range=(low, high))
    labels = [f"{_label(a)}-{_label(b)}" for a, b in zip(edges[:-1], edges[1:])]
    return Histogram(column, labels, counts.astype(int).tolist(), missing)


def measure_columns(rows: list[dict], kinds: dict[str, str]) -> list[str]:
    """Every numeric measure of a clip (scores, trajectory statistics, ratios), then the required ones missing."""
    def empty(name: str) -> bool:  # a score whose model was missing, say: its figure says so
        return all(r.get(name) is None for r in rows) and name not in STATE_COLUMNS

    found = [name for name, kind in kinds.items()
             if (kind == "number" or empty(name)) and name not in NOT_MEASURES]
    return found + [name for name in REQUIRED_HISTOGRAMS if name not in found]


def stage_timings(clips: list[ClipRecord], videos: list[VideoRecord]) -> list[StageTiming]:
    seconds: dict[str, list[float]] = {}
    if videos:
        seconds["clip"] = [v.seconds for v in videos]
    for clip in clips:
        for stage, status in clip.stages.items():
            if stage != "clip":  # the clip stage is timed per video
                seconds.setdefault(stage, []).append(status.seconds)
    return [StageTiming(stage, len(v), float(np.sum(v)), float(np.mean(v)), float(np.percentile(v, 95)))
            for stage, v in seconds.items() if v]


def compute_figures(rows: list[dict], kinds: dict[str, str], segments: dict[str, list[dict]],
                    clips: list[ClipRecord], videos: list[VideoRecord]) -> Figures:
    """``rows``: the viewer's table rows; ``segments``: each clip's camera-motion segments (instructions.json)."""
    status = Counter(r["status"] for r in rows)
    label_clips: Counter[str] = Counter()
    label_frames: Counter[str] = Counter()
    for clip_segments in segments.values():
        label_clips.update({label for s in clip_segments for label in s["labels"]})
        for s in clip_segments:
            for label in s["labels"]:
                label_frames[label] += s["end"] - s["start"]
    rules = Counter(rule for r in rows for rule in (r.get("filtered_by") or "").split(",") if rule)
    dropped: Counter[str] = Counter()
    for video in videos:
        dropped.update(video.dropped)
        if video.error:
            dropped[f"video failed: {video.error.split(':')[0]}"] += 1
    return Figures(
        clips=len(rows), kept=status.get("kept", 0), filtered=status.get("filtered", 0),
        failed=status.get("failed", 0), videos=len(videos),
        histograms=[histogram(c, [r.get(c) for r in rows]) for c in measure_columns(rows, kinds)],
        label_clips=dict(label_clips.most_common()), label_frames=dict(label_frames.most_common()),
        filter_rules=dict(rules.most_common()),
        failed_stages=dict(Counter(r["failed_stage"] for r in rows if r.get("failed_stage")).most_common()),
        dropped_shots=dict(dropped.most_common()),
        timings=stage_timings(clips, videos),
    )
