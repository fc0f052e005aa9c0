"""Triton Python-backend model: ``depth_anything_v2`` through its ``services.models`` loader (see services/triton_backend.py)."""

from pathlib import Path

from services.models.client import loader_for
from services.triton_backend import LoaderModel


def _load(weights_dir: str, device: str = "cpu"):
    return loader_for("depth_anything_v2")(Path(weights_dir), device=device)


class TritonPythonModel(LoaderModel):
    def __init__(self) -> None:
        super().__init__(_load)
