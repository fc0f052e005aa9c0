from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from tests.data import CASES, case_dir, evaluator


def need_cases() -> Path:
    """The cases' folder; a missing case fails the test."""
    case_dir("room_plain")
    return CASES


def evaluate_module():
    return evaluator()


@lru_cache(maxsize=None)
def tracked(case: str):
    """Track a bench case once per test session."""
    from services.camera.track import track_camera
    from services.settings import CameraSettings
    from services.video.decode import read_frames

    d = need_cases() / case
    meta = json.loads((d / "meta.json").read_text())
    return track_camera(read_frames(d / "video.mp4"), meta["fps"], CameraSettings()), meta


def gt_relative(case: str) -> tuple[np.ndarray, dict]:
    """Ground-truth c2w with each shot's first frame at the identity."""
    d = need_cases() / case
    meta = json.loads((d / "meta.json").read_text())
    G = np.load(d / "gt_poses.npy")
    P = G.copy()
    for s in meta["shots"]:
        a, b = s["start"], s["end"]
        P[a:b] = np.linalg.inv(G[a]) @ G[a:b]
    return P, meta


def label_frames(instructions: dict[str, list[str]], n: int) -> list[set[str]]:
    frames = [{"static"} for _ in range(n)]
    for key, labels in instructions.items():
        a, b = map(int, key.split("->"))
        for f in range(a, min(b, n)):
            frames[f] = {"static" if x == "Stay" else x.lower().replace(" ", "_") for x in labels}
    return frames
