"""Schemathesis against the gateway's own OpenAPI schema, in process (ASGI), on the real
Redis and S3 server of the session's stack: whatever it sends, no 5xx."""

from __future__ import annotations

import json
import zlib

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from gateway.app import create_app
from gateway.auth import hash_key
from gateway.deps import Services
from services.settings import load_settings

from .conftest import OTHER_KEY

# The schema is the app's own; the app is pointed at the stack once the stack is up.
APP = create_app(load_settings())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture()
def wired_app(info, stack_settings):
    app_settings = stack_settings.with_overrides({
        "redis": {"url": info.redis_url},
        "s3": {"endpoint": info.s3_endpoint, "secure": False},
        "gateway": {"api_keys": {"dev": hash_key(info.api_key), "other": hash_key(OTHER_KEY)}},
    })
    APP.state.services = Services.build(app_settings)
    return APP


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, wired_app, info):
    case.call_and_validate(headers={"Authorization": f"Bearer {info.api_key}"}, checks=[not_a_server_error])


@pytest.fixture()
def short_source(info, minio_client, tmp_path):
    """A 2-second video in the key's granted folder: the jobs the state machine creates are real,
    and cheap (too short for a clip unless the generated config asks for short clips)."""
    import subprocess

    import imageio_ffmpeg

    from samples import bikes_path

    from .conftest import GRANTED_PREFIX

    short = tmp_path / "short.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(bikes_path()), "-t", "2", "-c", "copy",
                    str(short)], check=True)
    key = f"{GRANTED_PREFIX}fuzz/short.mp4"
    minio_client.fput_object(info.bucket, key, str(short))
    return f"s3://{info.bucket}/{key}"


def test_stateful_sequences_get_no_server_errors(wired_app, info, short_source):
    """POST a job, then follow the schema's links (status, clips, one clip, files, cancel) with the
    ids the answers hold: whatever the order and the generated values, no 5xx."""
    calls: list[tuple[str, str, int]] = []
    created: list[str] = []
    auth = {"Authorization": f"Bearer {info.api_key}"}

    class Workflow(schema.as_state_machine()):
        def before_call(self, case):
            # Generated sources never exist: half the JSON submissions (chosen by their content, so a
            # replayed case is the same case) name a real one instead, and only it (a job takes exactly one of
            # sources, prefix and manifest, which the schema cannot say), so jobs get created and the links
            # have ids to follow (stages and config stay generated).
            case.headers = {**(case.headers or {}), **auth}  # the key rides on the case itself
            body = case.body
            if case.operation.method.upper() != "POST" or not isinstance(body, dict) \
                    or zlib.crc32(json.dumps(body, sort_keys=True, default=str).encode()) % 2:
                return
            if "sources" in body:
                body["sources"] = [short_source]
                body.pop("prefix", None)
                body.pop("manifest", None)
            elif "files" in body and case.operation.path == "/v1/jobs":
                # an upload variant without files to send: the JSON variant with a real source instead
                case.media_type, case.body = "application/json", {"sources": [short_source]}

        def get_call_kwargs(self, case):
            return {"headers": auth}

        def after_call(self, response, case):
            calls.append((case.operation.method.upper(), case.operation.path, response.status_code))
            if case.operation.path == "/v1/jobs" and response.status_code == 202:
                created.append(response.json()["id"])

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=[not_a_server_error])

    try:
        Workflow.run(settings=settings(max_examples=15, stateful_step_count=5, deadline=None,
                                       suppress_health_check=list(HealthCheck)))
    finally:
        for job_id in created:  # leave the stack's workers free for the next tests
            httpx.delete(f"{info.api_url}/v1/jobs/{job_id}", headers=auth, timeout=30)
    assert not [c for c in calls if c[2] >= 500], calls
    # The links were followed: a job made in a sequence was read back in it.
    assert created and any(m == "GET" and p == "/v1/jobs/{job_id}" and s == 200 for m, p, s in calls), calls
