"""The filter rules: which score thresholds a clip fails (pure; no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from services.scoring.base import Scalar
from services.settings import FilterSettings


@dataclass
class RuleVerdict:
    failed: list[str] = field(default_factory=list)
    # Rules that could not be applied, with why (e.g. the score was not computed).
    skipped: dict[str, str] = field(default_factory=dict)


def _value(columns: dict[str, Scalar], name: str) -> float | None:
    value = columns.get(name)
    if value is None or isinstance(value, (str, bool)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def evaluate(columns: dict[str, Scalar], cfg: FilterSettings) -> RuleVerdict:
    """Every rule the clip fails, in a fixed order: aesthetic, luminance, motion, ocr."""
    rules = {
        "aesthetic": ("aesthetic", lambda v: v >= cfg.aesthetic_min),
        "luminance": ("luminance_mean", lambda v: cfg.luminance_min <= v <= cfg.luminance_max),
        "motion": ("motion", lambda v: cfg.motion_min <= v <= cfg.motion_max),
        "ocr": ("ocr", lambda v: v <= cfg.ocr_max),
    }
    verdict = RuleVerdict()
    for rule, (column, holds) in rules.items():
        value = _value(columns, column)
        if value is None:
            verdict.skipped[rule] = f"no {column} score"
        elif not holds(value):
            verdict.failed.append(rule)
    return verdict


def describe(cfg: FilterSettings) -> str:
    return (
        f"aesthetic >= {cfg.aesthetic_min}; luminance_mean in [{cfg.luminance_min}, {cfg.luminance_max}]; "
        f"motion in [{cfg.motion_min}, {cfg.motion_max}]; ocr <= {cfg.ocr_max}"
    )
