"""The ground-truth cases (tests/data) and helpers for the depth tests."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from tests.data import CASES, case_dir, evaluator  # noqa: F401  (re-exported for the depth tests)


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

