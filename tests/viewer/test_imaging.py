"""Per-frame images and the point cloud: what they encode is what the arrays hold."""

from __future__ import annotations

import cv2
import numpy as np

from services.viewer import imaging


def decode(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def test_mask_png_is_transparent_outside_the_mask():
    mask = np.zeros((20, 30), bool)
    mask[5:10, 3:8] = True
    image = decode(imaging.mask_png(mask))
    assert image.shape == (20, 30, 4)
    assert (image[..., 3] > 0).sum() == mask.sum() and (image[mask][:, 3] == imaging.MASK_RGBA[3]).all()


def test_depth_png_is_near_warm_far_cold_and_transparent_where_invalid():
    depth = np.full((10, 10), 4.0, np.float16)
    depth[:, :5] = 1.0
    depth[0, 0] = 0
    image = decode(imaging.depth_png(depth, imaging.depth_scale(depth)))
    assert image[0, 0, 3] == 0 and (image[1:, :, 3] == 255).all()
    near, far = image[5, 2, :3].astype(int), image[5, 8, :3].astype(int)  # BGR
    assert near[2] > near[0] and far[0] > far[2]  # red near, blue far
    # A clip without valid depth gives fully transparent frames.
    empty = np.zeros((4, 4), np.float16)
    assert (decode(imaging.depth_png(empty, imaging.depth_scale(empty)))[..., 3] == 0).all()


def test_unproject_puts_a_pixel_at_its_depth_along_its_ray_in_the_world():
    depth = np.zeros((4, 6), np.float32)
    depth[1, 4] = 2.0
    k = np.array([[3.0, 0, 3.0], [0, 3.0, 2.0], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[:3, 3] = (10, 20, 30)
    image = np.zeros((8, 12, 3), np.uint8)
    image[2:4, 8:10] = (255, 128, 0)
    points, colours = imaging.unproject(depth, c2w, k, image, stride=1)
    assert points.shape == (1, 3)
    np.testing.assert_allclose(points[0], [10 + (4 - 3) / 3 * 2, 20 + (1 - 2) / 3 * 2, 32], rtol=1e-6)
    assert tuple(colours[0]) == (255, 128, 0)
    back = imaging.unpack_points(imaging.pack_points(points, colours))
    np.testing.assert_array_equal(back[0], points)
    np.testing.assert_array_equal(back[1], colours)
