"""Every .cu file of cuda_kernels/ compiles with this machine's nvcc (syntax and type checks, no GPU
needed), and the torch binding type-checks against the installed torch's headers."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

import pytest

from services.kernels.loader import BINDING_SOURCE, CUDA_SOURCES, SOURCE_DIR, find_nvcc


def _nvcc() -> str:
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (NVCC, CUDA_HOME, /usr/local/cuda, PATH): the .cu files cannot be compiled here")
    return nvcc


def test_every_cu_file_is_listed():
    on_disk = {p.name for p in SOURCE_DIR.glob("*.cu")} - {"host_check.cu"}
    assert on_disk == set(CUDA_SOURCES), "loader.CUDA_SOURCES and setup.py must list every kernel source"
    setup = (SOURCE_DIR / "setup.py").read_text()
    assert all(s in setup for s in (*CUDA_SOURCES, BINDING_SOURCE))


@pytest.mark.parametrize("source", sorted(p.name for p in SOURCE_DIR.glob("*.cu")))
def test_cu_file_compiles(source, tmp_path):
    # sm_80: the oldest GPU of the GPU image (double atomicAdd needs sm_60+); warnings are errors
    cmd = [_nvcc(), "-std=c++17", "-arch=sm_80", "--Werror", "all-warnings", "-Xcompiler", "-Wall",
           "-c", str(SOURCE_DIR / source), "-o", str(tmp_path / "out.o")]
    if source == "host_check.cu":
        cmd.insert(-4, "-Xcompiler=-fPIC")
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"


def test_binding_type_checks_against_torch_headers(tmp_path):
    """bindings.cpp against this torch's headers. A CPU build of torch ships the c10/cuda headers but
    not the generated cuda_cmake_macros.h, which only sets export macros: an empty stand-in is given."""
    import torch.utils.cpp_extension as ext

    nvcc = _nvcc()
    cuda_include = Path(nvcc).resolve().parents[1] / "include"
    torch_include = Path(ext.include_paths()[0])
    if not (torch_include / "c10" / "cuda" / "CUDAStream.h").exists():
        pytest.skip(f"torch headers at {torch_include} lack c10/cuda")
    stub = tmp_path / "stub" / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    if not (torch_include / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").exists():  # CPU build of torch
        (stub / "cuda_cmake_macros.h").write_text("#pragma once\n")
    cmd = ["g++", "-std=c++17", "-fsyntax-only", "-DTORCH_EXTENSION_NAME=spatialvid_cuda_kernels",
           "-DTORCH_API_INCLUDE_EXTENSION_H", f"-I{tmp_path / 'stub'}", *(f"-I{p}" for p in ext.include_paths()),
           f"-I{cuda_include}", f"-I{sysconfig.get_paths()['include']}", str(SOURCE_DIR / BINDING_SOURCE)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
