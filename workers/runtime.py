"""What a worker process keeps between tasks: clients, stage objects, job specs.

Created lazily in the process that runs tasks (after the prefork fork), so no
connection is shared across processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from minio import Minio

from services.orchestration.plan import Plan
from services.settings import Settings, check_job_overrides, load_settings
from services.stages.base import Stage, StageContext
from services.stages.registry import build_stage
from services.storage.s3 import S3Store, make_client
from services.video.shared import DecodedClips
from workers.state import JOB_FIELDS, JobState, Keys
from workers.transient import TransientRecorder


# Jobs whose input lists a worker keeps (a worker sees few jobs at once; the lists can be long).
JOBS_REMEMBERED = 64


@dataclass(frozen=True)
class JobInput:
    source_id: str
    name: str  # what the user called it (the upload's file name, or the URI)
    uri: str  # s3://bucket/key or http(s)://...
    position: int = -1  # order among the job's inputs (clips are listed in this order)


@dataclass(frozen=True)
class JobSpec:
    id: str
    owner: str
    state: JobState
    stages: list[str]
    overrides: dict
    inputs: list[JobInput]  # as the request named them; a listed job's come page by page (lookup)
    n_videos: int = 0
    lookup: Callable[[str], JobInput | None] | None = field(default=None, compare=False, repr=False)

    def input(self, source_id: str) -> JobInput:
        found = next((i for i in self.inputs if i.source_id == source_id), None)
        if found is None and self.lookup is not None:
            found = self.lookup(source_id)
        if found is None:
            raise KeyError(f"job {self.id} has no input {source_id!r}")
        return found

    @property
    def plan(self) -> Plan:
        return Plan(self.stages)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis.Redis.from_url(settings.redis.url)
        self.minio: Minio = make_client(settings.s3)
        self.cache: dict[str, object] = {}  # StageContext.cache: models loaded by setup()
        # StageContext.decoded: one decode of a clip for the stages of one task (the annotate queue)
        self.decoded = DecodedClips.for_settings(settings.video)
        self._stages: dict[str, Stage] = {}
        self._build_stage = _stage_builder(settings)
        self._set_up: set[tuple[str, str]] = set()
        self._job_settings: dict[str, Settings] = {}
        self._inputs: dict[str, list[JobInput]] = {}

    def job(self, job_id: str) -> JobSpec | None:
        """The job as every task needs it: one small read (the input list, which can be long, is read
        once per process and job: it never changes)."""
        return self.job_from(job_id, self.redis.hmget(Keys(job_id).job, *JOB_FIELDS))

    def job_from(self, job_id: str, fields: list[bytes | None]) -> JobSpec | None:
        """The job from its ``JOB_FIELDS`` values as read (here or by a task's own first read)."""
        owner, state, stages, overrides, n_videos = fields
        if owner is None or state is None or stages is None:
            return None  # unknown, expired, or lost (a Redis restart without persistence)
        inputs = self._inputs.get(job_id)
        if inputs is None:
            raw = self.redis.hget(Keys(job_id).job, "inputs")
            inputs = [JobInput(**{"position": n, **item}) for n, item in enumerate(json.loads(raw or "[]"))]
            if len(self._inputs) >= JOBS_REMEMBERED:
                self._inputs.clear()
            self._inputs[job_id] = inputs
        return JobSpec(
            id=job_id,
            owner=owner.decode(),
            state=JobState(state.decode()),
            stages=json.loads(stages),
            overrides=json.loads(overrides or "{}"),
            inputs=inputs,
            n_videos=int(n_videos or 0),
            lookup=lambda source_id: self._listed_input(job_id, source_id),
        )

    def _listed_input(self, job_id: str, source_id: str) -> JobInput | None:
        raw = self.redis.hget(Keys(job_id).inputs, source_id)
        return JobInput(**json.loads(raw)) if raw else None

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
            stage = self._stages[name] = self._build_stage(name)
        marker = (name, stage.fingerprint(ctx.settings))
        if marker not in self._set_up:
            stage.setup(ctx)
            self._set_up.add(marker)
        return stage


# Benchmark only (bench/scale.py): the stages become stubs that sleep and write dummy files. It needs
# bench/, which the images do not ship (an ImportError there), and refuses a Redis off the loopback.
BENCH_STUBS_ENV = "SVID_BENCH_STUB_STAGES"


def _stage_builder(settings: Settings):
    plan = os.environ.get(BENCH_STUBS_ENV)
    if not plan:
        return build_stage
    from bench.stub_stages import stub_factory

    return stub_factory(plan, settings.redis.url)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(load_settings())
    return _runtime
