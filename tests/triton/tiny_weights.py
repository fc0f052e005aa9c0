"""Tiny randomly initialised checkpoints, in the published file formats, for the Triton models.

Each writer puts one model's files into ``weights_dir/<model>/`` exactly as the
published checkpoint is laid out, only with tiny random tensors, so the real
loaders (the same code the server's model.py runs) load them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

WRITERS: dict[str, Callable[[Path], None]] = {}


def write_all(weights_dir: Path) -> list[str]:
    """Write every model's tiny checkpoint; returns the models written."""
    for name, write in WRITERS.items():
        write(Path(weights_dir))
    return sorted(WRITERS)
