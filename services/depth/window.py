"""A bounded look-behind / look-ahead buffer over a frame stream, so memory stays flat with clip length."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameWindow(Generic[T]):
    """Holds prepared frames i - radius .. i + radius while the caller walks i = 0, 1, 2, ..."""

    def __init__(self, frames: Iterable, radius: int, prepare: Callable[[object], T]) -> None:
        self._source: Iterator = iter(frames)
        self._radius = radius
        self._prepare = prepare
        self._items: dict[int, T] = {}
        self._next = 0
        self._exhausted = False

    def advance_to(self, index: int) -> bool:
        """Load up to ``index + radius`` and drop what is older than ``index - radius``. False once ``index`` is past the end."""
        while not self._exhausted and self._next <= index + self._radius:
            try:
                frame = next(self._source)
            except StopIteration:
                self._exhausted = True
                break
            self._items[self._next] = self._prepare(frame)
            self._next += 1
        for old in [k for k in self._items if k < index - self._radius]:
            del self._items[old]
        return index in self._items

    def get(self, index: int) -> T | None:
        return self._items.get(index)

    @property
    def loaded(self) -> int:
        """How many frames have been read from the stream so far."""
        return self._next
