"""BRISQUE: a no-reference quality measure that needs no learned weights download.

The default quality score when the LAION aesthetic weights are absent. It is
NOT the aesthetic score and is written to its own column, ``quality_brisque``
(lower is better, roughly 0..100).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from services.scoring.base import SampledFrames, Scalar, Scorer, ScoringError

# Debian's opencv-data ships OpenCV's LIVE-trained BRISQUE model here.
DEFAULT_MODEL_DIR = Path("/usr/share/opencv4/quality")
MODEL_FILE = "brisque_model_live.yml"
RANGE_FILE = "brisque_range_live.yml"


def find_brisque_model(extra_dirs: list[Path] = ()) -> tuple[Path, Path] | None:
    for folder in [*extra_dirs, DEFAULT_MODEL_DIR]:
        model, ranges = Path(folder) / MODEL_FILE, Path(folder) / RANGE_FILE
        if model.is_file() and ranges.is_file():
            return model, ranges
    return None


class BrisqueScorer(Scorer):
    name = "brisque"
    columns = ("quality_brisque",)

    def __init__(self, model_dirs: list[Path] = ()) -> None:
        if not hasattr(cv2, "quality"):
            raise ScoringError("BRISQUE needs OpenCV's contrib quality module (opencv-contrib-python-headless)")
        found = find_brisque_model(list(model_dirs))
        if found is None:
            raise ScoringError(f"BRISQUE model files {MODEL_FILE}/{RANGE_FILE} not found (apt-get install opencv-data)")
        self.model_path, self.range_path = found
        self._quality = cv2.quality.QualityBRISQUE_create(str(self.model_path), str(self.range_path))

    def score(self, frames: SampledFrames) -> dict[str, Scalar]:
        values = [self._quality.compute(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[0] for f in frames.rgb]
        return {"quality_brisque": float(np.mean(values))}

    def provenance(self) -> dict[str, str]:
        return {"quality_brisque": f"OpenCV {cv2.__version__} quality.QualityBRISQUE ({self.model_path.name}), mean over frames"}
