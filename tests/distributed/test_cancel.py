"""DELETE cancels: the job says so at once, queued work is dropped, what was done is written."""

from __future__ import annotations

import time

import httpx
import pytest

from services.client.api import ApiFailure
from services.samples import bikes_path
from workers import state as st


def test_cancel_drops_queued_work(client, redis_client):
    accepted = client.submit([bikes_path()], "clip,score,filter,camera", {"clip": {"min_seconds": 1.0}})
    job_id = accepted["id"]
    keys = st.Keys(job_id)
    deadline = time.monotonic() + 300
    while redis_client.zcard(keys.clips) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert redis_client.zcard(keys.clips) > 0, "clipping did not finish"

    cancelled = client.cancel(job_id)
    assert cancelled["state"] == "cancelled"
    assert client.cancel(job_id)["state"] == "cancelled"  # cancelling twice is fine

    # Nothing new starts: at most the stage running at the time completes.
    time.sleep(8)
    status = client.status(job_id)
    assert status["state"] == "cancelled"
    camera_done = status["stage_counts"]["camera"]["done"]
    assert camera_done < status["clips_total"]
    # The chains stopped: no clip reached the end of its chain after the stage it was in.
    assert status["clips_finished"] < status["clips_total"]

    # finalize wrote the tables of what was done, and the final state, to the bucket.
    deadline = time.monotonic() + 60
    files: list[str] = []
    while "job.json" not in files and time.monotonic() < deadline:
        files = [f["key"] for f in client.files(job_id)["files"]]
        time.sleep(0.5)
    assert {"job.json", "metadata.parquet"} <= set(files)
    job_json = httpx.get(next(f["url"] for f in client.files(job_id)["files"] if f["key"] == "job.json")).json()
    assert job_json["state"] == "cancelled"


def test_cancel_a_finished_job_is_409(client):
    accepted = client.submit([bikes_path()], "clip", {"clip": {"min_seconds": 1.0}})
    assert client.wait(accepted["id"], poll_s=0.5, timeout_s=300)["state"] == "succeeded"
    with pytest.raises(ApiFailure) as failure:
        client.cancel(accepted["id"])
    assert failure.value.status == 409 and failure.value.code == "job_finished"
