"""Independent-motion evidence: observed flow against the flow that camera motion and depth explain.

The residual is normalised by what a correct static pixel could still show:
a flow noise floor plus a share of the parallax flow (the depth is never exact,
and its error moves the prediction along the parallax direction). With no
camera translation the rigid flow is the rotation (or zero) flow, so a tripod
shot reduces to "which pixels move at all".
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.depth.fill import normalised_box_fill
from services.depth.geometry import DIVISION_FLOOR, rigid_flow, rotation_flow
from services.depth.params import DepthSettings
from services.depth.triangulate import Triangulation, ViewFlow

# Holes of the background's inverse depth are filled from their borders at these growing box radii (px), a box
# counting where its measured weight reaches HOLE_FILL_SUPPORT (a cheap harmonic-like fill).
HOLE_FILL_RADII = (2, 4, 8, 16, 32, 64)
HOLE_FILL_SUPPORT = 1e-3
SEGMENT_LENGTH_FLOOR = 1e-9  # a zero-length segment (squared px) is a point: no division by its length
# A view whose rigid flow moves a pixel more than this many noise floors carries evidence about that pixel.
RIGID_FLOW_NOISE_FACTOR = 4
SOBEL_SIZE = 3  # the 3x3 Sobel operator ...
SOBEL_GAIN = 8  # ... sums eight times the grey-level step per pixel
GRADIENT_BOX = (3, 3)  # the local gradient is averaged over the Sobel operator's own footprint
ALLOWED_ERROR_FLOOR = 1e-3  # grey levels: a noiseless, floorless frame still divides by something
SPECKLE_OPEN = (3, 3)  # opening removes single-pixel speckle (noise, not objects) ...
GAP_CLOSE = (5, 5)  # ... closing joins an object's pieces split by textureless insides
REGION_CONNECTIVITY = 8  # diagonal neighbours belong to the same moving region
HOLE_CONNECTIVITY = 4  # background counts as connected only through edges, so thin objects still enclose holes
MIN_SEED_SHARE = 0.1  # a region is kept when strong evidence covers at least this share of it ...
# ... or, when it continues a region of the previous mask (the objects' motion is continuous), at half the
# minimum area (FOLLOWED_AREA_DIVISOR) and with this share of it under that mask
FOLLOWED_AREA_DIVISOR = 2
MIN_FOLLOWED_SHARE = 0.3


def background_inverse_depth(depth: np.ndarray) -> np.ndarray:
    """Inverse depth everywhere: measured where valid, spread from the surroundings into holes, else 0 (far)."""
    inv = np.where(depth > 0, 1.0 / np.maximum(depth, DIVISION_FLOOR), 0.0).astype(np.float32)
    valid = depth > 0
    if not valid.any():
        return inv
    filled = np.where(valid, inv, 0).astype(np.float32)
    # grow into the holes from their borders at increasing radius (a cheap harmonic-ish fill)
    for radius in HOLE_FILL_RADII:
        grown = normalised_box_fill(filled, radius, min_support=HOLE_FILL_SUPPORT)
        filled = np.where(filled > 0, filled, grown)
        if (filled > 0).all():
            break
    return filled


def _distance_to_segment(q: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel distance from point q to the segment a-b (all (h, w, 2))."""
    ab = b - a
    t = ((q - a) * ab).sum(2) / np.maximum((ab * ab).sum(2), SEGMENT_LENGTH_FLOOR)
    t = np.clip(t, 0.0, 1.0)[..., None]
    return np.linalg.norm(q - (a + t * ab), axis=2)


