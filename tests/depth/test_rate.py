"""annotate.rate_hz: depth and masks on the chosen frames only, neighbour views among every frame; and the
depth stage's working size."""

from __future__ import annotations

import io

import numpy as np

from services.annotate import chosen_frames
from services.artifacts import C2W, DENSE_TRACK, DEPTH, DYN_MASKS, INDEXES as INDEXES_FILE, INTRINSICS
from services.depth.multiview import iter_depth_and_masks
from services.depth.params import DepthSettings as GeometricParams
from services.records import ClipRecord
from services.settings import Settings
from services.stages.base import StageContext
from services.stages.depth import DepthStage
from services.storage.local import LocalStore
from tests.depth.conftest import case_clip, case_dir, evaluator, load_case


def test_chosen_frames_sample_the_rate_from_the_first_frame():
    assert chosen_frames(10, 30.0, None).tolist() == list(range(10))
    assert chosen_frames(10, 30.0, 60.0).tolist() == list(range(10))  # above the frame rate: every frame
    picked = chosen_frames(150, 30.0, 5.0)
    assert picked.tolist() == list(range(0, 150, 6))
    picked = chosen_frames(96, 24.0, 5.0)  # 4.8 frames apart: 4 or 5, never more than half a frame off
    assert len(picked) == 20 and picked[0] == 0 and set(np.diff(picked)) <= {4, 5}
    assert np.abs(picked - np.arange(20) * 4.8).max() <= 0.5


def test_chosen_frames_only_are_output_and_score_like_every_frame():
    case = load_case("room_dyn2", 48)
    refs = chosen_frames(48, 24.0, 5.0)
    params = GeometricParams()
    sparse = list(iter_depth_and_masks(case["frames"], case["c2w"], case["K"], params, refs=refs))
    dense = list(iter_depth_and_masks(case["frames"], case["c2w"], case["K"], params))
    assert len(sparse) == len(refs)
    np.testing.assert_array_equal(sparse[0][0], dense[0][0])  # the first frame: nothing remembered yet
    ev = evaluator()
    depth = lambda out: np.stack([d for d, _ in out])  # noqa: E731
    masks = lambda out: np.stack([m for _, m in out])  # noqa: E731
    at_rate = ev.depth_metrics(case["gt_depth"], depth(sparse), refs, (360, 640), 2)
    every = ev.depth_metrics(case["gt_depth"], depth(dense)[refs], refs, (360, 640), 2)
    assert at_rate["abs_rel"] <= every["abs_rel"] + 0.01, (at_rate, every)
    iou_rate = ev.mask_metrics(case["gt_masks"], masks(sparse), refs)["iou"]
    iou_every = ev.mask_metrics(case["gt_masks"], masks(dense)[refs], refs)["iou"]
    assert iou_rate >= iou_every - 0.05, (iou_rate, iou_every)


def _clip_with_track(tmp_path, indexes: np.ndarray, dense: bool) -> tuple[LocalStore, ClipRecord]:
    src = case_dir("room_static_dyn3")
    store, clip = case_clip(tmp_path, src, frames=24)
    K = np.load(src / "gt_intrinsics.npy")
    poses = np.load(src / "gt_poses.npy")[:24]
    intr = np.tile([K[0, 0] / 640, K[1, 1] / 360, K[0, 2] / 640, K[1, 2] / 360], (24, 1))
    for name, arr in ((C2W, poses[indexes]), (INTRINSICS, intr[indexes])):
        buf = io.BytesIO()
        np.save(buf, arr)
        store.put_bytes(clip.annotation_key(name), buf.getvalue())
    store.put_bytes(clip.annotation_key(INDEXES_FILE), "\n".join(map(str, indexes)).encode())
    if dense:
        buf = io.BytesIO()
        np.savez(buf, c2w=poses, intrinsics=intr, frame_indices=np.arange(24))
        store.put_bytes(clip.annotation_key(DENSE_TRACK), buf.getvalue())
    return store, clip


def _outputs(store: LocalStore, clip: ClipRecord) -> tuple[np.ndarray, np.ndarray]:
    with store.local_path(clip.annotation_key(DEPTH)) as p:
        depth = np.load(p)["depth"]
    with store.local_path(clip.annotation_key(DYN_MASKS)) as p:
        masks = np.load(p)["masks"]
    return depth, masks


def test_the_stage_outputs_the_chosen_frames_at_its_working_size(tmp_path):
    indexes = chosen_frames(24, 24.0, 5.0)
    store, clip = _clip_with_track(tmp_path, indexes, dense=True)
    settings = Settings().with_overrides({"annotate": {"rate_hz": 5.0}, "depth": {"working_max_side": 320}})
    outcome = DepthStage().run(clip, StageContext(settings=settings, store=store, workdir=tmp_path))
    depth, masks = _outputs(store, clip)
    # 640x360 decoded at 320x180 (the cap), depth at half of that, one row per chosen frame
    assert depth.shape == (len(indexes), 90, 160) and masks.shape == (len(indexes), 180, 320)
    assert 0.02 < outcome.columns["dynamicRatio"] < 0.3  # three drones fly in front of a tripod


def test_without_the_dense_track_neighbours_come_from_the_chosen_frames(tmp_path):
    indexes = np.arange(0, 24, 2)
    store, clip = _clip_with_track(tmp_path, indexes, dense=False)
    DepthStage().run(clip, StageContext(settings=Settings(), store=store, workdir=tmp_path))
    depth, masks = _outputs(store, clip)
    assert depth.shape == (12, 180, 320) and masks.shape == (12, 360, 640)  # 640x360 is under the cap
