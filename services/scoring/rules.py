"""The filter rules: which score thresholds a clip fails (pure; no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from services.quality.columns import DEPTH_QUALITY, MASK_QUALITY, POSE_QUALITY, QC_FLAGS, parse_flags
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
    # the quality verdict's rules (services/quality), each only when set
    for column, minimum in ((POSE_QUALITY, cfg.min_pose_quality), (DEPTH_QUALITY, cfg.min_depth_quality),
                            (MASK_QUALITY, cfg.min_mask_quality)):
        if minimum is not None:
            rules[column] = (column, lambda v, m=minimum: v >= m)
    verdict = RuleVerdict()
    for rule, (column, holds) in rules.items():
        value = _value(columns, column)
        if value is None:
            verdict.skipped[rule] = f"no {column} score"
        elif not holds(value):
            verdict.failed.append(rule)
    if cfg.reject_qc_flags:
        if QC_FLAGS not in columns or columns[QC_FLAGS] is None:
            verdict.skipped[QC_FLAGS] = f"no {QC_FLAGS} (the camera and depth stages write them)"
        elif rejected_flags(parse_flags(columns[QC_FLAGS]), cfg.reject_qc_flags):
            verdict.failed.append(QC_FLAGS)
    return verdict


def rejected_flags(flags: list[str], reject: list[str]) -> list[str]:
    """The clip's flags that a reject rule names: a whole flag, or a concern given as its prefix ("depth:")."""
    return [f for f in flags if any(f == r or (r.endswith(":") and f.startswith(r)) for r in reject)]


def describe(cfg: FilterSettings) -> str:
    text = (
        f"aesthetic >= {cfg.aesthetic_min}; luminance_mean in [{cfg.luminance_min}, {cfg.luminance_max}]; "
        f"motion in [{cfg.motion_min}, {cfg.motion_max}]; ocr <= {cfg.ocr_max}"
    )
    for column, minimum in ((POSE_QUALITY, cfg.min_pose_quality), (DEPTH_QUALITY, cfg.min_depth_quality),
                            (MASK_QUALITY, cfg.min_mask_quality)):
        if minimum is not None:
            text += f"; {column} >= {minimum}"
    if cfg.reject_qc_flags:
        text += f"; no qc_flags in {', '.join(cfg.reject_qc_flags)}"
    return text
