"""The depth stage: depth maps and dynamic-object masks for the annotated frames of a clip.

Reads the clip and the camera stage's ``c2w.npy`` (N,4,4 camera-to-world, OpenCV axes, up to scale),
``intrinsics.npy`` (N x 4: fx/W, fy/H, cx/W, cy/H) and ``indexes.txt`` (``k frame_idx`` per annotated frame);
writes ``depth.npz`` (``depth`` N x h x w float16 z-depth in the poses' units, 0 = invalid, plus
``K_depth``) and ``dyn_masks.npz`` (``masks`` N x H x W bool), and the ``dynamicRatio`` column.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from services.dataset.formats import parse_indexes
from services.artifacts import C2W, CLIP_VIDEO, DENSE_TRACK, DEPTH, DEPTH_EXR_ZIP, DYN_MASKS, INDEXES, INTRINSICS, QC_EVIDENCE
from services.camera.frontend import working_size
from services.depth.backends import GeometricDepthAndMasks
from services.depth.exr_zip import write_disparity_zip
from services.depth.geometry import intrinsics_from_normalised
from services.depth.learned import POSE_UNITS, POSE_UNITS_WITH_METRIC, ModelClients, build_backend
from services.depth.multiview import depth_intrinsics
from services.depth.overlays import OverlayText
from services.quality.evidence import evidence_frames, view_evidence
from services.quality.record import evidence_json, provenance as verdict_provenance, track_from_json
from services.quality.params import QualitySettings
from services.quality.verdict import Verdict, clip_verdict
from services.kernels.config import configured
from services.records import ClipRecord
from services.scoring.ocr import build_text_detector
from services.settings import Settings
from services.stages.base import ClipFailed, ClipOutcome, Files, PerClipStage, StageContext
from services.video.decode import FrameRequest
from services.video.shared import clip_frames

FLOAT16_MAX = float(np.finfo(np.float16).max)


def select_frames(frames: Iterator[np.ndarray], indexes: np.ndarray) -> Iterator[np.ndarray]:
    """The frames whose numbers are in ``indexes`` (ascending), from a stream of all frames."""
    wanted = iter(indexes.tolist())
    target = next(wanted, None)
    for number, frame in enumerate(frames):
        if target is None:
            return
        if number == target:
            yield frame
            target = next(wanted, None)
            while target is not None and target == number:  # duplicated index: same frame again
                yield frame
                target = next(wanted, None)


class DepthStage(PerClipStage):
    name = "depth"
    config_sections = ("depth", "annotate", "quality")
    reads_frames = True

    def __init__(self) -> None:
        # weight-based backends' model clients (services.depth.learned), made on first use, kept for later clips
        self.model_clients = ModelClients()
        # PP-OCR for burned-in text, loaded on first use and kept per place it runs (like model_clients)
        self._text_detectors: dict[tuple, object] = {}

    def inputs(self, settings) -> Files:
        # the dense track for neighbour views at an annotation rate; the tracker's quality evidence to complete
        return Files(required=(C2W, INTRINSICS, INDEXES, CLIP_VIDEO), optional=(DENSE_TRACK, QC_EVIDENCE))

    def outputs(self, settings) -> Files:
        exr = (DEPTH_EXR_ZIP,) if settings.depth.export_exr_zip else ()
        return Files(required=(DEPTH, DYN_MASKS, QC_EVIDENCE, *exr))

    def _overlay_text(self, settings) -> OverlayText | None:
        if not settings.depth.mask_exclude_overlay_text:
            return None
        where = (settings.models.client.get("ocr_det", "inprocess"), settings.triton.url, settings.triton.grpc_url,
                 settings.score.ocr_threads)
        if where not in self._text_detectors:
            self._text_detectors[where] = build_text_detector(settings.models, settings.triton,
                                                                 settings.score.ocr_threads)
        return OverlayText(self._text_detectors[where], settings.depth.overlay_text_every)

    def frame_requests(self, clip: ClipRecord, settings: Settings) -> tuple[FrameRequest, ...]:
        # the working size: the clip's, scaled down to depth.working_max_side (intrinsics are normalised)
        size = working_size(clip.width, clip.height, settings.depth.working_max_side)
        return (FrameRequest(size=None if size == (clip.width, clip.height) else size),)

    def run(self, clip: ClipRecord, ctx: StageContext) -> ClipOutcome:
        with configured(ctx.settings.kernels):  # the run's kernels section picks the operators' device
            return self._run(clip, ctx)

    def _run(self, clip: ClipRecord, ctx: StageContext) -> ClipOutcome:
        settings = ctx.settings.depth
        # geometric by default; weight-based backends fail the clip here when their model cannot be had
        backend = build_backend(settings, self.model_clients.bound(ctx.settings.models, ctx.settings.triton),
                                self._overlay_text(ctx.settings))
        camera = read_camera(clip, ctx.store)
        request, = self.frame_requests(clip, ctx.settings)
        W, H = request.size or (clip.width, clip.height)
        K = np.stack([intrinsics_from_normalised(row, W, H) for row in camera.intrinsics])
        # an annotation rate: neighbour views among every tracked frame
        takes_refs = getattr(backend, "takes_refs", False)
        dense = read_dense_track(clip, ctx.store, camera.indexes, W, H) if takes_refs else None
        with clip_frames(ctx, clip, request) as decoded:
            maps = compute_maps(backend, decoded, camera, K, dense, (W, H), settings.depth_scale, ctx.progress)
        K_depth = depth_intrinsics(np.median(K, axis=0), W, H, settings.depth_scale)
        artifacts = write_maps(clip, ctx.store, maps, K_depth, settings.export_exr_zip)
        verdict = write_verdict(clip, ctx.store, camera, K, maps, W, ctx.settings.quality)
        artifacts.append(clip.annotation_key(QC_EVIDENCE))
        return outcome(backend, maps, verdict, artifacts)


@dataclass
class CameraOutputs:
    """What the camera stage wrote for the clip: poses, normalised intrinsics, the annotated frames."""

    c2w: np.ndarray  # (N,4,4)
    intrinsics: np.ndarray  # (N,4) fx/W, fy/H, cx/W, cy/H
    indexes: np.ndarray  # (N,) ascending frame numbers


@dataclass
class DenseTrack:
    """Every tracked frame's pose (the camera stage's dense track), for neighbour views at an annotation rate."""

    c2w: np.ndarray
    K: np.ndarray  # pixel intrinsics at the working size
    tracked: np.ndarray  # frame number of each row
    refs: np.ndarray  # row of each annotated frame


@dataclass
class DepthMaps:
    """The clip's depth maps and masks, as the stage publishes them."""

    depth: np.ndarray  # (N,h,w) float16 in the poses' units, 0 = invalid
    masks: np.ndarray  # (N,H,W) bool
    small: list[np.ndarray]  # grey copies at the verdict's working size (services.quality)
    units: str
    confidence: np.ndarray | None = None  # (N,h,w) float16, geometric backend only
    metres_per_unit: float | None = None


