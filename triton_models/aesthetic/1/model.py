"""Triton Python-backend model: the LAION improved aesthetic predictor (CLIP ViT-L/14 image
embedding, then the MLP), running ``services.scoring.aesthetic``'s own code.

Input ``image``: RGB frames, UINT8 (N, H, W, 3). Output ``score``: FP32 (N, 1), the
predictor's score per frame (the scorer averages them over a clip's frames).
Weights: ``<weights_dir>/aesthetic/`` as ``services/scoring/aesthetic_files.py`` names them.
The CLIP tower runs on the instance's device (KIND_GPU: cuda:<id>), the MLP head on the CPU.
"""

from pathlib import Path

import numpy as np

from services.triton_backend import LoaderModel



class AestheticModel:
    def __init__(self, weights_dir: str, quick_gelu: bool, device: str = "cpu") -> None:
        from services.scoring.aesthetic import AestheticScorer
        from services.scoring.aesthetic_files import CLIP_FILES, MLP_FILE, SUBDIR, find_aesthetic_weights

        folder = Path(weights_dir) / SUBDIR
        if find_aesthetic_weights(Path(weights_dir)) is None:
            raise FileNotFoundError(
                f"aesthetic: expected {MLP_FILE} and one of {', '.join(CLIP_FILES)} in {folder.resolve()}"
            )
        self.scorer = AestheticScorer.from_dir(Path(weights_dir), quick_gelu=quick_gelu, device=device)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"score": np.asarray(self.scorer.predict(inputs["image"]), np.float32)[:, None]}


class TritonPythonModel(LoaderModel):
    def __init__(self) -> None:
        super().__init__(self._load)

    def initialize(self, args: dict) -> None:
        import json

        from services.triton_backend import model_parameters

        params = model_parameters(json.loads(args["model_config"]))
        self.quick_gelu = params.get("quick_gelu", "true").lower() == "true"
        super().initialize(args)

    def _load(self, weights_dir: str, device: str = "cpu") -> AestheticModel:
        return AestheticModel(weights_dir, self.quick_gelu, device)
