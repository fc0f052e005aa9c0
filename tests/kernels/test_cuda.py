"""CUDA kernels against the CPU implementation, and the tracker's accuracy with them (GPU only).

Tolerances: the normal equations are float64 sums whose order differs (atomics) -> 1e-10 of the
largest entry; the flow maps use float64 geometry (1e-6) and float32 flow arithmetic, where the GPU
contracts multiply-adds into FMAs (1e-5). Tracking: each bench case's ATE / path length and mean
rotation error with the kernels stay within 10% (plus 0.002 / 0.05 deg) of the CPU path's: LM is
iterative, so last-bit differences in H may move the solution, never its accuracy.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from services.kernels import backend, reference
from services.kernels.bundle_ops import build_normal_equations
from services.kernels.flow_ops import residual_score, triangulate
from services.kernels.loader import kernel_status
from tests.data import case_dir, evaluator
from tests.kernels.conftest import SHARED_CASES, needs_cuda, random_ba, random_views
from tests.kernels.test_cpu_ops import assert_blocks_match

pytestmark = [pytest.mark.gpu, needs_cuda]


def test_kernels_are_built_on_a_gpu_machine():
    status = kernel_status()
    assert status.cuda, f"a CUDA device is visible but the kernels are not loaded: {status.reason}"


def _both(fn, *args):
    with backend.use("cpu"):
        cpu = fn(*args)
    with backend.use("cuda") as be:
        assert be.label == "cuda-kernels"
        gpu = fn(*args)
    return cpu, gpu


@pytest.mark.parametrize("shape", [dict(), dict(M=20000, P=7, N=300), dict(B=3, P=7), dict(P=1, N=0),
                                   dict(M=0, P=2, N=3), dict(P=14, N=50),  # P=14: pose block beyond shared memory
                                   # grouped as the tracker lists them (warp sums); M=3992: a partial last warp
                                   dict(M=3992, grouped=True), dict(M=20000, P=7, N=300, grouped=True),
                                   dict(M=20000, B=3, P=7, grouped=True), dict(M=8000, P=14, N=50, grouped=True)])
def test_ba_normal_equations_cuda_matches_cpu_random(shape):
    x = random_ba(21, **shape)
    cpu, gpu = _both(build_normal_equations, *x.args())
    assert_blocks_match((gpu.Hcc, gpu.gc, gpu.Hpp, gpu.gp, gpu.Hcp), (cpu.Hcc, cpu.gc, cpu.Hpp, cpu.gp, cpu.Hcp))


def test_ba_normal_equations_cuda_matches_cpu_real(real_ba):
    for x in real_ba:
        cpu, gpu = _both(build_normal_equations, *x.args())
        assert_blocks_match((gpu.Hcc, gpu.gc, gpu.Hpp, gpu.gp, gpu.Hcp), (cpu.Hcc, cpu.gc, cpu.Hpp, cpu.gp, cpu.Hcp))


def test_plain_torch_on_the_gpu_matches_cpu():
    """The bench's baseline (the reference maths on CUDA tensors) computes the same thing."""
    x = random_ba(22)
    cpu = reference.ba_normal_equations(*x.tensors("cpu"))
    gpu = reference.ba_normal_equations(*x.tensors("cuda"))
    assert_blocks_match([t.cpu().numpy() for t in gpu], [t.numpy() for t in cpu])


@pytest.mark.parametrize("source", ["random0", "random1", "random2", "real"])
def test_flow_kernels_match_cpu(source, request):
    if source == "real":
        K, views, depth = request.getfixturevalue("real_views")
    else:
        K, views, depth = random_views(int(source[-1]), h=181, w=333, V=1 + 2 * int(source[-1]))
    inv = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0.3).astype(np.float32)
    cpu_tri, gpu_tri = _both(triangulate, K, views)
    for name, a, b in zip(("inv_depth", "parallax", "residual"), gpu_tri[:3], cpu_tri[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(gpu_tri[3], cpu_tri[3])
    cpu_s, gpu_s = _both(residual_score, K, views, inv, depth > 0, 0.5, 0.15)
    np.testing.assert_allclose(gpu_s, cpu_s, rtol=1e-5, atol=1e-5)


def _pose_errors(case: str, c2w: np.ndarray) -> tuple[float, float]:
    evaluate = evaluator()
    meta = json.loads((SHARED_CASES / case / "meta.json").read_text())
    gt = np.load(SHARED_CASES / case / "gt_poses.npy")
    shots = [(s["start"], s["end"]) for s in meta["shots"]]
    m, _ = evaluate.pose_metrics(gt, c2w, np.arange(len(c2w)), shots)
    return m["ate"]["rmse_over_path_length"], m["rot_err_after_alignment_deg"]["mean"]


@pytest.mark.parametrize("case", ["room_plain", "orbit_plain", "street_dyn3", "cut_room_street_dyn1"])
def test_tracking_accuracy_unchanged_with_the_kernels(case):
    case_dir(case)
    from services.camera.track import track_camera
    from services.settings import CameraSettings
    from samples import read_case_frames

    meta = json.loads((SHARED_CASES / case / "meta.json").read_text())
    frames = read_case_frames(SHARED_CASES / case)
    errors = {}
    for name in ("cpu", "cuda"):
        with backend.use(name):
            track = track_camera(frames, meta["fps"], CameraSettings())
        errors[name] = _pose_errors(case, track.c2w)
    (ate_cpu, rot_cpu), (ate_gpu, rot_gpu) = errors["cpu"], errors["cuda"]
    print(f"{case}: ATE/path cpu {ate_cpu:.4f} cuda {ate_gpu:.4f}; rot deg cpu {rot_cpu:.3f} cuda {rot_gpu:.3f}")
    assert ate_gpu <= ate_cpu * 1.1 + 0.002
    assert rot_gpu <= rot_cpu * 1.1 + 0.05
