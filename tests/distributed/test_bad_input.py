"""Bad requests get the right status, a stable code and a clear message; other jobs are untouched."""

from __future__ import annotations

import httpx
import pytest
from minio import Minio

from samples import bikes_path
from workers import state as st

from .conftest import GRANTED_PREFIX, OTHER_KEY, UPLOAD_LIMIT


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]  # a sentence for people
    return body["message"]


@pytest.fixture(scope="module")
def good_job(info):
    """A job that must come through every bad request below unharmed."""
    with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"}, timeout=60) as http:
        with open(bikes_path(), "rb") as video:
            response = http.post("/v1/jobs", files={"files": ("bikes.mp4", video)}, data={"stages": "clip", "config": '{"clip": {"min_seconds": 1.0}}'})
        assert response.status_code == 202, response.text
        return response.json()["id"]


@pytest.fixture()
def http(info):
    with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"}, timeout=60) as c:
        yield c


def test_non_video_upload_is_refused(http, good_job):
    response = http.post("/v1/jobs", files={"files": ("notes.mp4", b"these are my notes, not a video\n" * 20)})
    assert "notes.mp4" in _error(response, 415, "not_a_video")


def test_empty_upload_is_refused(http, good_job):
    response = http.post("/v1/jobs", files={"files": ("empty.mp4", b"")})
    assert "empty" in _error(response, 400, "empty_upload")


def test_oversized_upload_is_refused(http, good_job):
    head = bikes_path().read_bytes()[:4096]  # a real mp4 start, so only the size is wrong
    big = head + bytes(UPLOAD_LIMIT + 1024 * 1024)
    response = http.post("/v1/jobs", files={"files": ("big.mp4", big)})
    assert str(UPLOAD_LIMIT) in _error(response, 413, "too_large")


