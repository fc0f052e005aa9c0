"""From shots to clip spans: the reference's trimming, length limits and splitting.

Every shot loses ``trim_seconds`` at both ends (a cut's neighbourhood often
holds a blend or a flash). What is left becomes one clip when it lasts between
``min_seconds`` and ``max_seconds``; a longer shot is cut into pieces of
exactly ``max_seconds`` and its remainder is kept when it reaches
``min_seconds``. Everything that becomes no clip is reported with its reason.

All arithmetic is in whole frames, so a span is exactly what the cutter cuts:
the trim is rounded up (at least ``trim_seconds`` is removed), the minimum is
rounded up and the maximum rounded down (a clip never breaks a limit).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.settings import ClipSettings

# Seconds -> frames tolerance, so that 0.3 s x 10 fps is 3 frames, not 4.
_EPS = 1e-6


@dataclass(frozen=True)
class Span:
    start: int  # first frame, inclusive
    end: int  # exclusive
    shot_index: int

    @property
    def num_frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Dropped:
    start: int
    end: int
    shot_index: int
    reason: str


@dataclass
class SpanPlan:
    spans: list[Span] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)

    def dropped_reasons(self) -> dict[str, int]:
        return dict(Counter(d.reason for d in self.dropped))


def seconds_text(seconds: float) -> str:
    """3 -> "3.0", 0.25 -> "0.25": short, and never rounds a limit away."""
    return f"{seconds:.1f}" if abs(seconds * 10 - round(seconds * 10)) < _EPS else f"{seconds:g}"


def plan_spans(
    shots: Sequence[tuple[int, int]],
    fps: float,
    lengths: ClipSettings = ClipSettings(),
) -> SpanPlan:
    """Clip spans (source frames, end exclusive) for shots given as ``(start, end)`` frames; ``lengths`` is the
    clip section (its ``trim_seconds``, ``min_seconds`` and ``max_seconds``)."""
    trim_seconds, min_seconds, max_seconds = lengths.trim_seconds, lengths.min_seconds, lengths.max_seconds
    if fps <= 0:
        raise ValueError("fps must be positive")
    if not 0 < min_seconds <= max_seconds:
        raise ValueError("need 0 < min_seconds <= max_seconds")
    trim = max(0, math.ceil(trim_seconds * fps - _EPS))
    min_frames = max(1, math.ceil(min_seconds * fps - _EPS))
    max_frames = max(min_frames, math.floor(max_seconds * fps + _EPS))
    too_short = f"shorter than {seconds_text(min_seconds)} s"
    remainder_short = f"rest of a long shot shorter than {seconds_text(min_seconds)} s"

    plan = SpanPlan()
    for index, (shot_start, shot_end) in enumerate(shots):
        start, end = shot_start + trim, shot_end - trim
        length = end - start
        if length < min_frames:
            plan.dropped.append(Dropped(shot_start, shot_end, index, too_short))
            continue
        while end - start > max_frames:
            plan.spans.append(Span(start, start + max_frames, index))
            start += max_frames
        if end - start >= min_frames:
            plan.spans.append(Span(start, end, index))
        elif end > start:
            plan.dropped.append(Dropped(start, end, index, remainder_short))
    return plan
