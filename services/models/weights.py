"""Finding a published checkpoint in the weights directory, and saying clearly when it is not there."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class WeightsMissing(FileNotFoundError):
    """A model's published checkpoint is not in the weights directory (it is never downloaded)."""

    def __init__(self, model: str, folder: Path, alternatives: Sequence[Sequence[str]]):
        self.model = model
        self.folder = Path(folder)
        self.alternatives = [list(files) for files in alternatives]
        layouts = " or ".join("[" + ", ".join(files) + "]" for files in self.alternatives)
        super().__init__(
            f"{model}: weights not found. Expected {layouts} in {self.folder.resolve()} "
            "(set models.weights_dir / SPATIALVID_MODELS__WEIGHTS_DIR; weights are never downloaded)"
        )


def find_layout(model: str, folder: Path, layouts: Sequence[Sequence[str]]) -> tuple[int, list[Path]]:
    """The first layout whose files all exist in ``folder``: (its index, its paths).

    Raises WeightsMissing naming every accepted layout when none is complete.
    """
    folder = Path(folder)
    for index, names in enumerate(layouts):
        paths = [folder / name for name in names]
        if all(path.is_file() for path in paths):
            return index, paths
    raise WeightsMissing(model, folder, layouts)


def describe(path: Path, weights_dir: Path) -> str:
    """A checkpoint path as it appears in provenance strings: relative to the weights directory."""
    try:
        return str(Path(path).resolve().relative_to(Path(weights_dir).resolve()))
    except ValueError:
        return str(path)


class ModelPackageMissing(ImportError):
    """The published model's own code is needed and not installed; the message says where it comes from."""
