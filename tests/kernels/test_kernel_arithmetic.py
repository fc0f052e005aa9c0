"""The CUDA kernels' own per-observation and per-pixel functions (the __host__ __device__ code of
cuda_kernels/*.cu), built for the CPU by nvcc through cuda_kernels/host_check.cu and compared with
the torch reference. Runs wherever nvcc exists, GPU or not; the launch structure (grid-stride loops,
shared-memory reduction, atomics) is covered by test_cuda.py on a GPU."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from services.kernels import reference
from services.kernels.flow_ops import view_geometry
from tests.kernels.conftest import random_ba, random_views
from tests.kernels.test_cpu_ops import assert_blocks_match


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.c_void_p)


def host_normal_equations(lib, x):
    nc = 6 * x.num_poses
    ins = [np.ascontiguousarray(a, dtype=dt) for a, dt in (
        (x.residuals, np.float64), (x.weights, np.float64), (x.pose_index, np.int64), (x.pose_jacobians, np.float64),
        (x.point_index, np.int64), (x.point_jacobians, np.float64))]
    outs = [np.empty(s) for s in ((nc, nc), (nc,), (x.num_points,), (x.num_points,), (nc, x.num_points))]
    M, B = x.pose_index.shape
    lib.spatialvid_ba_normal_equations_host(*map(_ptr, ins), ctypes.c_int64(M), ctypes.c_int64(B),
                                            ctypes.c_int64(x.num_poses), ctypes.c_int64(x.num_points), *map(_ptr, outs))
    return outs


@pytest.mark.parametrize("shape", [dict(), dict(B=3, P=7), dict(P=1, N=0), dict(M=0, P=2, N=3), dict(P=0, N=40)])
def test_ba_kernel_arithmetic_matches_reference(host_kernels, shape):
    x = random_ba(11, **shape)
    want = [t.numpy() for t in reference.ba_normal_equations(*x.tensors())]
    assert_blocks_match(host_normal_equations(host_kernels, x), want)


def test_ba_kernel_arithmetic_on_the_trackers_blocks(host_kernels, real_ba):
    for x in real_ba:
        want = [t.numpy() for t in reference.ba_normal_equations(*x.tensors())]
        assert_blocks_match(host_normal_equations(host_kernels, x), want)


def host_flow(lib, K, views, inv_depth, measured, noise, tol):
    maps, dirs = (np.ascontiguousarray(a) for a in view_geometry(K, views))
    flow = np.ascontiguousarray(np.stack([v.flow for v in views]), np.float32)
    usable = np.ascontiguousarray(np.stack([v.usable for v in views]), np.bool_)
    V, h, w = usable.shape
    tri = [np.empty((h, w), np.float32) for _ in range(3)] + [np.empty((h, w), np.uint8)]
    lib.spatialvid_flow_triangulate_host(_ptr(maps), _ptr(dirs), _ptr(flow), _ptr(usable), ctypes.c_int64(V),
                                         ctypes.c_int64(h), ctypes.c_int64(w), *map(_ptr, tri))
    score = np.empty((h, w), np.float32)
    inv = np.ascontiguousarray(inv_depth, np.float32)
    meas = np.ascontiguousarray(measured, np.bool_)
    lib.spatialvid_flow_residual_score_host(_ptr(maps), _ptr(dirs), _ptr(flow), _ptr(inv), _ptr(meas), ctypes.c_int64(V),
                                            ctypes.c_int64(h), ctypes.c_int64(w), ctypes.c_float(noise),
                                            ctypes.c_float(tol), _ptr(score))
    return tri, score


def reference_flow(K, views, inv_depth, measured, noise, tol):
    maps, dirs = view_geometry(K, views)
    args = (torch.from_numpy(maps), torch.from_numpy(dirs), torch.from_numpy(np.stack([v.flow for v in views])))
    tri = reference.flow_triangulate(*args, torch.from_numpy(np.stack([v.usable for v in views])))
    score = reference.flow_residual_score(*args, torch.from_numpy(inv_depth.astype(np.float32)),
                                          torch.from_numpy(measured), noise, tol)
    return [t.numpy() for t in tri], score.numpy()


@pytest.mark.parametrize("source", ["random0", "random1", "real"])
def test_flow_kernel_arithmetic_matches_reference(host_kernels, source, request):
    if source == "real":
        K, views, depth = request.getfixturevalue("real_views")
    else:
        K, views, depth = random_views(int(source[-1]), V=2 + 2 * int(source[-1]))
    inv = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0.3).astype(np.float32)
    got_tri, got_score = host_flow(host_kernels, K, views, inv, depth > 0, 0.5, 0.15)
    want_tri, want_score = reference_flow(K, views, inv, depth > 0, 0.5, 0.15)
    for name, a, b in zip(("inv_depth", "parallax", "residual"), got_tri, want_tri):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(got_tri[3], want_tri[3])
    np.testing.assert_allclose(got_score, want_score, rtol=1e-5, atol=1e-5)
