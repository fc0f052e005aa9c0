"""The reference's motion-map -> SAM2 prompt rule, and the mask merge."""

from __future__ import annotations

import numpy as np

from services.models import prompts


def blob_map(shape=(36, 64), box=(10, 20, 20, 36), value=0.9, background=0.05):
    motion = np.full(shape, background, np.float32)
    y0, y1, x0, x1 = box
    motion[y0:y1, x0:x1] = value
    return motion


def test_threshold_keeps_the_moving_end_of_the_range():
    motion = blob_map()
    region = prompts.moving_regions(motion, (72, 128))
    assert region.shape == (72, 128)
    ys, xs = np.nonzero(region)
    # The blob (rows 10..19, cols 20..35 at half size) scaled x2, eroded by the bilinear cut.
    assert 19 <= ys.min() <= 21 and 37 <= ys.max() <= 39 and 39 <= xs.min() <= 41 and 69 <= xs.max() <= 71
    # MegaSaM's convention (low = moving) gives the same regions on the mirrored map.
    np.testing.assert_array_equal(prompts.moving_regions(1 - motion, (72, 128), moving_is_low=True), region)


def test_threshold_is_min_plus_0_4_of_the_range():
    motion = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    region = prompts.moving_regions(motion, (10, 10), moving_is_low=True)
    # Static-confidence map: kept where value < 0 + 0.4 * (1 - 0).
    np.testing.assert_array_equal(region.ravel() > 0, motion.ravel() < 0.4)


def test_flat_map_has_no_region():
    motion = np.full((20, 20), 0.5, np.float32)
    motion[5:8, 5:8] = 0.6  # spread 0.1: threshold above max - 0.1
    assert prompts.moving_regions(motion, (40, 40)).sum() == 0


def test_three_or_four_contour_points_per_region_and_sky_skip():
    region = np.zeros((100, 200), np.uint8)
    region[10:30, 10:40] = 1  # a rectangle: 4 contour corners
    cv_disc = np.zeros_like(region)
    yy, xx = np.mgrid[:100, :200]
    cv_disc[(yy - 60) ** 2 + (xx - 140) ** 2 < 15**2] = 1
    found = prompts.contour_prompts(region | cv_disc)
    assert len(found) == 2
    for points in found:
        assert 3 <= len(points) <= 4 and points.dtype == np.float32
        assert region[points[:, 1].astype(int), points[:, 0].astype(int)].all() or \
            cv_disc[points[:, 1].astype(int), points[:, 0].astype(int)].all()
    sky = np.zeros_like(region, bool)
    sky[:12] = True  # touches the rectangle's top edge
    kept = prompts.contour_prompts(region | cv_disc, sky)
    assert len(kept) == 1 and kept[0][:, 0].min() > 100


def test_merge_drops_masks_over_30_percent():
    masks = np.zeros((3, 10, 10), bool)
    masks[0, :2] = True   # 20%
    masks[1, :4] = True   # 40%: dropped
    masks[2, 9, 9] = True
    merged = prompts.merge_masks(masks, (10, 10))
    assert merged.sum() == 21 and not merged[3].any()
    assert prompts.merge_masks(np.zeros((0, 10, 10), bool), (10, 10)).sum() == 0


def test_sky_mask_finds_a_bright_sky_band():
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[:20] = (135, 190, 235)  # light blue sky (RGB)
    frame[20:] = (60, 90, 40)     # dark green ground
    sky = prompts.sky_mask_hsv(frame)
    assert sky[:18].mean() > 0.95 and sky[25:].mean() == 0
