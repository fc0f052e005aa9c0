"""Tiny randomly initialised checkpoints, in the published file formats, for the Triton models.

Each writer puts one model's files into ``weights_dir/<model>/`` laid out as
the published checkpoint is, only with tiny random tensors, so that the real
loaders (the code both the in-process client and the server's model.py run)
load them. The writers are the model owners' own, from their tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def write_depth_anything_v2(weights_dir: Path) -> None:
    """Hugging Face layout (config.json + model.safetensors), as Depth-Anything-V2-Large-hf publishes it."""
    from tests.models.test_depth_anything import tiny_model

    tiny_model(seed=0).save_pretrained(weights_dir / "depth_anything_v2")


def write_sam2(weights_dir: Path) -> None:
    """``sam2/sam2.1_hiera_large.pt`` ({"model": state}, the original keys) and its YAML."""
    from tests.models.test_sam2 import write_tiny_published_checkpoint

    write_tiny_published_checkpoint(weights_dir)


def write_aesthetic(weights_dir: Path) -> None:
    """open_clip's ``open_clip_pytorch_model.bin`` and the LAION MLP state dict, tiny."""
    import torch

    from services.scoring.aesthetic_files import MLP_FILE, SUBDIR
    from tests.scoring.test_aesthetic import OUT, PublishedMLP, open_clip_state

    folder = weights_dir / SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(open_clip_state(), folder / "open_clip_pytorch_model.bin")
    torch.manual_seed(1)
    torch.save(PublishedMLP(OUT).state_dict(), folder / MLP_FILE)


WRITERS: dict[str, Callable[[Path], None]] = {
    "aesthetic": write_aesthetic,
    "depth_anything_v2": write_depth_anything_v2,
    "sam2": write_sam2,
}


def write_all(weights_dir: Path) -> list[str]:
    """Write every model's tiny checkpoint; returns the models written."""
    for write in WRITERS.values():
        write(Path(weights_dir))
    return sorted(WRITERS)
