"""PyTorch datasets over our native layout, the SpatialVID-HQ layout and WebDataset shards.

    from services.dataset.loader import SpatialVIDDataset, SpatialVIDShards, collate

Every sample is a dict:

- ``frames`` (T, 3, H, W) float32 in [0, 1]: annotated frames ``start, start+stride, ...`` decoded at the
  chosen ``size`` (height, width), or the clip's own size;
- ``c2w``, ``w2c`` (T, 4, 4) float32, OpenCV camera axes, the clip's first frame as the world;
- ``K`` (T, 3, 3) float32 in pixels of the sampled size;
- ``depth`` (T, H, W) float32 **z-depth in the poses' units** (up to scale; ``metres_per_pose_unit`` in the
  metadata turns it into metres where known), 0 = invalid; resized by nearest neighbour;
- ``masks`` (T, H, W) bool, dynamic objects; ``frame_indices`` (T,) int64 clip frame numbers;
- ``caption`` (str, the caption's ``caption_key`` field), ``caption_json`` (str, the whole caption);
- ``metadata`` (dict): the clip's metadata row under our column names, ``key``: our clip id.

The same clip gives the same sample from any layout (depth from the HQ layout within float16 rounding of
its disparity). Clips dropped by a filter or failed, and clips without camera and depth annotations, are
left out; ``filters`` selects on metadata columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import webdataset as wds
from torch.utils.data import Dataset, IterableDataset

from services.dataset import sampling as s
from services.dataset.readers import ClipFiles, HQClip, NativeClip, ShardClip
from services.video.decode import read_frames

NATIVE_TABLE = "metadata.csv"
HQ_TABLE = "data/train/SpatialVID_HQ_metadata.csv"
Layout = Literal["native", "spatialvid-hq"]


class _Sampler:
    """Options shared by both datasets, and the sample builder."""

    def __init__(self, num_frames: int | None, stride: int, size: tuple[int, int] | None,
                 start: Literal["first", "random"], filters: s.Filter, include_filtered: bool,
                 caption_key: str) -> None:
        if num_frames is not None and num_frames < 1 or stride < 1:
            raise ValueError("num_frames and stride must be at least 1")
        if start not in ("first", "random"):
            raise ValueError("start must be 'first' or 'random'")
        self.num_frames, self.stride, self.size, self.start = num_frames, stride, size, start
        self.filters, self.include_filtered, self.caption_key = filters, include_filtered, caption_key

    def wanted(self, row: dict) -> bool:
        return (self.include_filtered or s.is_kept(row)) and s.row_matches(row, self.filters)

    def long_enough(self, clip: ClipFiles) -> bool:
        return clip.complete() and len(clip.indexes()) >= s.rows_needed(self.num_frames, self.stride)

    def build(self, clip: ClipFiles) -> dict:
        indexes = clip.indexes()
        span = s.rows_needed(self.num_frames, self.stride)
        first = int(torch.randint(len(indexes) - span + 1, ()).item()) if self.start == "random" else 0
        rows = s.pick_rows(len(indexes), self.num_frames, self.stride, first)
        frame_indices = indexes[rows]
        frames = self._frames(clip, frame_indices)
        height, width = frames.shape[1:3]
        w2c = s.w2c_matrices(clip.poses()[rows])
        depth = s.resize_nearest(clip.depth(rows), height, width)
        masks = s.resize_nearest(clip.masks(rows), height, width)
        caption = clip.caption()
        return {
            "frames": torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0),
            "c2w": torch.from_numpy(s.invert_rigid(w2c)).float(),
            "w2c": torch.from_numpy(w2c).float(),
            "K": torch.from_numpy(s.pixel_intrinsics(clip.intrinsics()[rows], width, height)).float(),
            "depth": torch.from_numpy(np.ascontiguousarray(depth, np.float32)),
            "masks": torch.from_numpy(np.ascontiguousarray(masks, bool)),
            "frame_indices": torch.from_numpy(frame_indices.astype(np.int64)),
            "caption": str(caption.get(self.caption_key, "")),
            "caption_json": json.dumps(caption, sort_keys=True),
            "metadata": clip.metadata,
            "key": clip.key,
        }

    def _frames(self, clip: ClipFiles, wanted: np.ndarray) -> np.ndarray:
        """The clip frames ``wanted`` (ascending), decoded in one pass at the sampled size."""
        first, last = int(wanted[0]), int(wanted[-1])
        steps = np.diff(wanted)
        step = int(steps[0]) if len(steps) and np.all(steps == steps[0]) and steps[0] > 0 else 1
        size = (self.size[1], self.size[0]) if self.size else None
        with clip.video_path() as path:
            decoded = list(read_frames(path, size=size, start=first, step=step,
                                       count=(last - first) // step + 1))
        if step == 1:
            picked = [decoded[int(i) - first] for i in wanted if int(i) - first < len(decoded)]
        else:
            picked = decoded
        if len(picked) != len(wanted):
            raise ValueError(f"clip {clip.key}: decoded {len(picked)} of {len(wanted)} frames")
        return np.stack(picked)


def detect_layout(root: Path) -> Layout:
    if (root / HQ_TABLE).is_file():
        return "spatialvid-hq"
    if (root / NATIVE_TABLE).is_file():
        return "native"
    raise FileNotFoundError(f"{root} holds neither {NATIVE_TABLE} (native layout) nor {HQ_TABLE} (SpatialVID-HQ)")


def _rows(table: pd.DataFrame) -> list[dict]:
    """Rows as plain Python values (numpy scalars unwrapped, missing = NaN)."""
    return [{k: v.item() if hasattr(v, "item") else v for k, v in r.items()} for r in table.to_dict("records")]


class SpatialVIDDataset(Dataset):
    """Map-style dataset over an output folder (native layout) or a SpatialVID-HQ export."""

    def __init__(self, root: str | Path, num_frames: int | None = 16, stride: int = 1,
                 size: tuple[int, int] | None = None, start: Literal["first", "random"] = "first",
                 filters: s.Filter = None, include_filtered: bool = False, caption_key: str = "SceneSummary",
                 layout: Layout | None = None) -> None:
        from services.export.hq import native_row

        self.root = Path(root)
        self.layout = layout or detect_layout(self.root)
        self.sampler = _Sampler(num_frames, stride, size, start, filters, include_filtered, caption_key)
        self.clips: list[ClipFiles] = []
        if self.layout == "native":
            for row in _rows(pd.read_csv(self.root / NATIVE_TABLE)):
                if self.sampler.wanted(row):
                    self.clips.append(NativeClip(self.root, row))
        else:
            for row in _rows(pd.read_csv(self.root / HQ_TABLE)):
                ours = native_row(row)
                # filters see both the published column names and ours
                if self.sampler.wanted({**row, **ours}):
                    self.clips.append(HQClip(self.root, row, ours))
        self.clips = [c for c in self.clips if self.sampler.long_enough(c)]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        return self.sampler.build(self.clips[index])


class SpatialVIDShards(IterableDataset):
    """Streams WebDataset shards (paths, ``http(s)://`` or presigned URLs, ``pipe:`` commands); each
    DataLoader worker (and each distributed rank) reads its own shards."""

    def __init__(self, urls: str | list[str], num_frames: int | None = 16, stride: int = 1,
                 size: tuple[int, int] | None = None, start: Literal["first", "random"] = "first",
                 filters: s.Filter = None, include_filtered: bool = False, caption_key: str = "SceneSummary",
                 shuffle_shards: bool = False) -> None:
        self.urls = urls
        self.shuffle_shards = shuffle_shards
        self.sampler = _Sampler(num_frames, stride, size, start, filters, include_filtered, caption_key)

    def __iter__(self):
        stream = wds.WebDataset(self.urls, shardshuffle=self.shuffle_shards, empty_check=False,
                                nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker)
        for raw in stream:
            clip = ShardClip(raw)
            if self.sampler.wanted(clip.metadata) and self.sampler.long_enough(clip):
                yield self.sampler.build(clip)


def collate(samples: list[dict]) -> dict:
    """Stacks the tensors of same-sized samples (set ``size`` and ``num_frames``); keeps captions, metadata
    rows and keys as lists."""
    out = {}
    for name, value in samples[0].items():
        values = [sample[name] for sample in samples]
        out[name] = torch.stack(values) if isinstance(value, torch.Tensor) else values
    return out
