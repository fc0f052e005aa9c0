"""Shared ground-truth cases (../shared/bench beside the checkout) and helpers for the depth tests."""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CASES = SHARED / "bench" / "cases"


def case_dir(name: str) -> Path:
    path = CASES / name
    if not (path / "video.mp4").exists():
        pytest.skip(f"shared bench case {name} not found at {path}")
    return path


@lru_cache(maxsize=4)
def load_frames(name: str, count: int) -> np.ndarray:
    from services.samples import read_case_frames

    return np.stack(read_case_frames(case_dir(name), count=count))


def load_case(name: str, count: int) -> dict:
    d = case_dir(name)
    return dict(
        frames=load_frames(name, count),
        c2w=np.load(d / "gt_poses.npy")[:count],
        K=np.load(d / "gt_intrinsics.npy"),
        gt_depth=np.load(d / "gt_depth.npz")["depth"][:count],
        gt_masks=np.load(d / "gt_dynamic_masks.npz")["masks"][:count],
        meta=json.loads((d / "meta.json").read_text()),
    )


@lru_cache(maxsize=1)
def evaluator():
    """The shared bench's evaluate.py (the scoring used for the issue's targets)."""
    spec = importlib.util.spec_from_file_location("shared_evaluate", SHARED / "bench" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
