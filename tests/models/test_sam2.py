"""SAM 2.1: the published .pt layout (keys taken from the original sam2 code) loads and reproduces it.

``data/sam2.1_tiny_keys.json`` lists every tensor of the original ``SAM2Base``
built from ``data/sam2.1_hiera_tiny.yaml`` (the published hiera-large config with
tiny sizes), and ``data/sam2.1_tiny_golden.json`` holds what that original code
predicted with the deterministic random weights written below. Both were made
once from the sam2 1.1.0 source; the test needs neither sam2 nor torchvision.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from services.models import sam2 as sam2_module  # noqa: E402
from services.models.weights import WeightsMissing  # noqa: E402

DATA = Path(__file__).parent / "data"


def write_tiny_published_checkpoint(weights_dir: Path, with_yaml: bool = True) -> None:
    """``weights_dir/sam2/sam2.1_hiera_large.pt`` ({"model": state}) with the original keys, random values."""
    folder = weights_dir / "sam2"
    folder.mkdir(parents=True, exist_ok=True)
    keys = json.loads((DATA / "sam2.1_tiny_keys.json").read_text())
    rng = np.random.default_rng(0)
    state = {k: torch.from_numpy(rng.normal(0, 0.1, shape).astype(np.float32)) for k, shape in keys}
    torch.save({"model": state}, folder / "sam2.1_hiera_large.pt")
    if with_yaml:
        shutil.copy(DATA / "sam2.1_hiera_tiny.yaml", folder / "sam2.1_hiera_l.yaml")


@pytest.fixture(scope="module")
def sam(tmp_path_factory):
    weights = tmp_path_factory.mktemp("weights")
    write_tiny_published_checkpoint(weights)
    return sam2_module.load(weights)


def test_missing_weights_message(tmp_path):
    with pytest.raises(WeightsMissing, match="sam2.1_hiera_large.pt"):
        sam2_module.load(tmp_path)


def test_hiera_large_config_matches_the_published_model():
    config = sam2_module.config_from_hydra(sam2_module.HIERA_LARGE)
    backbone = config.vision_config.backbone_config
    assert backbone.blocks_per_stage == [2, 6, 36, 4]
    assert backbone.embed_dim_per_stage == [144, 288, 576, 1152]
    assert backbone.num_attention_heads_per_stage == [2, 4, 8, 16]
    assert backbone.global_attention_blocks == [23, 33, 43] and backbone.window_size_per_stage == [8, 4, 16, 8]
    assert config.vision_config.backbone_channel_list == [1152, 576, 288, 144]
    assert config.vision_config.backbone_feature_sizes == [[256, 256], [128, 128], [64, 64]]


def test_without_yaml_the_built_in_config_is_used(tmp_path, monkeypatch):
    write_tiny_published_checkpoint(tmp_path, with_yaml=False)
    tiny = sam2_module.read_hydra_model_config(DATA / "sam2.1_hiera_tiny.yaml")
    monkeypatch.setattr(sam2_module, "HIERA_LARGE", tiny)
    assert "built-in hiera-large config" in sam2_module.load(tmp_path).backend


def test_published_checkpoint_reproduces_the_original_code(sam):
    assert "sam2.1-hiera-custom" in sam.backend and "sam2/sam2.1_hiera_large.pt" in sam.backend
    golden = json.loads((DATA / "sam2.1_tiny_golden.json").read_text())
    pixels = torch.from_numpy(np.random.default_rng(1).normal(0, 1, (1, 3, 256, 256)).astype(np.float32))
    points = torch.tensor(golden["points"])[None, None]
    labels = torch.tensor(golden["labels"], dtype=torch.int32)[None, None]
    with torch.inference_mode():
        embeddings = sam.model.get_image_embeddings(pixels)
        for multimask in (True, False):
            out = sam.model(image_embeddings=embeddings, input_points=points, input_labels=labels,
                            multimask_output=multimask)
            expected = golden[f"multimask_{multimask}"]
            np.testing.assert_allclose(out.iou_scores[0, 0].numpy(), np.array(expected["iou"]), atol=1e-5)
            np.testing.assert_allclose(out.pred_masks[0, 0, :, ::16, ::16].numpy(),
                                       np.array(expected["logits_every_16th"]), atol=1e-4)


def test_infer_contract(sam):
    frame = np.random.default_rng(2).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    points = np.array([[[10, 10], [50, 40], [80, 20]], [[100, 60], [120, 70], [140, 80]]], np.float32)
    out = sam.infer({"image": frame, "points": points, "labels": np.ones((2, 3), np.int32)})
    assert out["masks"].shape == (2, 90, 160) and out["masks"].dtype == bool
    assert out["scores"].shape == (2,) and np.isfinite(out["scores"]).all()
    # Each prompt is decoded on its own: the second alone gives the same mask.
    alone = sam.infer({"image": frame, "points": points[1:], "labels": np.ones((1, 3), np.int32)})
    np.testing.assert_array_equal(alone["masks"][0], out["masks"][1])


def test_refine_with_sam2_runs_the_reference_rule(sam):
    from services.models import prompts

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)
    motion = np.full((36, 64), 0.05, np.float32)
    motion[10:20, 20:36] = 0.9
    motion[22:30, 44:60] = 0.8
    mask = prompts.refine_with_sam2(sam, frame, motion)
    assert mask.shape == (72, 128) and mask.dtype == bool
    # With random weights the masks are arbitrary, but the same call gives the same answer
    # and a flat map never reaches the model.
    np.testing.assert_array_equal(prompts.refine_with_sam2(sam, frame, motion), mask)
    assert not prompts.refine_with_sam2(sam, frame, np.full((36, 64), 0.3, np.float32)).any()
