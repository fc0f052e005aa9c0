"""The ``expand`` task: a job over an S3 prefix or a manifest, its inputs listed one page at a time.

Each task reads one page (``services.listing``), registers its inputs atomically (``REGISTER_PAGE``:
a redelivered page gets the same source ids, never new ones), sends one ingest task per input, then
sends itself for the next page. The job cannot complete while pages remain (``listing`` in the job's
hash). A manifest line that is not an s3:// or http(s):// URI, or that points into the service's own
``jobs/`` or ``uploads/`` of another owner's job, or outside the prefixes granted to the job's key, fails as
that video alone.
"""

from __future__ import annotations

import json
import logging
from pathlib import PurePosixPath
from urllib.parse import urlparse

from celery import Task

from services import tenancy
from services.inputs import safe_stem
from services.listing import ListingError, ListingSpec, read_page
from services.orchestration.ingest import failed
from services.records import VideoRecord
from workers import state as st
from workers.app import app
from workers.routing import EXPAND_TASK, FINALIZE_TASK, INGEST_TASK, QUEUES
from workers.runtime import Runtime, runtime
from workers.delivery import TASK_OPTIONS, lease, retry_or_raise, send
from workers.ledger import JobLedger
from workers.tasks import register

log = logging.getLogger(__name__)


@app.task(name=EXPAND_TASK, **TASK_OPTIONS)
def expand(self: Task, job_id: str, cursor: str) -> None:
    rt = runtime()
    try:
        with lease(self, rt):
            _expand(rt, job_id, cursor)
    except ListingError as exc:
        _stop_listing(rt, job_id, str(exc))
    except Exception as exc:
        retry_or_raise(self, exc)


def refusal(rt: Runtime, uri: str, owner: str) -> str | None:
    """Why a listed source is not taken, or None. An s3:// line follows the gateway's rule for sources
    (services/tenancy.py): the owner's own uploads and jobs, and the prefixes granted to its key."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https") and parsed.hostname:
        return None  # checked against private addresses when it is downloaded
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        return f"{uri!r} is neither s3://bucket/key nor an http(s) URL"
    bucket, key = tenancy.split_s3_uri(uri)
    if not tenancy.plain_key(key):
        return f"{uri!r} is not a plain object key (empty, '.' or '..' segments)"
    other_job = tenancy.job_of(bucket, key, rt.settings.s3.bucket)
    if other_job is not None:
        job_owner = rt.redis.hget(st.Keys(other_job).job, "owner")
        if job_owner is None or job_owner.decode() != owner:
            return f"{uri!r} is inside the service's job files of a job that is not this key's"
        return None
    if not tenancy.granted(owner, bucket, key, rt.settings.gateway.tenants):
        return f"{uri!r} is outside what this job's API key may read (the operator grants prefixes)"
    return None


def _expand(rt: Runtime, job_id: str, cursor: str) -> None:
    job = rt.job(job_id)
    if job is None or job.state in st.TERMINAL:
        return
    keys = st.Keys(job_id)
    spec = ListingSpec(**json.loads(rt.redis.hget(keys.job, "listing_spec")))
    conf = rt.settings.gateway
    page = read_page(rt.minio, spec, cursor, conf.source_page_size)
    args: list[str] = []
    for uri in page.uris:
        args += [uri, uri, safe_stem(PurePosixPath(urlparse(uri).path or "video"))]
    complete, raw = rt.redis.eval(st.REGISTER_PAGE, 7, keys.job, keys.pages, keys.stems, keys.inputs, keys.ingested,
                                  keys.clips, keys.finished, cursor, page.cursor, conf.max_listed_sources, *args)
    registered = json.loads(raw)
    ids = registered["ids"] if isinstance(registered["ids"], list) else []  # Lua encodes {} for an empty list
    job = rt.job(job_id)
    ledger = JobLedger(rt, job_id)
    for source_id in ids:
        item = job.input(source_id)
        reason = refusal(rt, item.uri, job.owner)
        if reason:
            register(ledger, job, failed(VideoRecord(source=item.name, source_id=source_id), reason), 0.0)
        else:
            send(INGEST_TASK, [job_id, source_id], QUEUES["clip"])
    if registered["next"]:
        send(EXPAND_TASK, [job_id, registered["next"]], QUEUES["clip"])
    elif complete:
        send(FINALIZE_TASK, [job_id], QUEUES["finalize"])


def _stop_listing(rt: Runtime, job_id: str, reason: str) -> None:
    """The listing cannot go on: the job keeps what was listed so far and says why."""
    log.warning("job %s: %s", job_id, reason)
    keys = st.Keys(job_id)
    rt.redis.hset(keys.job, mapping={"error": reason, "listing": "0"})
    finished = rt.redis.scard(keys.finished) >= rt.redis.zcard(keys.clips)
    if finished and rt.redis.scard(keys.ingested) >= int(rt.redis.hget(keys.job, "n_videos") or 0):
        send(FINALIZE_TASK, [job_id], QUEUES["finalize"])
