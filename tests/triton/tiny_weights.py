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


def write_raft(weights_dir: Path) -> None:
    """``raft/raft-things.pth``: the full RAFT network's random state dict, DataParallel ``module.`` keys.

    RAFT has one published size, so this one is not tiny (5.3 M parameters), only random.
    """
    import torch

    from services.models import raft

    torch.manual_seed(0)
    network = raft.build_network()
    with torch.no_grad():
        for module in network.modules():  # non-trivial batch-norm statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    (weights_dir / "raft").mkdir(parents=True, exist_ok=True)
    torch.save({f"module.{k}": v for k, v in network.state_dict().items()}, weights_dir / "raft" / "raft-things.pth")


WRITERS: dict[str, Callable[[Path], None]] = {
    "aesthetic": write_aesthetic,
    "depth_anything_v2": write_depth_anything_v2,
    "raft": write_raft,
    "sam2": write_sam2,
}
# UniDepth V2's architecture lives only in the GitHub-only ``unidepth`` package, which
# is not installed, so no checkpoint of it can be written or loaded here.
WITHOUT_WRITER = {"unidepth": "UniDepth's model code (the GitHub-only unidepth package) is not installed"}


def write_all(weights_dir: Path) -> list[str]:
    """Write every model's tiny checkpoint; returns the models written."""
    for write in WRITERS.values():
        write(Path(weights_dir))
    return sorted(WRITERS)
