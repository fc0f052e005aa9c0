"""The model-client seam: stages ask a ``ModelClient`` for inference and never know where it runs.

Two implementations share one contract (named numpy arrays in, named numpy
arrays out):

- ``InProcessClient`` wraps a model loaded in this process by its loader
  (the embedded default);
- ``TritonModelClient`` (``services/models/triton_client.py``, imported lazily so
  that the in-process path never needs ``tritonclient``) asks a Triton server
  that runs the very same loaders inside ``triton_models/*/1/model.py``.

``settings.models.client[name]`` picks one per model; missing means in-process.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from services.models.params import ModelSettings, TritonSettings


@runtime_checkable
class ModelClient(Protocol):
    """What a stage needs from a model, wherever it runs."""

    name: str
    # Which published model, library version and weights file answer (provenance).
    backend: str

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def ready(self) -> bool: ...


class InferenceModel(Protocol):
    """What every loader in this package returns."""

    name: str
    backend: str

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class InProcessClient:
    """A loaded model answering in this process."""

    def __init__(self, model: InferenceModel, name: str | None = None):
        self.model = model
        self.name = name or model.name
        self.backend = model.backend
        # torch modules are not re-entrant across threads under inference_mode on all builds;
        # one call at a time keeps the result identical to a sequential run.
        self._lock = threading.Lock()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self.model.infer(inputs)

    def ready(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"InProcessClient({self.name!r}, backend={self.backend!r})"


# Model name -> "module:function" of a loader ``load(weights_dir, device="cpu") -> InferenceModel``.
# Strings, not functions, so that importing this module loads no model code.
_LOADERS: dict[str, str] = {
    "depth_anything_v2": "services.models.depth_anything:load",
    "unidepth": "services.models.unidepth:load",
    "sam2": "services.models.sam2:load",
    "raft": "services.models.raft:load",
}


def known_models() -> list[str]:
    return sorted(_LOADERS)


def loader_for(name: str) -> Callable[..., InferenceModel]:
    try:
        module, _, function = _LOADERS[name].partition(":")
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(known_models())}") from None
    return getattr(importlib.import_module(module), function)


def load_model(name: str, weights_dir: Path, device: str = "cpu") -> InferenceModel:
    """Load one model's published checkpoint (raises WeightsMissing naming the expected files)."""
    return loader_for(name)(Path(weights_dir), device=device)


def get_model_client(name: str, models: "ModelSettings", triton: "TritonSettings") -> ModelClient:
    """The client for ``name`` as the models section asks: in-process (default) or on the Triton server."""
    mode = models.client.get(name, "inprocess")
    if mode == "triton":
        # The Triton side lives in its own module and needs tritonclient; import only when asked.
        from services.models.triton_client import TritonModelClient

        return TritonModelClient(name, triton)
    if name not in _LOADERS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(known_models())}")
    return InProcessClient(load_model(name, models.weights_dir, models.device), name)
