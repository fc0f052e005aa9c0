#!/usr/bin/env bash
# The GPU deployment, end to end, on a lent GPU machine (the `device` tool): Triton with the production
# config.pbtxt files (KIND_GPU) on tiny random checkpoints in the published formats, the stack's workers
# with kernels.device=cuda and models.client=triton, and one job per video (bikes.mp4, then a shared case
# with parallax) through every stage; bench/gpu_stack.py does the work and the bookkeeping.
#
#   here:    bash bench/gpu_stack.sh --dry-run     the same on this machine's CPU: configs/cpu.pbtxt (KIND_CPU),
#                                                  kernels.device=cpu; -> bench/results/gpu_stack_cpu_dryrun.{json,log}
#            bash bench/gpu_stack.sh prepare       -> bench/output/gpucarry/part1, part2, ... (ignored by git)
#   device:  run(command="bash bench/gpu_stack.sh unpack", carry=["bench/output/gpucarry/part2"], timeout_s=120)
#            run(command="bash bench/gpu_stack.sh run", carry=["bench/output/gpucarry/part1"], timeout_s=600)
#            (back to back: the machine stays warm about 30 s, and /opt/spatialvid-gpu with it; one call per part,
#            the one that runs last; with a single part, `run` alone)
# The gpu-marked equivalence tests (tests/kernels, the KLT's included) and the per-backend tracking figures
# (bench/cuda_tracking.py, GPU vs the CPU path of the same machine) run with bench/cuda_device.sh tests|bench.
# `run` writes to $OUT: gpu_stack_<gpu>.json (final states, `tracking` frames/s, Triton statistics, the
# workers' implementation lines), gpu_stack.log, logs.tar.gz (every worker's, Triton's and the gateway's
# log) and gpu.txt; copy the json and log into bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${SPATIALVID_GPU_ROOT:-/opt/spatialvid-gpu}  # where the carry is unpacked on the GPU machine
CARRY=bench/output/gpucarry
CASE=street_dyn3

unpack() {
  mkdir -p "$ROOT/videos"
  local part archive name
  for part in "$CARRY"/part*; do
    [ -d "$part" ] || continue
    for archive in "$part"/*.tar.xz; do
      [ -e "$archive" ] || continue
      name=$(basename "$archive" .tar.xz)
      name=${name%%-*}  # site-1.tar.xz: more of site/
      mkdir -p "$ROOT/$name"
      tar -C "$ROOT/$name" -xJf "$archive"
      echo "unpacked $archive -> $ROOT/$name"
    done
    cp "$part"/*.mp4 "$ROOT/videos/" 2>/dev/null || true
  done
}

device_env() {
  for need in site triton tools videos/bikes.mp4 "videos/$CASE.mp4"; do
    [ -e "$ROOT/$need" ] || { echo "missing $ROOT/$need: carry every part of $CARRY (bash bench/gpu_stack.sh prepare)" >&2; exit 2; }
  done
  # The image's python3 (CUDA torch) sees the carried packages and pytriton through a .pth file, also
  # inside Triton's Python stub, which runs that interpreter's prefix as Triton's "virtualenv".
  local sitepkgs prefix
  sitepkgs=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  printf '%s\n%s\n' "$ROOT/site" "$ROOT/triton" > "$sitepkgs/spatialvid-gpu-carry.pth"
  prefix=$(python3 -c "import sys; print(sys.prefix)")
  [ -x "$prefix/bin/python" ] || ln -sf "$(command -v python3)" "$prefix/bin/python"
  TRITON_VENV=$prefix
  export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
  export PATH="$ROOT/tools/bin:$PATH" LD_LIBRARY_PATH="$ROOT/tools/lib:${LD_LIBRARY_PATH:-}"
  SPATIALVID_VIDEO__FFMPEG=$(python3 -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
  export SPATIALVID_VIDEO__FFMPEG SPATIALVID_VIDEO__FFPROBE="$ROOT/tools/bin/ffprobe"
  OUT=${OUT:-/tmp/out}
  mkdir -p "$OUT"
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import sys, sysconfig, torch; print('python', sys.version.split()[0], 'LIBDIR', sysconfig.get_config_var('LIBDIR'), 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
    ls "$(python3 -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")"/libpython3* 2>&1 | head -3
    redis-server --version; "$SPATIALVID_VIDEO__FFMPEG" -version | head -1; ffprobe -version | head -1
  } 2>&1 | tee "$OUT/gpu.txt"
}

case "${1:-}" in
--dry-run|dry-run)
  mkdir -p bench/results
  set -o pipefail
  nice -n 10 .venv/bin/python bench/gpu_stack.py --device cpu --out bench/output/gpu_stack_cpu \
    --video "$(.venv/bin/python -c 'from samples import bikes_path; print(bikes_path())')" \
    --video "../shared/bench/cases/$CASE/video.mp4" \
    --result bench/results/gpu_stack_cpu_dryrun.json 2>&1 | tee bench/results/gpu_stack_cpu_dryrun.log
  ;;
prepare)
  .venv/bin/python bench/gpu_carry.py --case "$CASE"
  ;;
unpack)
  unpack
  ;;
run)
  unpack
  device_env
  set -o pipefail
  status=0
  python3 bench/gpu_stack.py --device cuda --out /tmp/gpu_stack --triton-venv "$TRITON_VENV" \
    --video "$ROOT/videos/bikes.mp4" --video "$ROOT/videos/$CASE.mp4" 2>&1 | tee "$OUT/gpu_stack.log" || status=$?
  cp /tmp/gpu_stack/gpu_stack_*.json "$OUT/" 2>/dev/null || true
  tar -C /tmp/gpu_stack -czf "$OUT/logs.tar.gz" logs 2>/dev/null || true
  exit $status
  ;;
*)
  echo "usage: bash bench/gpu_stack.sh --dry-run | prepare | unpack | run" >&2
  exit 2
  ;;
esac
