"""How every task is delivered and retried: its options, its lease, backoff on transient errors, and
sending the next message."""

from __future__ import annotations

import logging
import traceback

from celery import Task

from services.retry import backoff_delay
from workers.app import app
from workers.lease import message_lease
from workers.ledger import JobLedger
from workers.runtime import Runtime, runtime
from workers.transient import is_transient

log = logging.getLogger(__name__)

TASK_OPTIONS = dict(bind=True, acks_late=True, reject_on_worker_lost=True)


def retry_or_raise(task: Task, exc: BaseException) -> None:
    """Retry a transient error with exponential backoff (jittered); re-raise anything else."""
    if not is_transient(exc):
        raise exc
    conf = runtime().settings.redis
    countdown = backoff_delay(task.request.retries, 1.0, conf.retry_backoff_max_s)
    raise task.retry(exc=exc, countdown=countdown, max_retries=conf.task_max_retries)


def give_up_reason(task: Task, rt: Runtime, job_id: str, exc: BaseException) -> str | None:
    """Why the item fails for good, or None while a transient error is still worth retrying."""
    if is_transient(exc):
        if task.request.retries < rt.settings.redis.task_max_retries:
            return None
        return f"gave up after {task.request.retries} retries: {exc}"
    log.error("%s failed unexpectedly", task.name, exc_info=exc)
    trace = "".join(traceback.format_exception(exc)).rstrip()
    JobLedger(rt, job_id).log("ERROR", f"{task.name} {list(task.request.args or [])[1:]} failed unexpectedly:\n{trace}")
    return f"unexpected error: {type(exc).__name__}: {exc}"


def record_failure(task: Task, record) -> None:
    """Record an item's failure; if even that fails for a transient reason, retry the task later."""
    try:
        record()
    except Exception as exc:
        if not is_transient(exc):
            raise
        retry_or_raise(task, exc)


def run_or_fail(task: Task, job_id: str, work, fail) -> None:
    """Run ``work(rt)`` under the message's lease; when it fails for good, ``fail(rt, reason)`` records
    the item's failure (a job never waits forever on it)."""
    rt = runtime()
    try:
        with lease(task, rt):
            work(rt)
    except Exception as exc:
        reason = give_up_reason(task, rt, job_id, exc)
        if reason is None:
            retry_or_raise(task, exc)
        record_failure(task, lambda: fail(rt, reason))


def lease(task: Task, rt: Runtime):
    tag = (getattr(task.request, "properties", None) or {}).get("delivery_tag")
    return message_lease(rt.redis, tag, rt.settings.redis.lease_renew_s)


def send(name: str, args: list, queue: str) -> None:
    app.send_task(name, args=args, queue=queue)
