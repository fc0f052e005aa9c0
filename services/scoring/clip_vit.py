"""CLIP's image tower (ViT), with open_clip's / OpenAI's parameter names.

open_clip_torch cannot be imported here: its package imports torchvision at
import time and no CPU torchvision build is available. So the vision
transformer is re-built from its published definition with the same module
and parameter names (``visual.conv1``, ``visual.transformer.resblocks.N.attn
.in_proj_weight``, ...), and a published checkpoint's ``visual.*`` tensors are
loaded into it strictly: every tensor must be used and have the right shape.
The architecture (width, depth, patch and image size, output size) is read off
the checkpoint's shapes, as OpenAI's ``build_model`` does.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import cv2
import torch
from torch import nn

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation (its ViT-L/14 was trained with it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input type, as in CLIP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_width: int, quick_gelu: bool) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, mlp_width))
        self.mlp.add_module("gelu", QuickGELU() if quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(mlp_width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_width: int, quick_gelu: bool) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_width, quick_gelu) for _ in range(layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


@dataclass(frozen=True)
class VisionConfig:
    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    mlp_width: int
    output_dim: int


class VisionTransformer(nn.Module):
    """CLIP's ViT image encoder: class-token pooling, ``ln_post``, projection."""

    def __init__(self, cfg: VisionConfig, quick_gelu: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        grid = cfg.image_size // cfg.patch_size
        self.conv1 = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(cfg.width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, cfg.width))
        self.ln_pre = LayerNorm(cfg.width)
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_width, quick_gelu)
        self.ln_post = LayerNorm(cfg.width)
        self.proj = nn.Parameter(torch.zeros(cfg.width, cfg.output_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv1(images).flatten(2).transpose(1, 2)  # (B, grid*grid, width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


def vision_config_from_state(state: dict[str, torch.Tensor], head_width: int = 64) -> VisionConfig:
    """Read the ViT's shape off its ``visual.*`` tensors (OpenAI's build_model rule)."""
    width, _, patch, _ = state["visual.conv1.weight"].shape
    layers = len({k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")})
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    return VisionConfig(
        image_size=patch * grid,
        patch_size=patch,
        width=width,
        layers=layers,
        heads=max(1, width // head_width),
        mlp_width=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        output_dim=state["visual.proj"].shape[1],
    )


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A CLIP checkpoint as a flat state dict: open_clip ``.bin``/``.pt``/``.safetensors`` or OpenAI's TorchScript ``.pt``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    elif _is_torchscript(path):
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    # Checkpoints saved from a wrapped model prefix every key with "module.".
    return {k.removeprefix("module."): v for k, v in state.items()}


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def load_vision_tower(path: Path, quick_gelu: bool = True) -> VisionTransformer:
    """Build the ViT that the checkpoint describes and load its weights strictly."""
    state = read_checkpoint(path)
    if "visual.conv1.weight" not in state:
        raise ValueError(f"{path} has no CLIP ViT image tower (no visual.conv1.weight)")
    model = VisionTransformer(vision_config_from_state(state), quick_gelu=quick_gelu)
    visual = {k.removeprefix("visual."): v.float() for k, v in state.items() if k.startswith("visual.")}
    model.load_state_dict(visual, strict=True)
    return model.eval()


def preprocess(frames: np.ndarray, image_size: int) -> torch.Tensor:
    """CLIP's preprocessing on (K, H, W, 3) uint8 RGB: shorter side to size, centre crop, normalise.

    CLIP resizes with PIL's antialiased bicubic; OpenCV's area filter (when
    shrinking) or bicubic (when enlarging) comes close but is not bit-equal.
    """
    out = []
    for frame in frames:
        h, w = frame.shape[:2]
        scale = image_size / min(h, w)
        nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
        shrinking = nh <= h
        resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
        top, left = (nh - image_size) // 2, (nw - image_size) // 2
        out.append(resized[top : top + image_size, left : left + image_size])
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    return (x - mean) / std