def test_oversized_upload_without_length_is_refused(http, good_job):
    """Chunked (no Content-Length): the limit is enforced while streaming."""
    head = bikes_path().read_bytes()[:4096]
    boundary = "b0undary"

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.mp4\"\r\n"
               "Content-Type: video/mp4\r\n\r\n").encode() + head
        for _ in range(UPLOAD_LIMIT // (1 << 20) + 2):
            yield bytes(1 << 20)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = http.post("/v1/jobs", content=body(),
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    _error(response, 413, "too_large")


def test_malformed_json_is_refused(http, good_job):
    response = http.post("/v1/jobs", content=b'{"sources": ["s3://x/y"', headers={"Content-Type": "application/json"})
    assert "JSON" in _error(response, 400, "malformed_json")


def test_invalid_requests_name_the_problem(http, info, good_job):
    _error(http.post("/v1/jobs", json={"sources": []}), 422, "invalid_request")
    _error(http.post("/v1/jobs", json={"sources": ["s3://b/k"], "stages": "clip,teleport"}), 422, "unknown_stage")
    message = _error(http.post("/v1/jobs", json={"sources": ["s3://b/k"], "config": {"redis": {"url": "x"}}}),
                     422, "config_not_allowed")
    assert "redis" in message
    message = _error(http.post("/v1/jobs", json={"sources": ["s3://b/k"], "config": {"clip": {"min_seconds": "x"}}}),
                     422, "invalid_config")
    assert "min_seconds" in message
    _error(http.post("/v1/jobs", json={"sources": [f"s3://{info.bucket}/{GRANTED_PREFIX}nothing/here.mp4"]}),
           400, "source_not_found")
    _error(http.post("/v1/jobs", json={"sources": ["ftp://host/video.mp4"]}), 422, "bad_source")
    _error(http.post("/v1/jobs", content=b"x", headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")


def test_odd_requests_get_clear_4xx_answers(http, good_job):
    # A stage list that names no stage is not "every stage" and not "nothing to do".
    with open(bikes_path(), "rb") as video:
        message = _error(http.post("/v1/jobs", files={"files": ("bikes.mp4", video)}, data={"stages": ",,,"}),
                         422, "unknown_stage")
    assert "no stage" in message
    for stages in (",,,", " , ", []):
        _error(http.post("/v1/jobs", json={"sources": ["s3://b/k.mp4"], "stages": stages}), 422, "unknown_stage")
    # A port out of range is a bad source, not a server error.
    for uri in ("http://example.com:99999/v.mp4", "https://example.com:-1/v.mp4", "http://example.com:x/v.mp4"):
        _error(http.post("/v1/jobs", json={"sources": [uri]}), 422, "bad_source")
    # A JSON body that is not an object says so.
    message = _error(http.post("/v1/jobs", json=["s3://b/k.mp4"]), 422, "invalid_request")
    assert message.startswith("the body:"), message
    # A long job id is not echoed back.
    long_id = "a" * 5000
    for response in (http.get(f"/v1/jobs/{long_id}"), http.get(f"/v1/jobs/{long_id}/files"),
                     http.delete(f"/v1/jobs/{long_id}")):
        assert len(_error(response, 404, "job_not_found")) < 100


def test_unknown_job_is_404(http, good_job):
    for path in ("/v1/jobs/0123456789abcdef0123456789abcdef", "/v1/jobs/not-a-job/clips",
                 "/v1/jobs/0123456789abcdef0123456789abcdef/files"):
        assert "no job" in _error(http.get(path), 404, "job_not_found")
    _error(http.delete("/v1/jobs/0123456789abcdef0123456789abcdef"), 404, "job_not_found")


def test_another_keys_job_is_invisible(info, good_job):
    with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=60) as other:
        for path in (f"/v1/jobs/{good_job}", f"/v1/jobs/{good_job}/clips", f"/v1/jobs/{good_job}/files",
                     f"/v1/jobs/{good_job}/clips/bikes_0"):
            # The same answer as for a job that does not exist: nothing leaks.
            _error(other.get(path), 404, "job_not_found")
        _error(other.delete(f"/v1/jobs/{good_job}"), 404, "job_not_found")
        # Nor can it name the job's files as its own sources.
        _error(other.post("/v1/jobs", json={"sources": [f"s3://{info.bucket}/jobs/{good_job}/clips/bikes_0.mp4"]}),
               403, "source_forbidden")


def test_sources_inside_the_deployment_are_refused(info):
    # The stack's own Redis and the cloud metadata address: a job must not make workers fetch them.
    with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"}, timeout=30) as api:
        for uri in ("http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/"):
            assert "non-public" in _error(api.post("/v1/jobs", json={"sources": [uri]}), 403, "source_forbidden")


def test_missing_or_wrong_key_is_401(info):
    with httpx.Client(base_url=info.api_url, timeout=30) as anonymous:
        response = anonymous.get("/v1/jobs/whatever")
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        _error(anonymous.get("/v1/jobs/whatever", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")


def test_good_job_is_untouched(client, info, redis_client, good_job, stack_settings):
    """Run last in this module: after every bad request, the good job still succeeds,
    and no refused upload left anything in the bucket."""
    status = client.wait(good_job, poll_s=0.5, timeout_s=300)
    assert status["state"] == "succeeded", status
    assert status["clips_total"] > 0 and status["clips_finished"] == status["clips_total"]
    s3 = stack_settings.s3
    minio = Minio(info.s3_endpoint, access_key=s3.access_key, secret_key=s3.secret_key.get_secret_value(),
                  secure=False, region=s3.region)
    uploads = {o.object_name.split("/")[1] for o in minio.list_objects(info.bucket, prefix="uploads/", recursive=True)}
    known = {k.decode().split(":")[2] for k in redis_client.scan_iter(f"{st.PREFIX}:job:*") if k.count(b":") == 2}
    assert uploads <= known, f"uploads of refused requests were left behind: {uploads - known}"
