"""The caption stage: ``annotations/{clip_id}/caption.json`` for every kept clip.

A thin I/O wrapper: it gathers what the other stages left (instructions.json,
c2w.npy or poses.npy, metadata columns), runs the configured captioner and
writes the validated caption. A failed model call fails this clip only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import ClassVar

import numpy as np
from scipy.spatial.transform import Rotation

from services.artifacts import C2W, CAPTION, CLIP_VIDEO, INSTRUCTIONS, POSES
from services.caption.annotations import VERSION as ANNOTATIONS_VERSION
from services.caption.annotations import caption_from_annotations
from services.caption.client import ChatError
from services.caption.context import ClipContext, parse_instructions
from services.caption.frames import fit_size, jpeg_data_url, sampling
from services.caption.models import VERSION as MODELS_VERSION
from services.caption.models import ModelCaptioner
from services.caption.schema import Caption, caption_document
from services.records import ClipRecord
from services.settings import CaptionSettings, Settings
from services.stages.base import ClipFailed, ClipOutcome, Files, PerClipStage, StageContext
from services.storage.base import ArtifactStore
from services.video.decode import DecodeError, FrameRequest
from services.video.shared import clip_frames

log = logging.getLogger(__name__)

# Settings that change what a caption says (not how patiently it is fetched).
_OUTPUT_FIELDS = {
    "annotations": ("backend",),
    "openai": ("backend", "vlm_url", "vlm_model", "llm_url", "llm_model", "vlm_temperature",
               "llm_temperature", "max_tokens", "json_mode", "frames_per_second", "max_frames",
               "frame_width", "frame_height", "jpeg_quality"),
}
# Frames decoded to measure luminance when the score stage did not run.
_LUMA_FRAMES = 3


def c2w_from_poses(poses: np.ndarray) -> np.ndarray:
    """(N, 7) world-to-camera ``tx ty tz qx qy qz qw`` -> (N, 4, 4) camera-to-world."""
    w2c = np.tile(np.eye(4), (len(poses), 1, 1))
    w2c[:, :3, :3] = Rotation.from_quat(poses[:, 3:7]).as_matrix()
    w2c[:, :3, 3] = poses[:, :3]
    return np.linalg.inv(w2c)


def load_context(clip: ClipRecord, store: ArtifactStore) -> ClipContext:
    """Everything the captioners can use for this clip; missing parts stay empty."""
    ctx = ClipContext(clip.id, clip.fps, clip.num_frames, clip.width, clip.height, columns=dict(clip.columns))
    key = clip.annotation_key(INSTRUCTIONS)
    if store.exists(key):
        try:
            ctx.segments = parse_instructions(store.get_json(key))
        except (ValueError, json.JSONDecodeError) as exc:
            raise ClipFailed(f"cannot read {key}: {exc}") from None
        ctx.sources.append(INSTRUCTIONS)
    for name in (C2W, POSES):
        key = clip.annotation_key(name)
        if not store.exists(key):
            continue
        array = store.get_npy(key)
        if name == C2W and array.ndim == 3 and array.shape[1:] == (4, 4):
            ctx.c2w = array.astype(np.float64)
        elif name == POSES and array.ndim == 2 and array.shape[1] == 7:
            ctx.c2w = c2w_from_poses(array.astype(np.float64))
        else:
            raise ClipFailed(f"{key} has shape {array.shape}, not a pose array")
        ctx.sources.append(name)
        break
    known = ("moveDist", "distLevel", "rotAngle", "trajTurns", "luminance_mean", "dynamicRatio",
             "ocr", "ocr_text", "motion", "flow_magnitude")
    ctx.sources += [name for name in known if ctx.columns.get(name) is not None]
    return ctx


class CaptionStage(PerClipStage):
    name: ClassVar[str] = "caption"
    reads_frames = True

    def inputs(self, settings: Settings) -> Files:
        # camera labels and poses when the camera stage ran; the clip's frames for the VLM or luminance
        return Files(optional=(INSTRUCTIONS, C2W, POSES, CLIP_VIDEO))

    def outputs(self, settings: Settings) -> Files:
        return Files(required=(CAPTION,))

    def fingerprint(self, settings: Settings) -> str:
        caption = settings.caption
        payload = {f: getattr(caption, f) for f in _OUTPUT_FIELDS[caption.backend]}
        payload["version"] = ANNOTATIONS_VERSION if caption.backend == "annotations" else MODELS_VERSION
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def _captioner(self, ctx: StageContext) -> ModelCaptioner:
        # Clients (with their connection pools and limits) are built once per settings.
        cache_key = f"caption:{self.fingerprint(ctx.settings)}"
        captioner = ctx.cache.get(cache_key)
        if captioner is None:
            try:
                captioner = ModelCaptioner.from_settings(ctx.settings.caption)
            except ValueError as exc:
                raise ClipFailed(f"caption backend 'openai' is not configured: {exc}") from None
            ctx.cache[cache_key] = captioner
        return captioner

    def frame_requests(self, clip: ClipRecord, settings: Settings) -> tuple[FrameRequest, ...]:
        if settings.caption.backend != "annotations":
            return (_vlm_frames(clip, settings.caption),)
        return (_luma_frames(clip),) if clip.columns.get("luminance_mean") is None else ()

    def setup(self, ctx: StageContext) -> None:
        if ctx.settings.caption.backend == "openai":
            try:
                self._captioner(ctx)
            except ClipFailed as exc:
                log.error("%s", exc)  # every clip will fail with the same reason

    def run(self, clip: ClipRecord, ctx: StageContext) -> ClipOutcome:
        settings = ctx.settings.caption
        context = load_context(clip, ctx.store)
        if settings.backend == "annotations":
            if context.number("luminance_mean") is None:
                self._measure_luminance(clip, context, ctx)
            caption = caption_from_annotations(context)
            provenance = f"{ANNOTATIONS_VERSION}: sentences from camera labels, trajectory statistics and scores (no model)"
        else:
            captioner = self._captioner(ctx)
            urls = self._frames(clip, settings, ctx)
            try:
                caption = captioner.caption(urls, context)
            except ChatError as exc:
                raise ClipFailed(f"captioning failed: {exc}") from None
            provenance = f"{MODELS_VERSION}: VLM {settings.vlm_model} + LLM {settings.llm_model}"
        key = clip.annotation_key(CAPTION)
        ctx.store.put_json(key, caption_document(Caption.model_validate(caption)))
        return ClipOutcome(
            columns={"caption_backend": settings.backend},
            artifacts=[key],
            provenance={"caption": provenance, "caption_backend": provenance},
        )

    # -- frames ------------------------------------------------------------
    def _frames(self, clip: ClipRecord, settings: CaptionSettings, ctx: StageContext) -> list[str]:
        if not ctx.store.exists(clip.clip_key):
            raise ClipFailed(f"{clip.clip_key} is missing; the VLM has nothing to look at")
        try:
            with clip_frames(ctx, clip, _vlm_frames(clip, settings)) as frames:
                return [jpeg_data_url(frame, settings.jpeg_quality) for frame in frames]
        except DecodeError as exc:
            raise ClipFailed(f"cannot decode {clip.clip_key}: {exc}") from None

    def _measure_luminance(self, clip: ClipRecord, context: ClipContext, ctx: StageContext) -> None:
        """Rec.709 luma of a few frames, when the score stage has not measured it."""
        if not ctx.store.exists(clip.clip_key):
            return
        try:
            with clip_frames(ctx, clip, _luma_frames(clip)) as decoded:
                frames = np.stack(list(decoded))
        except DecodeError:
            return
        luma = frames.reshape(len(frames), -1, 3).mean(axis=1) @ np.array([0.2126, 0.7152, 0.0722])
        context.columns["luminance_mean"] = float(luma.mean())
        context.sources.append("luminance (measured by the caption stage)")


def _vlm_frames(clip: ClipRecord, settings: CaptionSettings) -> FrameRequest:
    """The frames the VLM is shown: spread over the clip at the configured rate, fitted to the frame size."""
    step, count = sampling(clip.num_frames, clip.fps, settings.frames_per_second, settings.max_frames)
    return FrameRequest(size=fit_size(clip.width, clip.height, settings.frame_width, settings.frame_height),
                        step=step, count=count)


def _luma_frames(clip: ClipRecord) -> FrameRequest:
    """A few small frames spread over the clip, to measure luminance."""
    return FrameRequest(size=(160, 90), step=max(1, clip.num_frames // _LUMA_FRAMES), count=_LUMA_FRAMES)
