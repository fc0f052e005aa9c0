"""Published model checkpoints, loaded from ``settings.models.weights_dir``, and the model-client seam.

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