def in_view(flow: np.ndarray) -> np.ndarray:
    """(h, w) bool: p + flow[p] falls inside the image (the source sees the pixel there)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def motion_score(K: np.ndarray, views: list[ViewFlow], depth: np.ndarray, params: DepthSettings) -> np.ndarray:
    """(h, w) normalised residual; > 1 means the pixel moves more than camera motion and depth can explain.

    Per view the residual is |observed - rigid| / (noise + tol * |parallax flow|); views are combined by
    the minimum so that a pixel occluded in one neighbour (flow garbage there) is judged by the other.
    Where the depth is not measured (far, sky, on the moving objects themselves) the rigid flow of the
    surrounding depth is used, but a pixel is only called moving if no depth between that and infinity
    explains it (distance to that stretch of its epipolar line): unmeasured sky is never "moving"."""
    h, w = depth.shape
    if not views:
        return np.zeros((h, w), np.float32)
    inv = background_inverse_depth(depth)
    measured = depth > 0
    score = np.full((h, w), np.inf, np.float32)
    screen_fixed = np.ones((h, w), bool)
    for v in views:
        rigid = rigid_flow(K, v.R, v.t, inv)
        rot = rotation_flow(K, v.R, h, w)
        # burned-in overlays (subtitles, logos, timecodes) stay put on the screen while the camera moves
        screen_fixed &= v.usable & (np.linalg.norm(v.flow, axis=2) < params.mask_noise_px) & (
            np.linalg.norm(rigid, axis=2) > RIGID_FLOW_NOISE_FACTOR * params.mask_noise_px)
        parallax = np.linalg.norm(rigid - rot, axis=2)
        resid = np.where(measured, np.linalg.norm(v.flow - rigid, axis=2), _distance_to_segment(v.flow, rot, rigid))
        s = resid / (params.mask_noise_px + params.mask_parallax_tolerance * parallax)
        score = np.minimum(score, np.where(in_view(rigid), s, np.inf))
    # a pixel that no source sees (it enters the frame; the clip's end has one neighbour) has no evidence
    score = np.where(np.isfinite(score), score, 0.0)
    if params.mask_drop_screen_fixed:
        score = np.where(screen_fixed, 0.0, score)
    return score.astype(np.float32)


def multiview_inconsistency(tri: Triangulation, params: DepthSettings) -> np.ndarray:
    """(h, w) normalised disagreement between the source views about one static point at the pixel.

    Triangulated against t-k and t+k at once, a static point reprojects onto both flows; a point that moved
    between the views does not, even when each pair alone is epipolar-consistent (its apparent depth differs
    per view). Only pixels whose flow is trusted in at least two views are judged; same normalisation as
    motion_score (noise floor plus a share of the parallax)."""
    both = tri.views_used >= 2
    s = tri.residual_px / (params.mask_noise_px + params.mask_parallax_tolerance * tri.parallax_px)
    return np.where(both, s, 0.0).astype(np.float32)


def photometric_evidence(ref: np.ndarray, sources: list[np.ndarray], K: np.ndarray, views: list[ViewFlow],
                         depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(residual, screen_fixed), both (h, w).

    residual: min over views of |ref - source warped by the rigid flow| (grey levels, 3x3 averaged); sharp
    at object borders where the flow field is smeared: a static background pixel next to a moving object
    is photo-consistent under the rigid warp in at least one neighbour.
    screen_fixed: pixels that every source shows unchanged at the same image position while the rigid warp
    fits them much worse: burned-in overlays (subtitles, logos, timecodes) on a moving camera. They are not
    objects of the scene (with a still camera the two warps coincide and nothing is marked)."""
    from services.depth.flow import warp_by_flow

    inv = background_inverse_depth(depth)
    best = np.full(depth.shape, np.inf, np.float32)
    fixed = np.ones(depth.shape, bool)
    r = ref.astype(np.float32)
    for src, v in zip(sources, views):
        s = src.astype(np.float32)
        flow = rigid_flow(K, v.R, v.t, inv)
        rigid = cv2.blur(np.abs(r - warp_by_flow(s, flow)), (3, 3))
        still = cv2.blur(np.abs(r - s), (3, 3))
        best = np.minimum(best, np.where(in_view(flow), rigid, np.inf))
        fixed &= 2 * still < rigid
    best = np.where(np.isfinite(best), best, 0.0).astype(np.float32)  # seen by no source: no evidence
    noise = float(np.median(best[np.isfinite(best)])) if np.isfinite(best).any() else 0.0
    fixed &= best > 2 * noise  # only where the rigid warp clearly fails
    return best, fixed


def carry_along_flow(values: np.ndarray, views: list[ViewFlow], ref_index: int, since: int = 1) -> np.ndarray | None:
    """A map of the last annotated frame (``since`` frames back: 1, or more at an annotation rate) carried
    into this one along the observed flow (the objects' own motion), or None without an earlier neighbour
    (the clip's first frame, or across a cut, where its view is dropped).

    The flow to the earlier neighbour (k frames back) is scaled to ``since`` frames."""
    back = [v for v in views if 0 <= v.source_index < ref_index]
    if not back:
        return None
    v = back[0]
    k = max(1, ref_index - v.source_index)
    from services.depth.flow import warp_by_flow

    return warp_by_flow(values.astype(np.float32), v.flow * (since / k))


def track_mask(previous: np.ndarray, views: list[ViewFlow], ref_index: int, since: int = 1) -> np.ndarray:
    """Last frame's mask carried into this frame along the observed flow; without an earlier neighbour it
    stays put."""
    carried = carry_along_flow(previous, views, ref_index, since)
    return previous if carried is None else carried > 0.5


def photo_noise_and_floor(photo: np.ndarray, contrast: float | None, params: DepthSettings) -> tuple[float, float]:
    """(noise, floor) of a frame's rigid-warp error: its median over the frame, and the absolute floor a moving
    pixel's error must pass, scaled down for a dark, flat frame (``contrast``: its grey-level std), where a
    misalignment costs proportionally fewer grey levels."""
    finite = np.isfinite(photo)
    noise = float(np.median(photo[finite])) if finite.any() else 0.0
    floor = params.mask_photo_min
    if contrast is not None:
        floor *= min(1.0, contrast / params.mask_photo_contrast)
    return noise, floor


