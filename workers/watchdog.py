"""End jobs whose work has vanished, as ``failed`` with the reason.

An active job always has at least one task message somewhere: waiting in a queue list, or
delivered and not yet acknowledged (kombu's ``unacked`` hash, where a running task's message
stays until it returns, after sending the next one). A job with none has lost its work (a
Redis restart without persistence, a message dropped by hand, a bug) and would otherwise wait
forever. The finalize workers sweep the active jobs every ``redis.watchdog_interval_s``; a
job seen without any message on two sweeps in a row is failed and finalized.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable

import redis

from workers import state as st
from workers.routing import QUEUE_NAMES

log = logging.getLogger(__name__)

UNACKED = "unacked"  # kombu's Redis transport: delivery tag -> [message, exchange, routing key]
# kombu's Redis transport keeps messages with a priority in lists named queue + this + step.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
# A job is judged only this long after it was recorded: the gateway records it, then sends its
# first tasks (milliseconds, seconds on a loaded machine).
SUBMIT_GRACE_S = 10.0
VANISHED = ("its work vanished: no task of this job is queued or running any more "
            "(lost with a Redis restart or a removed message)")


def job_of_message(raw: bytes | str) -> str | None:
    """The job id a Celery task message is about (its first argument), if any."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # the unacked hash stores [message, exchange, routing key]
            message = message[0]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def jobs_with_messages(client: redis.Redis, queues: Iterable[str] = QUEUE_NAMES) -> set[str]:
    lists = [q for queue in queues for q in (queue, *(f"{queue}{PRIORITY_SEPARATOR}{s}" for s in PRIORITY_STEPS))]
    pipe = client.pipeline(transaction=False)
    for name in lists:
        pipe.lrange(name, 0, -1)
    pipe.hvals(UNACKED)
    found: set[str] = set()
    for batch in pipe.execute():
        for raw in batch:
            if (job := job_of_message(raw)) is not None:
                found.add(job)
    return found


class Watchdog:
    def __init__(self, client: redis.Redis, finalize: Callable[[str], None]) -> None:
        self.client = client
        self.finalize = finalize
        self.suspects: set[str] = set()

    def sweep(self) -> list[str]:
        """One pass; returns the jobs it failed."""
        active = {j.decode() for j in self.client.smembers(st.ACTIVE_JOBS)}
        if not active:
            self.suspects.clear()
            return []
        live = jobs_with_messages(self.client)
        idle = active - live
        failed = []
        for job_id in sorted(idle & self.suspects):
            keys = st.Keys(job_id)
            owner, created = self.client.hmget(keys.job, ["owner", "created"])
            if owner is None:  # its state is gone too: nothing left to end
                self.client.srem(st.ACTIVE_JOBS, job_id)
                continue
            if time.time() - float(created or 0) < SUBMIT_GRACE_S:
                continue
            if self.client.eval(*st.set_state_args(keys, st.JobState.failed, st.ACTIVE, "finished", VANISHED)):
                log.warning("job %s failed: %s", job_id, VANISHED)
                self.finalize(job_id)  # writes the tables of what was done, and job.json
                failed.append(job_id)
        self.suspects = idle
        return failed

    def run_forever(self, every_s: float, stop: threading.Event) -> None:
        while not stop.wait(every_s):
            try:
                self.sweep()
            except redis.RedisError as exc:  # Redis down: the next sweep tries again
                log.warning("watchdog sweep skipped: %s", exc)
                self.suspects.clear()


def start(client: redis.Redis, finalize: Callable[[str], None], every_s: float) -> threading.Event:
    stop = threading.Event()
    dog = Watchdog(client, finalize)
    threading.Thread(target=dog.run_forever, args=(every_s, stop), name="job-watchdog", daemon=True).start()
    return stop


