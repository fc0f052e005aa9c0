"""Which pixels the last frame's depth may be carried into (synthetic triangulations, fast)."""

import numpy as np

from services.depth.multiview import _refuses_carry
from services.depth.params import GeometricParams
from services.depth.triangulate import Triangulation


def test_carry_only_into_pixels_without_parallax_not_into_untrusted_or_inconsistent_flow():
    p = GeometricParams()
    h, w = 4, 3
    used = np.full((h, w), 2, np.uint8)
    parallax = np.full((h, w), 10.0, np.float32)
    residual = np.zeros((h, w), np.float32)
    parallax[0] = 0.5  # row 0: no parallax (rotation, hold, epipole): carrying is what it is for
    used[1] = 0  # row 1: no view's flow is trusted (occluded, or a moving textureless surface)
    residual[2] = 5 * p.max_residual_px  # row 2: enough parallax, yet no static point fits the flows
    residual[0] = 5 * p.max_residual_px  # without parallax a large residual is no evidence of motion
    tri = Triangulation(inv_depth=np.full((h, w), 0.25, np.float32), parallax_px=parallax, residual_px=residual,
                        views_used=used)
    refused = _refuses_carry(tri, p)
    assert not refused[0].any()
    assert refused[1].all() and refused[2].all()
    assert not refused[3].any()  # measured fine: nothing to refuse (the measurement wins anyway)


def test_measured_depth_needs_a_tight_reprojection_residual():
    """A point that reprojects 0.8 px off its flows is mostly a moving object or smeared flow: not published,
    although max_residual_px (the tolerance for calling flow inconsistent) would allow it."""
    from services.depth.multiview import _measured_depth

    p = GeometricParams()
    assert p.depth_max_residual_px < 0.8 < p.max_residual_px
    h, w = 2, 2
    residual = np.array([[0.1, 0.8], [0.1, 0.8]], np.float32)
    tri = Triangulation(inv_depth=np.full((h, w), 0.5, np.float32), parallax_px=np.full((h, w), 8.0, np.float32),
                        residual_px=residual, views_used=np.full((h, w), 2, np.uint8))
    depth = _measured_depth(tri, p)
    assert np.allclose(depth[:, 0], 2.0) and (depth[:, 1] == 0).all()
