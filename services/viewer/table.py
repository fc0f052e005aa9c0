"""The dataset table as the viewer serves it: one flat row per clip, sorted, filtered and paged on the server.

A 10,000-clip dataset is sorted and filtered here, in a few milliseconds, so the browser only ever holds one page.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# A clip's state in the table (the distributed mode's clip states reduce to these too).
KEPT, FILTERED, FAILED = "kept", "filtered", "failed"

# Columns the dataset page shows first, in this order, when the dataset has them; every other column of the table
# can still be sorted and filtered through the API.
SHOWN_COLUMNS = (
    "id", "status", "reasons", "duration", "aesthetic", "quality_brisque", "luminance_mean", "motion",
    "flow_magnitude", "ocr", "labels", "moveDist", "distLevel", "rotAngle", "dynamicRatio", "qc_flags",
)

# "> 3", "<=0.5", "= 2", "1..5" on numeric columns; anything else is a case-insensitive substring.
_COMPARISON = re.compile(r"^\s*(<=|>=|<|>|=|==|!=)\s*(-?[\d.eE+-]+)\s*$")
_RANGE = re.compile(r"^\s*(-?[\d.eE+-]+)\s*\.\.\s*(-?[\d.eE+-]+)\s*$")


class QueryError(ValueError):
    """A sort or filter the table cannot apply (unknown column, unreadable expression)."""


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int  # rows matching the filters
    offset: int
    limit: int


@dataclass
class Query:
    sort: str | None = None
    descending: bool = False
    filters: dict[str, str] = field(default_factory=dict)
    offset: int = 0
    limit: int = 50


def frame_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Each column's kind: ``number``, ``bool`` or ``text``, from its dtype or, for mixed columns, its values."""
    kinds: dict[str, str] = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            kinds[name] = "bool"
        elif pd.api.types.is_numeric_dtype(column):
            kinds[name] = "number"
        else:
            types = {type(v) for v in column if not _missing(v)}
            if types and all(issubclass(t, (bool, np.bool_)) for t in types):
                kinds[name] = "bool"
            elif types and all(issubclass(t, (int, float, np.number)) and not issubclass(t, (bool, np.bool_))
                               for t in types):
                kinds[name] = "number"
            else:  # text, or no value at all (a score whose model was missing)
                kinds[name] = "text"
    return kinds


def column_kinds(rows: list[dict[str, Any]]) -> dict[str, str]:
    return frame_kinds(pd.DataFrame(rows))


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _number_test(expression: str):
    match = _COMPARISON.match(expression)
    if match:
        op, bound = match.group(1), float(match.group(2))
        return {
            "<": lambda v: v < bound, "<=": lambda v: v <= bound, ">": lambda v: v > bound,
            ">=": lambda v: v >= bound, "=": lambda v: v == bound, "==": lambda v: v == bound,
            "!=": lambda v: v != bound,
        }[op]
    match = _RANGE.match(expression)
    if match:
        low, high = float(match.group(1)), float(match.group(2))
        return lambda v: low <= v <= high
    try:
        exact = float(expression)
    except ValueError:
        raise QueryError(f"cannot read {expression!r} as a number filter (use e.g. '>3', '<=0.5', '1..5')") from None
    return lambda v: v == exact


def _row_test(column: str, kind: str, expression: str):
    text = expression.strip()
    if kind == "number":
        test = _number_test(text)
        return lambda row: not _missing(row.get(column)) and test(float(row[column]))
    if kind == "bool":
        wanted = text.lower() in ("1", "true", "yes", "y", "t")
        return lambda row: not _missing(row.get(column)) and bool(row[column]) is wanted
    needle = text.lower()
    return lambda row: needle in _text(row.get(column)).lower()


def _text(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def run_query(rows: list[dict[str, Any]], kinds: dict[str, str], query: Query) -> Page:
    """Filter every column named in ``query.filters``, sort by ``query.sort`` (missing values last), then page."""
    for column in [*query.filters, *([query.sort] if query.sort else [])]:
        if column not in kinds and column != "id":
            raise QueryError(f"unknown column {column!r}")
    tests = [_row_test(c, kinds.get(c, "text"), e) for c, e in query.filters.items() if e.strip()]
    matching = [row for row in rows if all(test(row) for test in tests)] if tests else list(rows)
    if query.sort:
        column, kind = query.sort, kinds.get(query.sort, "text")
        present = [r for r in matching if not _missing(r.get(column))]
        absent = [r for r in matching if _missing(r.get(column))]
        key = (lambda r: float(r[column])) if kind in ("number", "bool") else (lambda r: _text(r[column]).lower())
        present.sort(key=key, reverse=query.descending)
        matching = present + absent
    start = max(query.offset, 0)
    return Page(rows=matching[start:start + query.limit], total=len(matching), offset=start, limit=query.limit)
