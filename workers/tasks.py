"""The Celery tasks: ingest (clip one video), one task per clip stage, finalize.

A video fans out into per-clip chains: each clip-stage task runs one stage on
one clip through ``services.execution.run_clip_stage`` (the embedded runner's
code) and then sends the clip to the next stage's queue. The chain ends when
the clip has been through every stage, was filtered out or failed; when the
last clip of the last video ends, ``finalize`` writes the job's tables.

Every task is idempotent: outputs are written under the same keys, clips are
counted by set membership, and a stage already done with the same settings is
not run again. Cancelling makes every later task of the job a no-op.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import traceback
from datetime import datetime, timezone
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import redis
from celery import Task
from celery.signals import worker_ready, worker_shutdown
from minio.error import S3Error

from services.execution import needs_run, run_clip_stage, run_video_stage
from services.export.run import export_job_formats
from services.inputs import VIDEO_SUFFIXES, file_digest
from services.netguard import ForbiddenSource, check_public_url
from services.pipeline import LOG_FILE, RunSummary, finish_outputs
from services.stages.clip import ingest_stage
from services.recordbook import RecordBook
from services.retry import backoff_delay
from services.settings import load_settings
from services.records import ClipRecord, StageState, StageStatus, VideoRecord, VideoState
from services.stages.base import StageContext, VideoOutcome
from workers import state as st
from workers import watchdog
from workers.app import app
from workers.lease import message_lease
from workers.routing import (ANNOTATE_STAGES, ANNOTATE_TASK, CLIP_STAGES, FINALIZE_TASK, INGEST_TASK, QUEUES,
                             next_task, stage_task)
from workers.runtime import JobSpec, Runtime, runtime
from workers.transient import is_transient

log = logging.getLogger(__name__)

TASK_OPTIONS = dict(bind=True, acks_late=True, reject_on_worker_lost=True)
# The job log keeps its last lines only: a job of many failing clips must not fill Redis.
MAX_LOG_LINES = 20_000
# Parallel bucket reads and writes in finalize: each is a round trip, not CPU.
FINALIZE_READERS = 16


class InputFailed(Exception):
    """The input cannot be fetched (missing object, HTTP error): the video fails, the job goes on."""


# -- plumbing shared by the tasks --------------------------------------------------
def _retry_or_raise(task: Task, exc: BaseException) -> None:
    """Retry a transient error with exponential backoff (jittered); re-raise anything else."""
    if not is_transient(exc):
        raise exc
    conf = runtime().settings.redis
    countdown = backoff_delay(task.request.retries, 1.0, conf.retry_backoff_max_s)
    raise task.retry(exc=exc, countdown=countdown, max_retries=conf.task_max_retries)


def _give_up_reason(task: Task, rt: Runtime, job_id: str, exc: BaseException) -> str | None:
    """Why the item fails for good, or None while a transient error is still worth retrying."""
    if is_transient(exc):
        if task.request.retries < rt.settings.redis.task_max_retries:
            return None
        return f"gave up after {task.request.retries} retries: {exc}"
    log.error("%s failed unexpectedly", task.name, exc_info=exc)
    trace = "".join(traceback.format_exception(exc)).rstrip()
    _job_log(rt, job_id, "ERROR", f"{task.name} {list(task.request.args or [])[1:]} failed unexpectedly:\n{trace}")
    return f"unexpected error: {type(exc).__name__}: {exc}"


def _job_log(rt: Runtime, job_id: str, level: str, message: str) -> None:
    """One line of the job's log (finalize writes it to spatialvid.log); never fails the caller."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    try:
        key = st.Keys(job_id).log
        pipe = rt.redis.pipeline(transaction=False)
        pipe.rpush(key, f"{stamp} {level} {socket.gethostname()}:{os.getpid()}: {message}")
        pipe.ltrim(key, -MAX_LOG_LINES, -1)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not add to job %s's log: %s", job_id, message)


def _record_failure(task: Task, record) -> None:
    """Record an item's failure; if even that fails for a transient reason, retry the task later."""
    try:
        record()
    except Exception as exc:
        if not is_transient(exc):
            raise
        _retry_or_raise(task, exc)


def _lease(task: Task, rt: Runtime):
    tag = (getattr(task.request, "properties", None) or {}).get("delivery_tag")
    return message_lease(rt.redis, tag, rt.settings.redis.lease_renew_s)


