"""The depth stage: depth maps and dynamic-object masks for the annotated frames of a clip.

Reads the clip and the camera stage's ``c2w.npy`` (N,4,4 camera-to-world, OpenCV axes, up to scale),
``intrinsics.npy`` (N x 4: fx/W, fy/H, cx/W, cy/H) and ``indexes.txt`` (``k frame_idx`` per annotated frame);
writes ``depth.npz`` (``depth`` N x h x w float16 z-depth in the poses' units, 0 = invalid, plus
``K_depth``) and ``dyn_masks.npz`` (``masks`` N x H x W bool), and the ``dynamicRatio`` column.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

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
from services.quality.verdict import clip_verdict
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
            self._text_detectors[where] = build_text_detector(settings)
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
        c2w = np.load(io.BytesIO(ctx.store.get_bytes(clip.annotation_key(C2W))))
        intr = np.load(io.BytesIO(ctx.store.get_bytes(clip.annotation_key(INTRINSICS))))
        indexes = parse_indexes(ctx.store.get_bytes(clip.annotation_key(INDEXES)).decode())
        if not (len(c2w) == len(intr) == len(indexes)) or len(indexes) == 0:
            raise ClipFailed(f"camera outputs disagree: {len(c2w)} poses, {len(intr)} intrinsics, {len(indexes)} indexes")
        if np.any(np.diff(indexes) < 0):
            raise ClipFailed("indexes.txt is not in ascending order")
        request, = self.frame_requests(clip, ctx.settings)
        W, H = request.size or (clip.width, clip.height)
        K = np.stack([intrinsics_from_normalised(row, W, H) for row in intr])
        dense_key = clip.annotation_key(DENSE_TRACK)
        sparse = getattr(backend, "takes_refs", False) and ctx.store.exists(dense_key)
        if sparse:  # an annotation rate: neighbour views among every tracked frame
            track = np.load(io.BytesIO(ctx.store.get_bytes(dense_key)))
            tracked = track["frame_indices"].astype(np.int64)
            refs = np.searchsorted(tracked, indexes)
            if np.any(refs >= len(tracked)) or np.any(tracked[np.minimum(refs, len(tracked) - 1)] != indexes):
                raise ClipFailed(f"{DENSE_TRACK} does not hold every frame of indexes.txt (run the camera stage again)")
            K_all = np.stack([intrinsics_from_normalised(row, W, H) for row in track["intrinsics"]])

        n = len(indexes)
        gw, gh = round(W * settings.depth_scale), round(H * settings.depth_scale)
        depth = np.zeros((n, gh, gw), np.float16)
        masks = np.zeros((n, H, W), bool)
        small: list[np.ndarray] = []  # grey copies at the verdict's working size (services.quality)
        with clip_frames(ctx, clip, request) as decoded:
            # the geometric backend says per pixel whether its depth was triangulated, carried or filled
            confidence: list[np.ndarray] | None = [] if isinstance(backend, GeometricDepthAndMasks) else None
            more = {} if confidence is None else {"confidence": confidence}
            if sparse:  # grey copies for the verdict of the output frames only
                frames = evidence_frames(select_frames(decoded, tracked), small, np.isin(tracked, indexes))
                pairs = backend.iter_both(frames, track["c2w"], K_all, refs=refs, **more)
            else:
                frames = evidence_frames(select_frames(decoded, indexes), small)
                pairs = backend.iter_both(frames, c2w, K, **more)
            produced = 0
            for i, (d, m) in enumerate(pairs):
                d = np.where(d < FLOAT16_MAX, d, 0)  # beyond float16: left invalid rather than saturated
                depth[i] = d.astype(np.float16)
                masks[i] = m
                produced += 1
                if ctx.progress:
                    ctx.progress(produced / n)
        if produced != n:
            raise ClipFailed(f"decoded {produced} of {n} annotated frames")

        units = getattr(backend.depth, "units", POSE_UNITS)
        metres_per_unit = getattr(backend, "metres_per_pose_unit", None)
        extra = {}
        if metres_per_unit:
            # metric depth (UniDepth) back into the poses' units, so depth and c2w.npy agree; the factor
            # turns both into metres
            in_units = depth.astype(np.float32) / metres_per_unit
            depth = np.where((depth > 0) & (in_units < FLOAT16_MAX), in_units, 0).astype(np.float16)
            units = POSE_UNITS_WITH_METRIC
            extra["metres_per_pose_unit"] = np.float64(metres_per_unit)
        K_depth = depth_intrinsics(np.median(K, axis=0), W, H, settings.depth_scale)
        artifacts = []
        with ctx.store.writer(clip.annotation_key(DEPTH), ".npz") as tmp:
            if confidence is not None and len(confidence) == n:
                # 0 where the depth was dropped (beyond float16, or under a mask after the map was made)
                extra["confidence"] = np.where(depth > 0, np.stack(confidence), 0).astype(np.float16)
            np.savez_compressed(tmp, depth=depth, K_depth=K_depth.astype(np.float32), units=np.array(units), **extra)
        artifacts.append(clip.annotation_key(DEPTH))
        with ctx.store.writer(clip.annotation_key(DYN_MASKS), ".npz") as tmp:
            np.savez_compressed(tmp, masks=masks)
        artifacts.append(clip.annotation_key(DYN_MASKS))
        if settings.export_exr_zip:
            with ctx.store.writer(clip.annotation_key(DEPTH_EXR_ZIP), ".zip") as tmp:
                write_disparity_zip(tmp, depth.astype(np.float32))
            artifacts.append(clip.annotation_key(DEPTH_EXR_ZIP))

        evidence_key = clip.annotation_key(QC_EVIDENCE)
        pose_evidence = track_from_json(ctx.store.get_bytes(evidence_key) if ctx.store.exists(evidence_key) else None)
        rows = [(int(np.searchsorted(indexes, a)), int(np.searchsorted(indexes, b)))
                for a, b in pose_evidence.segments] if pose_evidence else [(0, n)]
        qc = ctx.settings.quality
        views = view_evidence(small, c2w, K, depth, masks, rows, W, qc.pair_offset, qc.pair_every,
                              qc.long_pair_offset, qc.long_pair_every, extra.get("confidence"))
        verdict = clip_verdict(pose_evidence, views, qc)
        ctx.store.put_bytes(evidence_key, evidence_json(pose_evidence, views, verdict))
        artifacts.append(evidence_key)

        valid_share = float((depth > 0).mean())
        columns = {
            "dynamicRatio": float(masks.mean()),
            # Share of depth pixels with a value (0 where no parallax was ever observed).
            "depth_valid_ratio": round(valid_share, 4),
            "depth_backend": backend.depth.name,
            "mask_backend": backend.masks.name,
            **verdict.columns(),
        }
        if metres_per_unit:
            columns["metres_per_pose_unit"] = round(float(metres_per_unit), 6)
        provenance = {"depth": backend.depth.name, "dynamicRatio": backend.masks.name,
                      **verdict_provenance(with_views=True)}
        notes = list(getattr(backend, "notes", []))
        if valid_share == 0:
            notes.insert(0, "no valid depth: the camera never moved enough to see parallax")
        note = "; ".join(notes) or None
        return ClipOutcome(columns=columns, artifacts=artifacts, provenance=provenance, note=note)
