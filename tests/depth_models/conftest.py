"""Tiny published-format checkpoints, a short real clip with its camera files, and one Triton server.

Random weights give meaningless depth and masks, so these tests check the
plumbing (files, columns, provenance, in-process == Triton) and the maths, never
accuracy.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest

from services.artifacts import C2W, DEPTH, DYN_MASKS, INDEXES as INDEXES_FILE, INTRINSICS
from services.dataset.formats import format_indexes
from services.records import ClipRecord
from services.settings import Settings
from services.storage.local import LocalStore
from services.video.tools import ffmpeg_path
from tests.depth.conftest import case_dir

CASE = "room_dyn2"  # a trucking camera and two moving objects
CLIP_FRAMES = 24
INDEXES = np.arange(0, CLIP_FRAMES, 2)  # 12 annotated frames

# Seeds of the tiny random Depth Anything V2 network. Its output is a nearly flat disparity whose
# (meaningless) depth order agrees with this clip's geometry on some frames (aligned) and contradicts it on
# others (rightly left invalid): seed 1 gives both kinds; seed 0 contradicts it on every frame.
AGREEING_SEED = 1
DISAGREEING_SEED = 0


def write_depth_anything(weights_dir: Path, seed: int) -> None:
    """Hugging Face layout (config.json + model.safetensors), tiny and random (tests/models' writer)."""
    from tests.models.test_depth_anything import tiny_model

    tiny_model(seed=seed).save_pretrained(weights_dir / "depth_anything_v2")


@pytest.fixture(scope="session")
def model_weights(tmp_path_factory) -> Path:
    """Depth Anything V2 (HF layout) and SAM 2.1 (the original .pt + YAML), tiny random checkpoints."""
    from tests.triton.tiny_weights import write_sam2

    weights_dir = tmp_path_factory.mktemp("depth-model-weights")
    write_depth_anything(weights_dir, AGREEING_SEED)
    write_sam2(weights_dir)
    return weights_dir


def put_array(store: LocalStore, key: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    store.put_bytes(key, buf.getvalue())


def prepare_clip(root: Path, case: str = CASE) -> tuple[ClipRecord, LocalStore]:
    """The first 24 frames of a shared case as a clip, with GT poses written as the camera stage's files."""
    src = case_dir(case)
    store = LocalStore(root / "store")
    clip = ClipRecord(id=f"{case}_0", source=str(src), source_id=case, num_frames=CLIP_FRAMES, height=360,
                      width=640, fps=24.0, timestamp_start=0, timestamp_end=1, frame_start=0, frame_end=CLIP_FRAMES)
    cut = root / "clip.mp4"
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-i", str(src / "video.mp4"), "-frames:v", str(CLIP_FRAMES),
                    "-c", "copy", str(cut)], check=True)
    store.put_file(clip.clip_key, cut)
    K = np.load(src / "gt_intrinsics.npy")
    intr = np.tile([K[0, 0] / 640, K[1, 1] / 360, K[0, 2] / 640, K[1, 2] / 360], (len(INDEXES), 1))
    put_array(store, clip.annotation_key(C2W), np.load(src / "gt_poses.npy")[INDEXES])
    put_array(store, clip.annotation_key(INTRINSICS), intr)
    store.put_bytes(clip.annotation_key(INDEXES_FILE), format_indexes(INDEXES).encode())
    return clip, store


def read_outputs(store: LocalStore, clip: ClipRecord) -> dict[str, np.ndarray]:
    with store.local_path(clip.annotation_key(DEPTH)) as p:
        depth_file = dict(np.load(p))
    with store.local_path(clip.annotation_key(DYN_MASKS)) as p:
        masks = np.load(p)["masks"]
    return {"depth": depth_file["depth"], "units": str(depth_file["units"]), "K_depth": depth_file["K_depth"],
            "masks": masks}


def model_settings(weights_dir: Path, base: Settings | None = None, **depth) -> Settings:
    """Settings selecting the weight-based backends with these weights (in-process unless ``base`` says)."""
    base = base or Settings()
    return base.with_overrides({
        "models": {"weights_dir": str(weights_dir)},
        "depth": {"backend": "depth_anything_v2", "mask_backend": "sam2", **depth},
    })


@pytest.fixture(scope="session")
def inprocess_run(model_weights, tmp_path_factory):
    """One in-process run of the stage on the clip (shared by the checks and the Triton comparison)."""
    from services.stages.base import StageContext
    from services.stages.depth import DepthStage

    root = tmp_path_factory.mktemp("inprocess")
    clip, store = prepare_clip(root)
    outcome = DepthStage().run(clip, StageContext(settings=model_settings(model_weights), store=store, workdir=root))
    return outcome, read_outputs(store, clip), clip


@pytest.fixture(scope="session")
def triton_server(model_weights, tmp_path_factory):
    """ONE tritonserver for the session: CPU configs, only the depth stage's models, the tiny weights.

    UniDepth is loaded too: with no checkpoint (its code is not installable here) it is UNAVAILABLE, which
    is what the depth backend's "auto" alignment must notice.
    """
    from services.triton_server import TritonServer
    from tests.triton.conftest import require_installation, triton_settings

    settings = triton_settings(model_weights, models=["depth_anything_v2", "sam2", "unidepth"])
    require_installation(settings)
    server = TritonServer(settings, log_path=tmp_path_factory.mktemp("triton-log") / "tritonserver.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
