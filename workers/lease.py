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
import math
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
    renewer = _renewer()
    renewer.hold(delivery_tag, client, every_s)
    try:
        yield
    finally:
        renewer.release(delivery_tag)


class _Renewer:
    """One thread per process renews every lease its running tasks hold (a thread per task would cost
    each task a thread start, which waits for the scheduler on a busy machine)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._parent = os.getppid()
        self._leases: dict[str, tuple[redis.Redis, float, float]] = {}  # tag -> (client, every_s, next renewal)
        self._changed = threading.Condition()
        # When the thread next looks at the leases by itself (monotonic; -inf while it is awake, +inf while it
        # waits to be told), and how often it looks while it holds none (the shortest renewal period held yet).
        self._wakes_at = math.inf
        self._idle_s = math.inf
        threading.Thread(target=self._run, name="message-lease", daemon=True).start()

    def hold(self, tag: str, client: redis.Redis, every_s: float) -> None:
        with self._changed:
            at = time.monotonic() + every_s
            self._leases[tag] = (client, every_s, at)
            self._idle_s = min(self._idle_s, every_s)
            # Woken only when it would look too late: waking it at every task start made the task wait for
            # the GIL behind it on a busy machine. Idle, it looks every _idle_s, so a lease of that period
            # taken any time after it last looked falls due no earlier than its next look.
            if at < self._wakes_at:
                self._changed.notify()
                self._wakes_at = -math.inf  # told: it looks at every lease before it waits again

    def release(self, tag: str) -> None:
        with self._changed:
            self._leases.pop(tag, None)

    def _due(self) -> list[tuple[str, redis.Redis]]:
        """The leases to renew now (their next renewal set), after waiting for the first of them."""
        with self._changed:
            while True:
                now = time.monotonic()
                due = [(tag, client) for tag, (client, _, at) in self._leases.items() if at <= now]
                if due:
                    for tag, _ in due:
                        client, every_s, _ = self._leases[tag]
                        self._leases[tag] = (client, every_s, now + every_s)
                    return due
                first = min((at for _, _, at in self._leases.values()), default=now + self._idle_s)
                self._wakes_at = first
                self._changed.wait(None if first == math.inf else first - now)
                self._wakes_at = -math.inf

    def _run(self) -> None:
        while True:
            due = self._due()
            # A prefork child whose worker was killed must not keep its messages hidden.
            if os.getppid() != self._parent:
                return
            for tag, client in due:
                try:
                    # XX: only while it is still unacked (never re-adds an acked message).
                    client.zadd(UNACKED_INDEX, {tag: time.time()}, xx=True)
                except redis.RedisError as exc:
                    log.warning("could not renew the lease of %s: %s", tag, exc)


_instance: _Renewer | None = None
_instance_lock = threading.Lock()


def _renewer() -> _Renewer:
    """This process's renewer (a forked child starts its own: threads do not survive a fork)."""
    global _instance
    with _instance_lock:
        if _instance is None or _instance.pid != os.getpid():
            _instance = _Renewer()
        return _instance
