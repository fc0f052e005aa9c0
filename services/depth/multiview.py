"""Streaming depth and motion masks from frames + camera poses (the default, no-weights backends).

Depth: dense DIS flow to one neighbour on each side (offset chosen for
parallax), closed-form triangulation of inverse depth per pixel against the
known poses, kept only where the parallax is large enough and the point
reprojects onto every used flow; then median cleaning, the previous frame's
map carried into pixels without parallax (pure rotation, holds) and filling
of small enclosed holes. The map is carried as world points, so that what is
carried for many frames stays where it belongs (re-splatting a raster would
round its positions at every frame). Where nothing was ever measured (a tripod
shot, sky, areas not yet seen with parallax) the depth stays 0 = invalid.

A view whose translation moves no pixel of the last map by half a pixel is
taken as a pure rotation: that little is a tracker's drift, not parallax.

Carried depth is kept only where this frame's trusted flow does not contradict
it, and depth under the final masks is invalidated (a moving object's
triangulated depth is wrong), so wrong depth neither ships nor lives on.

Masks: normalised residual between the observed flow and the rigid flow of
the camera motion over the (hole-filled) depth, raised where the two source
views disagree about one static point (multi-view inconsistency); photometric
error under the rigid warp, scaled by the frame's own noise and contrast,
confirms it or, dense and backed by some flow residual, is evidence of its own
(objects moving along their epipolar lines); last frame's mask, carried along
the objects' own flow, lets that image evidence keep an object. Evidence too
weak to count in one frame (a dark, low-contrast object) is summed along the
objects' flow over recent frames, where noise, falling elsewhere each frame,
does not add up (motion.accumulate_evidence). Cleaned into
connected regions with hysteresis, minimum size and temporal support,
upsampled to the frames.

An object moving parallel to the camera's translation at constant velocity (a
car on a street under a dolly shot) is exactly a static object at another depth
for every view; nothing geometric tells them apart. A prior does in part: where
the apparent depth of its colour segment hangs it far in front of the ground
seen below it, or sinks it below the ground right under it, it is marked
(services/depth/support.py), and the mark is remembered along its flow, fading,
for the frames where no ground shows below it. The colour segments also trim
the masks' halo (services/depth/segments.py). Burned-in text that stays put on
screen is kept out of the masks when the caller passes its map (``exclude``;
services/depth/overlays.py).

Near the clip's ends a frame gets two neighbours on the inside (views.py), so the
minimum over views still resolves what an object covers in one of them.

Memory: a window of 2 * max_offset + 1 prepared frames, independent of clip length.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from services.depth.confidence import confidence_map
from services.depth.fill import carry_points, depth_to_points, fill_small_holes, median_clean
from services.depth.geometry import DIVISION_FLOOR, epipolar_terms, rigid_flow, rotation_flow, scale_intrinsics
from services.depth.motion import (MaskEvidence, accumulate_evidence, carry_along_flow, clean_mask, motion_score,
                                  multiview_inconsistency, photometric_evidence, track_mask, weak_evidence)
from services.depth.params import DepthSettings
from services.depth.segments import colour_segments, held_segments, trim_to_segments
from services.depth.support import fit_ground_plane, ungrounded_segments
from services.depth.triangulate import triangulate_views
from services.depth.views import ViewSelector, prepare_frame
from services.depth.window import FrameWindow

# The translation check samples every 4th pixel each way (a percentile needs no more, and it runs on every frame),
# needs this many samples to judge, and reads the parallax at this percentile (the scene's nearest parts).
PARALLAX_SAMPLE_STEP = 4
MIN_PARALLAX_SAMPLES = 100
TRANSLATION_PARALLAX_PERCENTILE = 99
MASK_WHITE, MASK_MID_GREY = 255, 127  # 8-bit grey levels of a mask pixel, and the cut of the scaled-up mask


def depth_grid_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def depth_intrinsics(K: np.ndarray, width: int, height: int, scale: float) -> np.ndarray:
    """K of the depth grid (area-resize convention: same field of view as the frames)."""
    gw, gh = depth_grid_size(width, height, scale)
    return scale_intrinsics(K, gw / width, gh / height)


def _measured_depth(tri, params: DepthSettings, max_residual_px: float | None = None,
                    min_parallax_px: float | None = None) -> np.ndarray:
    """Triangulated z-depth where the views give parallax and the point reprojects within ``max_residual_px``
    (defaults: the publishing residual, params.min_parallax_px), else 0."""
    limit = params.publish_residual_px if max_residual_px is None else max_residual_px
    parallax = params.min_parallax_px if min_parallax_px is None else min_parallax_px
    ok = (
        (tri.inv_depth > 0)
        & (tri.views_used > 0)
        & (tri.parallax_px >= parallax)
        & (tri.residual_px <= limit)
    )
    return np.where(ok, 1.0 / np.maximum(tri.inv_depth, DIVISION_FLOOR), 0.0).astype(np.float32)


def _refuses_carry(tri, params: DepthSettings) -> np.ndarray:
    """(h, w) bool: pixels where this frame's flow argues against carrying the last frame's depth into them.

    Carrying is for pixels without parallax (pure rotation, holds, the forward-motion epipole), where this
    frame cannot measure but nothing contradicts the old depth. It is refused where every source view's flow
    is untrusted (forward-backward inconsistent: an occlusion, or a fast or textureless surface whose flow is
    guesswork, typically a moving object) and where the views give enough parallax yet no static point
    reprojects onto the flows well enough to be published (independent motion, smeared flow): such carried
    pixels are several times less accurate than carried low-parallax pixels, and half of them lie on moving
    objects."""
    no_view = tri.views_used == 0
    inconsistent = (tri.parallax_px >= params.min_parallax_px) & (
        tri.residual_px > params.publish_residual_px)
    return no_view | inconsistent


def reject_contradicted(carried: np.ndarray, K: np.ndarray, views: list, params: DepthSettings) -> np.ndarray:
    """Depth re-projected from the previous frame, kept only where no trusted flow of this frame contradicts it.

    Without this a wrong depth (a moving object taken for a static point, a bad match) would live on in
    every later frame whose own triangulation left the pixel empty."""
    if not views or not (carried > 0).any():
        return carried
    inv = np.where(carried > 0, 1.0 / np.maximum(carried, DIVISION_FLOOR), 0.0)
    bad = np.zeros(carried.shape, bool)
    for v in views:
        resid = np.linalg.norm(v.flow - rigid_flow(K, v.R, v.t, inv), axis=2)
        bad |= v.usable & (resid > params.max_residual_px + params.mask_parallax_tolerance * np.linalg.norm(
            v.flow - rotation_flow(K, v.R, *carried.shape), axis=2))
    return np.where(bad, 0.0, carried).astype(np.float32)


def without_negligible_translation(views: list, K: np.ndarray, depth: np.ndarray | None,
                                   params: DepthSettings) -> list:
    """``views`` with the translation set to zero where it moves no pixel of ``depth`` (the last frame's map) by
    ``params.min_translation_parallax_px`` (its 99th percentile): below flow noise it cannot be measured, only
    misused (a tracker's drift through a pan or a hold lets a moving object's own motion triangulate as a
    static point right in front of the camera). Without depth the views are kept as they are."""
    if depth is None or not any(np.any(v.t) for v in views):
        return views
    step = PARALLAX_SAMPLE_STEP
    ys, xs = np.nonzero(depth[::step, ::step] > 0)
    ys, xs = step * ys, step * xs
    if len(ys) < MIN_PARALLAX_SAMPLES:
        return views
    pixels = np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
    inv = 1.0 / depth[ys, xs].astype(np.float64)
    out = []
    for v in views:
        if np.any(v.t):
            a, b = epipolar_terms(K, v.R, v.t, *depth.shape, pixels)
            moved = a + inv * b[:, None]
            parallax = np.linalg.norm(moved[:2] / moved[2] - a[:2] / a[2], axis=0)
            if np.percentile(parallax, TRANSLATION_PARALLAX_PERCENTILE) < params.min_translation_parallax_px:
                v = replace(v, t=np.zeros(3))
        out.append(v)
    return out


def _points_to_carry(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray, carried_points: np.ndarray | None,
                     from_carry: np.ndarray | None) -> np.ndarray:
    """World points of this frame's final map, for the next frame: a pixel whose depth was carried into it keeps
    the exact point it came with (``carried_points`` where ``from_carry``); one measured or filled here, and
    one a splat only closed a crack in, gets the point of its own pixel."""
    points = depth_to_points(depth, K, c2w)
    if carried_points is None:
        return points
    exact = from_carry & (depth > 0) & np.isfinite(carried_points[..., 0])
    return np.where(exact[..., None], carried_points, points)


def _excluded_pixels(mask: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    """A per-frame exclusion map on the depth grid (``size`` = (w, h)): a grid pixel is excluded when any of
    the frame pixels it covers is."""
    if mask is None:
        return None
    if (mask.shape[1], mask.shape[0]) == size:
        return mask.astype(bool)
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0


def _hovering(tri, published: np.ndarray, labels: np.ndarray, K: np.ndarray,
              params: DepthSettings) -> np.ndarray | None:
    """Colour segments (``labels``) of this frame that hover over far ground (the gravity prior), or None
    without a visible ground plane. The plane is fitted to the published depth; the segments' depth comes
    from a rougher triangulation (less parallax, a wider residual), which covers far more of a moving
    object than the published depth, which refuses most of it."""
    plane = fit_ground_plane(published, K)
    if plane is None:
        return None
    rough = _measured_depth(tri, params, params.mask_gravity_max_residual_px, params.mask_gravity_min_parallax_px)
    return ungrounded_segments(labels, median_clean(rough), K, plane)


def _gravity(tri, published: np.ndarray, labels: np.ndarray, K: np.ndarray, views, index: int,
             memory: np.ndarray | None, params: DepthSettings,
             since: int = 1) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(this frame's gravity-prior evidence or None, the updated memory): segments hovering now, and those
    mostly under the faded memory of recent frames' marks, carried along the flow."""
    fresh = _hovering(tri, published, labels, K, params) if tri is not None else None
    carried = carry_along_flow(memory, views, index, since) if memory is not None else None
    if carried is not None:
        # fades per annotated frame: at a rate, no frame between two chosen ones refreshes the marks, so they
        # are held for as many observations as at the dense rate (fading with time, a mark dies before the
        # next chosen frame can confirm it)
        carried *= params.mask_gravity_memory_decay
    held = None if carried is None else held_segments(
        labels, carried, params.mask_gravity_hold_level, params.mask_gravity_hold_share)
    if fresh is None and held is None:
        return None, None
    if fresh is None:
        return held, carried
    if held is None:
        return fresh, fresh.astype(np.float32)
    return fresh | held, np.maximum(fresh.astype(np.float32), carried)


@dataclass
class StreamMemory:
    """What one output frame hands on to the next: everything the stream remembers between steps."""

    last_index: int | None = None  # the previous output frame
    depth: np.ndarray | None = None  # its published map (judges whether a view's translation is measurable)
    points: np.ndarray | None = None  # world points of that map, carried into the next frame
    mask: np.ndarray | None = None  # its mask on the depth grid, tracked along the flow into the next one
    gravity: np.ndarray | None = None  # the fading marks of the gravity prior (_gravity)
    evidence: np.ndarray | None = None  # weak motion evidence summed along the flow (accumulate_evidence)

    def frames_since(self, index: int) -> int:
        """Input frames from the previous output frame to ``index`` (1 for the first one)."""
        return 1 if self.last_index is None else index - self.last_index


@dataclass
class FrameDepth:
    """One frame's depth on the grid and how each pixel came to be (what confidence and carrying need)."""

    depth: np.ndarray
    tri: object | None = None  # the triangulation, None with given depth or without views
    measured: np.ndarray | None = None  # triangulated pixels (estimated depth only)
    carried_points: np.ndarray | None = None  # world points carried from the previous frame
    from_carry: np.ndarray | None = None  # pixels whose depth was carried, not measured


class _Clock:
    """Seconds spent per phase of a step, summed into ``totals`` (the caller's timings)."""

    def __init__(self, totals: dict[str, float] | None) -> None:
        self.totals = totals if totals is not None else {}
        self.start = time.perf_counter()

    def restart(self) -> None:
        self.start = time.perf_counter()

    def lap(self, key: str) -> None:
        now = time.perf_counter()
        self.totals[key] = self.totals.get(key, 0.0) + now - self.start
        self.start = now


class _LazyExclusions:
    """Per-frame exclusion maps, one per input frame, read in order only as far as the frame asked for (those of
    frames not output are skipped): the maps may be produced while the frames are read."""

    def __init__(self, maps: Iterable[np.ndarray | None]) -> None:
        self._maps = iter(maps)
        self._read = 0
        self._current = None

    def at(self, index: int) -> np.ndarray | None:
        while self._read <= index:
            self._current = next(self._maps, None)
            self._read += 1
        return self._current


class DepthMaskStream:
    """The depth-and-mask stream over one clip: ``step(i)`` gives output frame i's (depth, mask); what carries
    from one output frame to the next lives in ``memory``. Output frames must be asked for in ascending order."""

    def __init__(self, frames: Iterator[np.ndarray], first: np.ndarray, c2w: np.ndarray, K: np.ndarray,
                 params: DepthSettings, depth: Iterable[np.ndarray] | None = None, want_masks: bool = True,
                 timings: dict[str, float] | None = None, exclude: Iterable[np.ndarray | None] | None = None,
                 confidence: list[np.ndarray] | None = None) -> None:
        self.params = params
        self.c2w = c2w
        self.count = len(c2w)
        self.frame_size = first.shape[1], first.shape[0]  # (W, H)
        self.size = depth_grid_size(*self.frame_size, params.depth_scale)
        self.Ks = np.asarray(K, np.float64)
        self.per_frame_K = self.Ks.ndim == 3
        self.window = FrameWindow(itertools.chain([first], frames), params.max_offset,
                                  lambda f: prepare_frame(f, self.size))
        self.given = iter(depth) if depth is not None else None
        self.exclusions = _LazyExclusions(exclude) if exclude is not None else None
        self.want_masks = want_masks
        self.confidence = confidence
        self.clock = _Clock(timings)
        self.hole_area = int(params.hole_max_share * self.size[0] * self.size[1])
        self.selector: ViewSelector | None = None
        self.memory = StreamMemory()

    def step(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(depth (h, w) float32, mask (H, W) bool or None) of output frame ``i``."""
        since = self.memory.frames_since(i)
        self.memory.last_index = i
        self.clock.restart()
        Kd = self._load(i)
        self.clock.lap("decode_prepare")
        views = self._views(i, Kd)
        self.clock.lap("flow")
        est = self._estimate_depth(i, Kd, views)
        self.clock.lap("depth")
        mask = None
        if self.want_masks:
            small = self._small_mask(i, Kd, views, est, since)
            self.memory.mask = small
            mask = self._upscale(small)
            self.clock.lap("masks")
            if self.given is None:
                est.depth = self._without_moving(est.depth, small)
        self._hand_on(i, Kd, est)
        return est.depth, mask

    # --- views -------------------------------------------------------------------------------------------------

    def _posed(self, i: int) -> bool:
        return bool(np.isfinite(self.c2w[i]).all())

    def _load(self, i: int) -> np.ndarray:
        """Reads the frames up to i + max_offset; returns K on the depth grid, keeping the selector in step."""
        if not self.window.advance_to(i):
            raise ValueError(f"{self.count} poses but only {self.window.loaded} frames")
        W, H = self.frame_size
        Kd = scale_intrinsics(self.Ks[i] if self.per_frame_K else self.Ks, self.size[0] / W, self.size[1] / H)
        if self.selector is None or self.per_frame_K:
            offset = self.selector.offset if self.selector else 1
            self.selector = ViewSelector(self.c2w, Kd, self.params)
            self.selector.offset = offset
        return Kd

    def _views(self, i: int, Kd: np.ndarray) -> list:
        """Frame i's source views, a translation too small to measure taken as none."""
        views = self.selector.views_for(self.window, i, self.count) if self._posed(i) else []
        return without_negligible_translation(views, Kd, self.memory.depth, self.params)

    # --- depth -------------------------------------------------------------------------------------------------

    def _estimate_depth(self, i: int, Kd: np.ndarray, views: list) -> FrameDepth:
        if self.given is not None:
            return FrameDepth(self._given_depth())
        tri = triangulate_views(Kd, views) if views else None
        d = _measured_depth(tri, self.params) if tri is not None else np.zeros(self.size[::-1], np.float32)
        est = FrameDepth(median_clean(d), tri, measured=d > 0)
        if self.params.propagate and self.memory.points is not None and self._posed(i):
            self._carry_into(est, i, Kd, views)
        est.depth = fill_small_holes(est.depth, self.hole_area)
        return est

    def _given_depth(self) -> np.ndarray:
        d = np.asarray(next(self.given), np.float32)
        if d.shape != (self.size[1], self.size[0]):
            d = cv2.resize(d, self.size, interpolation=cv2.INTER_NEAREST)
        return d

    def _carry_into(self, est: FrameDepth, i: int, Kd: np.ndarray, views: list) -> None:
        """Fills ``est``'s unmeasured pixels with the previous map's points, where this frame does not refuse them."""
        carried, est.carried_points = carry_points(self.memory.points, Kd, self.c2w[i])
        carried = reject_contradicted(carried, Kd, views, self.params)
        if est.tri is not None:
            carried = np.where(_refuses_carry(est.tri, self.params), 0.0, carried)
        est.from_carry = (est.depth == 0) & (carried > 0)
        est.depth = np.where(est.depth > 0, est.depth, carried)

    @staticmethod
    def _without_moving(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """A moving object's triangulated depth is wrong (it assumed a static point): not published, and not
        carried into the next frame as static structure."""
        return np.where(cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0, 0, depth)

    # --- masks -------------------------------------------------------------------------------------------------

    def _small_mask(self, i: int, Kd: np.ndarray, views: list, est: FrameDepth, since: int) -> np.ndarray:
        """Frame i's motion mask on the depth grid, updating the gravity and evidence memories."""
        p = self.params
        # memories are carried along the flow back one frame, which needs a view back
        carrying = self.selector.with_view_back(self.window, i, views) if views and i > 0 else views
        score = self._motion_score(Kd, views, est)
        labels = colour_segments(self.window.get(i).colour) if p.mask_gravity_prior or p.mask_segment_trim else None
        hovering = self._hovering(est, labels, Kd, carrying, i, since) if p.mask_gravity_prior else None
        ref = self.window.get(i).grey
        sources = [self.window.get(v.source_index).grey for v in views]
        photo, overlay = photometric_evidence(ref, sources, Kd, views, est.depth) if views else (None, None)
        keep_out = self._keep_out(i, overlay)
        persistent = self._persistent(score, photo, ref, carrying, i, since)
        previous = self.memory.mask
        evidence = MaskEvidence(
            score, photo, contrast=float(ref.std()),
            tracked=track_mask(previous, carrying, i, since) if previous is not None else None,
            screen_fixed=overlay, trusted=np.any([v.usable for v in views], axis=0) if views else None,
            hovering=hovering, persistent=persistent, exclude=keep_out)
        small = clean_mask(evidence, p, previous)
        if p.mask_segment_trim:
            small = trim_to_segments(small, labels, p.mask_trim_cover, p.mask_trim_region_share)
        return small

    def _motion_score(self, Kd: np.ndarray, views: list, est: FrameDepth) -> np.ndarray:
        """Flow residual against the rigid flow, raised where the views disagree about one static point."""
        score = motion_score(Kd, views, est.depth, self.params)
        if est.tri is not None:
            score = np.maximum(score, multiview_inconsistency(est.tri, self.params))
        return score

    def _hovering(self, est: FrameDepth, labels: np.ndarray, Kd: np.ndarray, carrying: list, i: int,
                  since: int) -> np.ndarray | None:
        """The gravity prior's segments for this frame, updating its memory."""
        hovering, self.memory.gravity = _gravity(est.tri, est.depth, labels, Kd, carrying, i, self.memory.gravity,
                                                 self.params, since)
        return hovering

    def _keep_out(self, i: int, overlay: np.ndarray | None) -> np.ndarray | None:
        """Pixels never marked: the caller's exclusion map, and what stays put on the screen."""
        keep_out = _excluded_pixels(self.exclusions.at(i) if self.exclusions is not None else None, self.size)
        if self.params.mask_drop_screen_fixed and overlay is not None:
            keep_out = overlay if keep_out is None else keep_out | overlay
        return keep_out

    def _persistent(self, score: np.ndarray, photo: np.ndarray | None, ref: np.ndarray, carrying: list, i: int,
                    since: int) -> np.ndarray | None:
        """Weak evidence that followed the objects' flow over recent frames, updating its memory."""
        if not (self.params.mask_persistence and photo is not None):
            self.memory.evidence = None  # no view of this frame: nothing to carry the memory by
            return None
        persistent, self.memory.evidence = accumulate_evidence(
            weak_evidence(score, photo, ref, self.params), self.memory.evidence, carrying, i, self.params, since)
        return persistent

    def _upscale(self, small: np.ndarray) -> np.ndarray:
        """The mask at the frames' size: scaled up as a grey image and cut at mid-grey (smooth outlines, not
        blocky ones)."""
        return cv2.resize(small.astype(np.uint8) * MASK_WHITE, self.frame_size,
                          interpolation=cv2.INTER_LINEAR) > MASK_MID_GREY

    # --- what the next frame gets ------------------------------------------------------------------------------

    def _hand_on(self, i: int, Kd: np.ndarray, est: FrameDepth) -> None:
        """Records the published map, its confidence, and the world points the next frame carries."""
        estimated = self.given is None
        self.memory.depth = est.depth
        if self.confidence is not None and estimated:
            self.confidence.append(confidence_map(est.depth, est.measured, est.from_carry))
        carry_on = estimated and self.params.propagate and self._posed(i)
        self.memory.points = _points_to_carry(est.depth, Kd, self.c2w[i], est.carried_points,
                                              est.from_carry) if carry_on else None


def iter_depth_and_masks(
    frames: Iterable[np.ndarray],
    c2w: np.ndarray,
    K: np.ndarray,
    params: DepthSettings = DepthSettings(),
    depth: Iterable[np.ndarray] | None = None,
    want_masks: bool = True,
    timings: dict[str, float] | None = None,
    exclude: Iterable[np.ndarray | None] | None = None,
    refs: Sequence[int] | None = None,
    confidence: list[np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield (depth (h,w) float32 z in pose units, 0 = invalid; mask (H,W) bool or None) per frame.

    ``frames`` are uint8 RGB (H, W, 3) or grey, aligned with ``c2w`` (N,4,4, camera-to-world, OpenCV axes,
    any scale) and ``K`` (3x3, or (N,3,3) per frame, for the frames' resolution). With ``depth`` given
    (one (h,w) map per frame) it is used instead of being estimated (masks only). ``exclude`` gives per frame
    a bool map (any size of the frames' aspect) or None of pixels never to mark as moving (burned-in text,
    services.depth.overlays); it is read lazily, frame i after the frames up to i + max_offset.

    ``refs`` (ascending frame positions) limits the output to those frames (an annotation rate,
    services/annotate.py): every frame is still read and may serve as a neighbour view, and what the masks
    remember is carried from one output frame to the next over the frames between them.
    A ``confidence`` list gets, per yielded frame (before it is yielded), how each estimated depth pixel came to be
    (services.depth.confidence: triangulated, carried or filled); nothing when ``depth`` is given."""
    c2w = np.asarray(c2w, np.float64)
    frames_iter = iter(frames)
    try:
        first = next(frames_iter)
    except StopIteration:
        return
    stream = DepthMaskStream(frames_iter, first, c2w, K, params, depth, want_masks, timings, exclude, confidence)
    for i in (range(len(c2w)) if refs is None else [int(r) for r in refs]):
        yield stream.step(i)
