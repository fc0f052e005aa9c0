"""The camera stage end to end on the shared dolly/pan/tilt case: files, layout, columns."""

from __future__ import annotations

import io
import json

import numpy as np
from scipy.spatial.transform import Rotation

from services.dataset.formats import parse_indexes
from services.records import ClipRecord
from services.settings import Settings
from services.stages.base import StageContext
from services.stages.camera import CameraStage
from services.storage.local import LocalStore

from .helpers import need_cases


def test_stage_writes_poses_intrinsics_indexes_and_labels(tmp_path):
    src = need_cases() / "room_plain"
    store = LocalStore(tmp_path / "store")
    clip = ClipRecord(id="case_0", source=str(src), source_id="case", num_frames=96, height=360, width=640, fps=24.0,
                      timestamp_start=0, timestamp_end=4, frame_start=0, frame_end=96)
    store.put_file(clip.clip_key, src / "video.mp4")
    outcome = CameraStage().run(clip, StageContext(settings=Settings(), store=store, workdir=tmp_path))
    load = lambda name: np.load(io.BytesIO(store.get_bytes(clip.annotation_key(name))))  # noqa: E731
    c2w, poses, intr = load("c2w.npy"), load("poses.npy"), load("intrinsics.npy")
    text = store.get_bytes(clip.annotation_key("indexes.txt")).decode()
    assert all(len(line.split()) == 2 for line in text.splitlines())  # the published two-field form
    indexes = parse_indexes(text).tolist()
    assert c2w.shape == (96, 4, 4) and poses.shape == (96, 7) and intr.shape == (96, 4) and indexes == list(range(96))
    # poses.npy is world-to-camera (t, q xyzw) of the same cameras
    w2c = np.tile(np.eye(4), (96, 1, 1))
    w2c[:, :3, :3] = Rotation.from_quat(poses[:, 3:]).as_matrix()
    w2c[:, :3, 3] = poses[:, :3]
    assert np.allclose(w2c @ c2w, np.eye(4), atol=1e-8)
    instr = json.loads(store.get_bytes(clip.annotation_key("instructions.json")))
    assert "Dolly In" in instr["0->" + list(instr)[0].split("->")[1]]
    cols = outcome.columns
    assert cols["success"] is True and cols["pose_backend"].startswith("geometric-")
    assert {"anomaly", "moveDist", "distLevel", "rotAngle", "trajTurns"} <= set(cols)
    assert len(outcome.artifacts) == 6  # with qc_evidence.json (services/quality)
    # a well-tracked clip: the verdict from the tracker's evidence alone is good and unflagged
    assert cols["qc_flags"] == "" and cols["pose_quality"] > 0.5
