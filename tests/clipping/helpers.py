"""Helpers for the clipping tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from services.settings import load_settings
from services.stages.base import StageContext
from services.storage.local import LocalStore
from services.video.decode import read_frames
from services.video.tools import ffmpeg_path

# Where the five cuts of bikes.mp4 really are (first frame of each new shot),
# found by viewing frames 28..31, 74..77, 135..138, 185..188, 240..243 as images:
# road from above with a red car -> man in a suit among cars; taxi sign -> cyclist
# behind a van; cyclist -> railing before a street; railing -> walker passing a
# parked bike; parked bike -> close-up of a wheel behind a post.
BIKES_CUTS = (30, 76, 137, 187, 242)
BIKES_FRAMES = 250


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_path(), "-nostdin", "-v", "error", "-y", *args], check=True)


def make_context(tmp_path: Path, **clip_overrides) -> StageContext:
    settings = load_settings()
    if clip_overrides:
        settings = settings.with_overrides({"clip": clip_overrides})
    store = LocalStore(tmp_path / "out")
    return StageContext(settings=settings, store=store, workdir=tmp_path)


def all_frames(path: Path) -> list[np.ndarray]:
    return list(read_frames(path))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


@contextmanager
def unprivileged() -> Iterator[None]:
    """Act as an ordinary user for a while (root reads every file whatever its mode)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
