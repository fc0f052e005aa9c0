"""One clip's files, from any of the three layouts, behind one interface.

- ``NativeClip``: our output folder (``clips/{id}.mp4``, ``annotations/{id}/``; depth.npz, dense masks);
- ``HQClip``: the published SpatialVID-HQ layout (groups, UUIDs, CSR masks, EXR disparity zips);
- ``ShardClip``: one WebDataset sample (the native files inside a tar).

Depth comes out as z-depth in the poses' units (float32), 0 where invalid, from every layout.
"""

from __future__ import annotations

import io
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from services import artifacts as a
from services.dataset import formats as f
from services.depth.exr_zip import read_depth_zip


class ClipFiles:
    """What the sample builder reads; subclasses say where the bytes are."""

    key: str
    metadata: dict

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def has(self, name: str) -> bool:
        raise NotImplementedError

    @contextmanager
    def video_path(self):
        raise NotImplementedError

    # -- shared decoding --------------------------------------------------
    def indexes(self) -> np.ndarray:
        return f.parse_indexes(self.read(a.INDEXES).decode())

    def poses(self) -> np.ndarray:
        return np.load(io.BytesIO(self.read(a.POSES)), allow_pickle=False)

    def intrinsics(self) -> np.ndarray:
        return np.load(io.BytesIO(self.read(a.INTRINSICS)), allow_pickle=False)

    def caption(self) -> dict:
        return json.loads(self.read(a.CAPTION)) if self.has(a.CAPTION) else {}

    def depth(self, rows: np.ndarray) -> np.ndarray:
        return f.load_npz(self.read(a.DEPTH))["depth"][rows].astype(np.float32)

    def masks(self, rows: np.ndarray) -> np.ndarray:
        return f.load_npz(self.read(a.DYN_MASKS))["masks"][rows]

    def complete(self) -> bool:
        """Has what a training sample needs: camera and depth annotations."""
        return all(self.has(n) for n in (a.INDEXES, a.POSES, a.INTRINSICS, a.DEPTH, a.DYN_MASKS))


class NativeClip(ClipFiles):
    def __init__(self, root: Path, metadata: dict) -> None:
        self.root, self.metadata, self.key = Path(root), metadata, str(metadata["id"])
        self.folder = self.root / "annotations" / self.key

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def has(self, name: str) -> bool:
        return (self.folder / name).is_file()

    @contextmanager
    def video_path(self):
        yield self.root / "clips" / f"{self.key}.mp4"


class HQClip(ClipFiles):
    """``metadata`` is the published table's row (``id`` = UUID, ``video path``, ``annotation path``)."""

    def __init__(self, root: Path, row: dict, metadata: dict) -> None:
        self.root, self.metadata, self.key = Path(root), metadata, str(metadata["id"])
        self.folder = self.root / row["annotation path"]
        self.video = self.root / row["video path"]
        group = Path(row["annotation path"]).parent.name
        self.depth_zip = self.root / "depths" / group / f"{row['id']}.zip"

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def has(self, name: str) -> bool:
        if name == a.DEPTH:
            return self.depth_zip.is_file()
        return (self.folder / name).is_file()

    def depth(self, rows: np.ndarray) -> np.ndarray:
        return read_depth_zip(self.depth_zip, rows=list(rows))

    def masks(self, rows: np.ndarray) -> np.ndarray:
        with np.load(self.folder / a.DYN_MASKS, allow_pickle=False) as arrays:  # reads only the frames asked for
            return f.csr_npz_to_masks(arrays, rows)

    @contextmanager
    def video_path(self):
        yield self.video


class ShardClip(ClipFiles):
    """A raw WebDataset sample: ``{"__key__": uuid, "mp4": bytes, "poses.npy": bytes, ...}``."""

    def __init__(self, sample: dict) -> None:
        self.sample = sample
        self.metadata = json.loads(sample[a.SAMPLE_METADATA])
        self.key = str(self.metadata["id"])

    def read(self, name: str) -> bytes:
        return self.sample[name]

    def has(self, name: str) -> bool:
        return name in self.sample

    @contextmanager
    def video_path(self):
        with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
            tmp.write(self.sample["mp4"])
            tmp.flush()
            yield Path(tmp.name)
