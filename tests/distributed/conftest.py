"""One real stack for the whole session: redis-server, moto_server, uvicorn and a Celery
worker per queue, started by ``services.stack`` on free loopback ports."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from gateway.auth import hash_key, new_key
from services.client.api import GatewayClient
from services.settings import Settings, load_settings
from services.stack import Stack, StackInfo

# Small enough to test the limit, large enough for bikes.mp4 (0.5 MB).
UPLOAD_LIMIT = 4 * 1024 * 1024
# Inputs a prefix or manifest job lists per page: small, so a few test videos span several pages.
LISTING_PAGE_SIZE = 2
OTHER_KEY = new_key()
GRANTED_PREFIX = "granted/dev/"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/distributed" in str(item.fspath):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; `make setup` installs it", pytrace=False)
    return distributed_settings(tmp_path_factory.mktemp("stack"))


def distributed_settings(folder: Path) -> Settings:
    """The test stacks' settings (a module that restarts parts of its stack starts its own)."""
    bucket = load_settings().s3.bucket
    return load_settings().with_overrides({
        "stack": {"dir": str(folder), "start_timeout_s": 180},
        "gateway": {"max_upload_bytes": UPLOAD_LIMIT, "api_keys": {"other": hash_key(OTHER_KEY)},
                    # The development key ("dev") may also read one folder beyond its own jobs.
                    "tenants": {"dev": {"s3_prefixes": [f"s3://{bucket}/{GRANTED_PREFIX}"]}},
                    "source_page_size": LISTING_PAGE_SIZE},
        # Quick recovery of a killed worker's task (running tasks renew their lease), and a watchdog
        # that notices a job without work within seconds.
        "redis": {"visibility_timeout_s": 10, "lease_renew_s": 2.0, "restore_interval_s": 1,
                  "watchdog_interval_s": 1.0},
        "client": {"poll_interval_s": 0.5},
    })


@contextmanager
def running_stack(settings: Settings) -> Iterator[tuple[Stack, StackInfo]]:
    """A stack up for the duration, down afterwards whatever happened."""
    stack = Stack(settings)
    info = stack.up()
    try:
        yield stack, info
    finally:
        stack.down()


@pytest.fixture(scope="session")
def stack(stack_settings):
    with running_stack(stack_settings) as running:
        yield running


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


@pytest.fixture(scope="session")
def minio_client(info, stack_settings):
    from minio import Minio

    s3 = stack_settings.s3
    return Minio(info.s3_endpoint, access_key=s3.access_key, secret_key=s3.secret_key.get_secret_value(),
                 secure=False, region=s3.region)
