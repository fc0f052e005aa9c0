"""The depth stage end to end on a short piece of a shared case (GT poses standing in for the camera stage)."""

from __future__ import annotations

import io

import numpy as np

from services.artifacts import C2W, DEPTH, DYN_MASKS, INDEXES as INDEXES_FILE, INTRINSICS
from services.dataset.formats import format_indexes
from services.settings import Settings
from services.stages.base import StageContext
from services.stages.depth import DepthStage, select_frames
from tests.depth.conftest import case_clip, case_dir


def test_select_frames_picks_the_indexed_frames():
    frames = iter([np.full((2, 2), i, np.uint8) for i in range(10)])
    got = [int(f[0, 0]) for f in select_frames(frames, np.array([0, 3, 4, 9]))]
    assert got == [0, 3, 4, 9]


def test_stage_writes_depth_and_masks(tmp_path):
    src = case_dir("room_static_dyn3")
    store, clip = case_clip(tmp_path, src, frames=24)
    indexes = np.arange(0, 24, 2)
    K = np.load(src / "gt_intrinsics.npy")
    intr = np.tile([K[0, 0] / 640, K[1, 1] / 360, K[0, 2] / 640, K[1, 2] / 360], (len(indexes), 1))
    for name, arr in ((C2W, np.load(src / "gt_poses.npy")[indexes]), (INTRINSICS, intr)):
        buf = io.BytesIO()
        np.save(buf, arr)
        store.put_bytes(clip.annotation_key(name), buf.getvalue())
    store.put_bytes(clip.annotation_key(INDEXES_FILE), format_indexes(indexes).encode())

    settings = Settings().with_overrides({"depth": {"export_exr_zip": True}})
    outcome = DepthStage().run(clip, StageContext(settings=settings, store=store, workdir=tmp_path))

    with store.local_path(clip.annotation_key(DEPTH)) as p:
        depth = np.load(p)["depth"]
    with store.local_path(clip.annotation_key(DYN_MASKS)) as p:
        masks = np.load(p)["masks"]
    assert depth.shape == (12, 180, 320) and depth.dtype == np.float16
    assert masks.shape == (12, 360, 640) and masks.dtype == bool
    assert 0.02 < outcome.columns["dynamicRatio"] < 0.3  # three drones fly in front of a tripod
    assert outcome.columns["depth_backend"].startswith("geometric")
    assert outcome.columns["mask_backend"].startswith("geometric")
    assert clip.annotation_key("depth.zip") in outcome.artifacts
