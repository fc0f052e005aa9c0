"""DELETE cancels: the job says so at once, queued work is dropped, what was done is written,
and a stage that was running when the cancel came counts in every record alike."""

from __future__ import annotations

import time

import httpx
import pandas as pd
import pytest

from services.client.api import ApiFailure
from samples import bikes_path
from workers import state as st


def _bucket_json(client, job_id: str, key: str):
    url = next((f["url"] for f in client.files(job_id)["files"] if f["key"] == key), None)
    return httpx.get(url, timeout=30).json() if url else None


def test_cancel_drops_queued_work_and_counts_the_running_stage_everywhere(client, redis_client, tmp_path):
    accepted = client.submit([bikes_path()], "clip,score,filter,camera", {"clip": {"min_seconds": 1.0}})
    job_id = accepted["id"]
    keys = st.Keys(job_id)
    deadline = time.monotonic() + 300
    while b"running:camera" not in redis_client.hvals(keys.clipstate) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b"running:camera" in redis_client.hvals(keys.clipstate), "no clip reached the camera stage"

    # finalize runs at once, while the camera stage still runs.
    assert client.cancel(job_id)["state"] == "cancelled"
    with pytest.raises(ApiFailure) as again:  # a second cancel changes nothing, and says so
        client.cancel(job_id)
    assert again.value.status == 409 and again.value.code == "job_finished"

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

    # Nothing new started: the chains stopped after the stage that was running.
    time.sleep(3)
    status = client.status(job_id)
    assert status["stage_counts"] == live["stage_counts"]
    camera = status["stage_counts"]["camera"]
    assert camera["done"] < status["clips_total"] and status["clips_finished"] < status["clips_total"]

    summary = _bucket_json(client, job_id, "summary.json")
    assert summary["stage_items"]["camera"] == camera["done"] + camera["failed"], summary
    client.fetch(job_id, tmp_path / "out")
    table = pd.read_parquet(tmp_path / "out" / "metadata.parquet")
    posed = table["pose_backend"].fillna("").astype(str).str.len() > 0
    assert int(posed.sum()) == camera["done"], table[["id", "pose_backend"]]


def test_cancel_a_finished_job_is_409(client):
    accepted = client.submit([bikes_path()], "clip", {"clip": {"min_seconds": 1.0}})
    assert client.wait(accepted["id"], poll_s=0.5, timeout_s=300)["state"] == "succeeded"
    with pytest.raises(ApiFailure) as failure:
        client.cancel(accepted["id"])
    assert failure.value.status == 409 and failure.value.code == "job_finished"
