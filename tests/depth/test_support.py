"""The gravity prior (services/depth/support.py) on drawn depth maps: a ground plane seen from a known height,
with a box that either rests on it or hovers in front of it (what an oncoming car under a dolly looks like)."""

import numpy as np
import pytest

from services.depth.support import fit_ground_plane, hovering_regions, plane_depth

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


def test_a_box_hovering_over_far_ground_is_marked_and_a_resting_one_is_not():
    hover_depth, box = _street(0.4)
    plane = fit_ground_plane(hover_depth, K)
    marked = hovering_regions(hover_depth, K, plane)
    assert marked[box].mean() > 0.9
    assert not marked[~box].any()

    rest_depth, box = _street(1.0)
    assert not hovering_regions(rest_depth, K, fit_ground_plane(rest_depth, K)).any()


def test_an_overhang_like_a_table_top_is_not_marked():
    """Ground 1.3x farther than the region's lower edge (a table top, a bumper) is within what static things do."""
    depth, box = _street(1 / 1.3)
    assert not hovering_regions(depth, K, fit_ground_plane(depth, K)).any()
