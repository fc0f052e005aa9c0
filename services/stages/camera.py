"""The camera stage: per-frame poses and intrinsics, motion labels and trajectory statistics.

Thin I/O around ``services.camera.track_camera``; writes, under ``annotations/{clip_id}/``:
``poses.npy`` (N x 7 world-to-camera tx,ty,tz,qx,qy,qz,qw), ``c2w.npy`` (N,4,4 camera-to-world),
``intrinsics.npy`` (N x 4 fx/W, fy/H, cx/W, cy/H), ``indexes.txt`` (``k frame_idx``: clip frame of each row)
and ``instructions.json`` ({"start->end": [labels]}, clip frames, end exclusive).
"""

from __future__ import annotations

import io
import json

import numpy as np

from services.annotate import chosen_frames
from services.artifacts import C2W, CLIP_VIDEO, DENSE_TRACK, INDEXES, INSTRUCTIONS, INTRINSICS, POSES, QC_EVIDENCE
from services.camera.frontend import working_size
from services.camera.geometry import c2w_to_w2c_quat
from services.camera.labels import motion_instructions, trajectory_stats
from services.camera.track import track_camera
from services.dataset.formats import format_indexes
from services.quality.evidence import track_evidence
from services.quality.record import evidence_json, provenance as verdict_provenance
from services.quality.verdict import clip_verdict
from services.kernels.config import configured
from services.records import ClipRecord
from services.settings import Settings
from services.stages.base import ClipFailed, ClipOutcome, Files, PerClipStage, StageContext
from services.video.decode import DecodeError, FrameRequest
from services.video.shared import clip_frames

def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


class CameraStage(PerClipStage):
    name = "camera"
    config_sections = ("camera", "annotate", "quality")
    reads_frames = True

    def frame_requests(self, clip: ClipRecord, settings: Settings) -> tuple[FrameRequest, ...]:
        # straight at the tracker's working size (ffmpeg scales; intrinsics are normalised)
        return (FrameRequest(size=working_size(clip.width, clip.height, settings.camera.working_max_side)),)

    def inputs(self, settings) -> Files:
        return Files(required=(CLIP_VIDEO,))

    def outputs(self, settings) -> Files:
        # the dense track only when an annotation rate leaves tracked frames out of the published rows
        return Files(required=(POSES, C2W, INTRINSICS, INDEXES, INSTRUCTIONS, QC_EVIDENCE), optional=(DENSE_TRACK,))

    def run(self, clip: ClipRecord, ctx: StageContext) -> ClipOutcome:
        with configured(ctx.settings.kernels):  # the run's kernels section picks the operators' device
            return self._run(clip, ctx)

    def _run(self, clip: ClipRecord, ctx: StageContext) -> ClipOutcome:
        settings = ctx.settings.camera
        if settings.backend != "geometric":
            raise ClipFailed(f"camera backend {settings.backend!r} is not available (only 'geometric')")
        request, = self.frame_requests(clip, ctx.settings)
        try:
            with clip_frames(ctx, clip, request) as frames:
                track = track_camera(frames, clip.fps, settings)
        except DecodeError as exc:
            raise ClipFailed(str(exc)) from None
        if len(track.c2w) == 0:
            raise ClipFailed(track.reason or "no poses")
        stats = trajectory_stats(track.c2w, clip.fps)
        instructions = motion_instructions(track.c2w, clip.fps, track.frame_indices, track.segments)
        # statistics and labels from every tracked frame; the published rows at the annotation rate
        wanted = chosen_frames(clip.num_frames, clip.fps, ctx.settings.annotate.rate_hz)
        rows = np.flatnonzero(np.isin(track.frame_indices, wanted))
        c2w, intrinsics, indexes = track.c2w[rows], track.intrinsics[rows], track.frame_indices[rows]
        evidence = track_evidence(track, focal_given=bool(settings.known_hfov_deg), fps=clip.fps,
                                  label_factor=ctx.settings.quality.label_threshold_factor)
        verdict = clip_verdict(evidence, None, ctx.settings.quality)
        files = {
            POSES: _npy_bytes(c2w_to_w2c_quat(c2w).astype(np.float64)),
            C2W: _npy_bytes(c2w.astype(np.float64)),
            INTRINSICS: _npy_bytes(intrinsics.astype(np.float64)),
            INDEXES: format_indexes(indexes).encode(),
            INSTRUCTIONS: json.dumps(instructions, indent=1).encode(),
            QC_EVIDENCE: evidence_json(evidence, None, verdict),
        }
        if len(rows) < len(track.frame_indices):  # the depth stage picks neighbour views among every frame
            buf = io.BytesIO()
            np.savez(buf, c2w=track.c2w.astype(np.float64), intrinsics=track.intrinsics.astype(np.float64),
                     frame_indices=track.frame_indices.astype(np.int64))
            files[DENSE_TRACK] = buf.getvalue()
        artifacts = []
        for name, data in files.items():
            key = clip.annotation_key(name)
            ctx.store.put_bytes(key, data)
            artifacts.append(key)
        columns = dict(success=track.success, **stats, pose_backend=track.backend, **verdict.columns())
        focal = "; ".join(f"hfov {h:.1f} deg ({s})" for h, s in zip(track.hfov_deg, track.focal_source))
        provenance = {
            "poses": f"{track.backend} (up to scale; focal: {focal})",
            "success,anomaly,moveDist,distLevel,rotAngle,trajTurns": f"{track.backend} + reference trajectory statistics",
            "instructions": "reference enhanced vote on level-frame motion (services.camera.labels)",
            **verdict_provenance(with_views=False),
        }
        notes = list(track.notes) + ([f"tracking failed: {track.reason}"] if not track.success else [])
        return ClipOutcome(columns=columns, artifacts=artifacts, provenance=provenance, note="; ".join(notes) or None)
