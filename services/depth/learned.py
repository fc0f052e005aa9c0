"""The weight-based depth and mask backends, wired through the model-client seam.

- ``depth_anything_v2``: Depth Anything V2 relative disparity per annotated frame,
  aligned per frame by a robust scale and shift in disparity space
  (``services.depth.align``) to UniDepth V2 metric depth (the reference's recipe,
  ``metric=True``) when UniDepth's client loads, otherwise to the geometric
  multi-view depth of the same frame on its valid pixels (then in the poses'
  units, ``metric=False``; the provenance says so). ``depth.align_to`` can insist
  on either; with no reference at all the clip fails rather than invent a scale.
- ``sam2``: the geometric motion evidence -> the reference's point-prompt rule ->
  SAM 2.1 -> the reference's merged mask (``services.depth.sam2_refine``).

Both run on top of one geometric pass (``GeometricDepthAndMasks``), which
supplies the alignment reference and the motion evidence. Clients come from
``services.models.client.get_model_client`` (in-process or Triton per
``models.client``); a model that cannot be had (weights missing, model code
missing, Triton model unavailable) fails the clip with that model's message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import cv2
import numpy as np

from services.depth.align import Alignment, align_disparity_to_depth
from services.depth.backends import DEPTH_BACKENDS, MASK_BACKENDS, GeometricDepthAndMasks
from services.depth.params import DepthSettings
from services.depth.sam2_refine import motion_map, refine_masks, sam2_prompts
from services.models.client import ModelClient, get_model_client
from services.models.params import ModelSettings, TritonSettings
from services.stages.base import ClipFailed

POSE_UNITS = "pose units (up to scale, as c2w.npy); 0 = invalid"
METRIC_UNITS = "metres (UniDepth V2 metric scale, aligned per frame; c2w.npy stays up to scale); 0 = invalid"
POSE_UNITS_WITH_METRIC = ("pose units (as c2w.npy); times metres_per_pose_unit (from UniDepth V2) gives metres, "
                          "for depth and c2w translations alike; 0 = invalid")

# Errors that mean "this model cannot be had here": WeightsMissing (FileNotFoundError),
# ModelPackageMissing (ImportError), the Triton client's ModelUnavailable (RuntimeError),
# a malformed checkpoint (ValueError, KeyError).
_UNAVAILABLE = (OSError, ImportError, RuntimeError, ValueError, KeyError)


class ModelNotAvailable(Exception):
    """A model's client could not be made; the message is the model's own reason."""


class ModelClients:
    """The stage's model clients, made on first use and kept for later clips (one set per stage object).

    A failure is not remembered: the next clip asks again (weights may appear, a Triton server may come up).
    """

    def __init__(self) -> None:
        self._clients: dict[tuple, ModelClient] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(name: str, models: ModelSettings, triton: TritonSettings) -> tuple:
        mode = models.client.get(name, "inprocess")
        where = (triton.protocol, triton.url, triton.grpc_url) if mode == "triton" else (
            str(models.weights_dir), models.device)
        return name, mode, where

    def get(self, name: str, models: ModelSettings, triton: TritonSettings) -> ModelClient:
        """``name``'s client where the models section says it runs (in this process, or on the Triton server)."""
        key = self._key(name, models, triton)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                try:
                    client = get_model_client(name, models, triton)
                except _UNAVAILABLE as exc:
                    raise ModelNotAvailable(str(exc) or type(exc).__name__) from exc
                self._clients[key] = client
            return client

    def bound(self, models: ModelSettings, triton: TritonSettings) -> "RunClients":
        """These clients as one run's models and triton sections ask for them."""
        return RunClients(self, models, triton)


@dataclass(frozen=True)
class RunClients:
    """The stage's model clients, for one run's ``models`` and ``triton`` sections."""

    clients: ModelClients
    models: ModelSettings
    triton: TritonSettings

    def get(self, name: str) -> ModelClient:
        return self.clients.get(name, self.models, self.triton)


