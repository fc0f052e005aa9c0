"""SAM 2.1 image segmentation from point prompts, on transformers' ``Sam2Model``.

The ``sam2`` package itself cannot be used here: it needs torchvision (its
predictor's transforms) and hydra. Its published checkpoint is plain torch,
though, so this module reads it directly:

- ``{weights_dir}/sam2/sam2.1_hiera_large.pt``: a dict whose ``"model"`` entry is
  the SAM2Base state dict (image encoder, prompt encoder, mask decoder, and the
  video-memory modules that single-frame prompting does not use);
- the model's hydra config ``sam2.1_hiera_l.yaml`` next to it (the file shipped
  in the sam2 package under ``configs/sam2.1/``); without it, the published
  hiera-large values below are used;
- or the Hugging Face layout (``config.json`` + ``model.safetensors``, as in
  ``facebook/sam2.1-hiera-large``), loaded with ``Sam2Model.from_pretrained``.

The original keys are renamed to transformers' modules (the renames were
derived module by module from the original ``SAM2Base`` and checked
numerically against it on random weights). Prediction follows
``SAM2ImagePredictor``: the frame is resized to 1024x1024 (bilinear,
antialiased), ImageNet-normalised, point prompts are scaled into that frame,
``no_mem_embed`` is added to the coarsest features, and the 256x256 mask logits
are resized back to the frame and thresholded at 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from services.models.images import IMAGENET_MEAN, IMAGENET_STD, as_image_batch, to_unit_float
from services.models.weights import describe, find_layout

NAME = "sam2"
SUBDIR = "sam2"
CHECKPOINT = "sam2.1_hiera_large.pt"
HYDRA_CONFIG = "sam2.1_hiera_l.yaml"
LAYOUTS = [(CHECKPOINT, HYDRA_CONFIG), (CHECKPOINT,), ("config.json", "model.safetensors")]

# Tensor contract of infer(): one frame, K prompts of P points each (label 1 foreground,
# 0 background, -1 padding); one mask per prompt at the frame's size.
INPUTS = {
    "image": ("uint8", (-1, -1, 3)),
    "points": ("float32", (-1, -1, 2)),
    "labels": ("int32", (-1, -1)),
}
OUTPUTS = {"masks": ("bool", (-1, -1, -1)), "scores": ("float32", (-1,))}

# The published hiera-large model section (sam2.1_hiera_l.yaml), the parts the image model needs.
HIERA_LARGE = {
    "image_encoder": {
        "trunk": {
            "embed_dim": 144,
            "num_heads": 2,
            "stages": [2, 6, 36, 4],
            "global_att_blocks": [23, 33, 43],
            "window_pos_embed_bkg_spatial_size": [7, 7],
            "window_spec": [8, 4, 16, 8],
        },
        "neck": {"d_model": 256, "backbone_channel_list": [1152, 576, 288, 144], "fpn_top_down_levels": [2, 3]},
    },
    "image_size": 1024,
}

# Parts of the published checkpoint that only the video predictor (memory) uses.
_VIDEO_ONLY = re.compile(
    r"^(memory_attention|memory_encoder|maskmem_tpos_enc|no_mem_pos_enc|no_obj_ptr|no_obj_embed_spatial"
    r"|mask_downsample|obj_ptr_proj|obj_ptr_tpos_proj)\b"
)


# ----------------------------------------------------------------------------- config


def read_hydra_model_config(path: Path) -> dict[str, Any]:
    """The ``model:`` section of a sam2 hydra YAML (plain YAML; ``_target_`` entries are ignored)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if "model" not in data:
        raise ValueError(f"{path} has no 'model' section: not a sam2 model config")
    return data["model"]


