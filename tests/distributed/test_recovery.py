"""Jobs survive their infrastructure: Redis restarts mid-job, parts of the stack crash and come back.

This module stops and restarts parts of its stack, so it runs its own (not the session's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from minio import Minio

from services.client.api import GatewayClient
from samples import bikes_path
from services.stack import Stack, StackInfo, _alive
from workers import state as st

from .conftest import distributed_settings


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory):
    stack = Stack(distributed_settings(tmp_path_factory.mktemp("recovery-stack")))
    info = stack.up()
    try:
        yield stack, info
    finally:
        stack.down()


def _proc(stack: Stack, name: str):
    return next(p for p in StackInfo.load(stack.dir).processes if p.name == name or p.name.startswith(f"{name}-"))


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", "stack", *args, "--dir", str(stack.dir)],
                          capture_output=True, text=True, timeout=300)


def test_redis_outage_is_503_and_the_job_survives_a_restart(own_stack):
    stack, info = own_stack
    import redis

    probe = redis.Redis.from_url(info.redis_url)
    with GatewayClient(info.api_url, info.api_key, timeout_s=60) as client:
        job_id = client.submit([bikes_path()], "clip,score,filter,camera", {"clip": {"min_seconds": 1.0}})["id"]
        keys = st.Keys(job_id)
        deadline = time.monotonic() + 300
        while b"running:camera" not in probe.hvals(keys.clipstate) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"running:camera" in probe.hvals(keys.clipstate), "no clip reached the camera stage"

        Stack.stop_process(_proc(stack, "redis"))  # SIGTERM: it writes its append-only file and exits
        auth = {"Authorization": f"Bearer {info.api_key}"}
        with httpx.Client(base_url=info.api_url, headers=auth, timeout=60) as http:
            answers = [http.get(f"/v1/jobs/{job_id}"), http.get("/metrics"), http.get(f"/v1/jobs/{job_id}/clips")]
            with open(bikes_path(), "rb") as video:
                answers.append(http.post("/v1/jobs", files={"files": ("bikes.mp4", video)}, data={"stages": "clip"}))
            answers.append(http.post("/v1/jobs", json={"sources": [f"s3://{info.bucket}/uploads/{job_id}/0/bikes.mp4"]}))
            for response in answers:
                assert response.status_code == 503, (response.request.url, response.text)
                assert response.json()["code"] == "unavailable" and int(response.headers["Retry-After"]) > 0
            assert http.get("/readyz").status_code == 503

        stack.restart("redis")
        status = client.wait(job_id, poll_s=1.0, timeout_s=600)
        assert status["state"] == "succeeded", status
        assert status["clips_finished"] == status["clips_total"] > 0
        assert status["stage_counts"]["camera"]["failed"] == 0

    # The submit refused during the outage left no upload behind.
    s3 = stack.settings.s3
    minio = Minio(info.s3_endpoint, access_key=s3.access_key, secret_key=s3.secret_key.get_secret_value(),
                  secure=False, region=s3.region)
    uploads = {o.object_name.split("/")[1] for o in minio.list_objects(info.bucket, prefix="uploads/", recursive=True)}
    assert uploads == {job_id}


def test_a_crashed_part_is_restarted_with_the_stacks_settings(own_stack):
    stack, info = own_stack
    assert _cli(stack, "status").returncode == 0
    refused = subprocess.run([sys.executable, "-m", "services.cli", "stack", "up", "--dir", str(stack.dir)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "stack restart" in refused.stderr

    for part, prefix in (("gateway", "gateway"), ("score", "worker-score")):
        crashed = _proc(stack, prefix)
        os.killpg(crashed.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(crashed) and time.monotonic() < deadline:
            time.sleep(0.1)
        status = _cli(stack, "status")
        assert status.returncode == 1 and "stopped" in status.stdout
        restarted = _cli(stack, "restart", part)
        assert restarted.returncode == 0, restarted.stderr
        replacement = _proc(stack, prefix)
        assert replacement.pid != crashed.pid and _alive(replacement)
    assert _cli(stack, "status").returncode == 0

    # The restarted parts run a job end to end (same ports, keys and settings as before).
    with GatewayClient(info.api_url, info.api_key, timeout_s=60) as client:
        job_id = client.submit([bikes_path()], "clip,score", {"clip": {"min_seconds": 1.0}})["id"]
        assert client.wait(job_id, poll_s=0.5, timeout_s=300)["state"] == "succeeded"