def read_camera(clip: ClipRecord, store) -> CameraOutputs:
    c2w = np.load(io.BytesIO(store.get_bytes(clip.annotation_key(C2W))))
    intr = np.load(io.BytesIO(store.get_bytes(clip.annotation_key(INTRINSICS))))
    indexes = parse_indexes(store.get_bytes(clip.annotation_key(INDEXES)).decode())
    if not (len(c2w) == len(intr) == len(indexes)) or len(indexes) == 0:
        raise ClipFailed(f"camera outputs disagree: {len(c2w)} poses, {len(intr)} intrinsics, {len(indexes)} indexes")
    if np.any(np.diff(indexes) < 0):
        raise ClipFailed("indexes.txt is not in ascending order")
    return CameraOutputs(c2w, intr, indexes)


def read_dense_track(clip: ClipRecord, store, indexes: np.ndarray, W: int, H: int) -> DenseTrack | None:
    """The dense track, where the camera stage wrote one (None: the annotated frames are every tracked frame)."""
    dense_key = clip.annotation_key(DENSE_TRACK)
    if not store.exists(dense_key):
        return None
    track = np.load(io.BytesIO(store.get_bytes(dense_key)))
    tracked = track["frame_indices"].astype(np.int64)
    refs = np.searchsorted(tracked, indexes)
    if np.any(refs >= len(tracked)) or np.any(tracked[np.minimum(refs, len(tracked) - 1)] != indexes):
        raise ClipFailed(f"{DENSE_TRACK} does not hold every frame of indexes.txt (run the camera stage again)")
    K_all = np.stack([intrinsics_from_normalised(row, W, H) for row in track["intrinsics"]])
    return DenseTrack(track["c2w"], K_all, tracked, refs)


def compute_maps(backend, decoded: Iterator[np.ndarray], camera: CameraOutputs, K: np.ndarray,
                 dense: DenseTrack | None, size: tuple[int, int], depth_scale: float, progress=None) -> DepthMaps:
    """Run the backend over the decoded frames: depth in the poses' units, masks, the verdict's grey copies."""
    W, H = size
    indexes = camera.indexes
    n = len(indexes)
    gw, gh = round(W * depth_scale), round(H * depth_scale)
    depth = np.zeros((n, gh, gw), np.float16)
    masks = np.zeros((n, H, W), bool)
    small: list[np.ndarray] = []
    # the geometric backend says per pixel whether its depth was triangulated, carried or filled
    confidence: list[np.ndarray] | None = [] if isinstance(backend, GeometricDepthAndMasks) else None
    more = {} if confidence is None else {"confidence": confidence}
    if dense is not None:  # grey copies for the verdict of the output frames only
        frames = evidence_frames(select_frames(decoded, dense.tracked), small, np.isin(dense.tracked, indexes))
        pairs = backend.iter_both(frames, dense.c2w, dense.K, refs=dense.refs, **more)
    else:
        frames = evidence_frames(select_frames(decoded, indexes), small)
        pairs = backend.iter_both(frames, camera.c2w, K, **more)
    produced = 0
    for i, (d, m) in enumerate(pairs):
        d = np.where(d < FLOAT16_MAX, d, 0)  # beyond float16: left invalid rather than saturated
        depth[i] = d.astype(np.float16)
        masks[i] = m
        produced += 1
        if progress:
            progress(produced / n)
    if produced != n:
        raise ClipFailed(f"decoded {produced} of {n} annotated frames")
    maps = DepthMaps(depth, masks, small, getattr(backend.depth, "units", POSE_UNITS))
    metres_per_unit = getattr(backend, "metres_per_pose_unit", None)
    if metres_per_unit:
        maps.depth, maps.units = to_pose_units(depth, metres_per_unit), POSE_UNITS_WITH_METRIC
        maps.metres_per_unit = metres_per_unit
    if confidence is not None and len(confidence) == n:
        # 0 where the depth was dropped (beyond float16, or under a mask after the map was made)
        maps.confidence = np.where(maps.depth > 0, np.stack(confidence), 0).astype(np.float16)
    return maps


