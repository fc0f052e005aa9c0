"""Which errors are worth retrying (the network, Redis, the object store being busy),
and a client wrapper that notices them even when a stage swallows the exception."""

from __future__ import annotations

from typing import Any

import redis
import urllib3.exceptions
from minio.error import S3Error, ServerError

# S3 answers that mean "try again later", not "this request is wrong".
_RETRYABLE_S3_CODES = {"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout", "OperationAborted"}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, urllib3.exceptions.HTTPError, ConnectionError,
                        TimeoutError, ServerError)):
        return True
    if isinstance(exc, S3Error):
        return exc.code in _RETRYABLE_S3_CODES
    return False


class TransientRecorder:
    """Wraps an object-store client and remembers transient errors raised through it.

    ``run_clip_stage`` turns every exception inside a stage into a clip failure
    (right for a broken clip); a storage outage is not the clip's fault, so the
    worker checks the recorder and retries the task instead of failing the clip.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self.errors: list[BaseException] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                if is_transient(exc):
                    self.errors.append(exc)
                raise

        return call
