"""The Celery executor: ingest (clip one video), one task per clip stage, finalize.

A video fans out into per-clip chains: each clip-stage task runs one stage on one clip through
``services.execution.run_clip_stage`` (the embedded executor's code) and then sends the clip to the
next stage's queue. What runs next, and how it is counted, is decided in ``services/orchestration``;
these tasks only move records (``workers/ledger.py``) and messages. The chain ends when the clip has
been through every stage, was filtered out or failed; when the last clip of the last video ends,
``finalize`` writes the job's tables.

Every task is idempotent: outputs are written under the same keys, clips are counted by set membership,
and a stage already done with the same settings is not run again. Cancelling makes every later task of
the job a no-op.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from celery import Task

from services.execution import run_clip_stage, run_video_stage
from services.export.run import export_job_formats
from services.inputs import file_digest
from services.orchestration import accounting, ingest as videos
from services.orchestration.outputs import finish_outputs
from services.orchestration.plan import CLIPPING
from services.records import ClipRecord, VideoRecord, VideoState
from services.stages.base import StageContext, VideoOutcome
from workers import final
from workers import lifecycle  # noqa: F401  (a worker announces itself when ready)
from workers import state as st
from workers.app import app
from workers.delivery import TASK_OPTIONS, lease, retry_or_raise, run_or_fail, send
from workers.fetch import InputFailed, fetch_input
from workers.ledger import JobLedger
from workers.routing import (ANNOTATE_STAGES, ANNOTATE_TASK, CLIP_STAGES, FINALIZE_TASK, INGEST_TASK, QUEUES,
                             next_task, stage_task)
from workers.runtime import JobSpec, Runtime, runtime
from workers.transient import is_transient

log = logging.getLogger(__name__)


# -- messages ---------------------------------------------------------------------------------------
def advance(ledger: JobLedger, job: JobSpec, clip: ClipRecord, after: str | None) -> None:
    """Send the clip to its next stage, or end its chain."""
    nxt = job.plan.next_stage(clip, after)
    if nxt is None:
        finalize_if(ledger.finish_clip(clip), job.id)
    else:
        ledger.mark(clip.id, f"queued:{nxt}")
        send_to(ledger, job, clip.id, nxt)


def send_to(ledger: JobLedger, job: JobSpec, clip_id: str, stage: str) -> None:
    """The message that runs ``stage`` on the clip, on its queue."""
    task, queue = next_task(job.plan.clip_stages, stage, ledger.rt.settings.workers.annotate_together)
    send(task, [job.id, clip_id], queue)


def finalize_if(complete: bool, job_id: str) -> None:
    if complete:
        send(FINALIZE_TASK, [job_id], QUEUES["finalize"])


def register(ledger: JobLedger, job: JobSpec, outcome: VideoOutcome, started: float) -> None:
    """Register the video's outcome and its clips, then start their chains."""
    complete = ledger.register_video(job.input(outcome.video.source_id).position, outcome, started)
    video = outcome.video
    if video.state is VideoState.done:
        ledger.observe_latency(CLIPPING, video.seconds)
        ledger.log("INFO", f"{video.source}: clipped into {len(outcome.clips)} clip(s)")
    else:
        ledger.log("WARNING", f"{video.source}: {video.state.value}: {video.error}")
    for clip in outcome.clips:
        advance(ledger, job, clip, None)
    finalize_if(complete, job.id)


# -- ingest -----------------------------------------------------------------------------------------
@app.task(name=INGEST_TASK, **TASK_OPTIONS)
def ingest(self: Task, job_id: str, source_id: str) -> None:
    # Whatever goes wrong, the video ends failed with its reason: a job never waits forever.
    run_or_fail(self, job_id, lambda rt: _ingest(rt, job_id, source_id),
                lambda rt, reason: _fail_video(rt, job_id, source_id, reason))


