"""Keep a running task's message invisible to other workers while it runs.

With the Redis broker, a delivered but unacknowledged message goes back to
its queue once it is older than the visibility timeout. A short timeout
recovers a crashed worker's task quickly but would hand a long stage to a
second worker while the first still runs it. So a running task renews its
lease (the message's timestamp in kombu's ``unacked_index``), as SQS's
ChangeMessageVisibility does; when the worker dies, renewals stop and the
message is restored one timeout later.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

log = logging.getLogger(__name__)

UNACKED_INDEX = "unacked_index"  # kombu's Redis transport default


@contextmanager
def message_lease(client: redis.Redis, delivery_tag: str | None, every_s: float) -> Iterator[None]:
    if not delivery_tag:
        yield
        return
    stop = threading.Event()
    parent = os.getppid()

    def renew() -> None:
        while not stop.wait(every_s):
            # A prefork child whose worker was killed must not keep the message hidden.
            if os.getppid() != parent:
                return
            try:
                # XX: only while it is still unacked (never re-adds an acked message).
                client.zadd(UNACKED_INDEX, {delivery_tag: time.time()}, xx=True)
            except redis.RedisError as exc:
                log.warning("could not renew the lease of %s: %s", delivery_tag, exc)

    thread = threading.Thread(target=renew, name="message-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
