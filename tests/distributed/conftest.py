"""One real stack for the whole session: redis-server, moto_server, uvicorn and a Celery
worker per queue, started by ``services.stack`` on free loopback ports."""

from __future__ import annotations

import shutil

import pytest
import redis

from gateway.auth import hash_key, new_key
from services.client.api import GatewayClient
from services.settings import load_settings
from services.stack import Stack, StackInfo

# Small enough to test the limit, large enough for bikes.mp4 (0.5 MB).
UPLOAD_LIMIT = 4 * 1024 * 1024
# Inputs a prefix or manifest job lists per page: small, so a few test videos span several pages.
LISTING_PAGE_SIZE = 2
OTHER_KEY = new_key()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/distributed" in str(item.fspath):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    folder = tmp_path_factory.mktemp("stack")
    return load_settings().with_overrides({
        "stack": {"dir": str(folder), "start_timeout_s": 180},
        "gateway": {"max_upload_bytes": UPLOAD_LIMIT, "api_keys": {"other": hash_key(OTHER_KEY)},
                    "source_page_size": LISTING_PAGE_SIZE},
        # Quick recovery of a killed worker's task (running tasks renew their lease).
        "redis": {"visibility_timeout_s": 10, "lease_renew_s": 2.0, "restore_interval_s": 1},
        "client": {"poll_interval_s": 0.5},
    })


@pytest.fixture(scope="session")
def stack(stack_settings):
    stack = Stack(stack_settings)
    info = stack.up()
    try:
        yield stack, info
    finally:
        stack.down()


@pytest.fixture(scope="session")
def info(stack) -> StackInfo:
    return stack[1]


@pytest.fixture()
def client(info):
    with GatewayClient(info.api_url, info.api_key, timeout_s=120) as c:
        yield c


@pytest.fixture()
def other_client(info):
    with GatewayClient(info.api_url, OTHER_KEY, timeout_s=60) as c:
        yield c


@pytest.fixture()
def redis_client(info):
    client = redis.Redis.from_url(info.redis_url)
    yield client
    client.close()
