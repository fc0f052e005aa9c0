"""Finds the compiled CUDA kernels of ``cuda_kernels/``, or says why there are none.

Order: the ahead-of-time build (``pip install ./cuda_kernels`` in the GPU image
installs the module ``spatialvid_cuda_kernels``), then a just-in-time build with
``torch.utils.cpp_extension.load`` where CUDA torch and nvcc exist, else nothing
(the CPU implementations run). Settings ``kernels.device=cpu`` switches the CUDA
kernels off; ``kernels.jit=false`` forbids the JIT build. The outcome is
logged once, so a worker's log says which implementation runs.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from services.kernels.config import depends_on_settings, kernel_settings

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parents[2] / "cuda_kernels"
MODULE_NAME = "spatialvid_cuda_kernels"
CUDA_SOURCES = ("ba_normal_equations.cu", "flow_geometry.cu")
BINDING_SOURCE = "bindings.cpp"


@dataclass(frozen=True)
class KernelStatus:
    module: ModuleType | None  # the compiled extension, None when the CPU path runs alone
    how: str  # "aot", "jit" or "none"
    reason: str  # one line for the log and for provenance

    @property
    def cuda(self) -> bool:
        return self.module is not None


def find_nvcc() -> str | None:
    """nvcc from $NVCC, $CUDA_HOME (or torch's guess of it), /usr/local/cuda or PATH."""
    candidates = [os.environ.get("NVCC"), os.environ.get("CUDA_HOME") and str(Path(os.environ["CUDA_HOME"]) / "bin" / "nvcc")]
    try:
        from torch.utils.cpp_extension import CUDA_HOME

        candidates.append(CUDA_HOME and str(Path(CUDA_HOME) / "bin" / "nvcc"))
    except Exception:  # torch absent or broken: look further
        pass
    candidates += ["/usr/local/cuda/bin/nvcc", shutil.which("nvcc")]
    return next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


def _try_aot() -> ModuleType | None:
    try:
        import spatialvid_cuda_kernels  # noqa: F401  (built by cuda_kernels/setup.py)
    except ImportError:
        return None
    return spatialvid_cuda_kernels


def _jit() -> ModuleType:
    from torch.utils.cpp_extension import load

    sources = [str(SOURCE_DIR / s) for s in (BINDING_SOURCE, *CUDA_SOURCES)]
    build_dir = kernel_settings().build_dir.expanduser()
    build_dir.mkdir(parents=True, exist_ok=True)
    return load(name=MODULE_NAME, sources=sources, build_directory=str(build_dir),
                extra_cflags=["-O3"], extra_cuda_cflags=["-O3"], verbose=False)


@depends_on_settings
@functools.cache
def kernel_status() -> KernelStatus:
    import torch

    status = _find(torch)
    log.info("spatialvid kernels: %s", status.reason)
    return status


def _find(torch) -> KernelStatus:
    if kernel_settings().device == "cpu":
        return KernelStatus(None, "none", "CUDA kernels switched off (kernels.device=cpu); torch CPU implementation")
    if torch.version.cuda is None:
        return KernelStatus(None, "none", f"torch {torch.__version__} has no CUDA; torch CPU implementation")
    if not torch.cuda.is_available():
        return KernelStatus(None, "none", "no CUDA device visible; torch CPU implementation")
    module = _try_aot()
    if module is not None:
        return KernelStatus(module, "aot", f"CUDA kernels ({MODULE_NAME}, ahead-of-time build) for CUDA tensors")
    if not kernel_settings().jit:
        return KernelStatus(None, "none", "no ahead-of-time build and JIT disabled; torch implementation on every device")
    if find_nvcc() is None:
        return KernelStatus(None, "none", "no ahead-of-time build and no nvcc for a JIT build; torch implementation")
    try:
        module = _jit()
    except Exception as exc:  # a broken toolchain must not stop the worker: the torch path is exact
        log.warning("spatialvid kernels: JIT build failed: %s", exc)
        return KernelStatus(None, "none", f"JIT build failed ({type(exc).__name__}); torch implementation")
    return KernelStatus(module, "jit", f"CUDA kernels ({MODULE_NAME}, JIT build) for CUDA tensors")
