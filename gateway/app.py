"""The gateway: submit jobs, follow them, fetch their files.

``uvicorn --factory gateway.app:create_app`` serves it; settings come from the
environment like everywhere else (``SPATIALVID_GATEWAY__*``, ``SPATIALVID_REDIS__URL``,
``SPATIALVID_S3__*``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from minio.error import S3Error
from pydantic import ValidationError

from gateway import jobs, viewer
from gateway.deps import Services, require_owner, services
from gateway.errors import ApiError, ErrorBody, install_error_handlers
from gateway.metrics import render
from gateway.models import (
    ClipDetail, ClipFile, ClipList, ClipSummary, FileEntry, FileList, Health, JobAccepted, JobRequest, JobStatus,
)
from gateway.uploads import MultipartUpload
from services.inputs import is_safe_name
from services.settings import Settings, load_settings
from services.storage.s3 import S3Store

MAX_JSON_BYTES = 1 << 20
# Bytes of an oversized body read (and dropped) before answering 413, so the client gets the answer.
DRAIN_CAP = 64 << 20

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 410, 413, 415, 422, 503)}

# OpenAPI links: where a response's values lead (clients and schemathesis' stateful tests follow them).
_JOB_ID = {"job_id": "$response.body#/id"}
_JOB_LINKS = {name: {"operationId": op, "parameters": _JOB_ID} for name, op in (
    ("GetJob", "job_status"), ("CancelJob", "cancel_job"), ("ListClips", "list_clips"), ("JobFiles", "job_files"))}
_CLIP_LINKS = {"GetClip": {"operationId": "clip_detail",
                           "parameters": {"job_id": "$request.path.job_id", "clip_id": "$response.body#/items/0/id"}}}

_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "stages": {"type": "string", "description": "comma list of stages"},
        "config": {"type": "string", "description": "JSON object of settings overrides by section"},
    },
    "required": ["files"],
}

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}}, tags=["health"])
async def readyz(svc: Services = Depends(services)) -> Response:
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(svc.redis.ping(), 2.0)
        checks["redis"] = "ok"
    except Exception as exc:  # any failure means "not ready"
        checks["redis"] = f"error: {type(exc).__name__}"
    try:
        exists = await asyncio.wait_for(asyncio.to_thread(svc.store.client.bucket_exists, svc.store.bucket), 5.0)
        checks["object_store"] = "ok" if exists else f"error: bucket {svc.store.bucket!r} missing"
    except Exception as exc:
        checks["object_store"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", tags=["health"], response_class=Response)
async def metrics(svc: Services = Depends(services)) -> Response:
    return Response(await render(svc), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses={**_ERRORS, 202: {"links": _JOB_LINKS}},
    tags=["jobs"],
    operation_id="submit_job",
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        "application/json": {"schema": JobRequest.model_json_schema()},
    }}},
)
async def submit(request: Request, owner: str = Depends(require_owner), svc: Services = Depends(services)) -> Response:
    """Upload videos (multipart, streamed to the object store) or name sources (JSON)."""
    content_type = request.headers.get("content-type", "").lower()
    job_id = jobs.new_job_id()
    upload: MultipartUpload | None = None
    if content_type.startswith("multipart/form-data"):
        await svc.redis.ping()  # down: 503 before a byte is stored
        named_uris, stages, config, upload = await _receive_uploads(request, svc, job_id)
    elif content_type.startswith("application/json"):
        body = await _read_json(request)
        try:
            spec = JobRequest.model_validate(body)
        except ValidationError as exc:
            details = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
            where = ".".join(details[0]["loc"]) or "the body"
            raise ApiError(422, "invalid_request", f"{where}: {details[0]['msg']}", details) from None
        stages = jobs.validate_stages(spec.stages)
        config = jobs.validate_config(svc, spec.config)
        if spec.sources is None:  # a prefix or manifest: listed page by page by the workers
            kind, uri = ("prefix", spec.prefix) if spec.prefix is not None else ("manifest", spec.manifest)
            listing = await jobs.check_listing(svc, owner, kind, uri)
            created = await jobs.create_job(svc, job_id, owner, stages, config, [], listing=listing)
            return _accepted(request, job_id, stages, created)
        await jobs.check_sources(svc, owner, spec.sources)
        named_uris = [(src, src) for src in spec.sources]
    else:
        raise ApiError(415, "unsupported_media_type",
                       "send multipart/form-data (video files) or application/json (sources)")
    try:
        created = await jobs.create_job(svc, job_id, owner, stages, config, named_uris)
    except BaseException:
        if upload is not None:  # no job, no upload left behind
            await upload.abort(ApiError(503, "unavailable", "the job could not be recorded"))
        raise
    return _accepted(request, job_id, stages, created)


def _accepted(request: Request, job_id: str, stages: list[str], created: dict) -> Response:
    url = str(request.url_for("job_status", job_id=job_id).path)
    body = JobAccepted(id=job_id, url=url, state=jobs.st.JobState.queued, stages=stages,
                       videos=[i["name"] for i in created["inputs"]])
    return JSONResponse(body.model_dump(mode="json"), status_code=202, headers={"Location": url})


async def _receive_uploads(request: Request, svc: Services, job_id: str):
    limit = svc.settings.gateway.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MAX_JSON_BYTES:
        await _drain(request)
        raise ApiError(413, "too_large", f"the upload ({declared} bytes) is larger than the limit of {limit} bytes")
    conf = svc.settings.gateway
    # The gateway's own part size: smaller parts, flatter memory (workers keep s3.part_size).
    s3 = svc.settings.s3.model_copy(update={"part_size": conf.upload_part_size})
    store = S3Store(s3, prefix=f"uploads/{job_id}/", client=svc.store.client)
    upload = MultipartUpload(store, limit, parallel_uploads=conf.upload_parallel)
    try:
        fields, files = await upload.receive(request)
    except ApiError as exc:
        if exc.status == 413:
            await _drain(request)
        raise
    try:
        if not files:
            raise ApiError(422, "no_files", "the multipart body has no file part (send videos as file fields)")
        stages = jobs.validate_stages(fields.get("stages"))
        config = jobs.validate_config(svc, jobs.parse_config_field(fields.get("config")))
    except ApiError:
        await upload.abort(ApiError(400, "invalid", "invalid job"))
        raise
    bucket = svc.settings.s3.bucket
    return [(f.filename, f"s3://{bucket}/{f.key}") for f in files], stages, config, upload


async def _read_json(request: Request):
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise ApiError(413, "too_large", f"a JSON body may not exceed {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


async def _drain(request: Request) -> None:
    """Read and drop what is left of the body (up to a cap), so the client reads our answer."""
    dropped = 0
    try:
        while dropped < DRAIN_CAP:
            message = await asyncio.wait_for(request.receive(), 5.0)
            dropped += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
    except Exception:  # the client gave up or the stream is done
        return


@router.get("/v1/jobs/{job_id}", name="job_status", response_model=JobStatus, responses=_ERRORS, tags=["jobs"],
            operation_id="job_status")
async def job_status(job_id: str, owner: str = Depends(require_owner), svc: Services = Depends(services)) -> Response:
    # Serialised once, straight from the model (the hot path of every poll).
    return Response(await jobs.read_status(svc, job_id, owner), media_type="application/json")


@router.delete("/v1/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS, tags=["jobs"],
               operation_id="cancel_job")
async def cancel_job(job_id: str, owner: str = Depends(require_owner), svc: Services = Depends(services)) -> Response:
    """Cancel: queued work is dropped, running work stops at the next stage boundary."""
    await jobs.require_job(svc, job_id, owner)
    changed = await jobs.cancel(svc, job_id)
    text = await jobs.read_status(svc, job_id, owner)
    if not changed:  # it had ended already (cancelled included): nothing changes, and the caller hears so
        state = json.loads(text)["state"]
        raise ApiError(409, "job_finished", f"job {job_id} has already ended ({state})")
    return Response(text, media_type="application/json")


@router.get("/v1/jobs/{job_id}/clips", response_model=ClipList, tags=["clips"], operation_id="list_clips",
            responses={**_ERRORS, 200: {"links": _CLIP_LINKS}})
async def list_clips(
    job_id: str,
    offset: int = Query(0, ge=0, le=10**9),
    limit: int = Query(100, ge=1, le=10**6),
    owner: str = Depends(require_owner),
    svc: Services = Depends(services),
) -> ClipList:
    await jobs.require_job(svc, job_id, owner)
    limit = min(limit, svc.settings.gateway.max_page_size)
    ids, total, states = await jobs.clip_page(svc, job_id, offset, limit)
    items = []
    for clip in await jobs.load_clips(svc, job_id, ids):
        if clip is None:
            continue
        failed = clip.failed_stage
        items.append(ClipSummary(
            id=clip.id, state=states.get(clip.id, "queued"), source_id=clip.source_id,
            timestamp_start=clip.timestamp_start, timestamp_end=clip.timestamp_end, num_frames=clip.num_frames,
            filtered_by=clip.filtered_by, failed_stage=failed, error=clip.stages[failed].error if failed else None,
            stages_done=[s for s in clip.stages if clip.is_done(s)], columns=clip.columns,
        ))
    nxt = offset + limit if offset + limit < total else None
    return ClipList(items=items, total=total, offset=offset, limit=limit, next_offset=nxt)


@router.get("/v1/jobs/{job_id}/clips/{clip_id}", response_model=ClipDetail, responses=_ERRORS, tags=["clips"],
            operation_id="clip_detail")
async def clip_detail(job_id: str, clip_id: str, owner: str = Depends(require_owner),
                      svc: Services = Depends(services)) -> ClipDetail:
    """The clip's metadata row and its files as presigned URLs (short expiry)."""
    await jobs.require_job(svc, job_id, owner)
    if not is_safe_name(clip_id):  # not an id the service makes: not looked up, nor echoed
        raise ApiError(404, "clip_not_found", f"no such clip in job {job_id}")
    [clip] = await jobs.load_clips(svc, job_id, [clip_id])
    if clip is None:
        raise ApiError(404, "clip_not_found", f"no clip {clip_id!r} in job {job_id}")
    store = svc.job_store(job_id)
    try:
        keys = await asyncio.to_thread(lambda: [k for k in [clip.clip_key] if store.exists(k)]
                                       + store.list(f"annotations/{clip.id}/"))
    except ValueError:  # not a valid key: no such clip
        raise ApiError(404, "clip_not_found", f"no clip {clip_id!r} in job {job_id}") from None
    seconds = svc.settings.s3.presign_seconds
    files = [ClipFile(key=k, url=_presign(svc, store.object_name(k), seconds), expires_in_s=seconds) for k in keys]
    state = await svc.redis.hget(jobs.st.Keys(job_id).clipstate, clip_id)
    return ClipDetail(id=clip.id, state=state.decode() if state else jobs._stored_state(clip),
                      metadata=clip.metadata_row(), provenance=clip.provenance, files=files)


