"""The kernels' settings section (``kernels:``) and the one the running code uses.

The entry points pass their settings down: the camera and depth stages run their work inside
``configured(ctx.settings.kernels)``, so a ``kernels:`` section in ``--config`` (or a worker's
``SPATIALVID_KERNELS__*``, which the settings read) picks the device. Code that calls the operators outside a stage
(benchmarks, tests) gets the process's section, which the settings layer hands over when it is loaded
(``process_section``: services/settings.py reads the environment, this package reads neither it nor the
settings); before that, the section's defaults. Light on purpose: services/settings.py imports it, and it imports
nothing from services (no import cycle).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from services.section import Section


class KernelSettings(Section):
    """The camera-tracking workers' CUDA kernels (cuda_kernels/, services/kernels/)."""

    # auto: the CUDA kernels on a GPU, the torch CPU implementation otherwise;
    # torch-cuda: the same maths in plain torch on the GPU (for comparison).
    device: Literal["auto", "cpu", "cuda", "torch-cuda"] = "auto"
    # Build the kernels just in time when no ahead-of-time build is installed.
    jit: bool = True
    build_dir: Path = Path("~/.cache/spatialvid/kernels")


_stack: list[KernelSettings] = []
# Where the section outside any stage comes from: the settings layer's reader of the process's own
# (``process_section``).
_process: list[Callable[[], KernelSettings]] = [KernelSettings]
# Caches computed from the kernel settings (the backend's device, the loader's status): cleared when they change.
_dependents: list[Callable] = []


@functools.cache
def kernel_settings() -> KernelSettings:
    """The kernels section in use: the innermost ``configured`` one, else the process's own."""
    if _stack:
        return _stack[-1]
    return _process[0]()


def process_section(read: Callable[[], KernelSettings]) -> None:
    """Where the kernels section outside any stage comes from (the settings layer hands over the process's
    own, read from the environment and defaults when first asked, and again after a change)."""
    _process[0] = read
    _settings_changed()


def depends_on_settings(cached: Callable) -> Callable:
    """Register a ``functools.cache`` function whose value follows the kernel settings."""
    _dependents.append(cached)
    return cached


def _settings_changed() -> None:
    kernel_settings.cache_clear()
    for cached in _dependents:
        cached.cache_clear()


@contextlib.contextmanager
def configured(section: KernelSettings) -> Iterator[KernelSettings]:
    """Run a block with these kernel settings (a stage passes its run's ``settings.kernels``)."""
    changed = section != kernel_settings()
    _stack.append(section)
    if changed:
        _settings_changed()
    try:
        yield section
    finally:
        _stack.pop()
        if changed:
            _settings_changed()
