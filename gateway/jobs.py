"""Jobs as the gateway sees them: validate, create, read, cancel (Redis first, the bucket after)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from minio.error import S3Error
from pydantic import ValidationError

from gateway.deps import EndedJob, Services
from gateway.errors import ApiError
from services.artifacts import JOB
from services.inputs import assign_ids
from services.records import ClipRecord
from services.recordbook import RecordBook
from services import tenancy
from services.netguard import ForbiddenSource, check_public_url
from services.settings import JobOverrideRefused, check_job_overrides
from services.stages.registry import UnknownStage, parse_stage_list
from workers import state as st
from workers.routing import EXPAND_TASK, FINALIZE_TASK, INGEST_TASK, QUEUES

MAX_JOB_ID = 64
# Top-level folder of the bucket with one record per submitted job.
SUBMITTED_FOLDER = "submitted"


def new_job_id() -> str:
    return uuid.uuid4().hex


# -- validation -------------------------------------------------------------------
def validate_stages(stages: list[str] | str | None) -> list[str]:
    text = ",".join(stages) if isinstance(stages, list) else stages
    if stages == []:
        text = ","  # an explicit empty list names no stage: refused like "stages=,,,"
    try:
        return parse_stage_list(text)
    except UnknownStage as exc:
        raise ApiError(422, "unknown_stage", str(exc)) from None


def validate_config(svc: Services, config: Any) -> dict[str, dict[str, Any]]:
    if config in (None, ""):
        return {}
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise ApiError(422, "invalid_config", "config must be an object of sections, e.g. {\"clip\": {\"min_seconds\": 1}}")
    try:
        check_job_overrides(config)
    except JobOverrideRefused as exc:
        raise ApiError(422, "config_not_allowed", str(exc)) from None
    try:
        svc.settings.with_overrides(config)
    except ValidationError as exc:
        details = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        first = details[0]
        raise ApiError(422, "invalid_config", f"{'.'.join(first['loc'])}: {first['msg']}", details) from None
    return config


def parse_config_field(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the 'config' field is not valid JSON: {exc.msg} at {exc.pos}") from None


async def check_sources(svc: Services, owner: str, sources: list[str]) -> None:
    for uri in sources:
        parsed = urlparse(uri)
        if parsed.scheme in ("http", "https"):
            try:
                if not parsed.hostname:
                    raise ApiError(422, "bad_source", f"{uri!r} has no host")
                parsed.port  # raises ValueError when out of range or not a number
            except ValueError as exc:
                raise ApiError(422, "bad_source", f"{uri!r}: {exc}") from None
            try:
                await asyncio.to_thread(check_public_url, uri, svc.settings.gateway.allow_private_sources)
            except ForbiddenSource as exc:
                raise ApiError(403, "source_forbidden", str(exc)) from None
            continue
        if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
            raise ApiError(422, "bad_source", f"{uri!r} is neither s3://bucket/key nor an http(s) URL")
        bucket, key = tenancy.split_s3_uri(uri)
        # Decided before the object is looked at: the same answer whether it exists or not.
        if not await _may_read(svc, owner, bucket, key):
            raise ApiError(403, "source_forbidden",
                           f"{uri!r} is outside what this API key may read (its own uploads and jobs, "
                           "and the prefixes the operator granted it)")
        try:
            await asyncio.to_thread(svc.store.client.stat_object, bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"):
                raise ApiError(400, "source_not_found", f"{uri!r} does not exist") from None
            raise ApiError(400, "source_unreadable", f"{uri!r} cannot be read: {exc.code}") from None
        except ValueError as exc:  # the S3 client refuses the name itself (e.g. an invalid bucket name)
            raise ApiError(422, "bad_source", f"{uri!r}: {exc}") from None


async def _may_read(svc: Services, owner: str, bucket: str, key: str, *, folder: bool = False) -> bool:
    """Whether ``owner`` may read ``bucket/key`` (a folder: everything under it), decided from the key alone."""
    if not tenancy.plain_key(key.rstrip("/") if folder else key):
        return False
    if folder:
        key = key.rstrip("/") + "/"
    job = tenancy.job_of(bucket, key, svc.settings.s3.bucket)
    if job is not None:
        return await job_owner(svc, job) == owner
    return tenancy.granted(owner, bucket, key, svc.settings.gateway.tenants)


async def check_listing(svc: Services, owner: str, kind: str, uri: str) -> dict[str, str]:
    """A prefix with at least one object, or a manifest object that exists (both read later, page by page)."""
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or (kind == "manifest" and not key):
        raise ApiError(422, "bad_source", f"{kind} {uri!r} is not s3://bucket/{'key' if kind == 'manifest' else 'prefix/'}")
    # The same rule as single sources, decided before anything is looked up.
    if not await _may_read(svc, owner, parsed.netloc, key, folder=kind == "prefix"):
        raise ApiError(403, "source_forbidden",
                       f"{uri!r} is outside what this API key may read (its own uploads and jobs, "
                       "and the prefixes the operator granted it)")
    client = svc.store.client

    def first() -> bool:
        if kind == "manifest":
            client.stat_object(parsed.netloc, key)
            return True
        return next(iter(client.list_objects(parsed.netloc, prefix=key, recursive=True)), None) is not None

    try:
        found = await asyncio.to_thread(first)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"):
            found = False
        else:
            raise ApiError(400, "source_unreadable", f"{uri!r} cannot be read: {exc.code}") from None
    except ValueError as exc:
        raise ApiError(422, "bad_source", f"{uri!r}: {exc}") from None
    if not found:
        raise ApiError(400, "source_not_found", f"{kind} {uri!r} {'lists no object' if kind == 'prefix' else 'does not exist'}")
    return {"kind": kind, "uri": uri}


# -- creation ----------------------------------------------------------------------
async def create_job(svc: Services, job_id: str, owner: str, stages: list[str], config: dict,
                     named_uris: list[tuple[str, str]], listing: dict[str, str] | None = None) -> dict:
    """Record the job and send one ingest task per video (or, for a prefix or manifest, the task that
    lists the first page); returns the inputs named in the request."""
    videos = assign_ids([PurePosixPath(name) for name, _ in named_uris])
    inputs = [{"source_id": v.source_id, "name": name, "uri": uri} for v, (name, uri) in zip(videos, named_uris)]
    keys = st.Keys(job_id)
    fields = {
        "owner": owner,
        "state": st.JobState.queued.value,
        "created": repr(st.now()),
        "stages": json.dumps(stages),
        "overrides": json.dumps(config),
        "n_videos": str(len(inputs)),
        "inputs": json.dumps(inputs),
    }
    if listing is not None:  # inputs arrive page by page; the job cannot complete before the last one
        fields.update(listing="1", listing_spec=json.dumps(listing))
    # The request in the bucket first: if Redis later loses the job, its owner still learns so (410).
    request_key = submitted_key(job_id)
    record = json.dumps({"owner": owner, "created": st.now(), "stages": stages, "inputs": inputs}).encode()
    await asyncio.to_thread(svc.store.put_bytes, request_key, record)
    try:
        created = await svc.redis.eval(st.CREATE_JOB, 3, keys.job, st.JOBS_BY_STATE, st.ACTIVE_JOBS, owner,
                                       fields["created"], json.dumps(fields), job_id)
    except BaseException:
        await asyncio.to_thread(_forget, svc, request_key)
        raise
    if not created:
        raise ApiError(409, "job_exists", f"job {job_id} exists already")

    def send() -> None:
        if listing is not None:
            svc.celery.send_task(EXPAND_TASK, args=[job_id, ""], queue=QUEUES["clip"])
        for item in inputs:
            svc.celery.send_task(INGEST_TASK, args=[job_id, item["source_id"]], queue=QUEUES["clip"])

    await asyncio.to_thread(send)
    return {"inputs": inputs}


def submitted_key(job_id: str) -> str:
    """Where the bucket keeps what was asked of a job (its owner, stages and inputs)."""
    return f"{SUBMITTED_FOLDER}/{job_id}.json"


def _forget(svc: Services, key: str) -> None:
    try:
        svc.store.delete(key)
    except Exception:  # best effort: the store may be what failed
        pass


# -- reading -----------------------------------------------------------------------
def _plausible_id(job_id: str) -> bool:
    return 0 < len(job_id) <= MAX_JOB_ID and all(c.isalnum() or c in "-_" for c in job_id)


async def job_owner(svc: Services, job_id: str) -> str | None:
    if not _plausible_id(job_id):
        return None
    owner = await svc.redis.hget(st.Keys(job_id).job, "owner")
    if owner is not None:
        return owner.decode()
    stored = await _bucket_status(svc, job_id)
    if stored is not None:
        return stored.owner
    submitted = await _bucket_json(svc, submitted_key(job_id))
    return submitted.get("owner") if submitted else None


async def _bucket_json(svc: Services, key: str) -> dict | None:
    try:
        raw = await asyncio.to_thread(svc.store.get_json, key)
    except (KeyError, S3Error, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


async def _bucket_status(svc: Services, job_id: str) -> EndedJob | None:
    """The final state written by finalize, once Redis has forgotten the job (kept in memory once read)."""
    if not _plausible_id(job_id):
        return None
    found = svc.ended.get(job_id)
    if found is None:
        raw = await _bucket_json(svc, f"jobs/{job_id}/{JOB}")
        if raw is None:
            return None
        found = EndedJob(owner=raw.pop("owner", ""), status=raw)
        svc.ended.put(job_id, found)
    return found


def not_found(job_id: str) -> ApiError:
    # The same answer for "no such job" and "not yours": a key learns nothing about other keys' jobs.
    # An id that cannot be one is not echoed back (it may be anything, of any length).
    shown = f" {job_id!r}" if _plausible_id(job_id) else ""
    return ApiError(404, "job_not_found", f"no job{shown} for this API key")


def state_lost(job_id: str) -> ApiError:
    return ApiError(410, "job_state_lost",
                    f"job {job_id} was submitted, but the service lost its state before it ended (Redis lost "
                    "its data); it will not finish: submit it again")


async def require_job(svc: Services, job_id: str, owner: str) -> None:
    if await job_owner(svc, job_id) != owner:
        raise not_found(job_id)


async def read_status(svc: Services, job_id: str, owner: str) -> str:
    """The job's status as JSON text (one Redis round trip on the hot path)."""
    if not _plausible_id(job_id):
        raise not_found(job_id)
    keys = st.status_keys(st.Keys(job_id))
    found = st.status_from_reads(job_id, await svc.read_status_script(keys=keys))
    if found is not None:
        if found[0] != owner:
            raise not_found(job_id)
        return found[1].model_dump_json()
    stored = await _bucket_status(svc, job_id)
    if stored is not None and stored.owner == owner:
        return stored.text
    if stored is None and await job_owner(svc, job_id) == owner:
        raise state_lost(job_id)  # submitted (the bucket says so), yet neither Redis nor job.json knows it
    raise not_found(job_id)


