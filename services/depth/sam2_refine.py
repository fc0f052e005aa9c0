"""SAM 2.1 refinement of the geometric motion regions, through the model-client seam.

The reference prompts SAM 2.1 from MegaSaM's per-pixel motion map. Here the
motion evidence is the geometric mask backend's per-frame mask (the only
per-frame motion output ``services.depth.multiview`` exposes), smoothed into a
continuous map so that the reference's rule (``services.models.prompts``:
threshold at min + 0.4 (max - min), 3-4 contour points per region, regions
touching sky skipped, masks over 30% of the frame dropped) applies unchanged.

The SAM 2 client's contract is one frame and K prompts of P points each; prompts
of different lengths go in separate calls (each decoded on its own, as in the
reference: padding a prompt with "not a point" labels would change the decoder's
tokens and so its answer).
"""

from __future__ import annotations

import cv2
import numpy as np

from services.models.prompts import MAX_MASK_FRACTION, contour_prompts, merge_masks, moving_regions, sky_mask_hsv


def motion_map(mask: np.ndarray, grid_hw: tuple[int, int], blur_px: float) -> np.ndarray:
    """A (h, w) float32 map of motion evidence in [0, 1] from a boolean (H, W) mask.

    The mask is area-averaged onto the depth grid (the resolution the geometric evidence lives at, as
    MegaSaM's map lives at its own reduced size) and blurred, so that region cores score highest.
    """
    h, w = grid_hw
    small = cv2.resize(np.asarray(mask, np.float32), (w, h), interpolation=cv2.INTER_AREA)
    if blur_px > 0:
        small = cv2.GaussianBlur(small, (0, 0), blur_px)
    return small


def sam2_prompts(
    frame_rgb: np.ndarray, motion: np.ndarray, skip_sky: bool = True
) -> list[np.ndarray]:
    """The reference's positive point prompts ((P, 2) float32 x, y per region) for one frame."""
    frame_hw = frame_rgb.shape[:2]
    regions = moving_regions(motion, frame_hw, moving_is_low=False)
    if not regions.any():
        return []
    sky = sky_mask_hsv(frame_rgb) if skip_sky else None
    return contour_prompts(regions, sky)


def refine_masks(client, frame_rgb: np.ndarray, prompts: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """SAM 2.1's masks for the prompts, merged by the reference's rule: ((H, W) bool, masks kept).

    ``client`` is a ``services.models.client.ModelClient`` for ``sam2`` (in-process or Triton).
    """
    frame_hw = frame_rgb.shape[:2]
    if not prompts:
        return np.zeros(frame_hw, bool), 0
    masks = []
    image = np.ascontiguousarray(frame_rgb, dtype=np.uint8)
    for count in sorted({len(p) for p in prompts}):
        group = np.stack([p for p in prompts if len(p) == count]).astype(np.float32)
        out = client.infer({"image": image, "points": group, "labels": np.ones(group.shape[:2], np.int32)})
        group_masks = np.asarray(out["masks"], bool)
        if group_masks.shape != (len(group), *frame_hw):
            raise ValueError(f"sam2 answered masks of shape {group_masks.shape} for {len(group)} prompts on {frame_hw}")
        masks.append(group_masks)
    stacked = np.concatenate(masks)
    merged = merge_masks(stacked, frame_hw)
    kept = int((stacked.reshape(len(stacked), -1).sum(1) <= MAX_MASK_FRACTION * frame_hw[0] * frame_hw[1]).sum())
    return merged, kept
