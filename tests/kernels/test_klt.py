"""The torch KLT (services.kernels.klt, what a GPU worker runs) against OpenCV's calcOpticalFlowPyrLK
(the CPU path and the reference), on real frames of the shared cases.

The CPU tests run the torch implementation on CPU tensors, the same code a GPU runs on CUDA tensors;
the gpu-marked ones run it on CUDA. Tolerances: OpenCV interpolates with 14-bit fixed-point weights and
the torch code in float32, so positions differ by about 1e-4 px (median) and rarely by more than
0.05 px; a point on the edge of a test (eigenvalue threshold, window leaving the image, iteration cap)
may flip its status, which must stay rare (<= 1%).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from services.kernels import backend, klt, klt_ops
from tests.kernels.conftest import SHARED_CASES, needs_cuda

LK = klt_ops.LKParams(window=15, levels=3, iterations=30, eps=0.01)  # the camera front end's settings
# (case, frame, later frame): a street with movers (2 frames apart), a room with movers, an orbit (3 apart)
PAIRS = [("street_dyn3", 8, 10), ("room_dyn2", 4, 5), ("orbit_plain", 10, 13)]


def _grey_frames(case: str, indexes: tuple[int, ...]) -> list[np.ndarray]:
    from samples import read_case_frames

    folder = SHARED_CASES / case
    if not (folder / "video.mp4").exists():
        pytest.skip(f"shared bench case not found at {folder}")
    frames = read_case_frames(folder, count=max(indexes) + 1)
    return [cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY) for i in indexes]


def _features(grey: np.ndarray) -> np.ndarray:
    """Corners as the camera front end detects them."""
    return cv2.goodFeaturesToTrack(grey, 600, 0.005, 12, blockSize=5).reshape(-1, 2).astype(np.float32)


def _torch_track(prev: np.ndarray, cur: np.ndarray, points: np.ndarray, device: str = "cpu"):
    p0 = klt.build_pyramid(torch.from_numpy(prev).to(device), LK.window, LK.levels)
    p1 = klt.build_pyramid(torch.from_numpy(cur).to(device), LK.window, LK.levels)
    pts, status = klt.track(p0, p1, torch.from_numpy(points).to(device), LK.window, LK.iterations, LK.eps)
    return pts.cpu().numpy(), status.cpu().numpy()


def _opencv_track(prev: np.ndarray, cur: np.ndarray, points: np.ndarray):
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, LK.iterations, LK.eps)
    pts, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, points.reshape(-1, 1, 2), None, winSize=(LK.window, LK.window),
                                              maxLevel=LK.levels, criteria=crit)
    return pts.reshape(-1, 2), status.ravel() == 1


def assert_tracks_agree(got, want):
    (pts, status), (ref_pts, ref_status) = got, want
    assert ref_status.sum() >= 0.5 * len(ref_status), "the reference lost most points: a bad test pair"
    assert np.mean(status != ref_status) <= 0.01
    both = status & ref_status
    d = np.linalg.norm(pts[both] - ref_pts[both], axis=1)
    assert np.median(d) < 2e-3
    assert np.percentile(d, 99) < 0.05
    assert np.mean(d > 0.1) <= 0.002


def test_pyramid_levels_equal_opencv():
    (grey,) = _grey_frames("street_dyn3", (0,))
    pyramid = klt.build_pyramid(torch.from_numpy(grey), LK.window, LK.levels)
    assert len(pyramid.images) == LK.levels + 1
    level = grey
    for i, (image, grads) in enumerate(zip(pyramid.images, pyramid.grads)):
        if i:
            level = cv2.pyrDown(level)
        p = pyramid.pad
        inner = image[p:-p, p:-p].numpy()
        np.testing.assert_array_equal(inner, level.astype(np.float32))  # 8-bit rounding as OpenCV's
        # reflect-101 border around the image, zeros around its derivatives
        np.testing.assert_array_equal(image[p - 1, p:-p].numpy(), level[1].astype(np.float32))
        assert not grads[:, :p].any() and not grads[:, -p:].any()
        for axis, (dx, dy) in enumerate(((1, 0), (0, 1))):
            scharr = cv2.Scharr(level, cv2.CV_32F, dx, dy, borderType=cv2.BORDER_REFLECT_101) / 32.0
            np.testing.assert_allclose(grads[axis, p:-p, p:-p].numpy(), scharr, atol=1e-4)


def test_pyramid_stops_where_opencv_does():
    # a level no larger than the window is not built: 100x60 -> 50x30 -> 25x15 (15 px: stop)
    assert klt.pyramid_levels(60, 100, 15, 3) == 1
    tiny = np.random.default_rng(0).integers(0, 255, (60, 100), dtype=np.uint8)
    assert len(klt.build_pyramid(torch.from_numpy(tiny), 15, 3).images) == 2
    n_cv = cv2.buildOpticalFlowPyramid(tiny, (15, 15), 3, withDerivatives=False)[0]
    assert n_cv == 1


@pytest.mark.parametrize("case,a,b", PAIRS)
def test_torch_klt_matches_opencv_on_real_frames(case, a, b):
    prev, cur = _grey_frames(case, (a, b))
    points = _features(prev)
    assert_tracks_agree(_torch_track(prev, cur, points), _opencv_track(prev, cur, points))


def test_points_that_cannot_be_tracked_fail_both_ways():
    """Flat patches (eigenvalue test), windows leaving the image, and no points at all."""
    prev, cur = _grey_frames("street_dyn3", (0, 1))
    prev, cur = prev.copy(), cur.copy()
    prev[:80, :80] = cur[:80, :80] = 128  # texture-less corner
    points = np.array([[40, 40], [-30, 100], [700, 100], [320, 400], [1, 1]], np.float32)
    (pts, status), (ref_pts, ref_status) = _torch_track(prev, cur, points), _opencv_track(prev, cur, points)
    np.testing.assert_array_equal(status, ref_status)
    assert not status[:4].any()
    pts, status = _torch_track(prev, cur, np.zeros((0, 2), np.float32))
    assert pts.shape == (0, 2) and status.shape == (0,)


def test_forward_backward_inliers_agree(caplog, monkeypatch):
    """The front end's decision (found both ways, back within 0.7 px): the same points pass it."""
    prev, cur = _grey_frames("room_dyn2", (4, 6))
    points = _features(prev)
    # each implementation is announced once per process: forget earlier tests' announcements
    monkeypatch.setattr(backend, "_announced", set())
    caplog.set_level(logging.INFO, logger="services.kernels.backend")
    with backend.use("cpu"):
        ref = klt_ops.forward_backward(prev, cur, points, LK)
    assert "spatialvid::klt_forward_backward runs on opencv-cpu" in caplog.text
    got = klt_ops.torch_forward_backward(prev, cur, points, LK, torch.device("cpu"))
    keep_ref, keep = ref[1] & (ref[2] < 0.7), got[1] & (got[2] < 0.7)
    assert keep_ref.sum() >= 0.5 * len(points)
    assert np.mean(keep != keep_ref) <= 0.01
    d = np.linalg.norm(got[0][keep & keep_ref] - ref[0][keep & keep_ref], axis=1)
    assert np.median(d) < 2e-3
    np.testing.assert_allclose(got[2][keep & keep_ref], ref[2][keep & keep_ref], atol=0.05)


