"""The depth stage with its models served by a real tritonserver gives what it gives in-process.

One server for the session (tests/depth_models/conftest.py): CPU configs, the tiny random
checkpoints, only depth_anything_v2, sam2 and unidepth (the last unavailable: no code, no weights).
"""

from __future__ import annotations

import numpy as np
import pytest

from services.depth.sam2_refine import refine_masks, sam2_prompts
from services.models.client import get_model_client
from services.stages.base import StageContext
from services.stages.depth import DepthStage
from tests.depth.conftest import case_dir, load_frames

from .conftest import CASE, INDEXES, model_settings, prepare_clip, read_outputs

pytestmark = pytest.mark.services

TRITON = {"depth_anything_v2": "triton", "sam2": "triton", "unidepth": "triton"}


def triton_model_settings(server, weights_dir):
    return model_settings(weights_dir, base=server.settings).with_overrides({"models": {"client": TRITON}})


def test_stage_through_triton_equals_in_process(triton_server, model_weights, inprocess_run, tmp_path):
    expected_outcome, expected, _ = inprocess_run
    clip, store = prepare_clip(tmp_path)
    settings = triton_model_settings(triton_server, model_weights)
    outcome = DepthStage().run(clip, StageContext(settings=settings, store=store, workdir=tmp_path))
    got = read_outputs(store, clip)

    assert got["depth"].shape == expected["depth"].shape == (len(INDEXES), 180, 320)
    assert got["depth"].dtype == np.float16 and got["masks"].dtype == bool
    both = (got["depth"] > 0) & (expected["depth"] > 0)
    # validity only flips where an aligned disparity sits on the far cut-off
    assert np.mean((got["depth"] > 0) != (expected["depth"] > 0)) <= 1e-4
    np.testing.assert_allclose(got["depth"][both].astype(np.float32), expected["depth"][both].astype(np.float32),
                               rtol=2e-3)
    assert np.mean(got["masks"] != expected["masks"]) <= 1e-3
    np.testing.assert_array_equal(got["K_depth"], expected["K_depth"])
    assert got["units"] == expected["units"]
    assert outcome.columns["dynamicRatio"] == pytest.approx(expected_outcome.columns["dynamicRatio"], abs=1e-3)

    depth_name, mask_name = outcome.columns["depth_backend"], outcome.columns["mask_backend"]
    assert depth_name.startswith("depth-anything-v2 aligned per frame") and "Triton model depth_anything_v2" in depth_name
    assert "geometric multi-view depth (up to scale)" in depth_name
    assert mask_name.startswith("sam2.1 (Triton model sam2") and "prompted by geometric motion evidence" in mask_name
    # UniDepth is served by nobody (its model fails to load): the reason travels into the note.
    assert "UniDepth V2 not available, so not metric (Triton model unidepth is unavailable" in outcome.note
    # Same frames aligned, same prompts and kept masks.
    strip = lambda note: note.split("; UniDepth")[0]  # noqa: E731
    assert strip(outcome.note) == strip(expected_outcome.note)
    assert outcome.note.split("sam2.1: ")[1] == expected_outcome.note.split("sam2.1: ")[1]


def test_sam2_masks_for_the_reference_prompts_agree_through_triton(triton_server, model_weights):
    """The raw SAM 2.1 answers (before the 30% rule, which the random network's big masks fail) agree."""
    import cv2

    frame = load_frames(CASE, 13)[12]
    motion = np.load(case_dir(CASE) / "gt_dynamic_masks.npz")["masks"][12]
    prompts = sam2_prompts(frame, cv2.GaussianBlur(motion.astype(np.float32)[::2, ::2], (0, 0), 2.0))
    assert prompts, "the case's moving objects give prompts"
    local_settings = model_settings(model_weights)
    remote_settings = triton_model_settings(triton_server, model_weights)
    local = get_model_client("sam2", local_settings.models, local_settings.triton)
    remote = get_model_client("sam2", remote_settings.models, remote_settings.triton)
    try:
        for count in sorted({len(p) for p in prompts}):
            group = np.stack([p for p in prompts if len(p) == count])
            inputs = {"image": frame, "points": group, "labels": np.ones(group.shape[:2], np.int32)}
            want, have = local.infer(inputs), remote.infer(inputs)
            assert have["masks"].shape == want["masks"].shape == (len(group), 360, 640)
            assert want["masks"].any()
            assert np.mean(have["masks"] != want["masks"]) <= 1e-3
            np.testing.assert_allclose(have["scores"], want["scores"], rtol=1e-4, atol=1e-4)
        merged_local, kept_local = refine_masks(local, frame, prompts)
        merged_remote, kept_remote = refine_masks(remote, frame, prompts)
        assert kept_local == kept_remote and np.mean(merged_local != merged_remote) <= 1e-3
    finally:
        remote.close()
