"""UniDepth V2 metric depth and intrinsics, from its published checkpoint.

The model code exists only in the ``unidepth`` package, which is not on PyPI
(it installs from the authors' repository, ``lpiccinelli-eth/UniDepth``), and
its architecture is not in transformers, so this loader needs that package.
The weights are read from ``{weights_dir}/unidepth/`` in the published Hugging
Face layout (``config.json`` + ``model.safetensors``, as in
``lpiccinelli/unidepth-v2-vitl14``), through the package's own
``UniDepthV2.from_pretrained`` on the local folder, so nothing is fetched.
Without the weights the loader raises WeightsMissing; without the package,
ModelPackageMissing. Neither is ever required by the default pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.models.images import as_image_batch
from services.models.weights import ModelPackageMissing, describe, find_layout

NAME = "unidepth"
SUBDIR = "unidepth"
LAYOUTS = [("config.json", "model.safetensors")]

INPUTS = {"image": ("uint8", (-1, -1, -1, 3))}
OUTPUTS = {"depth": ("float32", (-1, -1, -1)), "intrinsics": ("float32", (-1, 3, 3))}


@dataclass
class UniDepthV2:
    model: Any
    backend: str
    device: str = "cpu"
    name: str = field(default=NAME)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RGB frames (N, H, W, 3) to metric depth (N, H, W) in metres and intrinsics (N, 3, 3) in pixels."""
        import torch

        images = as_image_batch(images)
        rgb = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(self.device)
        with torch.inference_mode():
            # UniDepth's infer() does its own resizing, normalisation and un-padding.
            out = self.model.infer(rgb)
        depth = out["depth"][:, 0].float().cpu().numpy()
        intrinsics = out["intrinsics"].float().cpu().numpy()
        return depth, intrinsics

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        depth, intrinsics = self.predict(inputs["image"])
        return {"depth": depth, "intrinsics": intrinsics}


def load(weights_dir: Path, device: str = "cpu") -> UniDepthV2:
    folder = Path(weights_dir) / SUBDIR
    _, paths = find_layout("UniDepth V2", folder, LAYOUTS)
    try:
        import unidepth
        from unidepth.models import UniDepthV2 as Model
    except ImportError as exc:
        raise ModelPackageMissing(
            f"UniDepth V2: weights found in {folder}, but the 'unidepth' package is not installed "
            f"({exc}). It is not on PyPI; install it from the authors' repository (lpiccinelli-eth/UniDepth)."
        ) from exc
    # A local folder: the hub mixin reads config.json and model.safetensors from it, no download.
    model = Model.from_pretrained(str(folder)).to(device).eval()
    version = getattr(unidepth, "__version__", "unknown")
    backend = f"unidepth-v2 (unidepth {version}, weights {describe(paths[1], weights_dir)})"
    return UniDepthV2(model=model, backend=backend, device=device)