def _send(rt: Runtime, name: str, args: list, queue: str) -> None:
    app.send_task(name, args=args, queue=queue)


def _mark_running(rt: Runtime, keys: st.Keys) -> None:
    rt.redis.eval(*st.set_state_args(keys, st.JobState.running, (st.JobState.queued,), "started"))


def _observe_latency(rt: Runtime, stage: str, seconds: float, pipe=None) -> None:
    """Count one stage run into its latency histogram (on the caller's pipeline if given)."""
    key = st.stage_histogram_key(stage)
    own = pipe is None
    pipe = rt.redis.pipeline(transaction=False) if own else pipe
    for bound in st.LATENCY_BUCKETS:
        if seconds <= bound:
            pipe.hincrby(key, f"le:{bound}", 1)
    pipe.hincrby(key, "count", 1)
    pipe.hincrbyfloat(key, "sum", seconds)
    if own:
        pipe.execute()


def _finish_clip(rt: Runtime, job: JobSpec, book: RecordBook, clip: ClipRecord) -> None:
    """End the clip's chain: its final record to the bucket (the lasting copy), then count it in Redis."""
    book.save_clip(clip)
    keys = st.Keys(job.id)
    complete = rt.redis.eval(st.FINISH_CLIP, 5, keys.job, keys.ingested, keys.clips, keys.finished, keys.clipstate,
                             clip.id, _end_state(clip))
    if complete:
        _send(rt, FINALIZE_TASK, [job.id], QUEUES["finalize"])


def _end_state(clip: ClipRecord) -> str:
    if clip.failed_stage:
        return f"failed:{clip.failed_stage}"
    return "filtered" if clip.filtered_by else "done"


def _advance(rt: Runtime, job: JobSpec, book: RecordBook, clip: ClipRecord, after: str | None) -> None:
    """Send the clip to its next stage, or end its chain."""
    stages = job.clip_stages
    position = stages.index(after) + 1 if after else 0
    if clip.active and position < len(stages):
        nxt = stages[position]
        rt.redis.hset(st.Keys(job.id).clipstate, clip.id, f"queued:{nxt}")
        task, queue = next_task(stages, nxt, rt.settings.workers.annotate_together)
        _send(rt, task, [job.id, clip.id], queue)
    else:
        _finish_clip(rt, job, book, clip)


def _load_clip(rt: Runtime, book: RecordBook, keys: st.Keys, clip_id: str) -> ClipRecord | None:
    raw = rt.redis.hget(keys.records, clip_id)
    if raw:
        return st.unpack_record(raw)
    return book.load_clip(clip_id)


def _save_clip(rt: Runtime, keys: st.Keys, clip: ClipRecord, stage: str | None, attempt: str | None = None) -> None:
    """The record into Redis, with the stage's counts, in one transaction. Redis holds the clip's state
    while its chain runs (the broker's messages live there too); the bucket gets the record when the
    chain ends (``_finish_clip``) or the job is finalized, one write per clip instead of one per stage."""
    pipe = rt.redis.pipeline(transaction=True)
    pipe.hset(keys.records, clip.id, st.pack_record(clip))
    if stage is not None:
        status = clip.stages.get(stage)
        outcome = "done" if status and status.state is StageState.done else "failed"
        other = "failed" if outcome == "done" else "done"
        pipe.srem(keys.stage(stage, other), clip.id)
        pipe.sadd(keys.stage(stage, outcome), clip.id)
        if status:
            pipe.hincrbyfloat(keys.job, f"seconds:{stage}", status.seconds)
            _observe_latency(rt, stage, status.seconds, pipe)
    if attempt is not None:  # the delivery count matters only while the stage runs
        pipe.hdel(keys.attempts, attempt)
    pipe.execute()


# -- ingest -------------------------------------------------------------------------
@app.task(name=INGEST_TASK, **TASK_OPTIONS)
def ingest(self: Task, job_id: str, source_id: str) -> None:
    rt = runtime()
    try:
        with _lease(self, rt):
            _ingest(rt, job_id, source_id)
    except Exception as exc:
        reason = _give_up_reason(self, rt, job_id, exc)
        if reason is None:
            _retry_or_raise(self, exc)
        # Whatever went wrong, the video ends failed with its reason: a job never waits forever.
        _record_failure(self, lambda: _fail_video(rt, job_id, source_id, reason))


