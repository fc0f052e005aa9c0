"""Where the LAION aesthetic weights are looked for (no torch import, so checking is cheap).

``<weights_dir>/aesthetic/`` holds:

- ``sac+logos+ava1-l14-linearMSE.pth``: the MLP state dict as published
  (``layers.0/2/4/6/7.weight|bias``, 768 -> 1024 -> 128 -> 64 -> 16 -> 1);
- the CLIP ViT-L/14 checkpoint it was trained on (OpenAI's weights), one of
  ``open_clip_pytorch_model.bin`` / ``open_clip_model.safetensors`` (open_clip's
  ``ViT-L-14`` / ``openai`` files) or OpenAI's TorchScript ``ViT-L-14.pt``.
"""

from __future__ import annotations

from pathlib import Path

MLP_FILE = "sac+logos+ava1-l14-linearMSE.pth"
CLIP_FILES = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors", "ViT-L-14.pt")
SUBDIR = "aesthetic"


def find_aesthetic_weights(weights_dir: Path) -> tuple[Path, Path] | None:
    """(clip checkpoint, mlp state dict) if both are present, else None."""
    folder = Path(weights_dir) / SUBDIR
    mlp = folder / MLP_FILE
    clip = next((folder / name for name in CLIP_FILES if (folder / name).is_file()), None)
    return (clip, mlp) if clip is not None and mlp.is_file() else None
