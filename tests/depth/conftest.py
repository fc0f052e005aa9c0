"""The ground-truth cases (tests/data) and helpers for the depth tests."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from tests.data import CASES, case_dir, evaluator  # noqa: F401  (re-exported for the depth tests)


@lru_cache(maxsize=4)
def load_frames(name: str, count: int) -> np.ndarray:
    from samples import read_case_frames

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


def case_clip(tmp_path: Path, src: Path, frames: int):
    """The first ``frames`` frames of a case as a clip in a fresh local store: (store, clip record)."""
    import subprocess

    from services.records import ClipRecord
    from services.storage.local import LocalStore
    from services.video.tools import ffmpeg_path

    meta = json.loads((src / "meta.json").read_text())
    store = LocalStore(tmp_path / "store")
    clip = ClipRecord(id="case_0", source=str(src), source_id="case", num_frames=frames, height=meta["height"],
                      width=meta["width"], fps=meta["fps"], timestamp_start=0, timestamp_end=frames / meta["fps"],
                      frame_start=0, frame_end=frames)
    cut = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(src / "video.mp4"), "-frames:v", str(frames), "-c", "copy",
                    str(cut)], check=True)
    store.put_file(clip.clip_key, cut)
    return store, clip