@router.get("/v1/jobs/{job_id}/files", response_model=FileList, responses=_ERRORS, tags=["jobs"],
            operation_id="job_files")
async def job_files(job_id: str, owner: str = Depends(require_owner), svc: Services = Depends(services)) -> FileList:
    """Every file of the job's layout (what ``spatialvid fetch`` downloads), as presigned URLs."""
    await jobs.require_job(svc, job_id, owner)
    store = svc.job_store(job_id)

    def listing() -> list[tuple[str, int]]:
        try:
            objects = store.client.list_objects(store.bucket, prefix=store.prefix, recursive=True)
            return [(o.object_name, o.size or 0) for o in objects]
        except S3Error:
            return []

    seconds = svc.settings.s3.presign_seconds
    entries = [FileEntry(key=name[len(store.prefix):], size=size, url=_presign(svc, name, seconds))
               for name, size in sorted(await asyncio.to_thread(listing))]
    return FileList(job_id=job_id, expires_in_s=seconds, files=entries)


def _presign(svc: Services, object_name: str, seconds: int) -> str:
    return svc.presigner.presigned_get_object(svc.store.bucket, object_name, expires=timedelta(seconds=seconds))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(
        title="spatialvid gateway",
        version="1",
        description="Submit videos, follow the jobs, fetch the SpatialVID-layout results.",
    )
    app.state.services = Services.build(settings)
    install_error_handlers(app)
    app.include_router(router)
    viewer.install(app)  # the dataset viewer of a job: /v1/jobs/{id}/view
    return app


def __getattr__(name: str):
    # ``uvicorn gateway.app:app`` (the deployment's images): the app, built on first access.
    if name == "app":
        return create_app()
    raise AttributeError(name)
