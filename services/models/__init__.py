"""Published model checkpoints, loaded from ``settings.models.weights_dir``, and the model-client seam.

Loaders (each ``load(weights_dir, device="cpu")`` returning an object with
``name``, ``backend`` and ``infer(dict of arrays) -> dict of arrays``; the
tensor contract is in each module's INPUTS / OUTPUTS):

- ``depth_anything``: Depth Anything V2 (transformers), ``depth_anything_v2/``;
- ``unidepth``: UniDepth V2 (needs the GitHub-only ``unidepth`` package), ``unidepth/``;
- ``sam2``: SAM 2.1 point-prompt segmentation (transformers Sam2Model), ``sam2/``;
  ``prompts`` holds the reference's motion-map -> prompt -> mask rule;
- ``raft``: RAFT optical flow (own compact torch code), ``raft/``.

Importing this package is cheap: torch, transformers and the model code load only
when a loader is called, so Triton's ``model.py`` files and the stages can import
names from here freely.
"""

from services.models.client import (
    InProcessClient,
    ModelClient,
    get_model_client,
    known_models,
)
from services.models.weights import WeightsMissing

__all__ = ["InProcessClient", "ModelClient", "WeightsMissing", "get_model_client", "known_models"]
