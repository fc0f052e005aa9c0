"""Focal when the clip does not pin it down: a telephoto pan excludes a 60 deg prior (bound), a
translating camera keeps the prior (its narrow-field end is a degenerate direction, not evidence)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from services.camera.frontend import FrameTracks
from services.camera.intrinsics import estimate_focal, focal_to_hfov, hfov_to_focal
from services.camera.sfm import SfmConfig

W, H = 640, 360


def _keyframes(hfov_deg: float, rotate_deg: float, truck: float, seed: int = 0, n: int = 20) -> list[FrameTracks]:
    rng = np.random.default_rng(seed)
    f = hfov_to_focal(hfov_deg, W)
    P = 3000
    # points spread over a field wider than the view, 4 to 20 units away
    dirs = np.column_stack([rng.uniform(-0.6, 0.6, P), rng.uniform(-0.4, 0.4, P), np.ones(P)])
    X = dirs * rng.uniform(4.0, 20.0, P)[:, None]
    out = []
    for k in range(n):
        t = k / (n - 1)
        R = Rotation.from_rotvec(np.radians([-0.6 * rotate_deg * t, rotate_deg * t, 0.0])).as_matrix()  # c2w
        C = np.array([truck * t, 0.0, 0.0])
        Xc = (X - C) @ R
        xy = f * Xc[:, :2] / Xc[:, 2:] + (W / 2, H / 2)
        xy += rng.normal(0.0, 0.3, xy.shape)
        seen = (Xc[:, 2] > 0) & (xy[:, 0] > 0) & (xy[:, 0] < W) & (xy[:, 1] > 0) & (xy[:, 1] < H)
        ids = np.flatnonzero(seen)[:600]
        out.append(FrameTracks(k, 0, ids.astype(np.int64), xy[ids].astype(np.float32)))
    return out


def test_telephoto_pan_excludes_a_wide_prior():
    est = estimate_focal(_keyframes(20.0, 4.0, 0.0), hfov_to_focal(60.0, W), W, H, "hfov 60 deg", SfmConfig())
    hfov = focal_to_hfov(est.f, W)
    assert 17.0 < hfov < 30.0, (hfov, est.source)
    assert est.estimated or est.source.startswith("bound:"), est.source


def test_truck_keeps_the_prior():
    prior = hfov_to_focal(60.0, W)
    # a small pan besides the truck: enough to run the focal search, too little to pin the focal
    est = estimate_focal(_keyframes(66.0, 2.0, 1.5), prior, W, H, "hfov 60 deg", SfmConfig())
    assert "not determined" in est.source, est.source
    assert est.f == prior and not est.source.startswith("bound:"), est.source