def to_pose_units(depth: np.ndarray, metres_per_unit: float) -> np.ndarray:
    """Metric depth (UniDepth) back into the poses' units, so depth and c2w.npy agree; the factor turns both into
    metres."""
    in_units = depth.astype(np.float32) / metres_per_unit
    return np.where((depth > 0) & (in_units < FLOAT16_MAX), in_units, 0).astype(np.float16)


def write_maps(clip: ClipRecord, store, maps: DepthMaps, K_depth: np.ndarray, export_exr_zip: bool) -> list[str]:
    """depth.npz, dyn_masks.npz and, when asked, the EXR zip; their keys."""
    extra = {}
    if maps.metres_per_unit:
        extra["metres_per_pose_unit"] = np.float64(maps.metres_per_unit)
    if maps.confidence is not None:
        extra["confidence"] = maps.confidence
    with store.writer(clip.annotation_key(DEPTH), ".npz") as tmp:
        np.savez_compressed(tmp, depth=maps.depth, K_depth=K_depth.astype(np.float32), units=np.array(maps.units),
                            **extra)
    with store.writer(clip.annotation_key(DYN_MASKS), ".npz") as tmp:
        np.savez_compressed(tmp, masks=maps.masks)
    artifacts = [clip.annotation_key(DEPTH), clip.annotation_key(DYN_MASKS)]
    if export_exr_zip:
        with store.writer(clip.annotation_key(DEPTH_EXR_ZIP), ".zip") as tmp:
            write_disparity_zip(tmp, maps.depth.astype(np.float32))
        artifacts.append(clip.annotation_key(DEPTH_EXR_ZIP))
    return artifacts


def write_verdict(clip: ClipRecord, store, camera: CameraOutputs, K: np.ndarray, maps: DepthMaps, W: int,
                  qc: QualitySettings) -> Verdict:
    """The quality verdict from the tracker's evidence and the depth's own; completes the clip's qc evidence file."""
    evidence_key = clip.annotation_key(QC_EVIDENCE)
    pose_evidence = track_from_json(store.get_bytes(evidence_key) if store.exists(evidence_key) else None)
    indexes = camera.indexes
    rows = [(int(np.searchsorted(indexes, a)), int(np.searchsorted(indexes, b)))
            for a, b in pose_evidence.segments] if pose_evidence else [(0, len(indexes))]
    views = view_evidence(maps.small, camera.c2w, K, maps.depth, maps.masks, rows, W, qc.pair_offset, qc.pair_every,
                          qc.long_pair_offset, qc.long_pair_every, maps.confidence)
    verdict = clip_verdict(pose_evidence, views, qc)
    store.put_bytes(evidence_key, evidence_json(pose_evidence, views, verdict))
    return verdict


def outcome(backend, maps: DepthMaps, verdict: Verdict, artifacts: list[str]) -> ClipOutcome:
    """The clip's columns, provenance and note."""
    valid_share = float((maps.depth > 0).mean())
    columns = {
        "dynamicRatio": float(maps.masks.mean()),
        # Share of depth pixels with a value (0 where no parallax was ever observed).
        "depth_valid_ratio": round(valid_share, 4),
        "depth_backend": backend.depth.name,
        "mask_backend": backend.masks.name,
        **verdict.columns(),
    }
    if maps.metres_per_unit:
        columns["metres_per_pose_unit"] = round(float(maps.metres_per_unit), 6)
    provenance = {"depth": backend.depth.name, "dynamicRatio": backend.masks.name,
                  **verdict_provenance(with_views=True)}
    notes = list(getattr(backend, "notes", []))
    if valid_share == 0:
        notes.insert(0, "no valid depth: the camera never moved enough to see parallax")
    note = "; ".join(notes) or None
    return ClipOutcome(columns=columns, artifacts=artifacts, provenance=provenance, note=note)
