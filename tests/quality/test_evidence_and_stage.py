"""The verdict's evidence on a shared ground-truth case: true poses and depth pass, corrupted ones are flagged;
and end to end through the camera and depth stages, which write the verdict columns and the depth confidence."""

from __future__ import annotations

import io
import json
import subprocess

import numpy as np
from scipy.spatial.transform import Rotation

from services.artifacts import C2W, DEPTH, QC_EVIDENCE
from services.depth import confidence as conf
from services.quality.evidence import TrackEvidence, view_evidence
from services.quality.verdict import clip_verdict
from services.records import ClipRecord
from samples import bench_cases_dir, read_case_frames
from services.settings import QualitySettings, Settings
from services.stages.base import StageContext
from services.stages.camera import CameraStage
from services.stages.depth import DepthStage
from services.storage.local import LocalStore
from services.video.tools import ffmpeg_path

CASE = "room_plain"  # dolly, pan and tilt through a textured room, no movers
FRAMES = 24


def shared_case():
    path = bench_cases_dir() / CASE
    assert (path / "video.mp4").exists(), f"shared bench case missing: {path}"  # a missing case is a failure
    return path


def yaw_drift(c2w: np.ndarray, deg_per_frame: float) -> np.ndarray:
    """The same trajectory with a rotation error growing by ``deg_per_frame`` each frame."""
    out = c2w.copy()
    for i in range(len(out)):
        out[i, :3, :3] = out[i, :3, :3] @ Rotation.from_euler("y", deg_per_frame * i, degrees=True).as_matrix()
    return out


def gt_evidence(c2w=None, depth_factor=1.0):
    """``depth_factor``: a number, or one per frame."""
    d = shared_case()
    frames = read_case_frames(d, count=FRAMES)
    gt_c2w = np.load(d / "gt_poses.npy")[:FRAMES]
    K = np.tile(np.load(d / "gt_intrinsics.npy"), (FRAMES, 1, 1))
    depth = np.load(d / "gt_depth.npz")["depth"][:FRAMES] * np.reshape(depth_factor, (-1, 1, 1))
    masks = np.zeros((FRAMES, 360, 640), bool)
    return view_evidence(frames, gt_c2w if c2w is None else c2w, K, depth, masks, [(0, FRAMES)], 640)


TRACK = TrackEvidence(success=True, focal_from_prior=False, camera_moves=True, inlier_tracks_p10=400.0,
                      segments=[(0, FRAMES)])


def test_ground_truth_poses_and_depth_raise_no_flag():
    views = gt_evidence()
    s = views.summary()
    assert views.pairs >= 4
    assert s["pose_residual_px"] < 0.5 * QualitySettings().pose_residual_px
    assert s["depth_transfer_px"] < 0.5 * QualitySettings().depth_transfer_px
    assert clip_verdict(TRACK, views, QualitySettings()).flags == []


def test_rotation_error_and_wrong_depth_are_flagged():
    gt_c2w = np.load(shared_case() / "gt_poses.npy")[:FRAMES]
    # 0.25 deg per frame: 1 deg between the checked frames, twice the rotation target
    drifted = clip_verdict(TRACK, gt_evidence(c2w=yaw_drift(gt_c2w, 0.25)), QualitySettings())
    assert "pose:high-reprojection-error" in drifted.flags
    # depth 40% too far for the poses: the parallax it predicts is 40% short
    far = clip_verdict(TRACK, gt_evidence(depth_factor=1.4), QualitySettings())
    assert any(f.startswith("depth:") for f in far.flags) and not any(f.startswith("pose:") for f in far.flags)


def test_depth_whose_scale_drifts_along_the_clip_is_flagged():
    assert gt_evidence().summary()["depth_consistency"] < 0.5 * QualitySettings().depth_consistency
    # the depth's scale creeping up 2% a frame: frames 16 apart disagree by 37%
    creeping = gt_evidence(depth_factor=1.02 ** np.arange(FRAMES))
    verdict = clip_verdict(TRACK, creeping, QualitySettings())
    assert "depth:inconsistent" in verdict.flags
    assert creeping.summary()["depth_consistency"] > 0.3


def test_stages_write_the_verdict_columns_and_the_depth_confidence(tmp_path):
    src = shared_case()
    store = LocalStore(tmp_path / "store")
    clip = ClipRecord(id="case_0", source=str(src), source_id="case", num_frames=FRAMES, height=360, width=640,
                      fps=24.0, timestamp_start=0, timestamp_end=1, frame_start=0, frame_end=FRAMES)
    cut = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(src / "video.mp4"), "-frames:v", str(FRAMES), "-c",
                    "copy", str(cut)], check=True)
    store.put_file(clip.clip_key, cut)
    # these frames only dolly, which cannot determine the focal: the verdict says so ...
    ctx = StageContext(settings=Settings(), store=store, workdir=tmp_path)
    assert CameraStage().run(clip, ctx).columns["qc_flags"] == "pose:focal-unconstrained"
    # ... unless the field of view is given
    K = np.load(src / "gt_intrinsics.npy")
    hfov = float(np.degrees(2 * np.arctan(320 / K[0, 0])))
    ctx = StageContext(settings=Settings().with_overrides({"camera": {"known_hfov_deg": hfov}}), store=store,
                       workdir=tmp_path)
    camera = CameraStage().run(clip, ctx)
    assert camera.columns["qc_flags"] == "" and camera.columns["pose_quality"] > 0.5
    clip.columns.update(camera.columns)
    depth = DepthStage().run(clip, ctx)
    cols = depth.columns
    assert cols["qc_flags"] == ""
    assert min(cols["pose_quality"], cols["depth_quality"], cols["mask_quality"]) > 0.5
    assert any("qc-verdict" in v for v in depth.provenance.values())
    evidence = json.loads(store.get_bytes(clip.annotation_key(QC_EVIDENCE)))
    assert evidence["views"]["pairs"] >= 4 and evidence["track"]["success"] is True
    with store.local_path(clip.annotation_key(DEPTH)) as p:
        z = np.load(p)
        d, c = z["depth"], z["confidence"]
    assert c.shape == d.shape and c.dtype == np.float16
    assert set(np.unique(c).tolist()) <= {conf.NONE, conf.FILLED, conf.CARRIED, conf.MEASURED}
    assert ((c > 0) == (d > 0)).all()
    assert (c[d > 0] == conf.MEASURED).mean() > 0.5  # a dolly: most of the depth is triangulated

    # the same clip with a rotation error added to the camera stage's poses: the depth stage's verdict says so
    c2w = np.load(io.BytesIO(store.get_bytes(clip.annotation_key(C2W))))
    buf = io.BytesIO()
    np.save(buf, yaw_drift(c2w, 0.25))
    store.put_bytes(clip.annotation_key(C2W), buf.getvalue())
    flagged = DepthStage().run(clip, ctx).columns
    assert "pose:high-reprojection-error" in flagged["qc_flags"].split(",") and flagged["pose_quality"] < 0.5
