"""Depth Anything V2: the published relative-depth model, through transformers.

Two published layouts are read from ``{weights_dir}/depth_anything_v2/``:

- the Hugging Face layout (``config.json`` + ``model.safetensors``, as in
  ``depth-anything/Depth-Anything-V2-Large-hf``), loaded with
  ``DepthAnythingForDepthEstimation.from_pretrained`` and never fetched;
- the original repository's ``depth_anything_v2_vit{s,b,l}.pth`` state dict,
  whose keys are renamed to transformers' names (the mapping of transformers'
  own conversion script) and whose architecture is read off the tensor shapes.

Pre- and post-processing follow the original ``infer_image``: the frame is
resized (bicubic) so that its shorter side reaches 518 with both sides a
multiple of 14, normalised with the ImageNet statistics, and the predicted
relative disparity (larger = nearer, affine-invariant) is resized back to the
frame bilinearly with aligned corners.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from services.models.images import as_image_batch, imagenet_normalise, to_unit_float
from services.models.weights import describe, find_layout

NAME = "depth_anything_v2"
SUBDIR = "depth_anything_v2"
HF_LAYOUT = ("config.json", "model.safetensors")
ORIGINAL_FILES = {
    "vitl": "depth_anything_v2_vitl.pth",
    "vitb": "depth_anything_v2_vitb.pth",
    "vits": "depth_anything_v2_vits.pth",
}
LAYOUTS = [HF_LAYOUT, *[(name,) for name in ORIGINAL_FILES.values()]]

# The published model's input size and the ViT patch size.
INPUT_SIZE = 518
PATCH = 14

# Tensor contract of infer() (the Triton model mirrors it).
INPUTS = {"image": ("uint8", (-1, -1, -1, 3))}
OUTPUTS = {"disparity": ("float32", (-1, -1, -1))}

# Original repo: which DINOv2 blocks feed the DPT head, by depth (0-based block
# indices). transformers counts the embeddings as stage 0, hence the +1 below.
_INTERMEDIATE_BLOCKS = {12: [2, 5, 8, 11], 24: [4, 11, 17, 23], 40: [9, 19, 29, 39]}


# ----------------------------------------------------------------------------- pre/post


def network_size(height: int, width: int, input_size: int = INPUT_SIZE, multiple: int = PATCH) -> tuple[int, int]:
    """(h, w) the network sees: keep aspect, shorter side >= input_size, multiples of 14 (lower bound)."""
    scale = max(input_size / height, input_size / width)

    def constrain(x: float) -> int:
        y = int(round(x / multiple) * multiple)
        if y < input_size:
            y = int(math.ceil(x / multiple) * multiple)
        return y

    return constrain(scale * height), constrain(scale * width)


def preprocess(images: np.ndarray, input_size: int = INPUT_SIZE) -> np.ndarray:
    """RGB frames (N, H, W, 3) to normalised NCHW float32 at the network size."""
    images = as_image_batch(images)
    height, width = images.shape[1:3]
    net_h, net_w = network_size(height, width, input_size)
    resized = np.stack(
        [cv2.resize(to_unit_float(frame), (net_w, net_h), interpolation=cv2.INTER_CUBIC) for frame in images]
    )
    return np.ascontiguousarray(imagenet_normalise(resized).transpose(0, 3, 1, 2), dtype=np.float32)


# ----------------------------------------------------------------------------- original checkpoint


def original_to_transformers(state: dict[str, Any], hidden_size: int, num_layers: int) -> dict[str, Any]:
    """Rename an original Depth Anything (V1/V2) state dict to DepthAnythingForDepthEstimation's keys.

    The renames are those of transformers' ``convert_depth_anything_to_hf.py``:
    DINOv2 ``pretrained.*`` to ``backbone.*`` (fused qkv split into query/key/value),
    ``depth_head.projects/resize_layers`` to the reassemble stage, the refinenets
    (in reverse order) to the fusion stage, and the output convs to the head.
    """
    state = dict(state)
    out: dict[str, Any] = {}

    def move(old: str, new: str) -> None:
        out[new] = state.pop(old)

    move("pretrained.cls_token", "backbone.embeddings.cls_token")
    if "pretrained.mask_token" in state:
        move("pretrained.mask_token", "backbone.embeddings.mask_token")
    move("pretrained.pos_embed", "backbone.embeddings.position_embeddings")
    move("pretrained.patch_embed.proj.weight", "backbone.embeddings.patch_embeddings.projection.weight")
    move("pretrained.patch_embed.proj.bias", "backbone.embeddings.patch_embeddings.projection.bias")
    for i in range(num_layers):
        src, dst = f"pretrained.blocks.{i}", f"backbone.encoder.layer.{i}"
        move(f"{src}.ls1.gamma", f"{dst}.layer_scale1.lambda1")
        move(f"{src}.ls2.gamma", f"{dst}.layer_scale2.lambda1")
        for part in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
            for kind in ("weight", "bias"):
                move(f"{src}.{part}.{kind}", f"{dst}.{part}.{kind}")
        for kind in ("weight", "bias"):
            move(f"{src}.attn.proj.{kind}", f"{dst}.attention.output.dense.{kind}")
            fused = state.pop(f"{src}.attn.qkv.{kind}")
            for index, name in enumerate(("query", "key", "value")):
                out[f"{dst}.attention.attention.{name}.{kind}"] = fused[index * hidden_size : (index + 1) * hidden_size]
    move("pretrained.norm.weight", "backbone.layernorm.weight")
    move("pretrained.norm.bias", "backbone.layernorm.bias")

    for i in range(4):
        for kind in ("weight", "bias"):
            move(f"depth_head.projects.{i}.{kind}", f"neck.reassemble_stage.layers.{i}.projection.{kind}")
            if i != 2:  # the third level keeps its resolution: no resize layer
                move(f"depth_head.resize_layers.{i}.{kind}", f"neck.reassemble_stage.layers.{i}.resize.{kind}")
        move(f"depth_head.scratch.layer{i + 1}_rn.weight", f"neck.convs.{i}.weight")

    for i in range(1, 5):
        src, dst = f"depth_head.scratch.refinenet{i}", f"neck.fusion_stage.layers.{4 - i}"
        for kind in ("weight", "bias"):
            move(f"{src}.out_conv.{kind}", f"{dst}.projection.{kind}")
            for unit in (1, 2):
                for conv in (1, 2):
                    move(f"{src}.resConfUnit{unit}.conv{conv}.{kind}", f"{dst}.residual_layer{unit}.convolution{conv}.{kind}")

    head = {"output_conv1": "conv1", "output_conv2.0": "conv2", "output_conv2.2": "conv3"}
    for src, dst in head.items():
        for kind in ("weight", "bias"):
            move(f"depth_head.scratch.{src}.{kind}", f"head.{dst}.{kind}")

    # The original DPT head also carries a CLS-token readout that V2 never uses.
    leftovers = [key for key in state if not key.startswith("depth_head.readout_projects")]
    if leftovers:
        raise ValueError(f"unexpected keys in the Depth Anything checkpoint: {leftovers[:8]}")
    return out


def config_from_original(state: dict[str, Any]):
    """A DepthAnythingConfig matching an original V2 state dict, read off its tensor shapes."""
    from transformers import DepthAnythingConfig, Dinov2Config

    hidden = int(state["pretrained.cls_token"].shape[-1])
    blocks = {int(m.group(1)) for key in state if (m := re.match(r"pretrained\.blocks\.(\d+)\.", key))}
    num_layers = max(blocks) + 1
    num_tokens = int(state["pretrained.pos_embed"].shape[1]) - 1
    grid = int(round(math.sqrt(num_tokens)))
    patch = int(state["pretrained.patch_embed.proj.weight"].shape[-1])
    mlp_hidden = int(state["pretrained.blocks.0.mlp.fc1.weight"].shape[0])
    intermediate = _INTERMEDIATE_BLOCKS.get(num_layers) or [
        (num_layers * (i + 1)) // 4 - 1 for i in range(4)
    ]
    backbone = Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        # Every published DINOv2 size uses 64-wide heads.
        num_attention_heads=max(1, hidden // 64),
        mlp_ratio=mlp_hidden // hidden,
        image_size=grid * patch,
        patch_size=patch,
        out_indices=[i + 1 for i in intermediate],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=hidden,
        patch_size=patch,
        fusion_hidden_size=int(state["depth_head.scratch.layer1_rn.weight"].shape[0]),
        neck_hidden_sizes=[int(state[f"depth_head.projects.{i}.weight"].shape[0]) for i in range(4)],
        head_hidden_size=int(state["depth_head.scratch.output_conv2.0.weight"].shape[0]),
        depth_estimation_type="relative",
    )


def load_original_checkpoint(path: Path):
    """Build DepthAnythingForDepthEstimation from an original ``depth_anything_v2_*.pth``."""
    import torch
    from transformers import DepthAnythingForDepthEstimation

    state = torch.load(path, map_location="cpu", weights_only=True)
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    config = config_from_original(state)
    model = DepthAnythingForDepthEstimation(config)
    converted = original_to_transformers(
        state, config.backbone_config.hidden_size, config.backbone_config.num_hidden_layers
    )
    model.load_state_dict(_in_model_names(converted, model), strict=True)
    return model


# transformers 5 renamed DINOv2's attention modules; its published checkpoints (and
# from_pretrained) keep the 4.x names, so a hand-built state dict must follow the module.
_ATTENTION_RENAMES = (
    ("attention.attention.query", "attention.q_proj"),
    ("attention.attention.key", "attention.k_proj"),
    ("attention.attention.value", "attention.v_proj"),
    ("attention.output.dense", "attention.o_proj"),
)


def _in_model_names(state: dict[str, Any], model) -> dict[str, Any]:
    expected = set(model.state_dict())
    if set(state) <= expected:
        return state
    renamed = {}
    for key, value in state.items():
        for old, new in _ATTENTION_RENAMES:
            key = key.replace(old, new)
        renamed[key] = value
    return renamed


# ----------------------------------------------------------------------------- the model


@dataclass
class DepthAnythingV2:
    model: Any
    backend: str
    device: str = "cpu"
    input_size: int = INPUT_SIZE
    name: str = field(default=NAME)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """RGB frames (N, H, W, 3) or one (H, W, 3) to relative disparity (N, H, W) float32."""
        import torch
        import torch.nn.functional as F

        images = as_image_batch(images)
        height, width = images.shape[1:3]
        pixels = torch.from_numpy(preprocess(images, self.input_size)).to(self.device)
        with torch.inference_mode():
            disparity = self.model(pixel_values=pixels).predicted_depth  # (N, h, w)
            disparity = F.interpolate(disparity[:, None], (height, width), mode="bilinear", align_corners=True)
        return disparity[:, 0].float().cpu().numpy()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"disparity": self.predict(inputs["image"])}


def load(weights_dir: Path, device: str = "cpu") -> DepthAnythingV2:
    """Load Depth Anything V2 from ``weights_dir/depth_anything_v2/`` (either published layout)."""
    import torch
    import transformers

    folder = Path(weights_dir) / SUBDIR
    layout, paths = find_layout("Depth Anything V2", folder, LAYOUTS)
    if layout == 0:
        model = transformers.DepthAnythingForDepthEstimation.from_pretrained(
            str(folder), local_files_only=True, dtype=torch.float32
        )
        source = paths[1]
    else:
        model = load_original_checkpoint(paths[0])
        source = paths[0]
    model = model.to(device).eval()
    variant = _variant(model.config.backbone_config.hidden_size)
    backend = (
        f"depth-anything-v2-{variant} (transformers {transformers.__version__}, "
        f"weights {describe(source, weights_dir)})"
    )
    return DepthAnythingV2(model=model, backend=backend, device=device)


def _variant(hidden_size: int) -> str:
    return {384: "vits", 768: "vitb", 1024: "vitl", 1536: "vitg"}.get(hidden_size, f"custom-{hidden_size}")
