"""The CPU implementations of the spatialvid:: operators against the code they replace
(always run): the numpy normal equations of the tracker, the depth triangulation and motion score."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from services.kernels import backend
from services.kernels.bundle_ops import build_normal_equations
from services.kernels.flow_ops import residual_score, triangulate
from tests.kernels.conftest import random_ba, random_views
from tests.kernels.original_ba import normal_equations as original_normal_equations

# Sums of the same terms in another order: float64 agreement to ~1e-12 of the largest entry.
BA_RTOL = 1e-10


def assert_blocks_match(got, want, rtol=BA_RTOL):
    for name, a, b in zip(("Hcc", "gc", "Hpp", "gp", "Hcp"), got, want):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{name}: shape {a.shape} vs {b.shape}"
        scale = max(np.abs(b).max(initial=0.0), 1e-300)
        assert np.abs(a - b).max(initial=0.0) <= rtol * scale, f"{name}: max diff {np.abs(a - b).max()} vs scale {scale}"


@pytest.mark.parametrize("shape", [dict(), dict(B=3, P=7), dict(P=1, N=0), dict(N=0, fixed_share=0.5),
                                   dict(M=7, P=2, N=3), dict(M=0, P=2, N=3), dict(P=0, N=40)])
@pytest.mark.parametrize("seed", [0, 1])
def test_ba_normal_equations_match_numpy_on_random_blocks(shape, seed):
    x = random_ba(seed, **shape)
    with backend.use("cpu"):
        ne = build_normal_equations(*x.args())
    assert_blocks_match((ne.Hcc, ne.gc, ne.Hpp, ne.gp, ne.Hcp), original_normal_equations(*x.args()))


def test_ba_normal_equations_match_numpy_on_the_trackers_blocks(real_ba):
    for x in real_ba:
        with backend.use("cpu"):
            ne = build_normal_equations(*x.args())
        assert_blocks_match((ne.Hcc, ne.gc, ne.Hpp, ne.gp, ne.Hcp), original_normal_equations(*x.args()))


def test_repeated_pose_blocks_add_up():
    """One observation naming the same pose twice: the derivative is the sum of both blocks."""
    x = random_ba(3, M=50, B=2, P=3, N=10, fixed_share=0.0)
    x.pose_index[:, 1] = x.pose_index[:, 0]
    merged = random_ba(3, M=50, B=1, P=3, N=10, fixed_share=0.0)
    merged.residuals, merged.weights, merged.point_index, merged.point_jacobians = (
        x.residuals, x.weights, x.point_index, x.point_jacobians)
    merged.pose_index = x.pose_index[:, :1].copy()
    merged.pose_jacobians = x.pose_jacobians.sum(1, keepdims=True)
    got = torch.ops.spatialvid.ba_normal_equations(*x.tensors())
    want = torch.ops.spatialvid.ba_normal_equations(*merged.tensors())
    assert_blocks_match([t.numpy() for t in got], [t.numpy() for t in want])


def test_ba_operator_detects_a_wrong_block():
    """The comparison can fail: one perturbed Jacobian entry shows up in H."""
    x = random_ba(4)
    x.pose_index[0] = (0, 1)
    x.weights[0] = 1.0
    want = original_normal_equations(*x.args())
    x.pose_jacobians[0, 0, 0, 0] += 5.0
    with backend.use("cpu"):
        ne = build_normal_equations(*x.args())
    with pytest.raises(AssertionError):
        assert_blocks_match((ne.Hcc, ne.gc, ne.Hpp, ne.gp, ne.Hcp), want)


def _depth_originals(K, views, depth):
    from services.depth.motion import background_inverse_depth, motion_score
    from services.depth.params import DepthSettings as GeometricParams
    from services.depth.triangulate import triangulate_inverse_depth

    params = GeometricParams()
    if hasattr(params, "mask_drop_screen_fixed"):
        # the operator is the per-view residual loop; zeroing screen-fixed overlays is a separate step
        params = params.model_copy(update={"mask_drop_screen_fixed": False})
    tri = triangulate_inverse_depth(K, views)
    score = motion_score(K, views, depth, params)
    inv = background_inverse_depth(depth)
    return params, tri, score, inv


@pytest.mark.parametrize("source", ["random0", "random1", "real"])
def test_flow_operators_match_the_depth_code(source, request):
    if source == "real":
        K, views, depth = request.getfixturevalue("real_views")
    else:
        K, views, depth = random_views(int(source[-1]), V=2 + int(source[-1]))
    params, tri, want_score, inv = _depth_originals(K, views, depth)
    with backend.use("cpu"):
        inv_depth, parallax, residual, used = triangulate(K, views)
        score = residual_score(K, views, inv, depth > 0, params.mask_noise_px, params.mask_parallax_tolerance)
    # Same float64 operations in the same order: float32 outputs agree to the last bit or one ulp.
    np.testing.assert_allclose(inv_depth, tri.inv_depth, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(parallax, tri.parallax_px, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(residual, tri.residual_px, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(used, tri.views_used)
    # float32 flow arithmetic: agreement to a few float32 ulps of the score
    np.testing.assert_allclose(score, want_score, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 97, 5000])
def test_ba_normal_equations_scattered_in_chunks_match_the_product(monkeypatch, chunk):
    """A large pose system is built by scattering per-observation blocks in chunks (bounded memory): the
    same blocks as the one-product build, up to summation order."""
    from services.kernels import reference

    x = random_ba(3, M=900, P=9, N=200)
    with backend.use("cpu"):
        whole = build_normal_equations(*x.args())
        monkeypatch.setattr(reference, "PRODUCT_MAX_POSE_COLUMNS", 0)
        monkeypatch.setattr(reference, "SCATTER_CHUNK_OBSERVATIONS", chunk)
        scattered = build_normal_equations(*x.args())
    assert_blocks_match((scattered.Hcc, scattered.gc, scattered.Hpp, scattered.gp, scattered.Hcp),
                        (whole.Hcc, whole.gc, whole.Hpp, whole.gp, whole.Hcp))
    assert_blocks_match((scattered.Hcc, scattered.gc, scattered.Hpp, scattered.gp, scattered.Hcp),
                        original_normal_equations(*x.args()))
