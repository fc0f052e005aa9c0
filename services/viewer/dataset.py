"""What the viewer reads from a dataset: the table, one clip's annotations, thumbnails, frames and points.

It reads through an ``ArtifactStore``, so the same code serves a local output folder (``spatialvid view DIR``) and a
job's prefix in the bucket (the gateway's ``/v1/jobs/{id}/view``).
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pandas as pd

from services import artifacts as a
from services.camera.labels import DIST_LEVELS
from services.recordbook import CLIPS, RecordBook
from services.records import ClipRecord
from services.storage.base import ArtifactNotFound, ArtifactStore
from services.storage.local import LocalStore
from services.viewer import imaging
from services.viewer.table import FAILED, FILTERED, KEPT, Page, Query, frame_kinds, run_query

METADATA = f"{a.METADATA_TABLE}.parquet"
# Trajectory statistics the clip page lists (the camera stage's columns).
TRAJECTORY_COLUMNS = ("success", "anomaly", "moveDist", "distLevel", "rotAngle", "trajTurns")
QC_FLAGS = "qc_flags"


@dataclass(frozen=True)
class ViewerOptions:
    # Thumbnail width in px: two lines of table text tall at the clip's usual 16:9.
    thumbnail_width: int = 160
    # Thumbnails kept in memory (about 5 kB each).
    thumbnail_cache: int = 4096
    # Clips whose decoded depth and masks stay in memory: the one on screen and the one before it.
    clip_cache: int = 2
    # A store whose changes cannot be watched cheaply (the bucket) is re-read at most this often.
    refresh_seconds: float = 30.0
    # Depth frames unprojected for the 3D view, spread over the clip; more add clutter, not shape.
    point_frames: int = 4
    # Points in the cloud at most: a laptop GPU draws this many at full frame rate.
    max_points: int = 120_000
    # Parallel reads of per-clip files when the store is remote.
    read_threads: int = 16


class ClipNotFound(KeyError):
    pass


@dataclass
class _Index:
    signature: Any
    rows: list[dict[str, Any]]
    kinds: dict[str, str]
    by_id: dict[str, dict[str, Any]]
    segments: dict[str, list[dict[str, Any]]]  # camera-motion segments of the clips that have them


@dataclass
class _ClipArrays:
    depth: np.ndarray | None
    k_depth: np.ndarray | None
    masks: np.ndarray | None
    scale: imaging.DepthScale
    depth_pngs: dict[int, bytes] = field(default_factory=dict)
    mask_pngs: dict[int, bytes] = field(default_factory=dict)
    points: bytes | None = None


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (numpy types to Python, NaN to None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def instruction_segments(instructions: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``{"0->15": ["Pan Left"]}`` as ``[{"start": 0, "end": 15, "labels": [...]}]`` in frame order."""
    segments = []
    for span, labels in instructions.items():
        start, end = (int(x) for x in span.split("->"))
        segments.append({"start": start, "end": end, "labels": list(labels)})
    return sorted(segments, key=lambda s: s["start"])


def _labels(segments: list[dict[str, Any]] | None) -> list[str] | None:
    """The clip's distinct camera-motion labels, in order of first appearance."""
    if segments is None:
        return None
    return list(dict.fromkeys(label for s in segments for label in s["labels"]))


def table_row(row: dict[str, Any], labels: list[str] | None) -> dict[str, Any]:
    """A metadata row with what the dataset page adds: duration, state, reasons, labels."""
    out = {name: _plain(value) for name, value in row.items()}
    fps = out.get("fps") or 0
    out["duration"] = round(out["num_frames"] / fps, 3) if fps else None
    rules = [r for r in (out.get("filtered_by") or "").split(",") if r]
    if out.get("failed_stage"):
        out["status"] = FAILED
        out["reasons"] = f"{out['failed_stage']}: {out.get('error') or 'failed'}"
    elif rules:
        out["status"] = FILTERED
        out["reasons"] = ", ".join(rules)
    else:
        out["status"] = KEPT
        out["reasons"] = ""
    out["labels"] = ", ".join(labels) if labels else None
    return out


