"""Inputs for the kernel tests: random and real bundle-adjustment blocks, random and real flow views,
the nvcc-built CPU harness of the kernels' arithmetic, and the CUDA skip."""

from __future__ import annotations

import ctypes
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from services.kernels.loader import SOURCE_DIR, find_nvcc
import services.settings  # noqa: F401,E402  (hands the kernels the process's section: SPATIALVID_KERNELS__*)

from tests.data import CASES as SHARED_CASES, case_dir

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason=f"no CUDA device (torch {torch.__version__}, cuda={torch.version.cuda}): the CUDA kernels cannot run here",
)


@dataclass
class BAInputs:
    residuals: np.ndarray
    weights: np.ndarray
    pose_index: np.ndarray
    pose_jacobians: np.ndarray
    point_index: np.ndarray
    point_jacobians: np.ndarray
    num_poses: int
    num_points: int

    def args(self) -> tuple:
        return (self.residuals, self.weights, self.pose_index, self.pose_jacobians, self.point_index,
                self.point_jacobians, self.num_poses, self.num_points)

    def tensors(self, device="cpu") -> tuple:
        def t(a, dt=torch.float64):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dt, device=device)

        return (t(self.residuals), t(self.weights), t(self.pose_index, torch.int64), t(self.pose_jacobians),
                t(self.point_index, torch.int64), t(self.point_jacobians), self.num_poses, self.num_points)


def random_ba(seed: int, M: int = 500, B: int = 2, P: int = 6, N: int = 120, fixed_share: float = 0.2,
              point_share: float = 0.9, grouped: bool = False) -> BAInputs:
    """Blocks shaped like the tracker's: observing + anchor camera per observation, some fixed,
    some observations without a point, zero weights (points behind a camera). ``grouped`` lists the
    observations by their pose blocks, as the tracker does (frame by frame): then most warps of the
    CUDA kernel share their blocks and take its warp-sum path, and the warps at group edges do not."""
    rng = np.random.default_rng(seed)
    # distinct blocks within an observation (observing camera != anchor camera), as the tracker makes them
    pose_index = np.full((M, B), -1)
    if P:
        k = min(B, P)
        pose_index[:, :k] = np.argsort(rng.random((M, P)), axis=1)[:, :k]
    pose_index[rng.random((M, B)) < fixed_share] = -1
    point_index = rng.integers(0, max(N, 1), M) if N else np.full(M, -1)
    point_index[rng.random(M) > point_share] = -1
    weights = rng.uniform(0, 1, M)
    weights[rng.random(M) < 0.05] = 0.0
    if grouped and M:
        order = np.lexsort(pose_index.T[::-1])
        pose_index, point_index = pose_index[order], point_index[order]
    return BAInputs(rng.normal(0, 3, (M, 2)), weights, pose_index.astype(np.int64),
                    rng.normal(0, 200, (M, B, 2, 6)), point_index.astype(np.int64), rng.normal(0, 50, (M, 2)), P, N)


@pytest.fixture(scope="session")
def real_ba() -> list[BAInputs]:
    """Every normal-equation build of the tracker on the first 16 frames of room_plain (window BA,
    pose-only refinements, focal search), captured at the seam."""
    video = case_dir("room_plain") / "video.mp4"
    from services.camera import optim
    from services.camera.track import track_camera
    from services.settings import CameraSettings
    from samples import read_case_frames

    captured: list[BAInputs] = []
    original_solve, original_reduce = optim.solve_normal_equations, optim.reduce

    def capture(lin, num_poses, num_points):
        captured.append(BAInputs(lin.residuals.copy(), lin.weights.copy(), lin.pose_index.copy(),
                                 lin.pose_jacobians.copy(), lin.point_index.copy(), lin.point_jacobians.copy(),
                                 num_poses, num_points))

    def spy_solve(lin, num_poses, num_points, damping):
        if isinstance(lin, optim.LinearizedProblem):  # a long window's chunks are captured as they are reduced
            capture(lin, num_poses, num_points)
        return original_solve(lin, num_poses, num_points, damping)

    def spy_reduce(lin, num_poses, num_points):
        capture(lin, num_poses, num_points)
        return original_reduce(lin, num_poses, num_points)

    frames = read_case_frames(video.parent, count=16)
    mp = pytest.MonkeyPatch()
    mp.setattr(optim, "solve_normal_equations", spy_solve)
    mp.setattr(optim, "reduce", spy_reduce)
    try:
        track_camera(frames, 24.0, CameraSettings())
    finally:
        mp.undo()
    assert captured, "the tracker never built normal equations"
    # a spread of problem kinds: the largest window BAs and some pose-only ones
    with_points = sorted((c for c in captured if c.num_points), key=lambda c: -len(c.residuals))[:4]
    pose_only = [c for c in captured if not c.num_points][:4]
    return with_points + pose_only


