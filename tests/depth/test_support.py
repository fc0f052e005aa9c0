"""The gravity prior (services/depth/support.py) on drawn frames and depth maps: a ground plane seen from a known
height, with a plain box that either rests on it or hovers in front of it (what an oncoming car under a dolly looks
like). As on a real plain object, depth is measured only on the box's rim."""

import numpy as np
import pytest

from services.depth.segments import colour_segments
from services.depth.support import (_depth_above_in_segment, _segment_medians, fit_ground_plane, plane_depth,
                                    ungrounded_segments)

W, H = 320, 180
K = np.array([[250.0, 0, 159.5], [0, 250.0, 89.5], [0, 0, 1]])
CAMERA_HEIGHT = 1.6


def _street(box_depth_at_base: float | None, pitch_deg: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(depth, box mask): ground below a camera pitched down by ``pitch_deg``; a fronto-parallel box whose lower
    edge sits on image row 130 (columns 200-260, rows 90-130), drawn at ``box_depth_at_base`` x the ground's
    depth at that row (1.0: it rests on the ground; 0.4: it hovers, like a car seen 2.5x nearer than it is)."""
    a = np.radians(pitch_deg)
    normal = np.array([0.0, -np.cos(a), -np.sin(a)])  # world up in the camera frame of a pitched-down camera
    from services.depth.support import GroundPlane

    ground = plane_depth(GroundPlane(normal=normal, height=CAMERA_HEIGHT), K, H, W)
    depth = np.where(np.isfinite(ground) & (ground < 80), ground, 0.0).astype(np.float32)
    box = np.zeros((H, W), bool)
    if box_depth_at_base is not None:
        box[90:131, 200:261] = True
        depth[box] = box_depth_at_base * ground[130, 230]
    return depth, box


def test_the_ground_plane_and_camera_height_are_recovered():
    depth, _ = _street(None, pitch_deg=8.0)
    plane = fit_ground_plane(depth, K)
    assert plane is not None
    a = np.radians(8.0)
    assert np.degrees(np.arccos(np.clip(plane.normal @ [0, -np.cos(a), -np.sin(a)], -1, 1))) < 0.5
    assert plane.height == pytest.approx(CAMERA_HEIGHT, rel=0.01)


def test_no_plane_without_ground():
    """A wall straight ahead (normal along the optical axis) is no ground; nor is an empty map."""
    assert fit_ground_plane(np.full((H, W), 5.0, np.float32), K) is None
    assert fit_ground_plane(np.zeros((H, W), np.float32), K) is None


def _frame(box: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB: grey textured ground and sky, the box a plain teal."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(128, 6, (H, W, 1)), 0, 255).repeat(3, axis=2).astype(np.uint8)
    image[:60] = (150, 190, 230)
    image[box] = (20, 80, 90)
    return image


def _rim_only(depth: np.ndarray, box: np.ndarray, width: int = 2) -> np.ndarray:
    """The box's depth kept only on its outer ``width`` pixels (a plain face gives flow nothing to follow)."""
    inner = np.zeros_like(box)
    ys, xs = np.nonzero(box)
    inner[ys.min() + width: ys.max() + 1 - width, xs.min() + width: xs.max() + 1 - width] = True
    return np.where(box & inner, 0.0, depth).astype(np.float32)


def _hovering(box_depth_at_base: float) -> tuple[np.ndarray, np.ndarray]:
    depth, box = _street(box_depth_at_base)
    plane = fit_ground_plane(depth, K)
    return ungrounded_segments(colour_segments(_frame(box)), _rim_only(depth, box), K, plane), box


def test_a_plain_box_hovering_over_far_ground_is_marked_whole():
    marked, box = _hovering(0.4)
    assert marked[box].mean() > 0.9  # its inside too, though only its rim was measured
    assert marked[~box].mean() < 0.002


def test_a_box_sinking_below_the_ground_is_marked():
    """Seen 2.5x farther than the ground at its base (a car driving away under a dolly): along its own rays the
    ground would hide it. Measured all over (sinking is judged on a segment's own depth; a plain inside is
    filled by the mask cleaning's hole filling)."""
    depth, box = _street(2.5)
    marked = ungrounded_segments(colour_segments(_frame(box)), depth, K, fit_ground_plane(depth, K))
    assert marked[box].mean() > 0.9
    assert marked[~box].mean() < 0.002


def test_a_resting_box_is_not_marked():
    marked, _ = _hovering(1.0)
    assert not marked.any()


def test_an_overhang_like_a_table_top_is_not_marked():
    """Ground 1.3x farther than the segment (a table top, a bumper) is within what static things do."""
    marked, _ = _hovering(1 / 1.3)
    assert not marked.any()


def test_a_box_without_measured_depth_is_not_marked():
    depth, box = _street(0.4)
    plane = fit_ground_plane(depth, K)
    assert not ungrounded_segments(colour_segments(_frame(box)), np.where(box, 0, depth).astype(np.float32), K,
                                   plane).any()


def test_segment_medians():
    labels = np.array([[0, 0, 1, 1], [0, 2, 1, 1]])
    depth = np.array([[1.0, 3.0, 0.0, 5.0], [2.0, 0.0, 7.0, 6.0]], np.float32)
    np.testing.assert_allclose(_segment_medians(labels, depth, 4), [2.0, 6.0, 0.0, 0.0], rtol=1e-6)


def test_only_the_outline_in_view_counts():
    """A hovering box running off the bottom of the frame over most of its width (an oncoming truck passing
    close): the columns cut by the frame show nothing of what it stands on; the few in view decide."""
    depth, _ = _street(None)
    box = np.zeros((H, W), bool)
    box[90:131, 150:261] = True
    box[131:, 170:261] = True  # the off-frame part: 91 of its 111 columns end on the frame's last row
    depth[box] = 0.4 * depth[130, 160]
    plane = fit_ground_plane(depth, K)
    marked = ungrounded_segments(colour_segments(_frame(box)), _rim_only(depth, box), K, plane)
    assert marked[box].mean() > 0.9


def test_depth_above_in_segment():
    labels = np.array([[0, 1], [0, 1], [2, 1], [2, 1]])
    depth = np.array([[5.0, 0.0], [0.0, 3.0], [0.0, 0.0], [7.0, 0.0]], np.float32)
    np.testing.assert_array_equal(_depth_above_in_segment(labels, depth),
                                  [[5.0, 0.0], [5.0, 3.0], [0.0, 3.0], [7.0, 3.0]])
