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

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

import cv2
import numpy as np

from services.depth.confidence import confidence_map
from services.depth.fill import carry_points, depth_to_points, fill_small_holes, median_clean
from services.depth.geometry import DIVISION_FLOOR, epipolar_terms, rigid_flow, rotation_flow, scale_intrinsics
from services.depth.motion import (accumulate_evidence, carry_along_flow, clean_mask, motion_score,
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
    import time

    c2w = np.asarray(c2w, np.float64)
    count = len(c2w)
    frames_iter = iter(frames)
    try:
        first = next(frames_iter)
    except StopIteration:
        return
    H, W = first.shape[:2]
    size = depth_grid_size(W, H, params.depth_scale)
    Ks = np.asarray(K, np.float64)
    per_frame_K = Ks.ndim == 3

    def chain():
        yield first
        yield from frames_iter

    window = FrameWindow(chain(), params.max_offset, lambda f: prepare_frame(f, size))
    given = iter(depth) if depth is not None else None
    excluded = iter(exclude) if exclude is not None else None
    clock = timings if timings is not None else {}

    def tick(key: str, start: float) -> float:
        now = time.perf_counter()
        clock[key] = clock.get(key, 0.0) + now - start
        return now

    selector: ViewSelector | None = None
    previous_depth: np.ndarray | None = None
    previous_points: np.ndarray | None = None  # world points of the last depth map, carried into the next frame
    previous_mask: np.ndarray | None = None
    gravity_memory: np.ndarray | None = None
    evidence_memory: np.ndarray | None = None
    hole_area = int(params.hole_max_share * size[0] * size[1])
    exclusions_read = 0
    current_exclusion = None

    def exclusion_at(i: int):
        nonlocal exclusions_read, current_exclusion
        while exclusions_read <= i:  # one per frame, in order: skip those of frames not output
            current_exclusion = next(excluded, None)
            exclusions_read += 1
        return current_exclusion

    last = None  # the previous output frame
    for i in (range(count) if refs is None else [int(r) for r in refs]):
        since = 1 if last is None else i - last
        last = i
        t0 = time.perf_counter()
        if not window.advance_to(i):
            raise ValueError(f"{count} poses but only {window.loaded} frames")
        Kd = scale_intrinsics(Ks[i] if per_frame_K else Ks, size[0] / W, size[1] / H)
        if selector is None or per_frame_K:
            offset = selector.offset if selector else 1
            selector = ViewSelector(c2w, Kd, params)
            selector.offset = offset
        t0 = tick("decode_prepare", t0)
        views = selector.views_for(window, i, count) if np.isfinite(c2w[i]).all() else []
        views = without_negligible_translation(views, Kd, previous_depth, params)
        t0 = tick("flow", t0)
        tri = None
        carried_points = from_carry = None
        if given is not None:
            d = np.asarray(next(given), np.float32)
            if d.shape != (size[1], size[0]):
                d = cv2.resize(d, size, interpolation=cv2.INTER_NEAREST)
        else:
            tri = triangulate_views(Kd, views) if views else None
            d = _measured_depth(tri, params) if tri is not None else np.zeros(size[::-1], np.float32)
            measured = d > 0
            d = median_clean(d)
            if params.propagate and previous_points is not None and np.isfinite(c2w[i]).all():
                carried, carried_points = carry_points(previous_points, Kd, c2w[i])
                carried = reject_contradicted(carried, Kd, views, params)
                if tri is not None:
                    carried = np.where(_refuses_carry(tri, params), 0.0, carried)
                from_carry = (d == 0) & (carried > 0)
                d = np.where(d > 0, d, carried)
            d = fill_small_holes(d, hole_area)
        t0 = tick("depth", t0)
        mask = None
        if want_masks:
            # memories are carried along the flow back one frame, which needs a view back
            carrying = selector.with_view_back(window, i, views) if views and i > 0 else views
            score = motion_score(Kd, views, d, params)
            hovering = None
            if tri is not None:
                score = np.maximum(score, multiview_inconsistency(tri, params))
            labels = colour_segments(window.get(i).colour) if params.mask_gravity_prior or params.mask_segment_trim \
                else None
            if params.mask_gravity_prior:
                hovering, gravity_memory = _gravity(tri, d, labels, Kd, carrying, i, gravity_memory, params, since)
            sources = [window.get(v.source_index).grey for v in views]
            photo, overlay = photometric_evidence(window.get(i).grey, sources, Kd, views, d) if views else (None, None)
            ref = window.get(i).grey
            keep_out = _excluded_pixels(exclusion_at(i) if excluded is not None else None, size)
            if params.mask_drop_screen_fixed and overlay is not None:
                keep_out = overlay if keep_out is None else keep_out | overlay
            persistent = None
            if params.mask_persistence and photo is not None:
                persistent, evidence_memory = accumulate_evidence(
                    weak_evidence(score, photo, ref, params), evidence_memory, carrying, i, params, since)
            else:
                evidence_memory = None  # no view of this frame: nothing to carry the memory by
            small = clean_mask(score, params, previous_mask, photo, exclude=keep_out, contrast=float(ref.std()),
                               tracked=track_mask(previous_mask, carrying, i, since) if previous_mask is not None else None,
                               screen_fixed=overlay,
                               trusted=np.any([v.usable for v in views], axis=0) if views else None,
                               hovering=hovering, persistent=persistent)
            if params.mask_segment_trim:
                small = trim_to_segments(small, labels, params.mask_trim_cover, params.mask_trim_region_share)
            previous_mask = small
            # the mask is scaled up as a grey image and cut at mid-grey: smooth outlines, not blocky ones
            mask = cv2.resize(small.astype(np.uint8) * MASK_WHITE, (W, H), interpolation=cv2.INTER_LINEAR) > MASK_MID_GREY
            t0 = tick("masks", t0)
        if given is None and mask is not None:
            # a moving object's triangulated depth is wrong (it assumed a static point): not published,
            # and not carried into the next frame as static structure
            d = np.where(cv2.dilate(previous_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0, 0, d)
        previous_depth = d
        if confidence is not None and given is None:
            confidence.append(confidence_map(d, measured, from_carry))
        carry_on = given is None and params.propagate and np.isfinite(c2w[i]).all()
        previous_points = _points_to_carry(d, Kd, c2w[i], carried_points, from_carry) if carry_on else None
        yield d, mask
