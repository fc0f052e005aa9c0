"""What a captioner knows about a clip, gathered from the other stages' outputs.

Every part is optional: a stage that did not run leaves its part empty and the
captioners say less instead of failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.camera.vocabulary import MotionLabel


@dataclass(frozen=True)
class MotionSegment:
    """Frames [start, end) of the clip and the motion labels that hold there."""

    start: int
    end: int
    labels: tuple[str, ...]

    @property
    def length(self) -> int:
        return max(0, self.end - self.start)


@dataclass
class ClipContext:
    clip_id: str
    fps: float
    num_frames: int
    width: int
    height: int
    segments: list[MotionSegment] | None = None  # from instructions.json
    c2w: np.ndarray | None = None  # (N, 4, 4) camera-to-world, OpenCV axes
    columns: dict[str, Any] = field(default_factory=dict)
    # Which inputs were found (instructions.json, c2w.npy, column names), for provenance.
    sources: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    def number(self, name: str) -> float | None:
        """A numeric column, or None when missing, not a number, or NaN."""
        value = self.columns.get(name)
        if isinstance(value, bool) or value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(number) else number

    def text(self, name: str) -> str:
        value = self.columns.get(name)
        return value.strip() if isinstance(value, str) else ""


def parse_instructions(data: dict[str, Any]) -> list[MotionSegment]:
    """``{"start->end": [labels]}`` -> segments sorted by start (unknown labels rejected)."""
    segments = []
    for key, labels in data.items():
        try:
            start_text, end_text = key.split("->")
            start, end = int(start_text), int(end_text)
        except ValueError:
            raise ValueError(f"instructions.json: bad segment key {key!r} (want 'start->end')") from None
        if not isinstance(labels, list):
            raise ValueError(f"instructions.json: segment {key} is not a list of labels")
        unknown = [label for label in labels if label not in MotionLabel.texts()]
        if unknown:
            raise ValueError(f"instructions.json: unknown label(s) {unknown} in segment {key}")
        if end > start:
            segments.append(MotionSegment(start, end, tuple(labels) or (MotionLabel.STAY.value,)))
    return sorted(segments, key=lambda s: s.start)
