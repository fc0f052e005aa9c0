"""The embedded run's progress: one bar per stage with the item in flight beside it, and the stage's
time and item count into the run's summary."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from services.orchestration.accounting import RunSummary


def progress_items(console: Console, label: str, items: list, name_of: Callable[[object], str]) -> Iterator:
    """The items, one by one, under a progress bar labelled ``label``."""
    with Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[item]}", style="dim"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(label, total=len(items), item="")
        for item in items:
            progress.update(task, item=name_of(item))
            yield item
            progress.advance(task)


def timed_items(console: Console, summary: RunSummary, label: str, stage: str, items: list,
                name_of: Callable[[object], str], start: Callable[[], None] | None = None) -> Iterator:
    """The items, one by one, under a progress bar labelled ``label``; the stage's time (``start()``
    included: a stage's setup) and count into the summary."""
    started = time.perf_counter()
    if start is not None:
        start()
    yield from progress_items(console, label, items, name_of)
    summary.stage_seconds[stage] = time.perf_counter() - started
    summary.stage_items[stage] = len(items)
