"""Triton Python-backend model: ``unidepth`` (UniDepth V2 metric depth and intrinsics) through its
``services.models`` loader (see services/triton_backend.py). Its model code is the GitHub-only
``unidepth`` package: without it in the server's environment the model fails to load, saying so."""

from pathlib import Path

from services.models.client import loader_for
from services.triton_backend import LoaderModel


def _load(weights_dir: str, device: str = "cpu"):
    return loader_for("unidepth")(Path(weights_dir), device=device)


class TritonPythonModel(LoaderModel):
    def __init__(self) -> None:
        super().__init__(_load)