def weak_evidence(score: np.ndarray, photo: np.ndarray, ref: np.ndarray, params: DepthSettings) -> np.ndarray:
    """(h, w) float in [0, 4]: by how much a pixel's normalised flow residual (``score``) and its rigid-warp error
    (``photo``) both exceed what a static pixel shows; 0 where either does not.

    What a static pixel's warp error may reach is the frame's noise or floor, or on an edge a sub-pixel
    misalignment times the local gradient of ``ref`` (the grey reference frame), whichever is larger: a
    bright kerb in a dark frame shows large errors from flow a fraction of a pixel off."""
    noise, floor = photo_noise_and_floor(photo, float(ref.std()), params)
    gx = cv2.Sobel(ref, cv2.CV_32F, 1, 0, ksize=SOBEL_SIZE) / SOBEL_GAIN  # grey levels per pixel
    gy = cv2.Sobel(ref, cv2.CV_32F, 0, 1, ksize=SOBEL_SIZE) / SOBEL_GAIN
    allowed = np.maximum(max(noise, floor, ALLOWED_ERROR_FLOOR),
                         params.mask_persistence_grad_px * cv2.blur(np.hypot(gx, gy), GRADIENT_BOX))
    flow_part = np.clip(score / params.mask_threshold - 0.5, 0.0, 2.0)
    photo_part = np.clip(photo / allowed - 1.0, 0.0, 2.0)
    return (flow_part * photo_part).astype(np.float32)