def config_from_hydra(model_cfg: dict[str, Any]):
    """A transformers Sam2Config equivalent to a sam2 hydra model section."""
    from transformers import Sam2Config

    trunk = model_cfg["image_encoder"]["trunk"]
    neck = model_cfg["image_encoder"]["neck"]
    image_size = int(model_cfg.get("image_size", 1024))
    embed, heads = int(trunk["embed_dim"]), int(trunk["num_heads"])
    stages = [int(n) for n in trunk["stages"]]
    # Hiera doubles width and heads at each of its stages (dim_mul = head_mul = 2, sam2 defaults).
    dims = [embed * 2**i for i in range(len(stages))]
    d_model = int(neck["d_model"])
    vision = {
        "backbone_config": {
            "model_type": "sam2_hiera_det_model",
            "hidden_size": embed,
            "num_attention_heads": heads,
            "image_size": [image_size, image_size],
            "blocks_per_stage": stages,
            "embed_dim_per_stage": dims,
            "num_attention_heads_per_stage": [heads * 2**i for i in range(len(stages))],
            "window_size_per_stage": [int(w) for w in trunk.get("window_spec", [8, 4, 14, 7])],
            "global_attention_blocks": [int(b) for b in trunk.get("global_att_blocks", [12, 16, 20])],
            "window_positional_embedding_background_size": list(
                trunk.get("window_pos_embed_bkg_spatial_size", [14, 14])
            ),
        },
        "backbone_channel_list": [int(c) for c in neck["backbone_channel_list"]],
        # Strides 4, 8, 16 of the input: the three levels the mask decoder reads.
        "backbone_feature_sizes": [[image_size // s, image_size // s] for s in (4, 8, 16)],
        "fpn_hidden_size": d_model,
        "fpn_top_down_levels": [int(level) for level in neck.get("fpn_top_down_levels", [2, 3])],
    }
    return Sam2Config(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": d_model, "image_size": image_size, "patch_size": 16},
        # SAM2Base builds its decoder with these fixed sizes (2 layers, 8 heads, MLP 2048, IoU head 256).
        mask_decoder_config={"hidden_size": d_model},
    )


# ----------------------------------------------------------------------------- checkpoint keys


def _mlp_rename(prefix: str, key: str, num_layers: int) -> str:
    """sam2's MLP(layers.0..n-1) to transformers' (proj_in, layers.0..n-3, proj_out)."""
    match = re.match(re.escape(prefix) + r"layers\.(\d+)\.(.*)$", key)
    if not match:
        return key
    index, rest = int(match.group(1)), match.group(2)
    if index == 0:
        return f"{prefix}proj_in.{rest}"
    if index == num_layers - 1:
        return f"{prefix}proj_out.{rest}"
    return f"{prefix}layers.{index - 1}.{rest}"


def original_to_transformers(state: dict[str, Any]) -> dict[str, Any]:
    """Rename a sam2 SAM2Base state dict to transformers' Sam2Model keys (video-only parts dropped)."""
    import torch

    out: dict[str, Any] = {}
    point_embeddings: dict[int, Any] = {}
    for key, value in state.items():
        if _VIDEO_ONLY.match(key):
            continue
        new = key
        if key == "no_mem_embed":
            new = "no_memory_embedding"
        elif key.startswith("image_encoder.trunk."):
            new = "vision_encoder.backbone." + key[len("image_encoder.trunk.") :]
            new = new.replace("patch_embed.proj.", "patch_embed.projection.")
            new = re.sub(r"\.norm(\d)\.", r".layer_norm\1.", new)
            if (m := re.match(r"(vision_encoder\.backbone\.blocks\.\d+\.mlp\.)", new)):
                new = _mlp_rename(m.group(1), new, 2)
        elif key.startswith("image_encoder.neck.convs."):
            new = "vision_encoder.neck.convs." + key[len("image_encoder.neck.convs.") :].replace(".conv.", ".")
        elif key.startswith("sam_prompt_encoder."):
            rest = key[len("sam_prompt_encoder.") :]
            if rest == "pe_layer.positional_encoding_gaussian_matrix":
                out["prompt_encoder.shared_embedding.positional_embedding"] = value
                out["shared_image_embedding.positional_embedding"] = value
                continue
            if (m := re.match(r"point_embeddings\.(\d+)\.weight$", rest)):
                point_embeddings[int(m.group(1))] = value
                continue
            downscaling = {"0": "conv1", "1": "layer_norm1", "3": "conv2", "4": "layer_norm2", "6": "conv3"}
            if (m := re.match(r"mask_downscaling\.(\d)\.(.*)$", rest)):
                rest = f"mask_embed.{downscaling[m.group(1)]}.{m.group(2)}"
            new = "prompt_encoder." + rest
        elif key.startswith("sam_mask_decoder."):
            new = "mask_decoder." + key[len("sam_mask_decoder.") :]
            new = new.replace(".out_proj.", ".o_proj.")
            new = re.sub(r"\.norm(\d)\.", r".layer_norm\1.", new)
            new = new.replace(".norm_final_attn.", ".layer_norm_final_attn.")
            upscaling = {"0": "upscale_conv1", "1": "upscale_layer_norm", "3": "upscale_conv2"}
            if (m := re.match(r"mask_decoder\.output_upscaling\.(\d)\.(.*)$", new)):
                new = f"mask_decoder.{upscaling[m.group(1)]}.{m.group(2)}"
            if (m := re.match(r"(mask_decoder\.transformer\.layers\.\d+\.mlp\.)", new)):
                new = _mlp_rename(m.group(1), new, 2)
            for head in (r"mask_decoder\.output_hypernetworks_mlps\.\d+\.", r"mask_decoder\.iou_prediction_head\.",
                         r"mask_decoder\.pred_obj_score_head\."):
                if (m := re.match(f"({head})", new)):
                    new = _mlp_rename(m.group(1), new, 3)
        else:
            raise ValueError(f"unexpected key in the SAM 2.1 checkpoint: {key}")
        out[new] = value
    if point_embeddings:
        out["prompt_encoder.point_embed.weight"] = torch.cat(
            [point_embeddings[i] for i in sorted(point_embeddings)], dim=0
        )
    return out


def load_original_checkpoint(checkpoint: Path, hydra_config: Path | None):
    import torch
    from transformers import Sam2Model

    model_cfg = read_hydra_model_config(hydra_config) if hydra_config else HIERA_LARGE
    config = config_from_hydra(model_cfg)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or "model" not in saved:
        raise ValueError(f"{checkpoint} is not a sam2 checkpoint (no 'model' entry)")
    model = Sam2Model(config)
    model.load_state_dict(original_to_transformers(saved["model"]), strict=True)
    return model


# ----------------------------------------------------------------------------- the model


@dataclass
class Sam2:
    model: Any
    backend: str
    device: str = "cpu"
    name: str = field(default=NAME)

    @property
    def image_size(self) -> int:
        return int(self.model.config.prompt_encoder_config.image_size)

    def preprocess(self, image: np.ndarray):
        """One RGB frame to the (1, 3, S, S) normalised tensor SAM2 sees."""
        import torch
        import torch.nn.functional as F

        frame = torch.from_numpy(to_unit_float(as_image_batch(image)[0])).permute(2, 0, 1)[None]
        size = self.image_size
        frame = F.interpolate(frame, (size, size), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.from_numpy(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.from_numpy(IMAGENET_STD).view(1, 3, 1, 1)
        return ((frame - mean) / std).to(self.device)

    def encode(self, image: np.ndarray) -> list:
        """The image encoder's multi-scale embeddings for one frame (reusable across prompts)."""
        import torch

        with torch.inference_mode():
            return self.model.get_image_embeddings(self.preprocess(image))

    def segment(
        self,
        embeddings: list,
        frame_hw: tuple[int, int],
        points: np.ndarray,
        labels: np.ndarray,
        multimask: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masks (K, H, W) bool and predicted IoU (K,) for K prompts of (x, y) pixel points."""
        import torch
        import torch.nn.functional as F

        height, width = frame_hw
        points = np.asarray(points, dtype=np.float32).reshape(-1, np.shape(points)[-2], 2)
        labels = np.asarray(labels, dtype=np.int32).reshape(points.shape[:2])
        if len(points) == 0:
            return np.zeros((0, height, width), bool), np.zeros(0, np.float32)
        scale = np.array([self.image_size / width, self.image_size / height], np.float32)
        coords = torch.from_numpy(points * scale)[None].to(self.device)  # (1, K, P, 2)
        with torch.inference_mode():
            out = self.model(
                image_embeddings=embeddings,
                input_points=coords,
                input_labels=torch.from_numpy(labels)[None].to(self.device),
                multimask_output=multimask,
            )
            logits, scores = out.pred_masks[0], out.iou_scores[0]  # (K, M, 256, 256), (K, M)
            best = scores.argmax(dim=1)
            index = torch.arange(len(best))
            logits, scores = logits[index, best], scores[index, best]
            masks = F.interpolate(logits[:, None], (height, width), mode="bilinear", align_corners=False)[:, 0] > 0
        return masks.cpu().numpy(), scores.float().cpu().numpy()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        image = as_image_batch(inputs["image"])[0]
        points = np.asarray(inputs["points"], np.float32)
        labels = inputs.get("labels")
        if labels is None:
            labels = np.ones(points.shape[:-1], np.int32)
        masks, scores = self.segment(self.encode(image), image.shape[:2], points, labels)
        return {"masks": masks, "scores": scores}


def load(weights_dir: Path, device: str = "cpu") -> Sam2:
    """Load SAM 2.1 from ``weights_dir/sam2/`` (the original .pt, with its YAML or without, or the HF layout)."""
    import torch
    import transformers

    folder = Path(weights_dir) / SUBDIR
    layout, paths = find_layout("SAM 2.1", folder, LAYOUTS)
    if layout == 2:
        model = transformers.Sam2Model.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
        source, config_note = paths[1], "config.json"
    else:
        hydra = paths[1] if layout == 0 else None
        model = load_original_checkpoint(paths[0], hydra)
        source = paths[0]
        config_note = describe(hydra, weights_dir) if hydra else "built-in hiera-large config"
    model = model.to(device).eval()
    backbone = model.config.vision_config.backbone_config
    variant = f"hiera-{'large' if backbone.blocks_per_stage == [2, 6, 36, 4] else 'custom'}"
    backend = (
        f"sam2.1-{variant} (transformers {transformers.__version__} Sam2Model, "
        f"weights {describe(source, weights_dir)}, {config_note})"
    )
    return Sam2(model=model, backend=backend, device=device)
