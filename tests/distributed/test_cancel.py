"""DELETE cancels: the job says so at once, queued work is dropped, what was done is written."""

from __future__ import annotations

import time

import httpx
import pandas as pd
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
    with pytest.raises(ApiFailure) as again:  # a second cancel changes nothing, and says so
        client.cancel(job_id)
    assert again.value.status == 409 and again.value.code == "job_finished"

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


def _bucket_json(client, job_id: str, key: str):
    url = next((f["url"] for f in client.files(job_id)["files"] if f["key"] == key), None)
    return httpx.get(url, timeout=30).json() if url else None


def test_a_stage_ending_after_the_cancel_counts_everywhere(client, redis_client, tmp_path):
    accepted = client.submit([bikes_path()], "clip,score,filter,camera", {"clip": {"min_seconds": 1.0}})
    job_id = accepted["id"]
    keys = st.Keys(job_id)
    deadline = time.monotonic() + 300
    while b"running:camera" not in redis_client.hvals(keys.clipstate) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b"running:camera" in redis_client.hvals(keys.clipstate), "no clip reached the camera stage"
    client.cancel(job_id)  # finalize runs at once, while the camera stage still runs

    # The stage in flight ends and counts; every record of the job ends up saying the same.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        live = client.status(job_id)
        job_json = _bucket_json(client, job_id, "job.json")
        if live["stage_counts"]["camera"]["done"] >= 1 and job_json \
                and job_json["stage_counts"] == live["stage_counts"]:
            break
        time.sleep(0.5)
    assert live["state"] == "cancelled" and live["stage_counts"]["camera"]["done"] >= 1, live
    assert job_json["state"] == "cancelled" and job_json["stage_counts"] == live["stage_counts"], (job_json, live)
    camera = live["stage_counts"]["camera"]
    summary = _bucket_json(client, job_id, "summary.json")
    assert summary["stage_items"]["camera"] == camera["done"] + camera["failed"], summary
    client.fetch(job_id, tmp_path / "out")
    table = pd.read_parquet(tmp_path / "out" / "metadata.parquet")
    posed = table["pose_backend"].fillna("").astype(str).str.len() > 0
    assert int(posed.sum()) == camera["done"], table[["id", "pose_backend"]]
