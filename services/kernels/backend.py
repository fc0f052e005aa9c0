"""Which device the kernel operators run on, and the log line that says so.

Settings ``kernels.device`` (services/kernels/config.py: a stage's settings, else ``SPATIALVID_KERNELS__DEVICE``): ``auto`` (default: CUDA when torch sees a GPU, else CPU),
``cpu``, ``cuda`` (the compiled kernels when built, else the same maths in torch
on the GPU) or ``torch-cuda`` (always the plain torch maths on the GPU: the
baseline of bench/cuda_tracking.py). The numpy-facing helpers call
``current()``; the bench switches with ``use()``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from services.kernels.config import depends_on_settings, kernel_settings
from services.kernels.ops import implementation

log = logging.getLogger(__name__)
NAMES = ("auto", "cpu", "cuda", "torch-cuda")


@dataclass(frozen=True)
class Backend:
    device: torch.device
    use_kernels: bool  # False: call the torch reference directly (bypass the CUDA kernels)

    @property
    def label(self) -> str:
        if self.device.type == "cuda" and not self.use_kernels:
            return "torch-cuda"
        return implementation(self.device)


def resolve(name: str) -> Backend:
    name = name.lower()
    if name not in NAMES:
        raise ValueError(f"kernels.device={name!r}: expected one of {', '.join(NAMES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name in ("cuda", "torch-cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"kernel backend {name!r} asked for, but torch {torch.__version__} sees no CUDA device")
    if name == "cpu":
        return Backend(torch.device("cpu"), True)
    return Backend(torch.device("cuda"), name == "cuda")


_override: list[Backend] = []


@depends_on_settings
@functools.cache
def _from_settings() -> Backend:
    return resolve(kernel_settings().device)


def current() -> Backend:
    return _override[-1] if _override else _from_settings()


@contextlib.contextmanager
def use(name: str) -> Iterator[Backend]:
    """Run a block with another backend (benchmarks and tests; stages use their settings' ``kernels.device``)."""
    backend = resolve(name)
    _override.append(backend)
    try:
        yield backend
    finally:
        _override.pop()


@contextlib.contextmanager
def single_threaded_on_cpu(device: torch.device) -> Iterator[None]:
    """torch intra-op threads = 1 for a block of small CPU operators.

    A tracker builds ~1,500 normal equations of ~1 ms each per clip: too small to split across
    threads, and every parallel region waits for all its threads, which on a busy machine costs a
    scheduler time slice (measured: 1 ms single-threaded, 30-100 ms median with 2 threads under load)."""
    n = torch.get_num_threads()
    if device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


_announced: set[tuple[str, str]] = set()


def announce(op: str, backend: Backend, label: str | None = None) -> None:
    """Log once per operator and implementation which code runs it (the worker log shows this).
    ``label`` names an implementation outside the custom operators (OpenCV's KLT on the CPU)."""
    label = label or backend.label
    key = (op, label)
    if key not in _announced:
        _announced.add(key)
        log.info("spatialvid::%s runs on %s", op, label)