def _ingest(rt: Runtime, job_id: str, source_id: str) -> None:
    job = rt.job(job_id)
    if job is None:
        log.warning("ingest: job %s is unknown (expired?), dropping", job_id)
        return
    if job.state in st.TERMINAL:
        return
    ledger = JobLedger(rt, job_id)
    ledger.set_state(st.JobState.running, (st.JobState.queued,), "started")
    if ledger.ingested(source_id):
        # A redelivery after the clips were registered: resend the clips still on their way.
        finished = ledger.finished_ids()
        for clip_id in videos.clips_in_flight(ledger.book.load_video(source_id), finished):
            if (clip := ledger.load_clip(clip_id)) is not None:
                advance(ledger, job, clip, None)
        return
    item = job.input(source_id)
    settings = rt.job_settings(job)
    with tempfile.TemporaryDirectory(prefix="spatialvid-ingest-") as tmp:
        ctx = StageContext(settings=settings, store=ledger.store, workdir=Path(tmp), cache=rt.cache)
        stage, fingerprint = job.plan.ingest(rt.stage(CLIPPING, ctx), settings)
        video = VideoRecord(source=item.name, source_id=source_id)
        try:
            local = fetch_input(rt, item.uri, Path(tmp))
        except InputFailed as exc:
            register(ledger, job, videos.failed(video, str(exc)), time.perf_counter())
            return
        video.sha256 = file_digest(local)
        reason = videos.duplicate_reason(ledger.claim_digest, video.sha256, source_id, lambda s: job.input(s).name)
        if reason:
            finalize_if(ledger.register_skipped(item.name, source_id, reason), job_id)
            return
        started = time.perf_counter()
        outcome = run_video_stage(stage, video, local, ctx, fingerprint)
    if fault := accounting.store_fault(outcome.video.state is VideoState.failed, ledger.recorder.errors):
        raise fault  # the store failed, not the video: retry
    register(ledger, job, outcome, started)


def _fail_video(rt: Runtime, job_id: str, source_id: str, reason: str) -> None:
    job = rt.job(job_id)
    if job is None:
        return
    ledger = JobLedger(rt, job_id)
    if ledger.ingested(source_id):
        # Its clips are registered and on their way: the failure came later, and the video stands.
        ledger.log("WARNING", f"{job.input(source_id).name}: after registering its clips: {reason}")
        return
    video = VideoRecord(source=job.input(source_id).name, source_id=source_id)
    register(ledger, job, videos.failed(video, reason), time.perf_counter())


# -- clip stages ------------------------------------------------------------------------------------
def _make_stage_task(stage_name: str):
    @app.task(name=stage_task(stage_name), **TASK_OPTIONS)
    def run_stage(self: Task, job_id: str, clip_id: str) -> None:
        run_or_fail(self, job_id, lambda rt: _run_stage(rt, stage_name, job_id, clip_id, self.request.retries),
                    lambda rt, reason: _fail_clip(rt, job_id, clip_id, stage_name, reason))

    return run_stage


def _run_stage(rt: Runtime, stage_name: str, job_id: str, clip_id: str, retries: int,
               then_advance: bool = True) -> None:
    ledger = JobLedger(rt, job_id)
    attempt = f"{clip_id}:{stage_name}:{retries}"
    fields, deliveries, raw = ledger.begin_stage(clip_id, attempt, stage_name)
    job = rt.job_from(job_id, fields)
    if job is None or job.state in st.TERMINAL:
        if job is not None and job.state is st.JobState.cancelled:
            ledger.mark(clip_id, "cancelled")
        return  # cancelled (queued work is dropped) or a stale duplicate of a finished job
    if lost := accounting.lost_worker(stage_name, deliveries, rt.settings.redis.max_deliveries):
        _fail_clip(rt, job_id, clip_id, stage_name, lost)
        return
    clip = ledger.record_from(raw, clip_id)
    if clip is None:
        log.warning("%s: clip %s of job %s has no record, dropping", stage_name, clip_id, job_id)
        return
    settings = rt.job_settings(job)
    # run_clip_stage gives the run its own scratch folder; setup() writes nothing there
    ctx = StageContext(settings=settings, store=ledger.store, workdir=Path(tempfile.gettempdir()), cache=rt.cache,
                       decoded=rt.decoded)
    stage = rt.stage(stage_name, ctx)
    fingerprint = stage.fingerprint(settings)
    if not job.plan.needs_run(stage, clip, fingerprint):
        if then_advance:
            advance(ledger, job, clip, stage_name)
        return
    if raw is None:  # the record came from the bucket: begin_stage marked nothing
        ledger.mark(clip_id, f"running:{stage_name}")
    clip = run_clip_stage(stage, clip, ctx, fingerprint)
    if clip.failed_stage == stage_name:
        if fault := accounting.store_fault(True, ledger.recorder.errors):
            raise fault  # the store failed, not the clip: retry
        ledger.log("WARNING", f"clip {clip_id} failed in {stage_name}: {clip.stages[stage_name].error}")
    nxt = job.plan.next_stage(clip, stage_name) if then_advance else None
    # One transaction: the record and counts, the clip queued for its next stage or its chain ended, the job's
    # state read. A first delivery's count is forgotten once it ran; a redelivered one's stays, as the record of it.
    state, complete = ledger.save_clip(clip, stage_name, attempt if deliveries == 1 else None,
                                       then=nxt, finish=then_advance and nxt is None)
    # Cancelled while this stage ran: its work counts (Redis has its record), so finalize writes the
    # tables and job.json again to say so too.
    finalize_if(complete or state is st.JobState.cancelled, job_id)
    if nxt is not None:
        send_to(ledger, job, clip_id, nxt)


