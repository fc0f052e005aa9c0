"""The reference's rule for turning a motion map into SAM2 point prompts, and for merging SAM2's masks.

Pure functions (arrays in, arrays out). The rule, as SpatialVID's dynamic-mask
script applies it to MegaSaM's per-pixel motion map:

1. threshold at ``min + 0.4 (max - min)`` of the map; a map whose spread is too
   small (threshold above ``max - 0.1``) has no moving region;
2. upsample the binary region map to the frame (bilinear, keep only pixels that
   stay fully inside), take the external contours (``cv2.RETR_EXTERNAL``,
   ``CHAIN_APPROX_SIMPLE``) and sample every ``len(contour) // 3``-th contour
   point: 3 or 4 positive points per region;
3. skip a region when any of its points lies on sky;
4. after SAM2, drop a mask covering more than 30% of the frame; OR the rest.

MegaSaM's map is low where things move (it is the static confidence), so the
reference keeps ``map < threshold``. ``moving_is_low=False`` (the default) takes a
map that is high where things move and mirrors it, so the same share of the
value range is kept from the moving end.
"""

from __future__ import annotations

import cv2
import numpy as np

THRESHOLD_FRACTION = 0.4
FLAT_MARGIN = 0.1
MAX_MASK_FRACTION = 0.3


def moving_regions(
    motion: np.ndarray,
    frame_hw: tuple[int, int],
    moving_is_low: bool = False,
    fraction: float = THRESHOLD_FRACTION,
) -> np.ndarray:
    """Binary (H, W) uint8 map of the moving regions at the frame's size (all zero for a flat map)."""
    motion = np.asarray(motion, dtype=np.float32)
    static = motion if moving_is_low else -motion
    low, high = float(static.min()), float(static.max())
    threshold = (high - low) * fraction + low
    height, width = frame_hw
    if threshold > high - FLAT_MARGIN:
        return np.zeros((height, width), np.uint8)
    region = (static < threshold).astype(np.float32)
    region = cv2.resize(region, (width, height), interpolation=cv2.INTER_LINEAR)
    # The reference casts the bilinear result to uint8: only fully covered pixels survive.
    return (region >= 1.0 - 1e-6).astype(np.uint8)


def contour_prompts(region_map: np.ndarray, sky: np.ndarray | None = None) -> list[np.ndarray]:
    """(P, 2) float32 (x, y) positive points per region, 3 or 4 from its outer contour; sky regions skipped."""
    contours, _ = cv2.findContours(region_map.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    prompts = []
    for contour in contours:
        points = contour[:, 0, :]  # (n, 2) x, y
        # The reference's len // 3 fails on contours of 1-2 points; step 1 keeps them.
        points = points[:: max(1, len(points) // 3)]
        if sky is not None and sky[points[:, 1], points[:, 0]].any():
            continue
        prompts.append(points.astype(np.float32))
    return prompts


def merge_masks(masks: np.ndarray, frame_hw: tuple[int, int], max_fraction: float = MAX_MASK_FRACTION) -> np.ndarray:
    """OR of the (K, H, W) masks that cover at most ``max_fraction`` of the frame."""
    height, width = frame_hw
    merged = np.zeros((height, width), bool)
    if len(masks):
        masks = np.asarray(masks, bool)
        keep = masks.reshape(len(masks), -1).sum(1) <= max_fraction * height * width
        if keep.any():
            merged = masks[keep].any(0)
    return merged


def sky_mask_hsv(image_rgb: np.ndarray) -> np.ndarray:
    """The reference's colour-based sky mask for an RGB frame (bool, H x W).

    The reference reads frames with OpenCV (BGR) and converts them with
    ``COLOR_RGB2HSV``; converting an RGB frame with ``COLOR_BGR2HSV`` gives the
    very same HSV values, so its thresholds apply unchanged.
    """
    from scipy import ndimage

    hsv = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_BGR2HSV)
    mask = cv2.inRange(hsv, np.array([0, 0, 100]), np.array([30, 255, 255])) > 0
    sat, val = hsv[..., 1], hsv[..., 2]
    mask |= (sat < 10) & (val > 150)
    mask |= (sat < 30) & (val > 180)
    mask |= (sat < 50) & (val > 220)
    mask = ndimage.binary_opening(mask, structure=np.ones((5, 5), bool))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    if len(sizes) == 0:
        return np.zeros(mask.shape, bool)
    # Keep the largest component and every one at least half its size.
    keep = 1 + np.flatnonzero(sizes > sizes.max() / 2)
    return np.isin(labels, keep)


def refine_with_sam2(
    sam2,
    image_rgb: np.ndarray,
    motion: np.ndarray,
    sky: np.ndarray | None = None,
    moving_is_low: bool = False,
) -> np.ndarray:
    """The reference's per-frame dynamic mask: motion regions -> point prompts -> SAM2 -> filtered union.

    ``sam2`` is a loaded ``services.models.sam2.Sam2``. Prompts of equal length
    run as one batch (each is decoded on its own, as in the reference).
    """
    frame_hw = image_rgb.shape[:2]
    prompts = contour_prompts(moving_regions(motion, frame_hw, moving_is_low), sky)
    if not prompts:
        return np.zeros(frame_hw, bool)
    embeddings = sam2.encode(image_rgb)
    masks = []
    for count in sorted({len(p) for p in prompts}):
        group = np.stack([p for p in prompts if len(p) == count])
        group_masks, _ = sam2.segment(embeddings, frame_hw, group, np.ones(group.shape[:2], np.int32))
        masks.append(group_masks)
    return merge_masks(np.concatenate(masks), frame_hw)
