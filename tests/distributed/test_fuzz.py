"""Schemathesis against the gateway's own OpenAPI schema, in process (ASGI), on the real
Redis and S3 server of the session's stack: whatever it sends, no 5xx."""

from __future__ import annotations

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