def _fail_clip(rt: Runtime, job_id: str, clip_id: str, stage_name: str, reason: str) -> None:
    """A poison clip (or a persistent outage): it fails alone, with its reason, and the job goes on."""
    if rt.job(job_id) is None:
        return
    ledger = JobLedger(rt, job_id)
    clip = ledger.load_clip(clip_id)
    if clip is None:
        return
    clip = accounting.failed_in(clip, stage_name, reason)
    ledger.log("WARNING", f"clip {clip_id} failed in {stage_name}: {reason}")
    finalize_if(ledger.save_clip(clip, stage_name, finish=True)[1], job_id)


STAGE_TASKS = {name: _make_stage_task(name) for name in CLIP_STAGES}


@app.task(name=ANNOTATE_TASK, **TASK_OPTIONS)
def annotate(self: Task, job_id: str, clip_id: str) -> None:
    """Camera then depth on one clip, both fed by one decode of it (the ``annotate`` queue)."""
    running = [ANNOTATE_STAGES[0]]  # the stage a failure is charged to
    run_or_fail(self, job_id, lambda rt: _annotate(rt, job_id, clip_id, self.request.retries, running),
                lambda rt, reason: _fail_clip(rt, job_id, clip_id, running[0], reason))


def _annotate(rt: Runtime, job_id: str, clip_id: str, retries: int, running: list[str]) -> None:
    job = rt.job(job_id)
    ledger = JobLedger(rt, job_id) if job is not None else None
    clip = ledger.load_clip(clip_id) if ledger is not None else None
    wanted = []
    if clip is not None:
        ctx = StageContext(settings=rt.job_settings(job), store=ledger.store, workdir=Path(tempfile.gettempdir()),
                           cache=rt.cache)
        stages = [rt.stage(name, ctx) for name in ANNOTATE_STAGES]
        wanted = job.plan.shared_frames(stages, clip, ctx.settings)  # the video section is the operator's alone
    with rt.decoded.open(ledger.store if ledger else None, clip, wanted):
        for name in ANNOTATE_STAGES:
            running[0] = name
            _run_stage(rt, name, job_id, clip_id, retries, then_advance=name == ANNOTATE_STAGES[-1])


# -- finalize ---------------------------------------------------------------------------------------
@app.task(name=FINALIZE_TASK, **TASK_OPTIONS)
def finalize(self: Task, job_id: str) -> None:
    rt = runtime()
    try:
        with lease(self, rt):
            _finalize(rt, job_id)
    except Exception as exc:
        if is_transient(exc) and self.request.retries < rt.settings.redis.task_max_retries:
            retry_or_raise(self, exc)
        log.exception("finalize failed for job %s", job_id)
        ledger = JobLedger(rt, job_id)
        rt.redis.hset(ledger.keys.job, "error", f"finalize failed: {type(exc).__name__}: {exc}")
        ledger.set_state(st.JobState.failed, st.ACTIVE, "finished")
        raise


def _finalize(rt: Runtime, job_id: str) -> None:
    job = rt.job(job_id)
    ledger = JobLedger(rt, job_id)
    if job is None:
        ledger.expire()  # unknown or lost: what late tasks wrote after the loss must not stay in Redis
        return
    clips = final.clip_records(ledger)
    records = final.video_records(ledger)
    statuses = ledger.video_statuses()
    summary = final.summary(job, ledger, records, statuses, f"s3://{rt.settings.s3.bucket}/jobs/{job.id}/")
    finish_outputs(ledger.store, ledger.book, summary, clips, all_clips=clips, all_videos=records)
    # Training exports the job asked for (export.formats), beside its native layout: export/{format}/
    export_job_formats(ledger.store, rt.job_settings(job).export)
    states = [v.state for v in statuses]
    ended = st.JobState(accounting.final_state(job.state is st.JobState.cancelled,
                                               not statuses and bool(ledger.error()), states, clips))
    # job.json first (with the final state), then the state in Redis: a client that sees the job ended
    # finds every file in the bucket.
    shown = job.state if job.state in st.TERMINAL else ended
    ledger.log("INFO", accounting.job_report(shown.value, clips, summary, states))
    final.write_log(ledger)
    final.write_job_json(ledger, ended)
    if not ledger.set_state(ended, st.ACTIVE, "finished"):  # cancelled (or ended) meanwhile:
        final.write_job_json(ledger, None)  # the bucket gets the state Redis has
    ledger.expire()