def accumulate_evidence(evidence: np.ndarray, memory: np.ndarray | None, views: list[ViewFlow], ref_index: int,
                        params: DepthSettings, since: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(persistent, memory): this frame's weak evidence added to the faded memory of earlier frames, carried
    along the objects' flow, and the pixels where that sum passes the level while the pixel shows some
    evidence now (what an object leaves behind as it moves on is not marked).

    Noise and flow errors fall on different pixels from frame to frame; an object's weak evidence follows
    it. Without an earlier view (the clip's first frame, a cut) the memory starts again."""
    carried = carry_along_flow(memory, views, ref_index, since) if memory is not None else None
    # the memory fades with time, not with annotated frames; a frame's evidence stands for the ``since`` frames
    # up to it (what they would have added at the dense rate, were it the same in each), so the level means
    # the same at any annotation rate
    decay = params.mask_persistence_decay
    gain = since if decay == 1 else (1 - decay ** since) / (1 - decay)
    memory = evidence if carried is None else decay ** since * carried + gain * evidence
    return (memory > params.mask_persistence_level) & (evidence > 0), memory


@dataclass
class MaskEvidence:
    """What clean_mask weighs for one frame, on the depth grid (bool maps unless said otherwise)."""

    score: np.ndarray  # (h, w) float: normalised flow residual against the rigid flow (motion_score)
    photo: np.ndarray | None = None  # rigid-warp photometric residual (photometric_evidence)
    contrast: float | None = None  # the frame's grey-level std (scales the photometric noise floor)
    tracked: np.ndarray | None = None  # last frame's mask carried along the flow (track_mask)
    screen_fixed: np.ndarray | None = None  # pixels that stay put on the screen (never carried on by tracking)
    trusted: np.ndarray | None = None  # pixels with a forward-backward consistent flow in some view
    hovering: np.ndarray | None = None  # segments the gravity prior finds hanging over far ground or sunk below it
    persistent: np.ndarray | None = None  # weak evidence that followed the objects' flow (accumulate_evidence)
    exclude: np.ndarray | None = None  # pixels never marked


def clean_mask(evidence: MaskEvidence, params: DepthSettings, previous: np.ndarray | None = None) -> np.ndarray:
    """Hysteresis on the score, then connected regions: keep those big enough that contain a strong seed,
    or that overlap last frame's mask (temporal consistency lets a slowing object keep its mask).

    The image evidence confirms the flow's, or stands on its own where it is dense and backed by some flow
    residual; ``hovering`` (support.ungrounded_segments) and ``persistent`` are evidence and seed of their own."""
    weak, strong = _weak_and_strong(evidence, params)
    mask = _kept_regions(weak, strong, previous, params)
    if mask is None:
        return np.zeros(evidence.score.shape, bool)
    mask |= _enclosed_holes(mask)
    if mask.mean() > params.mask_max_share:
        return np.zeros(evidence.score.shape, bool)
    return mask


def _weak_and_strong(evidence: MaskEvidence, params: DepthSettings) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) bool: pixels with enough evidence of motion to belong to a region, and those that seed one."""
    weak = evidence.score > params.mask_threshold
    strong = evidence.score > 2 * params.mask_threshold
    if evidence.photo is not None:
        # keep flow-residual pixels that are also photometrically inconsistent under the rigid warp
        # (noise level from the frame itself), then close to recover textureless object insides
        finite = np.isfinite(evidence.photo)
        noise, floor = photo_noise_and_floor(evidence.photo, evidence.contrast, params)
        weak &= evidence.photo > max(floor, params.mask_photo_noise_factor * noise)
        # Overwhelming flow evidence needs only a little image support: a dark or low-contrast object has
        # no large image error to show (a few grey levels against a noise near one), while its flow is many
        # times what camera motion and any depth explain. Textureless areas
        # whose flow is guesswork (sky) show no image error at all and stay out; half the absolute floor
        # stays, because a still, clean frame has a noise near zero (the flow smeared around a moving
        # object on a tripod shot would otherwise be taken in).
        alone = (evidence.score > params.mask_flow_alone_factor * params.mask_threshold) & (
            evidence.photo > max(0.5 * floor, params.mask_flow_alone_photo * noise))
        weak |= alone if evidence.trusted is None else alone & evidence.trusted
        # A textured object moving along its epipolar lines fits the flow with a wrong depth but not the
        # image: a dense (box-averaged) rigid-warp error well above the frame's noise is evidence on its own,
        # given some flow support. Thin errors along depth edges average away in the box.
        dense = cv2.blur(np.where(finite, evidence.photo, 0).astype(np.float32),
                         (params.mask_photo_blob_px, params.mask_photo_blob_px))
        backed = evidence.score > params.mask_photo_flow_support
        weak |= backed & (dense > max(floor, params.mask_photo_blob_factor * noise))
        strong |= backed & (dense > max(floor, params.mask_photo_seed_factor * noise))
        if evidence.tracked is not None:
            # where last frame's object lies after following its own flow, the image evidence alone goes on:
            # an object can move along its epipolar lines for a while (flow explained by a wrong depth)
            # (not for what stays put on the screen: an overlay would otherwise be carried on for ever)
            carried_on = evidence.tracked & (dense > max(floor, params.mask_photo_blob_factor * noise))
            weak |= carried_on if evidence.screen_fixed is None else carried_on & ~evidence.screen_fixed
    if evidence.hovering is not None:
        # an object moving along its epipolar lines fits both flow and image with its wrong depth; that
        # depth makes it hover, which static things below the horizon do not
        weak |= evidence.hovering
        strong |= evidence.hovering
    if evidence.persistent is not None:
        weak |= evidence.persistent
        strong |= evidence.persistent
    if evidence.exclude is not None:
        weak &= ~evidence.exclude
        strong &= ~evidence.exclude
    return weak, strong


def _kept_regions(weak: np.ndarray, strong: np.ndarray, previous: np.ndarray | None,
                  params: DepthSettings) -> np.ndarray | None:
    """The connected regions of ``weak`` big enough and seeded by ``strong``, or following ``previous``; None
    without any region."""
    h, w = weak.shape
    weak = weak.astype(np.uint8)
    weak = cv2.morphologyEx(weak, cv2.MORPH_OPEN, np.ones(SPECKLE_OPEN, np.uint8))
    weak = cv2.morphologyEx(weak, cv2.MORPH_CLOSE, np.ones(GAP_CLOSE, np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=REGION_CONNECTIVITY)
    if count <= 1:
        return None
    min_area = params.mask_min_share * h * w
    seeds = np.bincount(labels[strong], minlength=count)
    keep = (stats[:, cv2.CC_STAT_AREA] >= min_area) & (seeds >= MIN_SEED_SHARE * stats[:, cv2.CC_STAT_AREA])
    if previous is not None and previous.shape == (h, w):
        overlap = np.bincount(labels[previous], minlength=count)
        keep |= (stats[:, cv2.CC_STAT_AREA] >= min_area / FOLLOWED_AREA_DIVISOR) & (
        overlap >= MIN_FOLLOWED_SHARE * stats[:, cv2.CC_STAT_AREA])
    keep[0] = False
    return keep[labels]


def _enclosed_holes(mask: np.ndarray) -> np.ndarray:
    """Pixels outside ``mask`` enclosed by it (an object's textureless inside gives small flow)."""
    inv = (~mask).astype(np.uint8)
    n2, lab2, _, _ = cv2.connectedComponentsWithStats(inv, connectivity=HOLE_CONNECTIVITY)
    border = np.zeros(n2, bool)
    border[np.unique(np.concatenate([lab2[0], lab2[-1], lab2[:, 0], lab2[:, -1]]))] = True
    return ~border[lab2] & (lab2 > 0)
