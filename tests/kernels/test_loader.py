"""Finding the kernels, choosing the backend, and the CPU path running where there is no GPU."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from services.kernels import backend
from services.kernels.bundle_ops import build_normal_equations
from services.kernels.loader import _find
from tests.kernels.conftest import random_ba


def test_operators_are_registered_in_the_spatialvid_namespace():
    import services.kernels.ops  # noqa: F401

    for name in ("ba_normal_equations", "flow_triangulate", "flow_residual_score"):
        assert hasattr(torch.ops.spatialvid, name)


def test_backend_names():
    assert backend.resolve("cpu").device.type == "cpu"
    with pytest.raises(ValueError):
        backend.resolve("metal")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_without_a_gpu_the_cpu_path_runs_and_says_why(caplog):
    status = _find(torch)
    assert not status.cuda and status.how == "none"
    assert "CPU" in status.reason or "no CUDA" in status.reason
    with pytest.raises(RuntimeError, match="no CUDA"):
        backend.resolve("cuda")
    assert backend.resolve("auto").device.type == "cpu"
    x = random_ba(5)
    with caplog.at_level(logging.INFO, logger="services.kernels.backend"):
        backend._announced.clear()
        ne = build_normal_equations(*x.args())
    assert np.isfinite(ne.Hcc).all()
    assert "ba_normal_equations runs on torch-cpu" in caplog.text


def test_switched_off_by_the_environment(monkeypatch):
    from services.kernels import backend as kernel_backend

    monkeypatch.setenv("SPATIALVID_KERNELS__DEVICE", "cpu")
    kernel_backend.kernel_settings.cache_clear()
    try:
        status = _find(torch)
    finally:
        kernel_backend.kernel_settings.cache_clear()
    assert not status.cuda and "switched off" in status.reason
