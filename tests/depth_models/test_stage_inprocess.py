"""The depth stage with the weight-based backends, in-process: files, columns, provenance, failures.

Random tiny checkpoints: only plumbing and the honesty of the outputs are asserted, never accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.artifacts import DEPTH, QC_EVIDENCE as EVIDENCE_FILE
from services.execution import run_clip_stage
from services.records import StageState
from services.stages.base import ClipFailed, StageContext
from services.quality.record import provenance as verdict_provenance
from services.stages.depth import DepthStage

from .conftest import DISAGREEING_SEED, INDEXES, model_settings, prepare_clip, read_outputs, write_depth_anything


def test_outputs_obey_the_stage_contract(inprocess_run):
    outcome, out, clip = inprocess_run
    n = len(INDEXES)
    assert out["depth"].shape == (n, 180, 320) and out["depth"].dtype == np.float16
    assert out["masks"].shape == (n, 360, 640) and out["masks"].dtype == bool
    assert np.isfinite(out["depth"]).all() and (out["depth"] >= 0).all()
    # A frame is either aligned (the model covers it: valid almost everywhere) or, where the random
    # network's depth order contradicts the geometry, left all invalid; the note counts the aligned ones.
    valid = (out["depth"] > 0).mean(axis=(1, 2))
    aligned = int((valid > 0.9).sum())
    assert aligned >= 1 and ((valid > 0.9) | (valid == 0)).all(), valid
    assert f"aligned to the geometric depth on {aligned} of {n} frames" in outcome.note
    # the depth and masks, and the quality verdict's evidence (services.quality)
    assert set(outcome.artifacts) == {clip.annotation_key("depth.npz"), clip.annotation_key("dyn_masks.npz"),
                                      clip.annotation_key(EVIDENCE_FILE)}
    assert outcome.columns["dynamicRatio"] == pytest.approx(float(out["masks"].mean()))


def test_provenance_names_the_models_and_the_alignment_reference(inprocess_run):
    outcome, out, _ = inprocess_run
    depth_name, mask_name = outcome.columns["depth_backend"], outcome.columns["mask_backend"]
    # No UniDepth here (its code is not installable): aligned to the geometric depth, so not metric.
    assert depth_name.startswith("depth-anything-v2 aligned per frame")
    assert "geometric multi-view depth (up to scale)" in depth_name
    assert "depth_anything_v2/model.safetensors" in depth_name and "geometric-flow-triangulation" in depth_name
    assert out["units"].startswith("pose units")
    assert mask_name.startswith("sam2.1 (sam2.1-hiera") and "sam2/sam2.1_hiera_large.pt" in mask_name
    assert "prompted by geometric motion evidence (geometric-flow-residual" in mask_name
    assert outcome.provenance == {"depth": depth_name, "dynamicRatio": mask_name,
                                  **verdict_provenance(with_views=True)}
    assert "UniDepth V2 not available, so not metric" in outcome.note and "unidepth" in outcome.note


def test_mask_backend_alone_keeps_geometric_depth_and_depth_backend_alone_keeps_geometric_masks(
        model_weights, inprocess_run, tmp_path):
    """Each weight-based backend replaces only its own output of the one geometric pass."""
    _, learned, _ = inprocess_run
    clip, store = prepare_clip(tmp_path)
    settings = model_settings(model_weights, backend="geometric")
    outcome = DepthStage().run(clip, StageContext(settings=settings, store=store, workdir=tmp_path))
    out = read_outputs(store, clip)
    assert outcome.columns["depth_backend"].startswith("geometric-flow-triangulation")
    assert outcome.columns["mask_backend"].startswith("sam2.1")
    np.testing.assert_array_equal(out["masks"], learned["masks"])  # same SAM 2.1 masks
    assert not np.array_equal(out["depth"], learned["depth"])


def test_missing_weights_fail_each_clip_with_the_expected_files_and_the_run_goes_on(tmp_path):
    empty = tmp_path / "weights"
    empty.mkdir()
    clip, store = prepare_clip(tmp_path)
    stage = DepthStage()
    for depth, masks, expected in [
        ("depth_anything_v2", "geometric", r"Depth Anything V2: weights not found\. Expected \[config\.json, "
                                           r"model\.safetensors\] or \[depth_anything_v2_vitl\.pth\]"),
        ("geometric", "sam2", r"SAM 2\.1: weights not found\. Expected .*sam2\.1_hiera_large\.pt"),
    ]:
        settings = model_settings(empty, backend=depth, mask_backend=masks)
        ctx = StageContext(settings=settings, store=store, workdir=tmp_path)
        with pytest.raises(ClipFailed, match=expected):
            stage.run(clip, ctx)
        record = run_clip_stage(stage, clip, ctx, "fp")  # the runner records it and goes on
        assert record.stages["depth"].state == StageState.failed
        assert "weights not found" in record.stages["depth"].error
        assert not store.exists(clip.annotation_key("depth.npz"))


def test_default_stays_geometric():
    from services.settings import Settings

    assert Settings().depth.backend == "geometric" and Settings().depth.mask_backend == "geometric"


def test_insisting_on_unidepth_without_it_fails_the_clip_with_its_reason(model_weights, tmp_path):
    clip, store = prepare_clip(tmp_path)
    settings = model_settings(model_weights, align_to="unidepth")
    with pytest.raises(ClipFailed, match=r"UniDepth V2: weights not found\. Expected \[config\.json, model\.safetensors\]"):
        DepthStage().run(clip, StageContext(settings=settings, store=store, workdir=tmp_path))


def test_unknown_backend_names_are_a_clip_failure(tmp_path):
    clip, store = prepare_clip(tmp_path)
    settings = model_settings(tmp_path, backend="marigold")
    with pytest.raises(ClipFailed, match="not available: marigold .*depth_anything_v2"):
        DepthStage().run(clip, StageContext(settings=settings, store=store, workdir=tmp_path))


def test_a_model_contradicting_the_geometry_fails_the_clip_rather_than_inventing_a_scale(tmp_path):
    """A random network whose depth order disagrees with the geometry: every frame rejected, clip failed."""
    weights = tmp_path / "weights"
    write_depth_anything(weights, DISAGREEING_SEED)
    clip, store = prepare_clip(tmp_path)
    settings = model_settings(weights, mask_backend="geometric", align_to="geometric")
    with pytest.raises(ClipFailed, match=r"no frame could be aligned to the geometric depth .*non-positive scale"):
        DepthStage().run(clip, StageContext(settings=settings, store=store, workdir=tmp_path))


def test_metric_depth_is_written_in_pose_units_with_the_factor(tmp_path, monkeypatch):
    """With UniDepth the backend's depth is in metres; the stage writes it in the poses' units (so depth and
    c2w.npy agree) and records metres per pose unit. UniDepth cannot load here: a stand-in backend."""
    import services.stages.depth as depth_stage
    from services.depth.learned import METRIC_UNITS, POSE_UNITS_WITH_METRIC
    from services.settings import Settings

    class MetricBackend:
        depth = type("D", (), {"name": "metric-x", "units": METRIC_UNITS})()
        masks = type("M", (), {"name": "masks-x"})()
        notes: list = []
        metres_per_pose_unit = 4.0

        def iter_both(self, frames, c2w, K):
            for _ in frames:
                d = np.full((180, 320), 8.0, np.float32)
                d[:10] = 0  # invalid stays invalid
                yield d, np.zeros((360, 640), bool)

    monkeypatch.setattr(depth_stage, "build_backend", lambda *a, **k: MetricBackend())
    clip, store = prepare_clip(tmp_path)
    outcome = DepthStage().run(clip, StageContext(settings=Settings(), store=store, workdir=tmp_path))
    out = read_outputs(store, clip)
    assert out["units"] == POSE_UNITS_WITH_METRIC
    assert (out["depth"][:, :10] == 0).all() and np.allclose(out["depth"][:, 10:], 2.0)
    assert outcome.columns["metres_per_pose_unit"] == 4.0
    with store.local_path(clip.annotation_key(DEPTH)) as path:
        assert float(np.load(path)["metres_per_pose_unit"]) == 4.0
