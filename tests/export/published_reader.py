"""An independent reader of the SpatialVID-HQ layout that behaves like the published readers
(the dataset's ``utils/`` scripts), written from their documented behaviour, not from our code."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import OpenEXR
from scipy.sparse import csr_matrix

DEPTH_CLIP = (1e-3, 1e2)  # the reader's clip of 1 / Z


def read_indexes(path: Path) -> list[int]:
    """Only lines of exactly two fields count; the second is the clip frame index."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.strip().split()
        if len(parts) == 2:
            out.append(int(parts[1]))
    return out


def read_masks(path: Path) -> np.ndarray:
    loaded = np.load(path)
    n = (len(loaded.files) - 1) // 3
    shape = loaded["shape"]
    return np.stack([
        csr_matrix((loaded[f"f_{i}_data"], loaded[f"f_{i}_indices"], loaded[f"f_{i}_indptr"]), shape=shape).toarray()
        for i in range(n)
    ])


def read_depth(path: Path) -> np.ndarray:
    """Sorted EXRs of the zip, channel ``Z`` as HALF, then clip(1 / Z)."""
    frames = []
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            with z.open(name) as f:
                exr = OpenEXR.InputFile(f)
                window = exr.header()["dataWindow"]
                width, height = window.max.x - window.min.x + 1, window.max.y - window.min.y + 1
                z_channel = exr.channels(["Z"])[0]
                frames.append(np.frombuffer(z_channel, dtype=np.float16).reshape(height, width).astype(np.float32))
    with np.errstate(divide="ignore"):
        return np.clip(1.0 / np.array(frames), *DEPTH_CLIP)


def read_intrinsics(path: Path, width: int, height: int) -> np.ndarray:
    """(N, 4) normalised -> (N, 3, 3) K scaled by a target size."""
    out = []
    for fx, fy, cx, cy in np.load(path):
        out.append(np.array([[fx * width, 0, cx * width], [0, fy * height, cy * height], [0, 0, 1]]))
    return np.array(out)
