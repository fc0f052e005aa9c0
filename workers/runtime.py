"""What a worker process keeps between tasks: clients, stage objects, job specs.

Created lazily in the process that runs tasks (after the prefork fork), so no
connection is shared across processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis
from minio import Minio

from services.settings import Settings, check_job_overrides, load_settings
from services.stages.base import Stage, StageContext
from services.stages.registry import build_stage
from services.storage.s3 import S3Store, make_client
from workers.state import JobState, Keys
from workers.transient import TransientRecorder


@dataclass(frozen=True)
class JobInput:
    source_id: str
    name: str  # what the user called it (the upload's file name, or the URI)
    uri: str  # s3://bucket/key or http(s)://...


@dataclass(frozen=True)
class JobSpec:
    id: str
    owner: str
    state: JobState
    stages: list[str]
    overrides: dict
    inputs: list[JobInput]

    def input(self, source_id: str) -> JobInput:
        return next(i for i in self.inputs if i.source_id == source_id)

    @property
    def clip_stages(self) -> list[str]:
        return [s for s in self.stages if s != "clip"]


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis.Redis.from_url(settings.redis.url)
        self.minio: Minio = make_client(settings.s3)
        self.cache: dict[str, object] = {}  # StageContext.cache: models loaded by setup()
        self._stages: dict[str, Stage] = {}
        self._set_up: set[tuple[str, str]] = set()
        self._job_settings: dict[str, Settings] = {}

    def job(self, job_id: str) -> JobSpec | None:
        raw = {k.decode(): v.decode() for k, v in self.redis.hgetall(Keys(job_id).job).items()}
        if not all(k in raw for k in ("owner", "state", "stages", "inputs")):
            return None  # unknown, expired, or lost (a Redis restart without persistence)
        return JobSpec(
            id=job_id,
            owner=raw["owner"],
            state=JobState(raw["state"]),
            stages=json.loads(raw["stages"]),
            overrides=json.loads(raw.get("overrides", "{}")),
            inputs=[JobInput(**item) for item in json.loads(raw["inputs"])],
        )

    def job_settings(self, job: JobSpec) -> Settings:
        key = json.dumps(job.overrides, sort_keys=True)
        if key not in self._job_settings:
            # The gateway refuses these already; a job recorded any other way gets no further.
            check_job_overrides(job.overrides)
            if len(self._job_settings) > 64:
                self._job_settings.clear()
            self._job_settings[key] = self.settings.with_overrides(job.overrides)
        return self._job_settings[key]

    def store(self, job_id: str) -> tuple[S3Store, TransientRecorder]:
        """The job's store (the embedded layout under ``jobs/{job_id}/``) and its error recorder."""
        recorder = TransientRecorder(self.minio)
        return S3Store(self.settings.s3, prefix=f"jobs/{job_id}/", client=recorder), recorder

    def stage(self, name: str, ctx: StageContext) -> Stage:
        """The stage object, set up once per process (and again if its settings change)."""
        stage = self._stages.get(name)
        if stage is None:
            stage = self._stages[name] = build_stage(name)
        marker = (name, stage.fingerprint(ctx.settings))
        if marker not in self._set_up:
            stage.setup(ctx)
            self._set_up.add(marker)
        return stage


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(load_settings())
    return _runtime