def test_cpu_backend_runs_opencv_unchanged():
    """kernels.device=cpu (the default without a GPU) is exactly the two OpenCV calls the tracker made."""
    prev, cur = _grey_frames("street_dyn3", (0, 1))
    points = _features(prev)
    with backend.use("cpu"):
        p1, found, fb = klt_ops.forward_backward(prev, cur, points, LK)
    want, st1 = _opencv_track(prev, cur, points)
    back, st2 = _opencv_track(cur, prev, want)
    np.testing.assert_array_equal(p1, want)
    np.testing.assert_array_equal(found, st1 & st2)
    np.testing.assert_array_equal(fb, np.linalg.norm(points - back, axis=1))


def test_front_end_tracks_alike_with_the_torch_klt(monkeypatch):
    """The whole front end over 12 frames: the torch KLT keeps the corners of the first frame alive
    as OpenCV does, at the same places. (Later corners are numbered in detection order, so one track
    lost by one side and not the other renumbers the next detections: only the first frame's compare.)"""
    from services.camera import frontend
    from samples import read_case_frames

    folder = SHARED_CASES / "street_dyn3"
    if not (folder / "video.mp4").exists():
        pytest.skip(f"shared bench case not found at {folder}")
    frames = read_case_frames(folder, count=12)
    config = frontend.FrontEndConfig()
    with backend.use("cpu"):
        ref = [t for t, _ in frontend.track_frames(frames, config)]
    monkeypatch.setattr(frontend, "klt_forward_backward",
                        lambda *a: klt_ops.torch_forward_backward(*a, device=torch.device("cpu")))
    got = [t for t, _ in frontend.track_frames(frames, config)]
    first = len(ref[0].ids)
    np.testing.assert_array_equal(got[0].ids, ref[0].ids)
    for r, g in zip(ref[1:], got[1:]):
        r_old, g_old = r.ids < first, g.ids < first
        common, ri, gi = np.intersect1d(r.ids[r_old], g.ids[g_old], return_indices=True)
        assert r_old.sum() >= 0.5 * first
        assert len(common) >= 0.98 * max(r_old.sum(), g_old.sum())
        ri, gi = np.flatnonzero(r_old)[ri], np.flatnonzero(g_old)[gi]
        assert np.median(np.linalg.norm(r.xy[ri] - g.xy[gi], axis=1)) < 5e-3


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("case,a,b", PAIRS)
def test_torch_klt_on_cuda_matches_opencv(case, a, b):
    prev, cur = _grey_frames(case, (a, b))
    points = _features(prev)
    assert_tracks_agree(_torch_track(prev, cur, points, "cuda"), _opencv_track(prev, cur, points))


