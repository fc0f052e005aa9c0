#!/usr/bin/env bash
# The GPU half of issue 10 (CUDA kernels) on a lent GPU machine (the `device` tool), in two steps:
#   here:    bash bench/cuda_device.sh prepare
#            -> bench/output/devcarry/ (ignored by git: bench/output/): wheels the device image lacks (Python 3.12) and the bench cases
#   device:  run(command="bash bench/cuda_device.sh tests", carry=["bench/output/devcarry"], timeout_s=600)
#            run(command="bash bench/cuda_device.sh bench", carry=["bench/output/devcarry"], timeout_s=600)
# The device image has python3 with CUDA torch, nvcc, opencv, scipy, pytest; not pydantic, ffmpeg or
# ffprobe. imageio-ffmpeg 0.6.0 brings ffmpeg 7.0.2 in a 29 MB wheel (0.4.9's ffmpeg 4.2 lacks
# -fps_mode; 0.8.1's wheel is 68 MB, over the 64 MiB a call carries); the bench cases are read at
# their meta.json size and rate (samples.read_case_frames), so no ffprobe is needed.
# `tests` JIT-builds the kernels (torch.utils.cpp_extension) and runs tests/kernels (the KLT on CUDA too), the gpu-marked
# equivalence and tracking-accuracy tests included; `bench` runs bench/cuda_tracking.py.
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="room_plain room_dyn2 orbit_plain street_dyn3 cut_room_street_dyn1"  # room_dyn2: tests/kernels/test_klt.py

setup_device() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site bench/output/devcarry/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 SPATIALVID_KERNELS__BUILD_DIR=/tmp/spatialvid-kernels
  mkdir -p ../shared/bench/cases
  cp -r bench/output/devcarry/cases/* ../shared/bench/cases/
  cp bench/output/devcarry/evaluate.py ../shared/bench/
  OUT=${OUT:-/tmp/out}
  mkdir -p "$OUT"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
}

case "${1:-}" in
prepare)
  rm -rf bench/output/devcarry && mkdir -p bench/output/devcarry/whl bench/output/devcarry/cases
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 -d bench/output/devcarry/whl \
    pydantic==2.14.3 pydantic-core==2.50.4 pydantic-settings==2.16.3 annotated-types==0.8.0 \
    typing-inspection==0.4.5 python-dotenv==1.2.4 PyYAML==6.0.3 imageio-ffmpeg==0.6.0
  for c in $CASES; do cp -r ../shared/bench/cases/$c bench/output/devcarry/cases/; done
  cp ../shared/bench/evaluate.py bench/output/devcarry/
  du -sh bench/output/devcarry
  ;;
tests)
  setup_device
  set -o pipefail
  python3 -m pytest tests/kernels -q -rA -p no:cacheprovider 2>&1 | tee "$OUT/tests_kernels.log"
  ;;
bench)
  setup_device
  python3 bench/cuda_tracking.py --out "$OUT/cuda_tracking.json" 2>&1 | tee "$OUT/cuda_tracking.log"
  ;;
*)
  echo "usage: bash bench/cuda_device.sh prepare|tests|bench" >&2
  exit 2
  ;;
esac