# ----------------------------------------------------------------------------- depth


@dataclass
class AlignedDepthAnything:
    """Depth Anything V2 relative disparity, aligned per frame to a reference depth (DepthBackend)."""

    relative: ModelClient
    metric_client: ModelClient | None  # UniDepth V2; None: align to the geometric depth
    geometric_name: str
    reference_note: str = ""  # why UniDepth is not the reference (when it is not)
    name: str = field(init=False)
    metric: bool = field(init=False)
    units: str = field(init=False)

    def __post_init__(self) -> None:
        self.metric = self.metric_client is not None
        recipe = "depth-anything-v2 aligned per frame (robust scale and shift in disparity) to"
        if self.metric:
            self.name = f"{recipe} unidepth-v2 metric depth [{self.relative.backend}; {self.metric_client.backend}]"
            self.units = METRIC_UNITS
        else:
            self.name = (f"{recipe} geometric multi-view depth (up to scale) "
                         f"[{self.relative.backend}; {self.geometric_name}]")
            self.units = POSE_UNITS

    def align_batch(self, frames: np.ndarray, geometric_depth: np.ndarray) -> list[Alignment]:
        """(B, H, W, 3) uint8 frames and their (B, h, w) geometric depth -> one Alignment per frame on (h, w)."""
        h, w = geometric_depth.shape[1:]
        disparity = _on_grid(self._answer(self.relative, frames, "disparity"), (h, w))
        if self.metric:
            reference = _on_grid(self._answer(self.metric_client, frames, "depth"), (h, w), depth=True)
        else:
            reference = geometric_depth
        return [align_disparity_to_depth(d, r) for d, r in zip(disparity, reference)]

    @staticmethod
    def _answer(client: ModelClient, frames: np.ndarray, output: str) -> np.ndarray:
        out = np.asarray(client.infer({"image": np.ascontiguousarray(frames, dtype=np.uint8)})[output], np.float32)
        if out.shape != frames.shape[:3]:
            raise ClipFailed(f"{client.name} answered {output} of shape {out.shape} for frames {frames.shape[:3]}")
        return out


def _on_grid(maps: np.ndarray, grid_hw: tuple[int, int], depth: bool = False) -> np.ndarray:
    """(B, H, W) maps resized to the depth grid: area-averaged (depth through its inverse, as disparity)."""
    h, w = grid_hw
    if maps.shape[1:] == (h, w):
        return maps
    out = np.empty((len(maps), h, w), np.float32)
    for i, m in enumerate(maps):
        if depth:
            valid = np.isfinite(m) & (m > 0)
            inv = cv2.resize(np.where(valid, 1.0 / np.where(valid, m, 1.0), 0.0).astype(np.float32), (w, h),
                             interpolation=cv2.INTER_AREA)
            share = cv2.resize(valid.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
            # a grid cell is valid only when every frame pixel under it was
            out[i] = np.where((share > 0.999) & (inv > 0), 1.0 / np.maximum(inv, 1e-12), 0.0)
        else:
            out[i] = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA)
    return out


def metric_to_pose_ratio(metric: np.ndarray, geometric: np.ndarray, min_pixels: int = 50) -> float | None:
    """Metres per pose unit seen in one frame: the median ratio where both depths are valid (None: too few)."""
    both = (metric > 0) & (geometric > 0) & np.isfinite(metric) & np.isfinite(geometric)
    if both.sum() < min_pixels:
        return None
    return float(np.median(metric[both] / geometric[both]))


# ----------------------------------------------------------------------------- masks


@dataclass
class Sam2Masks:
    """SAM 2.1 masks prompted by the geometric motion evidence (MaskBackend)."""

    client: ModelClient
    geometric_name: str
    blur_px: float = 2.0
    skip_sky: bool = True
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"sam2.1 ({self.client.backend}) prompted by geometric motion evidence ({self.geometric_name})"

    def refine(self, frame: np.ndarray, geometric_mask: np.ndarray, grid_hw: tuple[int, int]) -> tuple[np.ndarray, int, int]:
        """(mask (H, W) bool, prompts sent, SAM masks kept) for one frame."""
        prompts = sam2_prompts(frame, motion_map(geometric_mask, grid_hw, self.blur_px), self.skip_sky)
        mask, kept = refine_masks(self.client, frame, prompts)
        return mask, len(prompts), kept


