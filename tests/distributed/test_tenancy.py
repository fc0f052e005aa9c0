"""Tenants stay apart: a job's config cannot point the service at a host of its choosing,
and its sources are its own uploads and jobs, or what the operator granted its key."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from samples import bikes_path
from services.settings import load_settings
from workers import state as st
from workers.app import make_celery
from workers.routing import INGEST_TASK, QUEUES

from .conftest import GRANTED_PREFIX, OTHER_KEY


class _Listener:
    """A loopback HTTP server that counts whatever reaches it (it must stay at zero)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen.append(f"{self.command} {self.path} auth={self.headers.get('Authorization')!r}")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = do_HEAD = _any

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def listener():
    server = _Listener()
    yield server
    server.close()


@pytest.fixture()
def http(info):
    with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"}, timeout=60) as c:
        yield c


def _refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text
    return response.json()["message"]


CAPTION_TRAPS = [
    {"vlm_url": "{url}/v1"},
    {"llm_url": "{url}/v1"},
    {"backend": "openai", "vlm_url": "{url}/v1", "llm_url": "{url}/v1", "api_key": "stolen?", "vlm_model": "m"},
    {"api_key": "mine"},
    {"llm_api_key": "mine"},
    {"vlm_model": "an-expensive-one"},
]


def test_a_jobs_config_never_reaches_a_listener(http, info, listener, redis_client, minio_client):
    for trap in CAPTION_TRAPS:
        caption = {k: v.format(url=listener.url) for k, v in trap.items()}
        body = {"sources": [f"s3://{info.bucket}/{GRANTED_PREFIX}bikes.mp4"], "stages": "clip,caption",
                "config": {"caption": caption}}
        message = _refused(http.post("/v1/jobs", json=body), 422, "config_not_allowed")
        assert all(f"caption.{field}" in message for field in caption), message
        with open(bikes_path(), "rb") as video:
            response = http.post("/v1/jobs", files={"files": ("bikes.mp4", video)},
                                 data={"stages": "clip,caption", "config": json.dumps({"caption": caption})})
        _refused(response, 422, "config_not_allowed")
    # Infrastructure and resources are the operator's too, field by field.
    for config in ({"storage": {"root": "/tmp"}}, {"models": {"weights_dir": "/"}}, {"score": {"torch_threads": 64}}):
        _refused(http.post("/v1/jobs", json={"sources": ["s3://b/k.mp4"], "config": config}), 422, "config_not_allowed")
    # The same SSRF check as sources: the listener is loopback.
    for uri in (f"{listener.url}/video.mp4", f"http://localhost:{listener.url.rsplit(':', 1)[1]}/video.mp4"):
        _refused(http.post("/v1/jobs", json={"sources": [uri]}), 403, "source_forbidden")

    # A job recorded past the gateway (an old record, another writer): the workers refuse its config
    # too, and the job ends failed with the reason instead of calling the listener.
    job_id = f"bypass{int(time.time() * 1000)}"
    key = f"uploads/{job_id}/0/bikes.mp4"
    minio_client.fput_object(info.bucket, key, str(bikes_path()))
    caption = {"backend": "openai", "vlm_url": f"{listener.url}/v1", "llm_url": f"{listener.url}/v1",
               "vlm_model": "m", "llm_model": "m"}
    fields = {"owner": "dev", "state": "queued", "created": repr(time.time()), "stages": json.dumps(["clip", "caption"]),
              "overrides": json.dumps({"caption": caption}), "n_videos": "1",
              "inputs": json.dumps([{"source_id": "bikes", "name": "bikes.mp4", "uri": f"s3://{info.bucket}/{key}"}])}
    keys = st.Keys(job_id)
    assert redis_client.eval(st.CREATE_JOB, 3, keys.job, st.JOBS_BY_STATE, st.ACTIVE_JOBS, "dev", fields["created"],
                             json.dumps(fields), job_id) == 1
    celery = make_celery(load_settings().with_overrides({"redis": {"url": info.redis_url}}))
    celery.send_task(INGEST_TASK, args=[job_id, "bikes"], queue=QUEUES["clip"])
    status = http.get(f"/v1/jobs/{job_id}").json()
    deadline = time.monotonic() + 120
    while status["state"] not in ("succeeded", "failed", "partially_failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        status = http.get(f"/v1/jobs/{job_id}").json()
    assert status["state"] == "failed", status
    assert "caption.vlm_url" in status["errors"]["bikes.mp4"], status
    time.sleep(2)
    assert listener.requests == [], listener.requests


def _put(minio_client, bucket: str, key: str) -> None:
    if not minio_client.bucket_exists(bucket):
        minio_client.make_bucket(bucket)
    minio_client.fput_object(bucket, key, str(bikes_path()))


def test_sources_are_confined_to_the_tenant(http, info, minio_client):
    _put(minio_client, "operator-private", "secret/bikes.mp4")
    _put(minio_client, info.bucket, "private/bikes.mp4")
    _put(minio_client, info.bucket, f"{GRANTED_PREFIX}bikes.mp4")
    _put(minio_client, info.bucket, "granted/dev-not/bikes.mp4")  # shares the granted prefix's first letters

    answers = {}
    for uri in ("s3://operator-private/secret/bikes.mp4", "s3://operator-private/secret/missing.mp4",
                "s3://no-such-bucket-here/x.mp4",
                f"s3://{info.bucket}/private/bikes.mp4", f"s3://{info.bucket}/private/missing.mp4",
                f"s3://{info.bucket}/granted/dev-not/bikes.mp4",
                f"s3://{info.bucket}/{GRANTED_PREFIX}../../private/bikes.mp4",
                f"s3://{info.bucket}/submitted/x.json"):
        response = http.post("/v1/jobs", json={"sources": [uri], "stages": "clip"})
        assert response.status_code == 403, (uri, response.text)
        body = response.json()
        answers[uri] = (body["code"], body["message"].replace(repr(uri), "URI"))
    # Whether the object exists or not, the answer is the same: nothing to probe.
    assert len(set(answers.values())) == 1, answers
    assert next(iter(answers.values()))[0] == "source_forbidden"

    # The granted prefix: its objects are sources, a missing one is said to be missing.
    granted = f"s3://{info.bucket}/{GRANTED_PREFIX}bikes.mp4"
    _refused(http.post("/v1/jobs", json={"sources": [f"s3://{info.bucket}/{GRANTED_PREFIX}none.mp4"]}),
             400, "source_not_found")
    accepted = http.post("/v1/jobs", json={"sources": [granted], "stages": "clip",
                                           "config": {"clip": {"min_seconds": 1.0}}})
    assert accepted.status_code == 202, accepted.text
    # Another key was granted nothing.
    with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=60) as other:
        _refused(other.post("/v1/jobs", json={"sources": [granted]}), 403, "source_forbidden")
    job = accepted.json()["id"]
    deadline = time.monotonic() + 300
    while (state := http.get(f"/v1/jobs/{job}").json()["state"]) not in ("succeeded", "failed") \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state == "succeeded"
