"""bench/gpu_stack.py's bookkeeping, offline: the settings the stack's processes get, the verdict on a
run, and the frames/s arithmetic. (The run itself is bench/gpu_stack.sh: its CPU dry run is saved in
bench/results/gpu_stack_cpu_dryrun.{json,log}; it takes too long for the suite.)"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from services.stack import settings_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_stack():
    spec = importlib.util.spec_from_file_location("gpu_stack", ROOT / "bench" / "gpu_stack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("device,config_name", [("cuda", ""), ("cpu", "cpu")])
def test_workers_and_triton_get_the_intended_implementations(gpu_stack, tmp_path, device, config_name):
    env = settings_env(gpu_stack.stack_settings(device, tmp_path, tmp_path / "w", None))
    assert env["SPATIALVID_KERNELS__DEVICE"] == device
    assert env["SPATIALVID_MODELS__DEVICE"] == device
    assert env["SPATIALVID_TRITON__CONFIG_NAME"] == config_name  # "": config.pbtxt (KIND_GPU)
    assert env["SPATIALVID_TRITON__PROTOCOL"] == "grpc"
    assert env["SPATIALVID_DEPTH__BACKEND"] == "depth_anything_v2"
    assert env["SPATIALVID_DEPTH__MASK_BACKEND"] == "sam2"
    assert env["SPATIALVID_STACK__TRITON"] == "true"
    assert json.loads(env["SPATIALVID_MODELS__CLIENT"]) == {"aesthetic": "triton", "depth_anything_v2": "triton", "sam2": "triton"}


def _job(state="succeeded", done=1, failed=0, camera_s=2.0, depth_s=4.0, frames=50):
    stages = ["score", "filter", "camera", "depth", "caption"]
    return {"state": state, "errors": {}, "stage_seconds": {"camera": camera_s, "depth": depth_s},
            "stage_counts": {s: {"done": done, "failed": failed} for s in stages},
            "camera_frames": frames, "depth_frames": frames if done else 0,
            "clips": [{"id": "v_0", "state": "done" if not failed else "failed:depth",
                       "error": "no parallax" if failed else None}]}


def _result(jobs, executions=3):
    return {"stages": ["clip", "score", "filter", "camera", "depth", "caption"], "jobs": jobs,
            "triton_models": {m: {"execution_count": executions} for m in ("aesthetic", "depth_anything_v2", "sam2")}}


def test_a_clean_run_passes(gpu_stack):
    assert gpu_stack.check(_result({"a.mp4": _job()})) == []


def test_failures_are_named(gpu_stack):
    failed = _job(state="failed", done=0, failed=1)
    problems = gpu_stack.check(_result({"bikes.mp4": failed}, executions=0))
    assert any(p.startswith("bikes.mp4: job failed") and "no parallax" in p for p in problems)
    assert any("no clip finished stage(s) score, filter, camera, depth, caption" in p for p in problems)
    assert sum("never executed" in p for p in problems) == 3
    # another job doing the work clears the stage complaint, not the failed job's
    problems = gpu_stack.check(_result({"bikes.mp4": failed, "case.mp4": _job()}))
    assert problems == [p for p in problems if p.startswith("bikes.mp4")] and len(problems) == 1
    assert gpu_stack.check({"stages": [], "jobs": {}}) == ["no job ran"]


def test_frames_per_second_over_jobs(gpu_stack):
    summary = gpu_stack.tracking_summary({"a": _job(camera_s=2.0, depth_s=4.0, frames=50),
                                          "b": _job(camera_s=3.0, depth_s=6.0, frames=150)})
    assert summary["camera_frames"] == 200 and summary["camera_seconds"] == 5.0
    assert summary["frames_per_s"] == summary["camera_frames_per_s"] == 40.0
    assert summary["depth_frames_per_s"] == 20.0
    assert gpu_stack.tracking_summary({"a": _job(camera_s=0.0, frames=0)})["frames_per_s"] is None


def test_the_device_script_parses():
    done = subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_stack.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