class DatasetView:
    def __init__(self, store: ArtifactStore, video_url: Callable[[str], str] | None = None,
                 options: ViewerOptions | None = None) -> None:
        self.store = store
        self.book = RecordBook(store)
        self.options = options or ViewerOptions()
        # Where the browser plays a clip from: the app's own route locally, a presigned URL from the bucket.
        self.video_url = video_url or (lambda clip_id: f"api/clips/{clip_id}/video.mp4")
        self._lock = threading.Lock()
        self._index: _Index | None = None
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()
        self._arrays: OrderedDict[str, _ClipArrays] = OrderedDict()

    # -- the table -------------------------------------------------------------------
    def _signature(self) -> Any:
        if isinstance(self.store, LocalStore):
            root = self.store.root
            return tuple((root / name).stat().st_mtime_ns if (root / name).exists() else 0
                         for name in (METADATA, CLIPS))
        return int(time.monotonic() // self.options.refresh_seconds)

    def _metadata(self) -> pd.DataFrame:
        try:
            with self.store.local_path(METADATA) as path:
                return pd.read_parquet(path)
        except (ArtifactNotFound, FileNotFoundError):
            # A run still in progress has no table yet: the records are the rows.
            return pd.DataFrame([clip.metadata_row() for clip in self.book.all_clips()])

    def _segments(self, clip_id: str) -> list[dict[str, Any]] | None:
        try:
            return instruction_segments(self.store.get_json(f"annotations/{clip_id}/{a.INSTRUCTIONS}"))
        except (ArtifactNotFound, FileNotFoundError, ValueError):
            return None

    def index(self) -> _Index:
        signature = self._signature()
        with self._lock:
            if self._index is not None and self._index.signature == signature:
                return self._index
            frame = self._metadata()
            rows = frame.to_dict("records")
            ids = [str(r["id"]) for r in rows]
            if isinstance(self.store, LocalStore):
                segments = {i: self._segments(i) for i in ids}
            else:  # one round trip per clip: in parallel
                with ThreadPoolExecutor(self.options.read_threads) as pool:
                    segments = dict(zip(ids, pool.map(self._segments, ids)))
            table = [table_row(r, _labels(segments[i])) for r, i in zip(rows, ids)]
            kinds = {"id": "text", "status": "text", "reasons": "text", "duration": "number", "labels": "text",
                     **frame_kinds(frame)}
            self._index = _Index(signature, table, kinds, {r["id"]: r for r in table},
                                 {i: s for i, s in segments.items() if s is not None})
            return self._index

    def page(self, query: Query) -> Page:
        index = self.index()
        return run_query(index.rows, index.kinds, query)

    def row(self, clip_id: str) -> dict[str, Any]:
        row = self.index().by_id.get(clip_id)
        if row is None:
            raise ClipNotFound(clip_id)
        return row

    def records(self) -> list[ClipRecord]:
        return self.book.all_clips()

    # -- one clip ----------------------------------------------------------------------
    def _annotation(self, clip_id: str, name: str) -> bytes | None:
        try:
            return self.store.get_bytes(f"annotations/{clip_id}/{name}")
        except (ArtifactNotFound, FileNotFoundError):
            return None

    def _npy(self, clip_id: str, name: str) -> np.ndarray | None:
        data = self._annotation(clip_id, name)
        if data is None:
            return None
        return np.load(io.BytesIO(data), allow_pickle=False)

    def clip_detail(self, clip_id: str) -> dict[str, Any]:
        """Everything the clip page shows, except the per-frame images and points (their own routes)."""
        row = self.row(clip_id)
        record = self.book.load_clip(clip_id)
        c2w = self._npy(clip_id, a.C2W)
        intrinsics = self._npy(clip_id, a.INTRINSICS)
        indexes_text = self._annotation(clip_id, a.INDEXES)
        indexes = [int(x) for x in indexes_text.decode().split()] if indexes_text else []
        instructions = self._annotation(clip_id, a.INSTRUCTIONS)
        caption = self._annotation(clip_id, a.CAPTION)
        arrays = self._arrays_for(clip_id)
        return {
            "id": clip_id,
            "row": row,
            "video_url": self.video_url(clip_id),
            "fps": row.get("fps"),
            "num_frames": row.get("num_frames"),
            "width": row.get("width"),
            "height": row.get("height"),
            "status": row["status"],
            "reasons": row["reasons"],
            "stages": {name: status.model_dump(mode="json", exclude={"config"})
                       for name, status in (record.stages.items() if record else [])},
            "provenance": record.provenance if record else {},
            "trajectory": {name: row.get(name) for name in TRAJECTORY_COLUMNS if name in row},
            "dist_levels": list(DIST_LEVELS),
            "qc_flags": row.get(QC_FLAGS),
            "caption": json.loads(caption) if caption else None,
            "segments": instruction_segments(json.loads(instructions)) if instructions else [],
            "indexes": indexes,
            "c2w": c2w.reshape(len(c2w), 16).tolist() if c2w is not None else [],
            "intrinsics": intrinsics.tolist() if intrinsics is not None else [],
            "depth_frames": 0 if arrays.depth is None else len(arrays.depth),
            "depth_valid": arrays.scale.low is not None,
            "mask_frames": 0 if arrays.masks is None else len(arrays.masks),
        }

    def _arrays_for(self, clip_id: str) -> _ClipArrays:
        self.row(clip_id)  # only the dataset's own clips
        with self._lock:
            cached = self._arrays.get(clip_id)
            if cached is not None:
                self._arrays.move_to_end(clip_id)
                return cached
        depth = k_depth = masks = None
        try:
            found = self.store.get_npz(f"annotations/{clip_id}/{a.DEPTH}")
            depth, k_depth = found.get("depth"), found.get("K_depth")
        except (ArtifactNotFound, FileNotFoundError):
            pass
        try:
            masks = self.store.get_npz(f"annotations/{clip_id}/{a.DYN_MASKS}").get("masks")
        except (ArtifactNotFound, FileNotFoundError):
            pass
        scale = imaging.depth_scale(depth) if depth is not None else imaging.DepthScale(None, None)
        arrays = _ClipArrays(depth, k_depth, masks, scale)
        with self._lock:
            self._arrays[clip_id] = arrays
            while len(self._arrays) > self.options.clip_cache:
                self._arrays.popitem(last=False)
        return arrays

    def depth_frame(self, clip_id: str, row: int) -> bytes:
        arrays = self._arrays_for(clip_id)
        if arrays.depth is None or not 0 <= row < len(arrays.depth):
            raise ClipNotFound(f"{clip_id} has no depth row {row}")
        if row not in arrays.depth_pngs:
            arrays.depth_pngs[row] = imaging.depth_png(arrays.depth[row], arrays.scale)
        return arrays.depth_pngs[row]

    def mask_frame(self, clip_id: str, row: int) -> bytes:
        arrays = self._arrays_for(clip_id)
        if arrays.masks is None or not 0 <= row < len(arrays.masks):
            raise ClipNotFound(f"{clip_id} has no mask row {row}")
        if row not in arrays.mask_pngs:
            arrays.mask_pngs[row] = imaging.mask_png(arrays.masks[row])
        return arrays.mask_pngs[row]

    def points(self, clip_id: str) -> bytes:
        """The point cloud of a few depth frames, coloured by those frames' pixels (packed binary)."""
        arrays = self._arrays_for(clip_id)
        if arrays.points is not None:
            return arrays.points
        c2w = self._npy(clip_id, a.C2W)
        intrinsics = self._npy(clip_id, a.INTRINSICS)
        points, colours = np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
        if arrays.depth is not None and c2w is not None and intrinsics is not None and arrays.scale.low is not None:
            rows = [r for r in range(len(arrays.depth)) if (arrays.depth[r] > 0).any()]
            chosen = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, min(self.options.point_frames, len(rows)))]
            valid = sum(int((arrays.depth[r] > 0).sum()) for r in chosen)
            stride = max(1, math.ceil(math.sqrt(valid / self.options.max_points)))
            frames = self._frames(clip_id, self._frame_numbers(clip_id, chosen))
            parts = []
            for r, image in zip(chosen, frames):
                k = arrays.k_depth if arrays.k_depth is not None else imaging.depth_camera_matrix(
                    intrinsics[r], arrays.depth[r].shape)
                parts.append(imaging.unproject(arrays.depth[r], c2w[r], k, image, stride))
            if parts:
                points = np.concatenate([p for p, _ in parts])
                colours = np.concatenate([c for _, c in parts])
        arrays.points = imaging.pack_points(points, colours)
        return arrays.points

    def _frame_numbers(self, clip_id: str, rows: list[int]) -> list[int]:
        text = self._annotation(clip_id, a.INDEXES)
        indexes = [int(x) for x in text.decode().split()] if text else []
        return [indexes[r] if r < len(indexes) else r for r in rows]

    def _frames(self, clip_id: str, frame_numbers: list[int]) -> list[np.ndarray]:
        """RGB frames of the clip at those frame numbers (one decoding pass)."""
        from services.video.decode import read_frames

        wanted = set(frame_numbers)
        found: dict[int, np.ndarray] = {}
        row = self.row(clip_id)
        size = (int(row["width"]), int(row["height"]))
        with self.store.local_path(f"clips/{clip_id}.mp4") as path:
            for number, frame in enumerate(read_frames(path, size=size, fps=float(row["fps"]),
                                                       count=max(frame_numbers) + 1)):
                if number in wanted:
                    found[number] = frame
        last = found[max(found)] if found else np.zeros((size[1], size[0], 3), np.uint8)
        return [found.get(n, last) for n in frame_numbers]

    def _middle_frame(self, clip_id: str) -> np.ndarray:
        # A keyframe seek (OpenCV) is enough for a thumbnail and costs one GOP, not half the clip.
        middle = max(0, int(self.row(clip_id)["num_frames"]) // 2)
        with self.store.local_path(f"clips/{clip_id}.mp4") as path:
            capture = cv2.VideoCapture(str(path))
            try:
                capture.set(cv2.CAP_PROP_POS_FRAMES, middle)
                ok, frame = capture.read()
            finally:
                capture.release()
        if not ok:
            raise ClipNotFound(f"cannot decode a frame of {clip_id}")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def thumbnail(self, clip_id: str) -> bytes:
        with self._lock:
            if clip_id in self._thumbs:
                self._thumbs.move_to_end(clip_id)
                return self._thumbs[clip_id]
        jpeg = imaging.thumbnail_jpeg(self._middle_frame(clip_id), self.options.thumbnail_width)
        with self._lock:
            self._thumbs[clip_id] = jpeg
            while len(self._thumbs) > self.options.thumbnail_cache:
                self._thumbs.popitem(last=False)
        return jpeg
