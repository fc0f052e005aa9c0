"""Ahead-of-time build of the spatialvid CUDA kernels (the GPU image runs
``pip install --no-build-isolation ./cuda_kernels``; TORCH_CUDA_ARCH_LIST picks the GPUs).

Installs the extension module ``spatialvid_cuda_kernels``; services/kernels/loader.py imports it
and registers its functions as the CUDA implementations of the ``spatialvid::`` operators.
"""

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(
    name="spatialvid-cuda-kernels",
    version="0.1.0",
    description="CUDA kernels for spatialvid's camera-tracking and depth workers",
    ext_modules=[
        CUDAExtension(
            name="spatialvid_cuda_kernels",
            sources=["bindings.cpp", "ba_normal_equations.cu", "flow_geometry.cu"],
            extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3"]},
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
