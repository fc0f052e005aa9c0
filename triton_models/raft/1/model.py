"""Triton Python-backend model: ``raft`` (RAFT optical flow, princeton-vl checkpoint) through its
``services.models`` loader (see services/triton_backend.py). The parameter ``iterations``
sets the refinement iterations (the loader's default, 20, when absent)."""

import json
from pathlib import Path

from services.models.client import loader_for
from services.triton_backend import LoaderModel, model_parameters


class TritonPythonModel(LoaderModel):
    def __init__(self) -> None:
        super().__init__(self._load)
        self.iterations = ""

    def initialize(self, args: dict) -> None:
        self.iterations = model_parameters(json.loads(args["model_config"])).get("iterations", "")
        super().initialize(args)

    def _load(self, weights_dir: str, device: str = "cpu"):
        kwargs = {"iterations": int(self.iterations)} if self.iterations else {}
        return loader_for("raft")(Path(weights_dir), device=device, **kwargs)
