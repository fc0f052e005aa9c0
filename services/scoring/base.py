"""The one small interface every scorer implements, and the frames it is given.

A clip is decoded once (see ``frames.py``). Scorers that look at a few frames
get them in ``SampledFrames``; a scorer that must see every frame (VMAF motion)
hands the decoder a ``FrameSink`` that is fed each full-resolution luma plane
as it streams by. Model calls stay behind small client classes inside the
scorers, so a Triton client can replace them without touching this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

Scalar = str | int | float | bool | None


@dataclass
class SampledFrames:
    """What one decode pass of a clip gives the scorers."""

    # K frames at the scoring size, RGB uint8, shape (K, H, W, 3).
    rgb: np.ndarray
    # Their frame numbers in the clip.
    indices: list[int]
    # Pairs of consecutive frames at the scoring size, gray uint8: (P, 2, H, W).
    flow_pairs: np.ndarray
    flow_indices: list[int]
    num_frames: int  # frames actually decoded
    source_size: tuple[int, int]  # (width, height) as decoded
    # What each FrameSink returned, by scorer name.
    sink_results: dict[str, dict[str, Scalar]] = field(default_factory=dict)


class FrameSink(Protocol):
    """Sees every decoded frame's luma plane (native resolution, uint8 HxW), in order.

    The arrays are read-only and never reused by the decoder, so a sink may keep them.
    """

    def push(self, luma: np.ndarray) -> None: ...

    def finish(self) -> dict[str, Scalar]: ...


class Scorer(ABC):
    name: ClassVar[str]
    # The metadata columns this scorer fills.
    columns: ClassVar[tuple[str, ...]]

    def open_sink(self) -> FrameSink | None:
        """A per-clip consumer of every frame, for scorers that need them all."""
        return None

    @abstractmethod
    def score(self, frames: SampledFrames) -> dict[str, Scalar]:
        """Columns for one clip (pure computation on the given frames)."""

    @abstractmethod
    def provenance(self) -> dict[str, str]:
        """Which backend and version produced each of ``columns``."""


class ScoringError(RuntimeError):
    """A clip cannot be scored; the message says why in plain words."""
