"""Depth Anything V2 loaders on tiny randomly initialised checkpoints in both published layouts."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from services.models import depth_anything  # noqa: E402
from services.models.weights import WeightsMissing  # noqa: E402

HIDDEN, LAYERS = 64, 4


def tiny_config():
    backbone = transformers.Dinov2Config(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=1,
        mlp_ratio=2,
        image_size=518,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    return transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=HIDDEN,
        patch_size=14,
        fusion_hidden_size=16,
        neck_hidden_sizes=[8, 16, 32, 32],
        head_hidden_size=8,
    )


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    model = transformers.DepthAnythingForDepthEstimation(tiny_config()).eval()
    # Random (not default-initialised) values everywhere, so that a wrong mapping shows.
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.05)
    return model


def to_original_keys(safetensors_path) -> dict[str, torch.Tensor]:
    """The inverse of the conversion: a published HF-layout checkpoint in the original repo's key layout."""
    from safetensors.torch import load_file

    state = load_file(safetensors_path)
    inverse = {}
    converted_names = depth_anything.original_to_transformers(
        _original_key_skeleton(), HIDDEN, LAYERS
    )
    # _original_key_skeleton holds the original key as the value: invert the rename with it.
    for new_key, original_key in converted_names.items():
        inverse[new_key] = original_key
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, list] = {}
    for new_key, original_key in inverse.items():
        if isinstance(original_key, tuple):  # a slice of a fused qkv tensor
            name, index = original_key
            qkv.setdefault(name, [None, None, None])[index] = state[new_key]
        else:
            out[original_key] = state[new_key]
    for name, parts in qkv.items():
        out[name] = torch.cat(parts, 0)
    return out


class _Slice:
    """A stand-in tensor that remembers which fused qkv slice the conversion took."""

    def __init__(self, name):
        self.name = name

    def __getitem__(self, item):
        return (self.name, item.start // HIDDEN)


def _original_key_skeleton() -> dict:
    model = tiny_model()
    names = {}
    base = ["pretrained.cls_token", "pretrained.mask_token", "pretrained.pos_embed",
            "pretrained.patch_embed.proj.weight", "pretrained.patch_embed.proj.bias",
            "pretrained.norm.weight", "pretrained.norm.bias"]
    for i in range(LAYERS):
        p = f"pretrained.blocks.{i}"
        base += [f"{p}.ls1.gamma", f"{p}.ls2.gamma"]
        base += [f"{p}.{part}.{kind}" for part in ("norm1", "norm2", "mlp.fc1", "mlp.fc2", "attn.proj")
                 for kind in ("weight", "bias")]
        for kind in ("weight", "bias"):
            names[f"{p}.attn.qkv.{kind}"] = _Slice(f"{p}.attn.qkv.{kind}")
    for i in range(4):
        base += [f"depth_head.projects.{i}.{k}" for k in ("weight", "bias")]
        if i != 2:
            base += [f"depth_head.resize_layers.{i}.{k}" for k in ("weight", "bias")]
        base.append(f"depth_head.scratch.layer{i + 1}_rn.weight")
    for i in range(1, 5):
        p = f"depth_head.scratch.refinenet{i}"
        base += [f"{p}.out_conv.{k}" for k in ("weight", "bias")]
        base += [f"{p}.resConfUnit{u}.conv{c}.{k}" for u in (1, 2) for c in (1, 2) for k in ("weight", "bias")]
    base += [f"depth_head.scratch.{s}.{k}" for s in ("output_conv1", "output_conv2.0", "output_conv2.2")
             for k in ("weight", "bias")]
    names.update({key: key for key in base})
    assert len(base) + 2 * LAYERS == len(model.state_dict()) - 2 * 2 * LAYERS  # qkv: 6 HF tensors per 2
    return names


def test_network_size_matches_the_published_rule():
    # 640x360: shorter side 360 -> 518, long side scaled and rounded to a multiple of 14.
    assert depth_anything.network_size(360, 640) == (518, 924)
    h, w = depth_anything.network_size(480, 480)
    assert (h, w) == (518, 518)
    for size in [(100, 333), (719, 1280), (1080, 1920)]:
        h, w = depth_anything.network_size(*size)
        assert h % 14 == 0 and w % 14 == 0 and min(h, w) >= 518


def test_missing_weights_name_the_expected_files(tmp_path):
    with pytest.raises(WeightsMissing) as info:
        depth_anything.load(tmp_path)
    message = str(info.value)
    assert "model.safetensors" in message and "depth_anything_v2_vitl.pth" in message
    assert str((tmp_path / "depth_anything_v2").resolve()) in message


def test_hf_layout_loads_and_predicts(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "depth_anything_v2")
    from safetensors import safe_open

    with safe_open(tmp_path / "depth_anything_v2" / "model.safetensors", "pt") as written:
        # The Hub's published files carry these (transformers 4.x) names.
        assert "backbone.encoder.layer.0.attention.attention.query.weight" in set(written.keys())
    loaded = depth_anything.load(tmp_path)
    assert "transformers" in loaded.backend and "depth_anything_v2/model.safetensors" in loaded.backend
    frames = np.random.default_rng(0).integers(0, 256, (2, 36, 64, 3), dtype=np.uint8)
    out = loaded.infer({"image": frames})["disparity"]
    assert out.shape == (2, 36, 64) and out.dtype == np.float32
    assert np.isfinite(out).all() and (out >= 0).all()  # ReLU head: non-negative disparity
    assert out.std() > 0
    # Same frame alone gives the same answer (batching changes nothing).
    single = loaded.infer({"image": frames[1]})["disparity"][0]
    np.testing.assert_allclose(single, out[1], rtol=1e-4, atol=1e-5)


def test_original_pth_converts_to_the_same_model(tmp_path):
    model = tiny_model(seed=3)
    model.save_pretrained(tmp_path / "hf" / "depth_anything_v2")
    folder = tmp_path / "orig" / "depth_anything_v2"
    folder.mkdir(parents=True)
    original = to_original_keys(tmp_path / "hf" / "depth_anything_v2" / "model.safetensors")
    assert "pretrained.blocks.0.attn.qkv.weight" in original
    # The original repo's tiny checkpoint: 4 blocks with intermediate layers spread evenly.
    torch.save(original, folder / "depth_anything_v2_vitl.pth")

    from_pth = depth_anything.load(tmp_path / "orig")
    assert "depth_anything_v2_vitl.pth" in from_pth.backend
    cfg = from_pth.model.config
    assert cfg.backbone_config.hidden_size == HIDDEN and cfg.neck_hidden_sizes == [8, 16, 32, 32]
    frame = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    expected = depth_anything.load(tmp_path / "hf").infer({"image": frame})["disparity"]
    got = from_pth.infer({"image": frame})["disparity"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_conversion_rejects_unknown_keys():
    skeleton = {k: v for k, v in _original_key_skeleton().items()}
    skeleton["pretrained.something_else"] = "x"
    with pytest.raises(ValueError, match="unexpected keys"):
        depth_anything.original_to_transformers(skeleton, HIDDEN, LAYERS)
