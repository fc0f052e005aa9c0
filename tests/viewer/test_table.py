"""The table's server-side sort, filter and paging, and how a clip's state reads."""

from __future__ import annotations

import pytest

from services.viewer.dataset import table_row
from services.viewer.table import Query, QueryError, column_kinds, run_query


def rows():
    base = [{"id": f"c{i}", "num_frames": 30 + i, "fps": 10.0, "motion": float(i % 5) if i != 3 else None,
             "filtered_by": "motion" if i % 5 == 0 else "", "failed_stage": "depth" if i == 7 else "",
             "error": "out of memory" if i == 7 else ""} for i in range(12)]
    return [table_row(r, ["Pan Left"] if i % 2 else None) for i, r in enumerate(base)]


def test_states_and_reasons():
    table = {r["id"]: r for r in rows()}
    assert table["c7"]["status"] == "failed" and table["c7"]["reasons"] == "depth: out of memory"
    assert table["c5"]["status"] == "filtered" and table["c5"]["reasons"] == "motion"
    assert table["c1"]["status"] == "kept" and table["c1"]["labels"] == "Pan Left"
    assert table["c2"]["duration"] == 3.2


def test_sort_puts_missing_values_last_both_ways_and_pages():
    table = rows()
    kinds = column_kinds(table)
    up = run_query(table, kinds, Query(sort="motion", limit=100)).rows
    down = run_query(table, kinds, Query(sort="motion", descending=True, limit=100)).rows
    assert [r["motion"] for r in up] == sorted(r["motion"] for r in table if r["motion"] is not None) + [None]
    assert down[0]["motion"] == 4.0 and down[-1]["motion"] is None
    page = run_query(table, kinds, Query(sort="id", offset=10, limit=5))
    assert page.total == 12 and [r["id"] for r in page.rows] == ["c8", "c9"]


@pytest.mark.parametrize("expression, expected", [
    (">2", {"c4", "c8", "c9"}), ("1..2", {"c1", "c2", "c6", "c7", "c11"}), ("=0", {"c0", "c5", "c10"}),
])
def test_numeric_filters(expression, expected):
    table = rows()
    page = run_query(table, column_kinds(table), Query(filters={"motion": expression}, limit=100))
    assert {r["id"] for r in page.rows} == expected


def test_text_filter_and_errors():
    table = rows()
    kinds = column_kinds(table)
    assert run_query(table, kinds, Query(filters={"status": "FILT"}, limit=100)).total == 3
    assert run_query(table, kinds, Query(filters={"labels": "pan"}, limit=100)).total == 6
    with pytest.raises(QueryError):
        run_query(table, kinds, Query(filters={"motion": "lots"}))
    with pytest.raises(QueryError):
        run_query(table, kinds, Query(sort="no_such_column"))
