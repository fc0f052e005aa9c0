"""The body of the Triton Python-backend models that serve a ``services.models`` loader.

Each ``triton_models/<name>/1/model.py`` is a few lines that hand this class a
loader; the server then runs the very code the in-process client runs, so the
two answer alike. This module runs inside Triton's Python stub, in the
server's virtualenv (numpy<2, torch), with the repository on ``PYTHONPATH``.

What it does for every model:
- weights come from the model parameter ``weights_dir`` or else the
  ``SPATIALVID_MODELS__WEIGHTS_DIR`` the server was started with; when they are missing
  the model fails to load with the loader's message (the others still load);
- the instance kind picks the torch device (``KIND_GPU`` -> ``cuda:<id>``);
- requests that the dynamic batcher hands over together are concatenated on
  the batch axis when their other dimensions agree, run at once, and split back;
- with the parameter ``per_item: "true"`` the loader's contract has no batch
  axis (e.g. SAM 2: one frame and its prompts), so each batch item runs alone;
- an exception while running becomes that request's error, carrying the message
  (the client raises it as a clip failure).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

Loader = Callable[..., Any]  # load(weights_dir, device=...) -> object with infer(dict) -> dict


def model_parameters(config: dict) -> dict[str, str]:
    return {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}


def instance_device(args: dict) -> str:
    if args.get("model_instance_kind") == "GPU":
        return f"cuda:{args.get('model_instance_device_id', '0')}"
    return "cpu"


class LoaderModel:
    """A ``TritonPythonModel`` serving ``loader(weights_dir, device)``'s ``infer``."""

    loader: Loader

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        params = model_parameters(config)
        self.name = config["name"]
        self.per_item = params.get("per_item", "false").lower() == "true"
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.input_names = [i["name"] for i in config.get("input", [])]
        self.optional_inputs = {i["name"] for i in config.get("input", []) if i.get("optional")}
        self.outputs = {
            o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config.get("output", [])
        }
        threads = params.get("torch_threads", "")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        weights_dir = params.get("weights_dir") or os.environ.get("SPATIALVID_MODELS__WEIGHTS_DIR", "")
        if not weights_dir:
            raise pb_utils.TritonModelException(
                f"{self.name}: no weights directory (set SPATIALVID_MODELS__WEIGHTS_DIR or the weights_dir parameter)"
            )
        try:
            self.model = self.loader(weights_dir, device=instance_device(args))
        except FileNotFoundError as exc:  # WeightsMissing is one: say which files where
            raise pb_utils.TritonModelException(f"{self.name}: weights missing: {exc}") from None
        except ImportError as exc:  # e.g. a model whose code is not on PyPI (ModelPackageMissing)
            raise pb_utils.TritonModelException(f"{self.name}: model code missing: {exc}") from None

    def execute(self, requests: list) -> list:
        pb = self.pb
        arrays = [self._inputs(r) for r in requests]
        responses: list = [None] * len(requests)
        for group in self._groups(arrays):
            try:
                results = self._run([arrays[i] for i in group])
                for i, outputs in zip(group, results):
                    responses[i] = pb.InferenceResponse(output_tensors=self._tensors(outputs))
            except Exception as exc:  # the model's own failure: report it on each request
                error = pb.TritonError(f"{self.name}: {type(exc).__name__}: {exc}")
                for i in group:
                    responses[i] = pb.InferenceResponse(output_tensors=[], error=error)
        return responses

    # -- helpers ---------------------------------------------------------------------

    def _inputs(self, request: Any) -> dict[str, np.ndarray]:
        out = {}
        for name in self.input_names:
            tensor = self.pb.get_input_tensor_by_name(request, name)
            if tensor is not None:
                out[name] = tensor.as_numpy()
        return out

    def _groups(self, arrays: list[dict[str, np.ndarray]]) -> list[list[int]]:
        """Requests that can run as one batch: same inputs, same shapes past the batch axis."""
        if not self.batched or self.per_item:
            return [[i] for i in range(len(arrays))]
        groups: dict[tuple, list[int]] = {}
        for i, inputs in enumerate(arrays):
            key = tuple(sorted((k, v.shape[1:], str(v.dtype)) for k, v in inputs.items()))
            groups.setdefault(key, []).append(i)
        return list(groups.values())

    def _run(self, batch: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        if self.per_item:  # one request; each item of its batch alone, outputs stacked back
            inputs = batch[0]
            size = len(next(iter(inputs.values())))
            items = [self.model.infer({k: v[b] for k, v in inputs.items()}) for b in range(size)]
            return [{k: np.stack([item[k] for item in items]) for k in items[0]}] if items else [{}]
        if len(batch) == 1:
            return [self.model.infer(batch[0])]
        merged = {k: np.concatenate([inputs[k] for inputs in batch]) for k in batch[0]}
        outputs = self.model.infer(merged)
        bounds = np.cumsum([len(next(iter(inputs.values()))) for inputs in batch])[:-1]
        parts = {k: np.split(v, bounds) for k, v in outputs.items()}
        return [{k: parts[k][i] for k in parts} for i in range(len(batch))]

    def _tensors(self, outputs: dict[str, np.ndarray]) -> list:
        tensors = []
        for name, dtype in self.outputs.items():
            if name not in outputs:
                raise KeyError(f"{self.name} gave no output {name!r} (got {sorted(outputs)})")
            tensors.append(self.pb.Tensor(name, np.ascontiguousarray(np.asarray(outputs[name]).astype(dtype, copy=False))))
        return tensors

    def finalize(self) -> None:
        self.model = None
