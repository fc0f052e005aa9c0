"""A real tritonserver (CPU configs) started once for this test package, and real frames.

The server runs from ``.venv-triton`` (``make triton-venv``, part of ``make
test``); the tests skip, saying so, only when that virtualenv cannot be found.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests import data
from services.settings import Settings, load_settings
from services.triton_server import TritonServer, TritonUnavailable, find_installation, free_port


def triton_settings(weights_dir: Path, models: list[str] | None = None, protocol: str = "http") -> Settings:
    """Settings for a test server on free loopback ports with the CPU model configs."""
    return load_settings().with_overrides(
        {
            "models": {"weights_dir": str(weights_dir)},
            "triton": {
                "url": f"127.0.0.1:{free_port()}",
                "grpc_url": f"127.0.0.1:{free_port()}",
                "metrics_port": free_port(),
                "protocol": protocol,
                "config_name": "cpu",
                "models": models or [],
                "ready_timeout_s": 120,
                "max_retries": 2,
                "backoff_base_s": 0.2,
            },
        }
    )


def require_installation(settings: Settings) -> None:
    try:
        find_installation(settings.triton.venv)
    except TritonUnavailable as exc:
        pytest.fail(f"Triton server virtualenv not available ({exc}); `make test` builds it (make triton-venv)",
                    pytrace=False)


def write_tiny_checkpoints(weights_dir: Path) -> list[str]:
    """Tiny randomly initialised checkpoints in the published formats, where a writer exists.

    Returns the weight-dependent models that have one (see tests/triton/test_models.py).
    """
    from tests.triton.tiny_weights import write_all

    return write_all(weights_dir)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> tuple[Path, list[str]]:
    weights_dir = tmp_path_factory.mktemp("triton-weights")
    return weights_dir, write_tiny_checkpoints(weights_dir)


@pytest.fixture(scope="session")
def triton_server(tiny_weights, tmp_path_factory):
    """One server for the session: every model in the repository, tiny weights, CPU configs."""
    weights_dir, _ = tiny_weights
    settings = triton_settings(weights_dir)
    require_installation(settings)
    log = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    server = TritonServer(settings, log_path=log)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def burn_text(frame: np.ndarray, lines: list[str], top: int = 60) -> np.ndarray:
    out = frame.copy()
    for i, text in enumerate(lines):
        y = top + 40 * i
        cv2.putText(out, text, (30, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 6, cv2.LINE_AA)
        cv2.putText(out, text, (30, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
    return out


@pytest.fixture(scope="session")
def text_frames() -> np.ndarray:
    """Real footage (OpenCV's vtest.avi) at 640x360, some frames with burned-in text: (6, 360, 640, 3)."""
    from services.video.decode import read_frames

    path = data.vtest()
    frames = list(read_frames(path, size=(640, 360), start=0, count=6, step=10))
    assert len(frames) == 6
    captions = [["Breaking news: the street"], [], ["Two lines of text", "burned into the frame"], [],
                ["SpatialVID 2025"], ["Subtitle at the top"]]
    return np.stack([burn_text(f, c) if c else f for f, c in zip(frames, captions)])
