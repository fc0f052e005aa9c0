"""The optimiser core and the inverse-depth camera model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from services.camera import bundle
from services.camera.geometry import c2w_to_w2c_quat, so3_exp
from scipy.spatial.transform import Rotation


def _problem(seed: int = 0, K: int = 4, P: int = 60):
    rng = np.random.default_rng(seed)
    R = so3_exp(rng.normal(size=(K, 3)) * 0.05)
    R[0] = np.eye(3)
    C = rng.normal(size=(K, 3)) * 0.2
    C[0] = 0
    anchor = rng.integers(0, K, P)
    bearing = np.column_stack([rng.uniform(-0.5, 0.5, (P, 2)), np.ones(P)])
    rho = rng.uniform(0.2, 1.0, P)
    cams, pts = np.meshgrid(np.arange(K), np.arange(P), indexing="ij")
    keep = (cams != anchor[pts]).ravel()
    obs_cam, obs_pt = cams.ravel()[keep], pts.ravel()[keep]
    p = bundle.BundleProblem(R, C, np.arange(K) - 1, anchor, bearing, rho, True, rho.copy(), np.zeros(P),
                             obs_cam, obs_pt, np.zeros((len(obs_cam), 2)), 500.0, 1.0)
    # observations consistent with the true state
    h, _, _, _ = bundle._directions(p)
    return replace(p, obs_xy=h[:, :2] / h[:, 2:])


def test_jacobians_match_finite_differences():
    p = replace(_problem(1), focal_free=True)
    p = replace(p, obs_xy=p.obs_xy + 0.01)
    lin, _ = bundle.linearize(p)
    r0, _ = bundle.residuals(p)
    eps = 1e-6
    for block in range(p.num_free):
        for d in range(6 if block < p.num_free_poses else 1):
            dp = np.zeros((p.num_free, 6))
            dp[block, d] = eps
            num = (bundle.residuals(bundle.retract(p, dp, np.zeros(len(p.rho))))[0] - r0) / eps
            ana = sum(np.where((lin.pose_index[:, b] == block)[:, None], lin.pose_jacobians[:, b, :, d], 0.0)
                      for b in range(lin.pose_index.shape[1]))
            assert np.allclose(num, ana, atol=1e-3 * np.abs(num).max() + 1e-6)
    for j in range(0, len(p.rho), 7):
        dq = np.zeros(len(p.rho))
        dq[j] = eps
        num = (bundle.residuals(bundle.retract(p, np.zeros((p.num_free, 6)), dq))[0] - r0) / eps
        ana = np.where((lin.point_index == j)[:, None], lin.point_jacobians, 0.0)
        assert np.allclose(num, ana, atol=1e-3 * np.abs(num).max() + 1e-6)


def test_bundle_adjustment_recovers_perturbed_state():
    truth = _problem(2)
    rng = np.random.default_rng(3)
    start = replace(truth, R=truth.R @ so3_exp(rng.normal(size=(4, 3)) * 0.01),
                    C=truth.C + rng.normal(size=(4, 3)) * 0.01, rho=truth.rho * 1.1)
    start.R[0], start.C[0] = truth.R[0], truth.C[0]
    start = replace(start, rho_prior=start.rho.copy(), rho_prior_weight=np.full(len(truth.rho), 1e-6))
    solved, res = bundle.optimise(start, 50)
    assert res.cost < 1e-4 * max(res.initial_cost, 1.0)
    r, _ = bundle.residuals(solved)
    assert np.abs(r).max() < 1e-2
    # the gauge (first camera) holds, so camera centres come back up to the scene scale
    s = np.linalg.norm(solved.C[1:]) / np.linalg.norm(truth.C[1:])
    assert np.allclose(solved.C[1:], truth.C[1:] * s, atol=1e-3)


def test_w2c_quaternion_layout_inverts_c2w():
    rng = np.random.default_rng(4)
    T = np.tile(np.eye(4), (5, 1, 1))
    T[:, :3, :3] = so3_exp(rng.normal(size=(5, 3)))
    T[:, :3, 3] = rng.normal(size=(5, 3))
    q = c2w_to_w2c_quat(T)
    assert q.shape == (5, 7)
    W = np.tile(np.eye(4), (5, 1, 1))
    W[:, :3, :3] = Rotation.from_quat(q[:, 3:]).as_matrix()
    W[:, :3, 3] = q[:, :3]
    assert np.allclose(W @ T, np.eye(4), atol=1e-9)



def test_reduced_step_equals_the_dense_step():
    """A long window is reduced chunk by chunk to a sparse pose-point block; the damped step is the same."""
    from services.camera import optim
    from tests.kernels.conftest import random_ba

    for seed, prior in ((0, False), (1, True)):
        x = random_ba(seed, M=2000, P=12, N=400)
        rng = np.random.default_rng(seed)
        lin = optim.LinearizedProblem(x.residuals, x.weights, x.pose_index, x.pose_jacobians, x.point_index,
                                      x.point_jacobians)
        if prior:
            lin.point_prior_hessian = rng.uniform(0, 5, x.num_points)
            lin.point_prior_gradient = rng.normal(0, 1, x.num_points)
        dense = optim.solve_normal_equations(lin, x.num_poses, x.num_points, 1e-3)
        halves = [replace(lin, **{f: getattr(lin, f)[part] for f in ("residuals", "weights", "pose_index",
                                                                        "pose_jacobians", "point_index",
                                                                        "point_jacobians")},
                          point_prior_hessian=None, point_prior_gradient=None)
                  for part in (slice(0, 700), slice(700, None))]
        reduced = optim.reduce(halves[0], x.num_poses, x.num_points).accumulate(
            optim.reduce(halves[1], x.num_poses, x.num_points))
        reduced = reduced.with_point_prior(lin.point_prior_hessian, lin.point_prior_gradient)
        for got in (optim.solve_normal_equations(optim.reduce(lin, x.num_poses, x.num_points), x.num_poses,
                                                 x.num_points, 1e-3),
                    optim.solve_normal_equations(reduced, x.num_poses, x.num_points, 1e-3)):
            for a, b in zip(got, dense):
                assert a.shape == b.shape
                np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.abs(b).max())


def test_long_window_in_chunks_converges_to_the_same_poses(monkeypatch):
    """The chunked linearisation of a long window reaches the same optimum as the one-piece one."""
    p = _problem(3, K=6, P=200)
    rng = np.random.default_rng(3)
    p = replace(p, obs_xy=p.obs_xy + rng.normal(0, 0.002, p.obs_xy.shape), rho=p.rho * 1.1)
    whole, res_whole = bundle.optimise(p, 20)
    from services.camera import optim

    monkeypatch.setattr(optim, "DENSE_SCHUR_MAX_ENTRIES", 0)
    monkeypatch.setattr(bundle, "OBSERVATIONS_PER_CHUNK", 97)
    assert len(p.obs_cam) > 97
    chunked, res_chunked = bundle.optimise(p, 20)
    np.testing.assert_allclose(chunked.C, whole.C, atol=1e-8)
    np.testing.assert_allclose(chunked.R, whole.R, atol=1e-8)
    np.testing.assert_allclose(chunked.rho, whole.rho, rtol=1e-6)
    assert res_chunked.cost == pytest.approx(res_whole.cost, rel=1e-9)
