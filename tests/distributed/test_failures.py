"""No job waits forever: odd input ends, vanished work is noticed, lost state is said to be lost."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from services.inputs import MAX_STEM_CHARS
from samples import bikes_path
from workers import state as st
from workers.watchdog import VANISHED, jobs_with_messages

TERMINAL = ("succeeded", "failed", "partially_failed", "cancelled")


@pytest.fixture()
def http(info):
    with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"}, timeout=60) as c:
        yield c


def _wait_state(http, job_id: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        response = http.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        status = response.json()
        if status["state"] in TERMINAL or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def test_a_300_character_file_name_ends_within_a_minute(http):
    name = "x" * 150 + "-é-" + "y" * 147 + ".mp4"
    with open(bikes_path(), "rb") as video:
        response = http.post("/v1/jobs", files={"files": (name, video)},
                             data={"stages": "clip", "config": '{"clip": {"min_seconds": 1.0}}'})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    status = _wait_state(http, job_id, 60)
    # The name is shortened where the service names files, so the job works; it is reported as given.
    assert status["state"] == "succeeded", status
    assert status["videos"][0]["source"] == name
    clips = http.get(f"/v1/jobs/{job_id}/clips").json()["items"]
    assert clips and all(len(c["id"]) <= MAX_STEM_CHARS + 4 for c in clips)


def test_the_watchdog_ends_a_job_whose_work_vanished(http, info, redis_client):
    """A job with no task anywhere (here: recorded, its tasks never sent) is failed with the reason."""
    job_id = f"orphan{int(time.time() * 1000)}"
    fields = {"owner": "dev", "state": "queued", "created": repr(time.time()), "stages": json.dumps(["clip"]),
              "overrides": "{}", "n_videos": "1",
              "inputs": json.dumps([{"source_id": "v", "name": "v.mp4", "uri": f"s3://{info.bucket}/uploads/x/0/v.mp4"}])}
    keys = st.Keys(job_id)
    redis_client.eval(st.CREATE_JOB, 3, keys.job, st.JOBS_BY_STATE, st.ACTIVE_JOBS, "dev", fields["created"],
                      json.dumps(fields), job_id)
    status = _wait_state(http, job_id, 30)
    assert status["state"] == "failed" and status["error"] == VANISHED, status
    # finalize wrote the final state to the bucket as well.
    deadline = time.monotonic() + 30
    files: dict[str, str] = {}
    while "job.json" not in files and time.monotonic() < deadline:
        files = {f["key"]: f["url"] for f in http.get(f"/v1/jobs/{job_id}/files").json()["files"]}
        time.sleep(0.5)
    assert httpx.get(files["job.json"]).json()["state"] == "failed"
    assert "spatialvid.log" in files


def test_lost_redis_state_answers_410_never_500(http, info, redis_client, tmp_path):
    with open(bikes_path(), "rb") as video:
        response = http.post("/v1/jobs", files={"files": ("bikes.mp4", video)},
                             data={"stages": "clip,score,filter,camera", "config": '{"clip": {"min_seconds": 1.0}}'})
    job_id = response.json()["id"]
    keys = st.Keys(job_id)
    deadline = time.monotonic() + 300
    while b"running:camera" not in redis_client.hvals(keys.clipstate) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert b"running:camera" in redis_client.hvals(keys.clipstate), "no clip reached the camera stage"

    # The watchdog sees this job's work (the running camera task's message, the clips still queued).
    assert job_id in jobs_with_messages(redis_client)

    # fetch on a running job refuses, and writes nothing.
    fetched = tmp_path / "partial"
    run = subprocess.run([sys.executable, "-m", "services.cli", "fetch", job_id, "--out", str(fetched),
                          "--api", info.api_url, "--key", info.api_key], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "still running" in run.stderr, run.stderr
    assert not fetched.exists() or not any(fetched.iterdir())

    # Redis forgets the job (what a restart without persistence does) while a camera task runs on.
    redis_client.delete(*keys.all())
    redis_client.srem(st.ACTIVE_JOBS, job_id)
    answers = set()
    deadline = time.monotonic() + 12  # long enough for the running camera task to finish and write
    while time.monotonic() < deadline:
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/clips", f"/v1/jobs/{job_id}/files"):
            response = http.get(path)
            assert response.status_code < 500, (path, response.text)
        status = http.get(f"/v1/jobs/{job_id}")
        answers.add((status.status_code, status.json()["code"]))
        time.sleep(0.5)
    assert answers == {(410, "job_state_lost")}, answers
    assert http.delete(f"/v1/jobs/{job_id}").status_code == 410
    # Another key still learns nothing.
    from .conftest import OTHER_KEY

    other = httpx.get(f"{info.api_url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert other.status_code == 404