# ----------------------------------------------------------------------------- both, in one pass


class LearnedDepthAndMasks:
    """One geometric pass, with Depth Anything V2 depth and/or SAM 2.1 masks in place of its outputs.

    Same ``iter_both`` contract as ``GeometricDepthAndMasks``: per annotated frame (depth (h, w) float32,
    0 = invalid; mask (H, W) bool). Frames are kept only until their outputs are made (the geometric
    window plus one model batch), so memory stays flat with clip length.
    """

    def __init__(self, geometric: GeometricDepthAndMasks, depth: AlignedDepthAnything | None,
                 masks: Sam2Masks | None, batch_frames: int = 4) -> None:
        self.geometric = geometric
        self.learned_depth, self.learned_masks = depth, masks
        self.depth = depth if depth is not None else geometric.depth
        self.masks = masks if masks is not None else geometric.masks
        self.batch_frames = max(1, int(batch_frames))
        self.notes: list[str] = []
        # metric (UniDepth) runs: metres per unit of the poses, so depth can be written in the poses' units
        self.metres_per_pose_unit: float | None = None

    def iter_both(self, frames: Iterable[np.ndarray], c2w: np.ndarray, K: np.ndarray,
                  timings: dict[str, float] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        clock = timings if timings is not None else {}
        seen: dict[int, np.ndarray] = {}

        def tap() -> Iterator[np.ndarray]:
            for i, frame in enumerate(frames):
                seen[i] = frame
                yield frame

        self.notes = []
        self.metres_per_pose_unit = None
        aligned, failures, scales = 0, [], []
        unit_ratios: list[float] = []  # per frame: metric depth over geometric depth (pose units)
        prompts_sent = masks_kept = 0
        stream = enumerate(self.geometric.iter_both(tap(), c2w, K, timings=timings))
        while chunk := list(islice(stream, self.batch_frames)):
            indexes = [i for i, _ in chunk]
            batch = np.stack([seen.pop(i) for i in indexes])
            geo_depth = np.stack([d for _, (d, _) in chunk])
            geo_masks = [m for _, (_, m) in chunk]
            depths = list(geo_depth)
            if self.learned_depth is not None:
                start = time.perf_counter()
                results = self.learned_depth.align_batch(batch, geo_depth)
                clock["depth_model"] = clock.get("depth_model", 0.0) + time.perf_counter() - start
                depths = [r.depth for r in results]
                for i, r, geo in zip(indexes, results, geo_depth):
                    if r.ok:
                        aligned += 1
                        scales.append(r.fit.scale)
                        if self.learned_depth.metric:
                            ratio = metric_to_pose_ratio(r.depth, geo)
                            if ratio is not None:
                                unit_ratios.append(ratio)
                    else:
                        failures.append(f"frame {i}: {r.reason}")
            masks = geo_masks
            if self.learned_masks is not None:
                start = time.perf_counter()
                masks = []
                for frame, geo_mask, d in zip(batch, geo_masks, geo_depth):
                    mask, sent, kept = self.learned_masks.refine(frame, geo_mask, d.shape)
                    masks.append(mask)
                    prompts_sent, masks_kept = prompts_sent + sent, masks_kept + kept
                clock["sam2"] = clock.get("sam2", 0.0) + time.perf_counter() - start
            yield from zip(depths, masks)
        self._conclude(aligned, failures, unit_ratios, prompts_sent, masks_kept)

    def _conclude(self, aligned: int, failures: list[str], unit_ratios: list[float], prompts_sent: int,
                  masks_kept: int) -> None:
        """After the last frame: the clip fails when no frame's learned depth aligned; else the run's notes, and
        the metric runs' metres per pose unit."""
        if self.learned_depth is not None:
            reference = "UniDepth V2" if self.learned_depth.metric else "the geometric depth"
            if aligned == 0:
                detail = "; ".join(failures[:3]) or "no frames"
                hint = "" if self.learned_depth.metric else f" ({self.learned_depth.reference_note})"
                raise ClipFailed(f"depth-anything-v2: no frame could be aligned to {reference}{hint}: {detail}")
            note = f"depth-anything-v2 aligned to {reference} on {aligned} of {aligned + len(failures)} frames"
            if failures:
                note += f" (left invalid: {'; '.join(failures[:3])}{' ...' if len(failures) > 3 else ''})"
            if self.learned_depth.reference_note:
                note += f"; {self.learned_depth.reference_note}"
            if unit_ratios:
                self.metres_per_pose_unit = float(np.median(unit_ratios))
                note += (f"; {self.metres_per_pose_unit:.4g} metres per pose unit (median over {len(unit_ratios)} "
                         "frames of UniDepth-aligned over geometric depth)")
            self.notes.append(note)
        if self.learned_masks is not None:
            self.notes.append(f"sam2.1: {prompts_sent} prompts, {masks_kept} masks kept (<= 30% of the frame)")


# ----------------------------------------------------------------------------- building from settings


def _require(clients: RunClients, name: str) -> ModelClient:
    try:
        return clients.get(name)
    except ModelNotAvailable as exc:
        raise ClipFailed(str(exc)) from None


def make_depth_anything(depth: DepthSettings, clients: RunClients,
                        geometric: GeometricDepthAndMasks) -> AlignedDepthAnything:
    relative = _require(clients, "depth_anything_v2")
    align_to = depth.align_to
    metric_client, note = None, ""
    if align_to == "unidepth":
        metric_client = _require(clients, "unidepth")
    elif align_to == "auto":
        try:
            metric_client = clients.get("unidepth")
        except ModelNotAvailable as exc:
            note = f"UniDepth V2 not available, so not metric ({_first_line(str(exc))})"
    else:
        note = "depth.align_to=geometric"
    return AlignedDepthAnything(relative, metric_client, geometric.depth.name, note)


def make_sam2(depth: DepthSettings, clients: RunClients, geometric: GeometricDepthAndMasks) -> Sam2Masks:
    client = _require(clients, "sam2")
    return Sam2Masks(client, geometric.masks.name, depth.sam2_motion_blur_px, depth.sam2_skip_sky)


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 3] + "..."


