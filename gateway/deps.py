"""Dependencies: the shared clients (built once per app) and the caller's identity."""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property

import redis.asyncio as aioredis
from celery import Celery
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from minio import Minio

from gateway.auth import KeyRing
from gateway.errors import ApiError
from services.settings import S3Settings, Settings
from services.storage.s3 import S3Store, make_client
from workers.state import READ_STATUS, TERMINAL, JobStatus


@dataclass(frozen=True)
class EndedJob:
    owner: str
    status: dict  # job.json without its owner

    @cached_property
    def text(self) -> str:
        return JobStatus.model_validate(self.status).model_dump_json()


class EndedJobs:
    """Ended jobs' job.json, the most recently read ``size`` of them. Only what Redis has forgotten comes
    here, and finalize writes job.json while Redis still holds the job: the bucket's copy is final."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: OrderedDict[str, EndedJob] = OrderedDict()

    def get(self, job_id: str) -> EndedJob | None:
        found = self._jobs.get(job_id)
        if found is not None:
            self._jobs.move_to_end(job_id)
        return found

    def put(self, job_id: str, job: EndedJob) -> None:
        if self.size == 0 or job.status.get("state") not in {state.value for state in TERMINAL}:
            return
        self._jobs[job_id] = job
        self._jobs.move_to_end(job_id)
        while len(self._jobs) > self.size:
            self._jobs.popitem(last=False)


@dataclass
class Services:
    settings: Settings
    store: S3Store  # the bucket root (jobs/ and uploads/ below it)
    presigner: Minio  # signs URLs for the endpoint clients reach
    celery: Celery
    keyring: KeyRing
    ended: EndedJobs  # what job.json says of ended jobs Redis has forgotten
    _redis: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = field(
        default_factory=weakref.WeakKeyDictionary)
    _scripts: "weakref.WeakKeyDictionary[aioredis.Redis, object]" = field(default_factory=weakref.WeakKeyDictionary)

    @property
    def redis(self) -> aioredis.Redis:
        """An asyncio Redis client for the running event loop (its connections belong to one loop;
        uvicorn has one, an in-process test client may start several)."""
        loop = asyncio.get_running_loop()
        client = self._redis.get(loop)
        if client is None:
            # A request that finds every connection busy waits for one (a burst of pollers queues briefly)
            # instead of failing: the plain pool raises "Too many connections", which reads as Redis down (503).
            pool = aioredis.BlockingConnectionPool.from_url(
                self.settings.redis.url, max_connections=self.settings.gateway.redis_connections,
                timeout=self.settings.gateway.redis_connection_wait_s)
            client = self._redis[loop] = aioredis.Redis(connection_pool=pool)
        return client

    @property
    def read_status_script(self):
        """The status read as one EVALSHA on this loop's client."""
        client = self.redis
        script = self._scripts.get(client)
        if script is None:
            script = self._scripts[client] = client.register_script(READ_STATUS)
        return script

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        from workers.app import make_celery

        public = settings.s3.public_endpoint
        presign_settings: S3Settings = settings.s3.model_copy(update={"endpoint": public}) if public else settings.s3
        return cls(
            settings=settings,
            store=S3Store(settings.s3),
            presigner=make_client(presign_settings),
            celery=make_celery(settings),
            keyring=KeyRing(settings.gateway.api_keys),
            ended=EndedJobs(settings.gateway.ended_status_cache),
        )

    def job_store(self, job_id: str) -> S3Store:
        return self.store.scoped(f"jobs/{job_id}/")


def services(request: Request) -> Services:
    return request.app.state.services


_bearer = HTTPBearer(auto_error=False, description="an API key from the gateway's settings")


async def require_owner(
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer), svc: Services = Depends(services)
) -> str:
    """The name of the key's owner; every job belongs to the owner that created it."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if creds is None or not creds.credentials:
        raise ApiError(401, "unauthorized", "missing API key: send the header 'Authorization: Bearer KEY'",
                       headers=challenge)
    owner = svc.keyring.owner(creds.credentials)
    if owner is None:
        raise ApiError(401, "unauthorized", "unknown API key", headers=challenge)
    return owner
