"""The LAION improved aesthetic predictor: an MLP on CLIP ViT-L/14 image embeddings.

Weights are read from ``<weights_dir>/aesthetic/`` (file names in
``aesthetic_files.py``) and never downloaded.

The score of a clip is the mean over its sampled frames of the MLP applied to
the L2-normalised image embedding, as in the predictor's reference inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from services.scoring.aesthetic_files import MLP_FILE, SUBDIR, find_aesthetic_weights
from services.scoring.base import SampledFrames, Scalar, Scorer
from services.scoring.clip_vit import VisionTransformer, load_vision_tower, preprocess


class AestheticMLP(nn.Module):
    """The published head: Linear layers at indices 0, 2, 4, 6, 7 of ``layers`` (dropouts between, no activations)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        # Index layout of the original nn.Sequential: Linear, Dropout, Linear, Dropout, Linear, Dropout, Linear, Linear.
        modules: list[nn.Module] = []
        for i in range(len(dims) - 1):
            modules.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 3:
                modules.append(nn.Dropout(0.0))
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def load_aesthetic_mlp(path: Path) -> AestheticMLP:
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v.float() for k, v in state.items()}
    linear = sorted({int(k.split(".")[1]) for k in state if k.startswith("layers.")})
    dims = [state[f"layers.{linear[0]}.weight"].shape[1]] + [state[f"layers.{i}.weight"].shape[0] for i in linear]
    model = AestheticMLP(dims)
    model.load_state_dict(state, strict=True)
    return model.eval()


class ImageEmbedder(Protocol):
    """(K, H, W, 3) uint8 RGB -> (K, D) image embeddings (a Triton client can stand in)."""

    backend: str

    def embed(self, frames: np.ndarray) -> np.ndarray: ...


class ClipImageEmbedder:
    def __init__(self, checkpoint: Path, quick_gelu: bool = True, device: str = "cpu") -> None:
        self.model: VisionTransformer = load_vision_tower(checkpoint, quick_gelu=quick_gelu).to(device)
        self.device = torch.device(device)
        cfg = self.model.cfg
        self.backend = (
            f"CLIP ViT {cfg.width}w/{cfg.layers}L/p{cfg.patch_size}@{cfg.image_size} from {Path(checkpoint).name}"
            f" (open_clip-compatible re-implementation, torch {torch.__version__})"
        )

    @torch.inference_mode()
    def embed(self, frames: np.ndarray) -> np.ndarray:
        return self.model(preprocess(frames, self.model.cfg.image_size).to(self.device)).cpu().numpy()


class AestheticScorer(Scorer):
    name = "aesthetic"
    columns = ("aesthetic",)

    def __init__(self, embedder: ImageEmbedder, mlp: AestheticMLP, mlp_name: str = MLP_FILE) -> None:
        self.embedder = embedder
        self.mlp = mlp
        self.mlp_name = mlp_name

    @classmethod
    def from_dir(cls, weights_dir: Path, quick_gelu: bool = True, device: str = "cpu") -> "AestheticScorer":
        """``device``: where the CLIP tower runs (the MLP head, a few kFLOPs per frame, stays on the CPU)."""
        found = find_aesthetic_weights(weights_dir)
        if found is None:
            raise FileNotFoundError(f"aesthetic weights not in {Path(weights_dir) / SUBDIR}")
        clip, mlp = found
        return cls(ClipImageEmbedder(clip, quick_gelu=quick_gelu, device=device), load_aesthetic_mlp(mlp), mlp.name)

    @torch.inference_mode()
    def predict(self, frames: np.ndarray) -> np.ndarray:
        embeddings = torch.from_numpy(np.asarray(self.embedder.embed(frames), np.float32))
        embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.mlp(embeddings)[:, 0].numpy()

    def score(self, frames: SampledFrames) -> dict[str, Scalar]:
        return {"aesthetic": float(self.predict(frames.rgb).mean())}

    def provenance(self) -> dict[str, str]:
        return {"aesthetic": f"LAION improved aesthetic MLP ({self.mlp_name}) on {self.embedder.backend}"}


class RemoteAestheticScorer(AestheticScorer):
    """The same scores from a model client: Triton's ``aesthetic`` model runs ``AestheticScorer.predict``."""

    def __init__(self, client) -> None:  # a ModelClient: {"image": (N, H, W, 3)} -> {"score": (N, 1)}
        self.client = client
        self.embedder = client  # provenance names the served model
        self.mlp_name = MLP_FILE

    def predict(self, frames: np.ndarray) -> np.ndarray:
        return np.asarray(self.client.infer({"image": frames})["score"], np.float32)[:, 0]


__all__ = ["MLP_FILE", "SUBDIR", "AestheticMLP", "AestheticScorer", "ClipImageEmbedder", "find_aesthetic_weights",
           "load_aesthetic_mlp"]