def _ingest(rt: Runtime, job_id: str, source_id: str) -> None:
    job = rt.job(job_id)
    if job is None:
        log.warning("ingest: job %s is unknown (expired?), dropping", job_id)
        return
    keys = st.Keys(job_id)
    if job.state is st.JobState.cancelled or job.state in st.TERMINAL:
        return
    _mark_running(rt, keys)
    store, recorder = rt.store(job_id)
    book = RecordBook(store)
    if rt.redis.sismember(keys.ingested, source_id):
        # A redelivery after the clips were registered: resend the clips still on their way.
        finished = {c.decode() for c in rt.redis.smembers(keys.finished)}
        video = book.load_video(source_id)
        for clip_id in (video.clip_ids if video else []):
            if clip_id not in finished and (clip := _load_clip(rt, book, keys, clip_id)) is not None:
                _advance(rt, job, book, clip, None)
        return
    item = job.input(source_id)
    settings = rt.job_settings(job)
    clipping = "clip" in job.stages
    with tempfile.TemporaryDirectory(prefix="spatialvid-ingest-") as tmp:
        ctx = StageContext(settings=settings, store=store, workdir=Path(tmp), cache=rt.cache)
        stage, fingerprint = ingest_stage(rt.stage("clip", ctx), clipping, settings)
        video = VideoRecord(source=item.name, source_id=source_id)
        try:
            local = _fetch_input(rt, item.uri, Path(tmp))
        except InputFailed as exc:
            outcome = VideoOutcome(video=video.model_copy(update={"state": VideoState.failed, "error": str(exc)}),
                                   clips=[])
            _register(rt, job, book, outcome, started=time.perf_counter())
            return
        video.sha256 = file_digest(local)
        if not rt.redis.hsetnx(keys.digests, video.sha256, source_id):
            first = rt.redis.hget(keys.digests, video.sha256).decode()
            if first != source_id:
                _register_skipped(rt, job, item.name, source_id, f"same content as {job.input(first).name}")
                return
        started = time.perf_counter()
        outcome = run_video_stage(stage, video, local, ctx, fingerprint)
    if recorder.errors and outcome.video.state is VideoState.failed:
        raise recorder.errors[-1]  # the store failed, not the video: retry
    _register(rt, job, book, outcome, started)


