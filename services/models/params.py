"""The model sections (``models:``, ``triton:``): where each model runs and how its Triton server is asked.

services/settings.py composes them; the model clients (services/models/client.py, triton_client.py) and the
weight-based depth backends receive them as is, so nothing below the stages reads the global settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from services.section import Section


class ModelSettings(Section):
    """Published checkpoints are read from here and never downloaded."""

    weights_dir: Path = Path("weights")
    # Per model: run it in this process or ask the Triton server.
    client: dict[str, Literal["inprocess", "triton"]] = Field(default_factory=dict)
    # torch device for in-process models ("cpu", "cuda", "cuda:1").
    device: str = "cpu"


class TritonSettings(Section):
    """The Triton server (``services/triton_server.py``) and its client (``services/models/triton_client.py``)."""

    url: str = "127.0.0.1:8000"
    grpc_url: str = "127.0.0.1:8001"
    protocol: Literal["http", "grpc"] = "http"
    # Client: wait this long for the server and model to be ready, per request timeout.
    ready_timeout_s: float = Field(default=120.0, gt=0)
    request_timeout_s: float = Field(default=300.0, gt=0)
    # Retries when the server is unavailable: exponential backoff with jitter.
    max_retries: int = Field(default=5, ge=0)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=10.0, ge=0)
    # Frames per request (a bigger batch is split); requests in flight per call.
    max_batch_size: int = Field(default=8, ge=1)
    max_inflight: int = Field(default=2, ge=1)
    # Local server: its own virtualenv (nvidia-pytriton pins numpy<2), the model
    # repository, and the config variant (""=config.pbtxt on GPU, "cpu"=configs/cpu.pbtxt,
    # "auto"=the GPU one where an NVIDIA GPU is visible, else cpu).
    venv: Path = Path(".venv-triton")
    model_repository: Path = Path("triton_models")
    config_name: str = "auto"
    metrics_port: int = 8002
    # Models to load (empty: every model in the repository).
    models: list[str] = Field(default_factory=list)
    startup_timeout_s: float = Field(default=300.0, gt=0)
