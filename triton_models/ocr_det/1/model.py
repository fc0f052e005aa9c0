"""Triton Python-backend model: PP-OCRv4 text detection (the ONNX in rapidocr_onnxruntime's wheel).

Input ``image``: frames already resized by the client (PaddleOCR's rule: sides
multiples of 32), BGR, UINT8 (N, H, W, 3); here they are scaled to [-1, 1] with
the same float32 arithmetic as ``services.scoring.ocr.PPOCRDetector``, so the
boxes equal the in-process ones. Output ``maps``: the DB text-probability maps,
FP32 (N, 1, H, W); the client runs the DB post-process on them.

The ONNX file is read from ``$SPATIALVID_MODELS__WEIGHTS_DIR/ocr_det/`` when it is
there, else from the rapidocr_onnxruntime package installed in the server's
environment (the model ships inside that wheel).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

MODEL_FILE = "ch_PP-OCRv4_det_infer.onnx"


def _find_model(weights_dir: str) -> Path:
    candidates = []
    if weights_dir:
        candidates.append(Path(weights_dir) / "ocr_det" / MODEL_FILE)
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "models" / MODEL_FILE)
    for path in candidates:
        if path.is_file():
            return path
    searched = ", ".join(str(p) for p in candidates) or "nothing (no weights dir, no rapidocr_onnxruntime)"
    raise pb_utils.TritonModelException(f"ocr_det: weights missing: {MODEL_FILE} not found; searched {searched}")


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        weights_dir = params.get("weights_dir") or os.environ.get("SPATIALVID_MODELS__WEIGHTS_DIR", "")
        path = _find_model(weights_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(args["model_instance_device_id"])}))
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, images: np.ndarray) -> np.ndarray:
        batch = (images.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(0, 3, 1, 2)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]

    def execute(self, requests):
        # The dynamic batcher hands over several requests at once: run them as one batch.
        arrays = [pb_utils.get_input_tensor_by_name(r, "image").as_numpy() for r in requests]
        if len({a.shape[1:] for a in arrays}) == 1:
            maps = self._run(np.concatenate(arrays) if len(arrays) > 1 else arrays[0])
            parts = np.split(maps, np.cumsum([len(a) for a in arrays])[:-1])
        else:  # different frame sizes cannot share a batch
            parts = [self._run(a) for a in arrays]
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("maps", p.astype(np.float32, copy=False))])
            for p in parts
        ]