async def load_clips(svc: Services, job_id: str, clip_ids: list[str]) -> list[ClipRecord | None]:
    if not clip_ids:
        return []
    raw = await svc.redis.hmget(st.Keys(job_id).records, clip_ids)
    out: list[ClipRecord | None] = []
    book = RecordBook(svc.job_store(job_id))
    for clip_id, value in zip(clip_ids, raw):
        if value is not None:
            out.append(st.unpack_record(value))
        else:
            out.append(await asyncio.to_thread(book.load_clip, clip_id))
    return out


async def clip_page(svc: Services, job_id: str, offset: int, limit: int) -> tuple[list[str], int, dict[str, str]]:
    """Clip ids in order (video, then time), the total, and each clip's state."""
    keys = st.Keys(job_id)
    total = await svc.redis.zcard(keys.clips)
    if total == 0 and not await svc.redis.exists(keys.job):
        # Forgotten by Redis: the bucket's records are the clips.
        book = RecordBook(svc.job_store(job_id))
        clips = sorted(await asyncio.to_thread(book.all_clips), key=lambda c: (c.source_id, c.frame_start))
        states = {c.id: _stored_state(c) for c in clips}
        return [c.id for c in clips][offset:offset + limit], len(clips), states
    ids = [i.decode() for i in await svc.redis.zrange(keys.clips, offset, offset + limit - 1)]
    states = {}
    if ids:
        raw = await svc.redis.hmget(keys.clipstate, ids)
        states = {i: (v.decode() if v else "queued") for i, v in zip(ids, raw)}
    return ids, total, states


def _stored_state(clip: ClipRecord) -> str:
    if clip.failed_stage:
        return f"failed:{clip.failed_stage}"
    return "filtered" if clip.filtered_by else "done"


# -- cancelling ----------------------------------------------------------------------
async def cancel(svc: Services, job_id: str) -> bool:
    """True if this call cancelled the job; False if it had already ended."""
    keys = st.Keys(job_id)
    changed = await svc.redis.eval(*st.set_state_args(keys, st.JobState.cancelled, st.ACTIVE, "finished"))
    if changed:
        # finalize writes what was done so far, and the final state, to the bucket.
        await asyncio.to_thread(svc.celery.send_task, FINALIZE_TASK, args=[job_id], queue=QUEUES["finalize"])
    return bool(changed)
