"""annotate.rate_hz in the camera stage: the chosen frames' rows are published, every tracked frame kept aside."""

from __future__ import annotations

import io

import numpy as np

from services.dataset.formats import parse_indexes

import services.stages.camera as camera_stage
import services.video.shared as clip_decoding
from services.artifacts import DENSE_TRACK
from services.camera.track import CameraTrack
from services.records import ClipRecord
from services.settings import Settings
from services.stages.base import StageContext
from services.storage.local import LocalStore


def _dolly(n: int) -> CameraTrack:
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, 2, 3] = np.linspace(0, 1, n)  # forward, evenly
    return CameraTrack(c2w=c2w, intrinsics=np.tile([0.8, 1.4, 0.5, 0.5], (n, 1)), frame_indices=np.arange(n),
                       success=True, reason=None, segments=[(0, n)], hfov_deg=[64.0], focal_source=["prior"])


def _run(tmp_path, monkeypatch, rate_hz):
    monkeypatch.setattr(clip_decoding, "read_frames", lambda *a, **k: iter(()))
    monkeypatch.setattr(camera_stage, "track_camera", lambda frames, fps, settings: _dolly(60))
    store = LocalStore(tmp_path / "store")
    clip = ClipRecord(id="c_0", source="x", source_id="c", num_frames=60, height=360, width=640, fps=30.0,
                      timestamp_start=0, timestamp_end=2, frame_start=0, frame_end=60)
    store.put_bytes(clip.clip_key, b"not decoded here")
    settings = Settings().with_overrides({"annotate": {"rate_hz": rate_hz}})
    outcome = camera_stage.CameraStage().run(clip, StageContext(settings=settings, store=store, workdir=tmp_path))
    indexes = parse_indexes(store.get_bytes(clip.annotation_key("indexes.txt")).decode()).tolist()
    load = lambda name: np.load(io.BytesIO(store.get_bytes(clip.annotation_key(name))))  # noqa: E731
    return store, clip, outcome, indexes, load


def test_at_5_hz_the_chosen_frames_are_published_and_every_frame_kept_aside(tmp_path, monkeypatch):
    store, clip, outcome, indexes, load = _run(tmp_path, monkeypatch, 5.0)
    assert indexes == list(range(0, 60, 6))
    c2w = load("c2w.npy")
    assert c2w.shape == (10, 4, 4) and load("poses.npy").shape == (10, 7) and load("intrinsics.npy").shape == (10, 4)
    assert np.allclose(c2w[:, 2, 3], np.linspace(0, 1, 60)[indexes])  # the chosen frames' own poses
    dense = load(DENSE_TRACK)
    assert dense["c2w"].shape == (60, 4, 4) and dense["frame_indices"].tolist() == list(range(60))
    assert outcome.columns["moveDist"] > 0  # statistics from the whole track


def test_every_frame_by_default_and_no_extra_file(tmp_path, monkeypatch):
    store, clip, _, indexes, load = _run(tmp_path, monkeypatch, None)
    assert indexes == list(range(60)) and load("c2w.npy").shape == (60, 4, 4)
    assert not store.exists(clip.annotation_key(DENSE_TRACK))