def _fetch_input(rt: Runtime, uri: str, folder: Path) -> Path:
    """Download the input to a local file (stages need a path)."""
    parsed = urlparse(uri)
    # The local name needs only the suffix (ffmpeg guesses containers by it): the object's own
    # name may be as long as S3 allows, longer than a file name may be.
    suffix = Path(parsed.path).suffix.lower()
    target = folder / f"input{suffix if suffix in VIDEO_SUFFIXES else ''}"
    if parsed.scheme == "s3":
        try:
            rt.minio.fget_object(parsed.netloc, parsed.path.lstrip("/"), str(target))
        except S3Error as exc:
            if is_transient(exc):
                raise
            raise InputFailed(f"cannot read {uri}: {exc.code}") from None
        return target
    limit = rt.settings.gateway.max_upload_bytes
    allow_private = rt.settings.gateway.allow_private_sources

    def refuse_private(request: httpx.Request) -> None:  # checked again on every redirect
        try:
            check_public_url(str(request.url), allow_private)
        except ForbiddenSource as exc:
            raise InputFailed(str(exc)) from None

    try:
        with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0, connect=10.0),
                          event_hooks={"request": [refuse_private]}) as http, \
                http.stream("GET", uri) as response:
            if response.status_code >= 500:
                raise ConnectionError(f"{uri} answered {response.status_code}")
            if response.status_code != 200:
                raise InputFailed(f"cannot download {uri}: HTTP {response.status_code}")
            size = 0
            with open(target, "wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise InputFailed(f"{uri} is larger than the limit of {limit} bytes")
                    handle.write(chunk)
    except httpx.TransportError as exc:
        if isinstance(exc, (httpx.ConnectError, httpx.TimeoutException)) and "Name or service" not in str(exc):
            raise ConnectionError(f"cannot download {uri}: {exc}") from exc
        raise InputFailed(f"cannot download {uri}: {exc}") from None
    return target


def _video_status(video: VideoRecord, state: str | None = None) -> st.VideoStatus:
    return st.VideoStatus(
        source=video.source,
        source_id=video.source_id,
        state=state or video.state.value,
        error=video.error,
        clips=len(video.clip_ids),
        dropped=video.dropped,
    )


def _register(rt: Runtime, job: JobSpec, book: RecordBook, outcome: VideoOutcome, started: float) -> None:
    """Save the video's clips and record (bucket), register them (Redis), start their chains."""
    keys = st.Keys(job.id)
    book.save_video(outcome.video)  # the clips' records reach the bucket when their chains end
    position = job.input(outcome.video.source_id).position
    order: list[str] = []
    for index, clip in enumerate(outcome.clips):
        order += [clip.id, str(position * 1_000_000 + index)]
    pipe = rt.redis.pipeline(transaction=True)
    for clip in outcome.clips:
        pipe.hset(keys.records, clip.id, st.pack_record(clip))
    pipe.hincrbyfloat(keys.job, "seconds:clip", time.perf_counter() - started)
    pipe.execute()
    complete = rt.redis.eval(st.REGISTER_VIDEO, 6, keys.job, keys.videos, keys.ingested, keys.clips, keys.clipstate,
                             keys.finished, outcome.video.source_id, _video_status(outcome.video).model_dump_json(),
                             *order)
    video = outcome.video
    if video.state is VideoState.done:
        _observe_latency(rt, "clip", video.seconds)
        _job_log(rt, job.id, "INFO", f"{video.source}: clipped into {len(outcome.clips)} clip(s)")
    else:
        _job_log(rt, job.id, "WARNING", f"{video.source}: {video.state.value}: {video.error}")
    for clip in outcome.clips:
        _advance(rt, job, book, clip, None)
    if complete:
        _send(rt, FINALIZE_TASK, [job.id], QUEUES["finalize"])


def _register_skipped(rt: Runtime, job: JobSpec, name: str, source_id: str, reason: str) -> None:
    keys = st.Keys(job.id)
    status = st.VideoStatus(source=name, source_id=source_id, state="skipped", error=None,
                            dropped={reason: 1})
    complete = rt.redis.eval(st.REGISTER_VIDEO, 6, keys.job, keys.videos, keys.ingested, keys.clips, keys.clipstate,
                             keys.finished, source_id, status.model_dump_json())
    if complete:
        _send(rt, FINALIZE_TASK, [job.id], QUEUES["finalize"])


def _fail_video(rt: Runtime, job_id: str, source_id: str, reason: str) -> None:
    job = rt.job(job_id)
    if job is None:
        return
    if rt.redis.sismember(st.Keys(job_id).ingested, source_id):
        # Its clips are registered and on their way: the failure came later, and the video stands.
        _job_log(rt, job_id, "WARNING", f"{job.input(source_id).name}: after registering its clips: {reason}")
        return
    store, _ = rt.store(job_id)
    video = VideoRecord(source=job.input(source_id).name, source_id=source_id, state=VideoState.failed, error=reason)
    _register(rt, job, RecordBook(store), VideoOutcome(video=video, clips=[]), time.perf_counter())


# -- clip stages --------------------------------------------------------------------
def _make_stage_task(stage_name: str):
    @app.task(name=stage_task(stage_name), **TASK_OPTIONS)
    def run_stage(self: Task, job_id: str, clip_id: str) -> None:
        rt = runtime()
        try:
            with _lease(self, rt):
                _run_stage(rt, stage_name, job_id, clip_id, self.request.retries)
        except Exception as exc:
            reason = _give_up_reason(self, rt, job_id, exc)
            if reason is None:
                _retry_or_raise(self, exc)
            _record_failure(self, lambda: _fail_clip(rt, job_id, clip_id, stage_name, reason))

    return run_stage


def _run_stage(rt: Runtime, stage_name: str, job_id: str, clip_id: str, retries: int, advance: bool = True) -> None:
    job = rt.job(job_id)
    if job is None or job.state in st.TERMINAL:
        if job is not None and job.state is st.JobState.cancelled:
            rt.redis.hset(st.Keys(job_id).clipstate, clip_id, "cancelled")
        return  # cancelled (queued work is dropped) or a stale duplicate of a finished job
    keys = st.Keys(job_id)
    attempt = f"{clip_id}:{stage_name}:{retries}"
    pipe = rt.redis.pipeline(transaction=False)  # one round trip: count the delivery, read the record
    pipe.hincrby(keys.attempts, attempt, 1)
    pipe.hget(keys.records, clip_id)
    deliveries, raw = pipe.execute()
    if deliveries > rt.settings.redis.max_deliveries:
        _fail_clip(rt, job_id, clip_id, stage_name,
                   f"its worker was lost {deliveries - 1} times while running {stage_name} on this clip")
        return
    store, recorder = rt.store(job_id)
    book = RecordBook(store)
    clip = st.unpack_record(raw) if raw else book.load_clip(clip_id)
    if clip is None:
        log.warning("%s: clip %s of job %s has no record, dropping", stage_name, clip_id, job_id)
        return
    settings = rt.job_settings(job)
    # run_clip_stage gives the run its own scratch folder; setup() writes nothing there
    ctx = StageContext(settings=settings, store=store, workdir=Path(tempfile.gettempdir()), cache=rt.cache,
                       decoded=rt.decoded)
    stage = rt.stage(stage_name, ctx)
    position = job.stages.index(stage_name)
    prerequisites = [n for n in job.stages[:position] if n != "clip"]
    fingerprint = stage.fingerprint(settings)
    if needs_run(stage, clip, fingerprint, prerequisites, force=False):
        rt.redis.hset(keys.clipstate, clip_id, f"running:{stage_name}")
        result = run_clip_stage(stage, clip, ctx, fingerprint)
        if recorder.errors and result.failed_stage == stage_name:
            raise recorder.errors[-1]  # the store failed, not the clip: retry
        if result.failed_stage == stage_name:
            _job_log(rt, job_id, "WARNING", f"clip {clip_id} failed in {stage_name}: "
                     f"{result.stages[stage_name].error}")
        # a first delivery's count is forgotten once it ran; a redelivered one's stays, as the record of it
        _save_clip(rt, keys, result, stage_name, attempt if deliveries == 1 else None)
        clip = result
        if _state(rt, keys) is st.JobState.cancelled:
            # Cancelled while this stage ran: its work counts (Redis has its record), so finalize
            # writes the tables and job.json again to say so too.
            _send(rt, FINALIZE_TASK, [job_id], QUEUES["finalize"])
    if advance:
        _advance(rt, job, book, clip, stage_name)


def _state(rt: Runtime, keys: st.Keys) -> st.JobState | None:
    raw = rt.redis.hget(keys.job, "state")
    return st.JobState(raw.decode()) if raw else None


def _fail_clip(rt: Runtime, job_id: str, clip_id: str, stage_name: str, reason: str) -> None:
    """A poison clip (or a persistent outage): it fails alone, with its reason, and the job goes on."""
    job = rt.job(job_id)
    if job is None:
        return
    keys = st.Keys(job_id)
    store, _ = rt.store(job_id)
    book = RecordBook(store)
    clip = _load_clip(rt, book, keys, clip_id)
    if clip is None:
        return
    clip = clip.model_copy(deep=True)
    clip.stages[stage_name] = StageStatus(state=StageState.failed, error=reason)
    _save_clip(rt, keys, clip, stage_name)
    _job_log(rt, job_id, "WARNING", f"clip {clip_id} failed in {stage_name}: {reason}")
    _finish_clip(rt, job, book, clip)


STAGE_TASKS = {name: _make_stage_task(name) for name in CLIP_STAGES}


@app.task(name=ANNOTATE_TASK, **TASK_OPTIONS)
def annotate(self: Task, job_id: str, clip_id: str) -> None:
    """Camera then depth on one clip, both fed by one decode of it (the ``annotate`` queue)."""
    rt = runtime()
    running = [ANNOTATE_STAGES[0]]
    try:
        with _lease(self, rt):
            _annotate(rt, job_id, clip_id, self.request.retries, running)
    except Exception as exc:
        reason = _give_up_reason(self, rt, job_id, exc)
        if reason is None:
            _retry_or_raise(self, exc)
        _record_failure(self, lambda: _fail_clip(rt, job_id, clip_id, running[0], reason))


def _annotate(rt: Runtime, job_id: str, clip_id: str, retries: int, running: list[str]) -> None:
    job = rt.job(job_id)
    store = rt.store(job_id)[0] if job is not None else None
    clip = _load_clip(rt, RecordBook(store), st.Keys(job_id), clip_id) if store is not None else None
    wanted = []
    if clip is not None and rt.settings.video.share_decode:
        ctx = StageContext(settings=rt.job_settings(job), store=store, workdir=Path(tempfile.gettempdir()),
                           cache=rt.cache)
        wanted = [r for name in ANNOTATE_STAGES for r in rt.stage(name, ctx).frame_requests(clip, ctx.settings)]
    with rt.decoded.open(store, clip, wanted):
        for name in ANNOTATE_STAGES:
            running[0] = name
            _run_stage(rt, name, job_id, clip_id, retries, advance=name == ANNOTATE_STAGES[-1])


# -- finalize -----------------------------------------------------------------------
@app.task(name=FINALIZE_TASK, **TASK_OPTIONS)
def finalize(self: Task, job_id: str) -> None:
    rt = runtime()
    try:
        with _lease(self, rt):
            _finalize(rt, job_id)
    except Exception as exc:
        if is_transient(exc) and self.request.retries < rt.settings.redis.task_max_retries:
            _retry_or_raise(self, exc)
        log.exception("finalize failed for job %s", job_id)
        keys = st.Keys(job_id)
        rt.redis.hset(keys.job, "error", f"finalize failed: {type(exc).__name__}: {exc}")
        rt.redis.eval(*st.set_state_args(keys, st.JobState.failed, st.ACTIVE, "finished"))
        raise


def _finalize(rt: Runtime, job_id: str) -> None:
    job = rt.job(job_id)
    keys = st.Keys(job_id)
    if job is None:
        # Unknown or lost: what late tasks wrote after the loss must not stay in Redis forever.
        pipe = rt.redis.pipeline(transaction=False)
        for key in keys.all():
            pipe.expire(key, rt.settings.redis.job_ttl_s)
        pipe.execute()
        return
    store, _ = rt.store(job_id)
    book = RecordBook(store)
    clips = sorted(_final_records(rt, keys, book), key=lambda c: (c.source_id, c.frame_start))
    video_records = _read_all(book.all_video_keys(), book.load_video_key)
    videos = [st.VideoStatus.model_validate_json(v) for v in rt.redis.hvals(keys.videos)]
    summary = _summary(rt, job, video_records, videos, keys)
    finish_outputs(store, book, summary, clips, all_clips=clips, all_videos=video_records)
    # Training exports the job asked for (export.formats), beside its native layout: export/{format}/
    export_job_formats(store, rt.job_settings(job).export)
    # The final state: decided from what the records say.
    failed_videos = [v for v in videos if v.state == VideoState.failed.value]
    failed_clips = [c for c in clips if c.failed_stage]
    if job.state is st.JobState.cancelled:
        final = st.JobState.cancelled
    elif not videos and rt.redis.hget(keys.job, "error"):  # a listing that yielded nothing
        final = st.JobState.failed
    elif videos and len(failed_videos) == len(videos) or clips and len(failed_clips) == len(clips):
        final = st.JobState.failed
    elif failed_videos or failed_clips:
        final = st.JobState.partially_failed
    else:
        final = st.JobState.succeeded
    # job.json first (with the final state), then the state in Redis: a client that
    # sees the job ended finds every file in the bucket.
    shown = job.state if job.state in st.TERMINAL else final
    _job_log(rt, job_id, "INFO", f"job {shown.value}: {len(clips)} clip(s), {len(failed_clips)} failed, "
             f"{len(failed_videos)} of {len(videos)} video(s) failed")
    store.put_bytes(LOG_FILE, "".join(f"{line.decode()}\n" for line in rt.redis.lrange(keys.log, 0, -1)).encode())
    _write_job_json(rt, store, keys, job_id, final)
    changed = rt.redis.eval(*st.set_state_args(keys, final, st.ACTIVE, "finished"))
    if not changed:  # cancelled (or ended) meanwhile: the bucket gets the state Redis has
        _write_job_json(rt, store, keys, job_id, None)
    ttl = rt.settings.redis.job_ttl_s
    pipe = rt.redis.pipeline(transaction=False)
    for key in keys.all():
        pipe.expire(key, ttl)
    pipe.execute()


def _read_all(keys: list[str], load) -> list:
    """Load many small objects from the bucket at once: finalize reads one per video (latency-bound)."""
    with ThreadPoolExecutor(FINALIZE_READERS) as pool:
        return [item for item in pool.map(load, keys) if item is not None]


def _final_records(rt: Runtime, keys: st.Keys, book: RecordBook) -> list[ClipRecord]:
    """Every clip's record, read from Redis in batches (10,000 bucket reads would take minutes). Clips
    whose chain did not end (a cancelled job) get their record written to the bucket here."""
    finished = {c.decode() for c in rt.redis.smembers(keys.finished)}
    records = [st.unpack_record(raw) for _, raw in rt.redis.hscan_iter(keys.records, count=1000)]
    if not records:  # Redis lost them (a flushed instance): the bucket has every record written
        return book.all_clips()
    unfinished = [clip for clip in records if clip.id not in finished]
    if unfinished:
        with ThreadPoolExecutor(FINALIZE_READERS) as pool:
            list(pool.map(book.save_clip, unfinished))
    return records


def _summary(rt: Runtime, job: JobSpec, video_records: list[VideoRecord], videos: list[st.VideoStatus],
             keys: st.Keys) -> RunSummary:
    summary = RunSummary(stages=job.stages, videos_in=job.n_videos,
                         output=f"s3://{rt.settings.s3.bucket}/jobs/{job.id}/")
    for video in videos:
        if video.state == VideoState.failed.value:
            summary.videos_failed[video.source] = video.error or "unknown error"
        elif video.state == "skipped":
            summary.videos_skipped[video.source] = next(iter(video.dropped), "skipped")
    dropped: Counter[str] = Counter()
    for record in video_records:
        for reason, n in record.dropped.items():
            dropped[f"clip: {reason}"] += n
    summary.dropped = dict(dropped)
    raw = {k.decode(): v.decode() for k, v in rt.redis.hgetall(keys.job).items()}
    summary.stage_seconds = {k.split(":", 1)[1]: float(v) for k, v in raw.items() if k.startswith("seconds:")}
    summary.stage_items["clip"] = job.n_videos
    pipe = rt.redis.pipeline(transaction=False)
    for stage in job.clip_stages:
        pipe.scard(keys.stage(stage, "done"))
        pipe.scard(keys.stage(stage, "failed"))
    counts = pipe.execute()
    for i, stage in enumerate(job.clip_stages):
        summary.stage_items[stage] = counts[2 * i] + counts[2 * i + 1]
    return summary


def _write_job_json(rt: Runtime, store, keys: st.Keys, job_id: str, final: st.JobState | None) -> None:
    pipe = rt.redis.pipeline(transaction=False)
    st.queue_status_reads(pipe, keys)
    found = st.status_from_reads(job_id, pipe.execute())
    if found is None:
        return
    owner, status = found
    if final is not None:
        status.state = final
        status.progress = 1.0
        status.timings.finished_at = st.now()
        status.timings.elapsed_s = round(status.timings.finished_at - status.timings.created_at, 3)
    payload = {"owner": owner, **status.model_dump(mode="json")}
    store.put_bytes("job.json", json.dumps(payload, indent=2).encode())


# -- worker lifecycle: the stack waits for every queue's worker to say it is ready ---------
def _worker_registry() -> redis.Redis:
    return redis.Redis.from_url(load_settings().redis.url)


@worker_ready.connect
def _announce(sender=None, **_: object) -> None:
    queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []
    if QUEUES["finalize"] in queues:
        settings = load_settings()
        watchdog.start(_worker_registry(), lambda job_id: app.send_task(FINALIZE_TASK, args=[job_id],
                                                                        queue=QUEUES["finalize"]),
                       settings.redis.watchdog_interval_s)
    _worker_registry().hset(st.WORKERS, f"{socket.gethostname()}:{os.getpid()}",
                            json.dumps({"pid": os.getpid(), "queues": queues, "since": time.time()}))


@worker_shutdown.connect
def _retire(**_: object) -> None:
    try:
        _worker_registry().hdel(st.WORKERS, f"{socket.gethostname()}:{os.getpid()}")
    except redis.RedisError:  # shutting down: best effort
        pass
