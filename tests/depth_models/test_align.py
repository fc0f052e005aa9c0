"""The per-frame scale-and-shift alignment in disparity space, on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from services.depth.align import align_disparity_to_depth, fit_scale_shift


def synthetic_scene(shape=(90, 160), seed=0):
    """A reference depth (planes and a box, 1-8 m) and its disparity."""
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = 1.5 + 6.0 * y / h + 0.5 * np.sin(x / 17.0)
    depth[20:50, 60:100] = 1.2 + rng.uniform(0, 0.1)
    return depth.astype(np.float32)


@pytest.mark.parametrize("scale,shift", [(0.37, 0.05), (2.5, -0.02), (12.0, 0.3)])
def test_known_scale_and_shift_are_recovered_despite_outliers(scale, shift):
    rng = np.random.default_rng(1)
    depth = synthetic_scene()
    # A relative disparity that is the true one up to scale and shift, with noise (2e-4 /m once aligned) ...
    relative = ((1.0 / depth - shift + rng.normal(0, 2e-4, depth.shape)) / scale).astype(np.float32)
    reference = depth.copy()
    # ... and a reference that is wrong on a quarter of the pixels (a moving object, bad matches).
    wrong = rng.random(depth.shape) < 0.25
    reference[wrong] *= rng.uniform(0.2, 5.0, wrong.sum()).astype(np.float32)
    result = align_disparity_to_depth(relative, reference)
    assert result.ok, result.reason
    assert result.fit.scale == pytest.approx(scale, rel=0.01)
    assert result.fit.shift == pytest.approx(shift, abs=0.01 * abs(scale) * float(np.ptp(relative)) + 1e-3)
    good = result.depth > 0
    assert good.mean() > 0.99
    np.testing.assert_allclose(result.depth[good], depth[good], rtol=0.02)
    # Plain least squares would have been pulled far off by the wrong quarter.
    ok = reference > 0
    plain = np.polyfit(relative[ok], 1.0 / reference[ok], 1)
    assert abs(plain[0] / scale - 1) > 0.05


def test_exact_data_fit_exactly():
    x = np.linspace(0.1, 1.0, 500)
    fit = fit_scale_shift(x, 3.0 * x + 0.25)
    assert fit.scale == pytest.approx(3.0, rel=1e-9) and fit.shift == pytest.approx(0.25, abs=1e-9)
    assert fit.inlier_share == 1.0


def test_only_valid_reference_pixels_are_used_and_depth_is_z():
    depth = synthetic_scene()
    relative = (4.0 / depth + 0.1).astype(np.float32)
    reference = depth.copy()
    reference[:, :40] = 0  # invalid reference (no parallax there): left out of the fit ...
    reference[0, 50] = np.nan
    result = align_disparity_to_depth(relative, reference)
    assert result.ok
    # ... but the aligned depth covers them (the model sees every pixel).
    np.testing.assert_allclose(result.depth, depth, rtol=1e-4)


def test_too_few_reference_pixels_leave_the_frame_invalid_instead_of_inventing_a_scale():
    depth = synthetic_scene()
    reference = np.zeros_like(depth)
    reference[:5, :5] = depth[:5, :5]
    result = align_disparity_to_depth(1.0 / depth, reference)
    assert not result.ok and "reference pixels" in result.reason
    assert not result.depth.any()


def test_reversed_depth_order_is_rejected():
    depth = synthetic_scene()
    result = align_disparity_to_depth(depth, depth)  # "disparity" growing with depth: the model contradicts
    assert not result.ok and "non-positive scale" in result.reason
    assert not result.depth.any()


def test_far_or_negative_aligned_disparity_is_invalid_not_huge():
    depth = synthetic_scene()
    relative = (1.0 / depth).astype(np.float32)
    relative[:10] = -1.0  # "sky": the model says farther than anything (negative after the shift)
    reference = depth.copy()
    reference[:10] = 0
    result = align_disparity_to_depth(relative, reference)
    assert result.ok
    assert not result.depth[:10].any() and (result.depth[10:] > 0).all()


def test_flat_relative_disparity_has_no_fit():
    result = align_disparity_to_depth(np.ones((40, 40), np.float32), np.full((40, 40), 2.0, np.float32))
    assert not result.ok and "flat" in result.reason
