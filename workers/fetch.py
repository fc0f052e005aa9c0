"""Fetching a job's input to a local file: from the bucket, or over http(s) from public addresses only."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx
from minio.error import S3Error

from services.inputs import VIDEO_SUFFIXES
from services.netguard import ForbiddenSource, check_public_url
from workers.runtime import Runtime
from workers.transient import is_transient


class InputFailed(Exception):
    """The input cannot be fetched (missing object, HTTP error): the video fails, the job goes on."""


def fetch_input(rt: Runtime, uri: str, folder: Path) -> Path:
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
