"""The LAION aesthetic loading code, on a tiny random CLIP and MLP written in the published formats."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from services.scoring.aesthetic import MLP_FILE, SUBDIR, AestheticScorer, find_aesthetic_weights
from services.scoring.base import SampledFrames
from services.scoring.clip_vit import load_vision_tower, preprocess, read_checkpoint

WIDTH, LAYERS, PATCH, GRID, OUT, HEAD_WIDTH = 128, 2, 14, 2, 32, 64  # 2 heads, 28x28 input


def open_clip_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under open_clip's CLIP key names (image tower and a stub text tower)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.05):
        return torch.randn(*shape, generator=g) * scale

    w = WIDTH
    state = {
        "visual.class_embedding": rnd(w),
        "visual.positional_embedding": rnd(GRID * GRID + 1, w),
        "visual.proj": rnd(w, OUT),
        "visual.conv1.weight": rnd(w, 3, PATCH, PATCH),
        "visual.ln_pre.weight": 1 + rnd(w), "visual.ln_pre.bias": rnd(w),
        "visual.ln_post.weight": 1 + rnd(w), "visual.ln_post.bias": rnd(w),
    }
    for i in range(LAYERS):
        p = f"visual.transformer.resblocks.{i}."
        state.update({
            p + "ln_1.weight": 1 + rnd(w), p + "ln_1.bias": rnd(w),
            p + "attn.in_proj_weight": rnd(3 * w, w), p + "attn.in_proj_bias": rnd(3 * w),
            p + "attn.out_proj.weight": rnd(w, w), p + "attn.out_proj.bias": rnd(w),
            p + "ln_2.weight": 1 + rnd(w), p + "ln_2.bias": rnd(w),
            p + "mlp.c_fc.weight": rnd(4 * w, w), p + "mlp.c_fc.bias": rnd(4 * w),
            p + "mlp.c_proj.weight": rnd(w, 4 * w), p + "mlp.c_proj.bias": rnd(w),
        })
    # The text tower is in the file too; the loader must ignore it.
    state.update({"token_embedding.weight": rnd(50, 16), "positional_embedding": rnd(8, 16),
                  "ln_final.weight": rnd(16), "text_projection": rnd(16, OUT), "logit_scale": torch.tensor(4.6)})
    return state


def reference_vit(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """CLIP's image tower written out with functional ops (independent of the module under test)."""
    v = {k[len("visual."):]: t for k, t in state.items() if k.startswith("visual.")}
    x = F.conv2d(x, v["conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    x = torch.cat([v["class_embedding"].expand(x.shape[0], 1, -1), x], 1) + v["positional_embedding"]
    x = F.layer_norm(x, (WIDTH,), v["ln_pre.weight"], v["ln_pre.bias"])
    heads = WIDTH // HEAD_WIDTH
    for i in range(LAYERS):
        p = f"transformer.resblocks.{i}."
        y = F.layer_norm(x, (WIDTH,), v[p + "ln_1.weight"], v[p + "ln_1.bias"])
        q, k, val = F.linear(y, v[p + "attn.in_proj_weight"], v[p + "attn.in_proj_bias"]).chunk(3, dim=-1)
        split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, HEAD_WIDTH).transpose(1, 2)  # noqa: E731
        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(HEAD_WIDTH), dim=-1) @ split(val)
        att = att.transpose(1, 2).reshape(x.shape)
        x = x + F.linear(att, v[p + "attn.out_proj.weight"], v[p + "attn.out_proj.bias"])
        y = F.layer_norm(x, (WIDTH,), v[p + "ln_2.weight"], v[p + "ln_2.bias"])
        h = F.linear(y, v[p + "mlp.c_fc.weight"], v[p + "mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), v[p + "mlp.c_proj.weight"], v[p + "mlp.c_proj.bias"])
    return F.layer_norm(x[:, 0], (WIDTH,), v["ln_post.weight"], v["ln_post.bias"]) @ v["proj"]


class PublishedMLP(nn.Module):
    """The improved-aesthetic-predictor head, as its training code defines it (at tiny size)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, 16), nn.Dropout(0.2), nn.Linear(16, 8), nn.Dropout(0.2),
                                    nn.Linear(8, 4), nn.Dropout(0.1), nn.Linear(4, 2), nn.Linear(2, 1))

    def forward(self, x):
        return self.layers(x)


@pytest.fixture()
def weights_dir(tmp_path):
    folder = tmp_path / SUBDIR
    folder.mkdir()
    torch.save(open_clip_state(), folder / "open_clip_pytorch_model.bin")
    torch.manual_seed(1)
    torch.save(PublishedMLP(OUT).state_dict(), folder / MLP_FILE)
    return tmp_path


def real_frames(clips) -> np.ndarray:
    from .conftest import read_rgb_frame

    return np.stack([read_rgb_frame(clips["pan"], i) for i in (5, 25, 45)])


def test_vision_tower_loads_open_clip_names_and_matches_reference(weights_dir, clips):
    path = weights_dir / SUBDIR / "open_clip_pytorch_model.bin"
    model = load_vision_tower(path)
    assert (model.cfg.width, model.cfg.layers, model.cfg.heads, model.cfg.image_size, model.cfg.output_dim) == (
        WIDTH, LAYERS, 2, PATCH * GRID, OUT)
    x = preprocess(real_frames(clips), model.cfg.image_size)
    assert x.shape == (3, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_vit(read_checkpoint(path), x), rtol=1e-4, atol=1e-5)


def test_a_checkpoint_with_a_missing_tensor_is_refused(tmp_path):
    state = open_clip_state()
    del state["visual.transformer.resblocks.1.attn.out_proj.bias"]
    torch.save(state, tmp_path / "broken.bin")
    with pytest.raises(RuntimeError, match="out_proj.bias"):
        load_vision_tower(tmp_path / "broken.bin")


def test_openai_torchscript_archive_loads_the_same(weights_dir, tmp_path):
    bin_model = load_vision_tower(weights_dir / SUBDIR / "open_clip_pytorch_model.bin")

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = bin_model

        def forward(self, x):
            return self.visual(x)

    x = torch.randn(1, 3, 28, 28)
    torch.jit.trace(Wrapper().eval(), x, check_trace=False).save(str(tmp_path / "ViT-L-14.pt"))
    jit_model = load_vision_tower(tmp_path / "ViT-L-14.pt")
    with torch.no_grad():
        torch.testing.assert_close(jit_model(x), bin_model(x))


def test_scorer_applies_the_mlp_to_normalised_embeddings(weights_dir, clips):
    assert find_aesthetic_weights(weights_dir) is not None
    scorer = AestheticScorer.from_dir(weights_dir)
    frames = real_frames(clips)
    path = weights_dir / SUBDIR / "open_clip_pytorch_model.bin"
    mlp = PublishedMLP(OUT)
    mlp.load_state_dict(torch.load(weights_dir / SUBDIR / MLP_FILE))
    with torch.no_grad():
        emb = reference_vit(read_checkpoint(path), preprocess(frames, 28))
        expected = mlp.eval()(emb / emb.norm(dim=-1, keepdim=True))[:, 0].mean().item()
    sampled = SampledFrames(rgb=frames, indices=[5, 25, 45], flow_pairs=np.zeros((0, 2, 1, 1), np.uint8),
                            flow_indices=[], num_frames=50, source_size=(640, 360))
    assert scorer.score(sampled)["aesthetic"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert MLP_FILE in scorer.provenance()["aesthetic"]


def test_suite_uses_aesthetic_with_weights_and_brisque_without(weights_dir, tmp_path):
    from services.scoring.suite import build_suite
    from services.settings import Settings

    def build(settings):
        return build_suite(settings.score, settings.models, settings.triton, settings.video)

    with_weights = build(Settings(models={"weights_dir": weights_dir}))
    names = [s.name for s in with_weights.scorers]
    assert "aesthetic" in names and "brisque" not in names and not with_weights.notes
    without = build(Settings(models={"weights_dir": tmp_path / "empty"}))
    assert "brisque" in [s.name for s in without.scorers] and "aesthetic" not in [s.name for s in without.scorers]
    assert "aesthetic not computed" in without.notes[0]
