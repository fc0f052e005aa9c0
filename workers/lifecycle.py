"""A worker's life: it says when it is ready (the stack waits for every queue's worker) and leaves the
registry when it stops; the worker that consumes the finalize queue also runs the watchdog."""

from __future__ import annotations

import json
import os
import socket
import time

import redis
from celery.signals import worker_ready, worker_shutdown

from services.settings import load_settings
from workers import state as st
from workers import watchdog
from workers.app import app
from workers.routing import FINALIZE_TASK, QUEUES


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