@dataclass
class View:
    R: np.ndarray
    t: np.ndarray
    flow: np.ndarray
    usable: np.ndarray


def random_views(seed: int, h: int = 60, w: int = 96, V: int = 2) -> tuple[np.ndarray, list[View], np.ndarray]:
    """K, V views with flows near the rigid flow of a random scene (+ outliers), and a depth map."""
    from services.camera.geometry import so3_exp
    from services.depth.geometry import rigid_flow

    rng = np.random.default_rng(seed)
    K = np.array([[0.8 * w, 0, (w - 1) / 2], [0, 0.8 * w, (h - 1) / 2], [0, 0, 1.0]])
    inv = rng.uniform(0.1, 1.0, (h, w))
    views = []
    for _ in range(V):
        R = so3_exp(rng.normal(0, 0.03, 3))
        t = rng.normal(0, 0.2, 3)
        flow = rigid_flow(K, R, t, inv) + rng.normal(0, 0.3, (h, w, 2)).astype(np.float32)
        flow[rng.random((h, w)) < 0.05] += rng.normal(0, 10, 2).astype(np.float32)  # independently moving
        views.append(View(R, t, flow.astype(np.float32), rng.random((h, w)) > 0.15))
    depth = np.where(rng.random((h, w)) > 0.3, 1.0 / inv, 0.0).astype(np.float32)
    return K, views, depth


@pytest.fixture(scope="session")
def real_views():
    """room_plain frame 20 against frames 16 and 24 at the depth grid (320x180): DIS flow, GT poses."""
    case = case_dir("room_plain")
    from services.depth.flow import DisFlow, forward_backward_error
    from services.depth.geometry import relative_pose, scale_intrinsics
    from services.depth.views import prepare_frame
    from samples import read_case_frames

    frames = read_case_frames(case, count=25)
    c2w = np.load(case / "gt_poses.npy")
    K = scale_intrinsics(np.load(case / "gt_intrinsics.npy"), 0.5, 0.5)  # (3,3) of the 640x360 frames
    grey = {i: prepare_frame(frames[i], (320, 180)).grey for i in (16, 20, 24)}
    dis = DisFlow("fast")
    views = []
    for src in (16, 24):
        fwd, bwd = dis(grey[20], grey[src]), dis(grey[src], grey[20])
        R, t = relative_pose(c2w[20], c2w[src])
        views.append(View(R, t, fwd, forward_backward_error(fwd, bwd) < 1.0))
    depth = np.load(case / "gt_depth.npz")["depth"][20].astype(np.float32)
    return K, views, depth


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory):
    """cuda_kernels/host_check.cu built by nvcc into a shared library: the kernels' own per-observation
    and per-pixel functions, run on the CPU."""
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (NVCC, CUDA_HOME, /usr/local/cuda, PATH): cannot build the kernels' CPU harness")
    out = tmp_path_factory.mktemp("kernels") / "libspatialvid_host_check.so"
    cmd = [nvcc, "-std=c++17", "-O2", "-Xcompiler", "-fPIC", "-shared", str(SOURCE_DIR / "host_check.cu"), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"nvcc failed:\n{done.stderr}"
    return ctypes.CDLL(str(out))