DEPTH_BACKENDS["depth_anything_v2"] = make_depth_anything
MASK_BACKENDS["sam2"] = make_sam2


def build_backend(chosen: DepthSettings, clients: RunClients, overlay_text=None):
    """The stage's backend for the depth section's ``backend`` / ``mask_backend`` (ClipFailed when it cannot be
    had). ``overlay_text`` (services.depth.overlays.OverlayText): burned-in text to keep out of the geometric masks."""
    geometric = GeometricDepthAndMasks(chosen, overlay_text)
    if chosen.backend == "geometric" and chosen.mask_backend == "geometric":
        return geometric
    unknown = [n for n, registry in ((chosen.backend, DEPTH_BACKENDS), (chosen.mask_backend, MASK_BACKENDS))
               if n != "geometric" and n not in registry]
    if unknown:
        raise ClipFailed(f"depth/mask backend(s) not available: {', '.join(unknown)} "
                         f"(known: depth {['geometric', *DEPTH_BACKENDS]}, masks {['geometric', *MASK_BACKENDS]})")
    depth = DEPTH_BACKENDS[chosen.backend](chosen, clients, geometric) if chosen.backend != "geometric" else None
    masks = MASK_BACKENDS[chosen.mask_backend](chosen, clients, geometric) if chosen.mask_backend != "geometric" else None
    return LearnedDepthAndMasks(geometric, depth, masks, chosen.model_batch_frames)
