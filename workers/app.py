"""The Celery application: Redis broker, one queue per stage, never-lose-work settings.

``celery -A workers.app worker -Q score --concurrency 1`` runs a worker for one
queue; the settings come from the environment like everywhere else.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from services.settings import Settings, load_settings
from workers.routing import QUEUE_NAMES, task_routes


def make_celery(settings: Settings) -> Celery:
    app = Celery("spatialvid", broker=settings.redis.url, include=["workers.tasks", "workers.expand"])
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUE_NAMES],
        task_default_queue=QUEUE_NAMES[0],
        task_routes=task_routes(),
        # A task is acknowledged only once it has run; a worker that dies mid-task
        # leaves it to be delivered again (its stage outputs are overwritten, counts are sets).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_transport_options={
            "visibility_timeout": settings.redis.visibility_timeout_s,
            "unacked_restore_interval": settings.redis.restore_interval_s,
            "unacked_restore_throttle": 1,
        },
    )
    return app


app = make_celery(load_settings())