@pytest.mark.gpu
@needs_cuda
def test_cuda_backend_runs_the_torch_klt(caplog):
    prev, cur = _grey_frames("room_dyn2", (4, 6))
    points = _features(prev)
    caplog.set_level(logging.INFO, logger="services.kernels.backend")
    with backend.use("cuda"):
        got = klt_ops.forward_backward(prev, cur, points, LK)
    assert "spatialvid::klt_forward_backward runs on torch-cuda" in caplog.text
    cpu = klt_ops.torch_forward_backward(prev, cur, points, LK, torch.device("cpu"))
    assert np.mean(got[1] != cpu[1]) <= 0.01
    both = got[1] & cpu[1]
    assert np.median(np.linalg.norm(got[0][both] - cpu[0][both], axis=1)) < 1e-3


def test_masked_iterations_equal_compacted_ones():
    """What a GPU runs by default (every point each iteration, the converged frozen) gives what the
    CPU default (only the moving points) gives: the same steps on each point."""
    prev, cur = _grey_frames("room_dyn2", (4, 5))
    points = _features(prev)
    p0 = klt.build_pyramid(torch.from_numpy(prev), LK.window, LK.levels)
    p1 = klt.build_pyramid(torch.from_numpy(cur), LK.window, LK.levels)
    edge = np.array([[2, 2], [637, 300], [-5, 40], [320, 359]], np.float32)  # windows leaving the image
    pts = torch.from_numpy(np.concatenate([points, edge]))
    compacted = klt.track(p0, p1, pts, LK.window, LK.iterations, LK.eps, compact=True)
    masked = klt.track(p0, p1, pts, LK.window, LK.iterations, LK.eps, compact=False)
    np.testing.assert_array_equal(masked[1].numpy(), compacted[1].numpy())
    np.testing.assert_allclose(masked[0].numpy(), compacted[0].numpy(), atol=1e-4)
