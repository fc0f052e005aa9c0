"""The dataset viewer for a job, at ``/v1/jobs/{id}/view``, behind the job owner's key (another key gets 404).

The key comes as ``Authorization: Bearer KEY`` or, for a browser, as an HttpOnly cookie scoped to the job's view
path, set by posting the key to ``/v1/jobs/{id}/view/session`` (a page without a key shows that form). Artifacts are
read from the job's prefix in the bucket; the browser plays the clips through presigned URLs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import timedelta
from html import escape

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway import jobs
from gateway.deps import Services, services
from gateway.errors import ApiError
from services.viewer.dataset import DatasetView
from services.viewer.web import index_page, viewer_router

COOKIE = "spatialvid_view_key"
# Jobs whose table and decoded clips the gateway keeps in memory (each holds a few clips' arrays at most).
CACHED_JOBS = 8
# How long the browser keeps the key cookie: a working session, not forever.
COOKIE_SECONDS = 8 * 3600

_bearer = HTTPBearer(auto_error=False)
_views: OrderedDict[str, DatasetView] = OrderedDict()
_views_lock = threading.Lock()


class LoginRequired(Exception):
    """The view page was opened without a key: answer with the form that sets the cookie."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


def _view_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/view"


async def view_job(job_id: str, request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
                   svc: Services = Depends(services)) -> str:
    key = creds.credentials if creds and creds.credentials else request.cookies.get(COOKIE)
    if not key:
        if request.method == "GET" and request.url.path.rstrip("/") == _view_path(job_id):
            raise LoginRequired(job_id)
        raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer KEY' or open the view page",
                       headers={"WWW-Authenticate": "Bearer"})
    owner = svc.keyring.owner(key)
    if owner is None:
        raise ApiError(401, "unauthorized", "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    await jobs.require_job(svc, job_id, owner)  # another key's job is a 404, like a missing one
    return job_id


def job_view(job_id: str = Depends(view_job), svc: Services = Depends(services)) -> DatasetView:
    with _views_lock:
        view = _views.get(job_id)
        if view is not None:
            _views.move_to_end(job_id)
            return view
    store = svc.job_store(job_id)
    seconds = svc.settings.s3.presign_seconds

    def video_url(clip_id: str) -> str:
        name = store.object_name(f"clips/{clip_id}.mp4")
        return svc.presigner.presigned_get_object(store.bucket, name, expires=timedelta(seconds=seconds))

    view = DatasetView(store, video_url=video_url)
    with _views_lock:
        _views[job_id] = view
        while len(_views) > CACHED_JOBS:
            _views.popitem(last=False)
    return view


def job_title(job_id: str = Depends(view_job)) -> str:
    return f"job {job_id}"


# Out of the OpenAPI schema: browser pages and their data, not part of the jobs API contract.
router = APIRouter(prefix="/v1/jobs/{job_id}/view", tags=["viewer"], include_in_schema=False)


@router.get("", include_in_schema=False)
def view_page(request: Request, title: str = Depends(job_title), view: DatasetView = Depends(job_view)):
    return index_page(request, title)


@router.post("/session", include_in_schema=False)
async def view_session(job_id: str, request: Request, key: str = Form(...), svc: Services = Depends(services)):
    """Check the key against the job, then keep it in an HttpOnly cookie for the job's view pages."""
    owner = svc.keyring.owner(key)
    if owner is None:
        raise ApiError(401, "unauthorized", "unknown API key")
    await jobs.require_job(svc, job_id, owner)
    response = RedirectResponse(_view_path(job_id) + "/", status_code=303)
    response.set_cookie(COOKIE, key, max_age=COOKIE_SECONDS, path=_view_path(job_id), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


router.include_router(viewer_router(job_view, job_title))


def _login_form(job_id: str) -> str:
    action = escape(_view_path(job_id) + "/session")
    return ("<!doctype html><meta charset=utf-8><title>spatialvid viewer</title>"
            "<body style='font:15px system-ui;margin:40px'>"
            f"<h2>Dataset viewer for job {escape(job_id)}</h2><form method=post action='{action}'>"
            "<label>API key <input name=key type=password autocomplete=off size=50></label> "
            "<button>open</button></form></body>")


def install(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def login_required(_: Request, exc: LoginRequired) -> HTMLResponse:
        return HTMLResponse(_login_form(exc.job_id), status_code=401, headers={"WWW-Authenticate": "Bearer"})
