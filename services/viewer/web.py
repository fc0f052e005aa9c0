"""The viewer's HTTP routes, as a router over any ``DatasetView``: the local app mounts it at ``/``, the gateway at
``/v1/jobs/{id}/view`` behind the job owner's key. Every page URL in the front end is relative to where it is
mounted, so the same files serve both."""

from __future__ import annotations

import mimetypes
import threading
from html import escape
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query as Param, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from services.storage.local import LocalStore
from services.viewer.dataset import ClipNotFound, DatasetView
from services.viewer.report import dataset_report
from services.viewer.table import SHOWN_COLUMNS, Query, QueryError

STATIC = Path(__file__).parent / "static"
# Filters arrive as query parameters ``f.COLUMN=EXPRESSION`` (e.g. ``f.motion=>3``).
FILTER_PREFIX = "f."
# The largest page the table API serves: one screen of rows is 50; 500 covers a "show more" without paging.
MAX_PAGE = 500
# Thumbnails and frame images never change for a given dataset state; the vendored scripts change with the package.
IMAGE_CACHE = "private, max-age=300"
mimetypes.add_type("text/javascript", ".js")


def index_page(request: Request, title: str) -> HTMLResponse:
    """The app's single page, with ``<base href>`` at the mount point (with or without its trailing slash)."""
    path = request.url.path
    base = path if path.endswith("/") else path + "/"
    html = (STATIC / "index.html").read_text().replace("{{BASE}}", base).replace("{{TITLE}}", escape(title))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": IMAGE_CACHE})


def viewer_router(get_view: Callable[..., DatasetView], get_title: Callable[..., str]) -> APIRouter:
    """The routes, with ``get_view``/``get_title`` as FastAPI dependencies (so the caller decides who may see what)."""
    router = APIRouter()

    def clip_errors(call):
        try:
            return call()
        except ClipNotFound as exc:
            raise HTTPException(404, f"not found: {exc.args[0] if exc.args else ''}") from None

    @router.get("/", include_in_schema=False)
    def index(request: Request, title: str = Depends(get_title), view: DatasetView = Depends(get_view)):
        return index_page(request, title)

    @router.get("/static/{name:path}", include_in_schema=False)
    def static(name: str, view: DatasetView = Depends(get_view)):
        path = (STATIC / name).resolve()
        if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    @router.get("/api/dataset")
    def dataset(title: str = Depends(get_title), view: DatasetView = Depends(get_view)):
        index = view.index()
        counts: dict[str, int] = {}
        for row in index.rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        columns = [{"name": name, "kind": kind} for name, kind in index.kinds.items()]
        # A column no clip has a value in (a score whose model was missing) stays out of the default view.
        filled = {name for row in index.rows for name, value in row.items() if value not in (None, "")}
        shown = [c for c in SHOWN_COLUMNS if c in filled or c in ("id", "status", "reasons")]
        return {"title": title, "total": len(index.rows), "status_counts": counts, "columns": columns,
                "shown": shown}

    @router.get("/api/clips")
    def clips(request: Request, offset: int = Param(0, ge=0), limit: int = Param(50, ge=1, le=MAX_PAGE),
              sort: str | None = None, desc: bool = False, view: DatasetView = Depends(get_view)):
        filters = {k[len(FILTER_PREFIX):]: v for k, v in request.query_params.items() if k.startswith(FILTER_PREFIX)}
        try:
            page = view.page(Query(sort=sort or None, descending=desc, filters=filters, offset=offset, limit=limit))
        except QueryError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"rows": page.rows, "total": page.total, "offset": page.offset, "limit": page.limit}

    @router.get("/api/clips/{clip_id}")
    def clip(clip_id: str, view: DatasetView = Depends(get_view)):
        return JSONResponse(clip_errors(lambda: view.clip_detail(clip_id)))

    @router.get("/api/clips/{clip_id}/thumb.jpg")
    def thumbnail(clip_id: str, view: DatasetView = Depends(get_view)):
        data = clip_errors(lambda: view.thumbnail(clip_id))
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": IMAGE_CACHE})

    @router.get("/api/clips/{clip_id}/depth/{row}.png")
    def depth(clip_id: str, row: int, view: DatasetView = Depends(get_view)):
        return _png(clip_errors(lambda: view.depth_frame(clip_id, row)))

    @router.get("/api/clips/{clip_id}/mask/{row}.png")
    def mask(clip_id: str, row: int, view: DatasetView = Depends(get_view)):
        return _png(clip_errors(lambda: view.mask_frame(clip_id, row)))

    @router.get("/api/clips/{clip_id}/points.bin")
    def points(clip_id: str, view: DatasetView = Depends(get_view)):
        return Response(clip_errors(lambda: view.points(clip_id)), media_type="application/octet-stream")

    @router.get("/api/clips/{clip_id}/video.mp4")
    def video(clip_id: str, view: DatasetView = Depends(get_view)):
        clip_errors(lambda: view.row(clip_id))
        if isinstance(view.store, LocalStore):
            path = view.store.path(f"clips/{clip_id}.mp4")
            if not path.is_file():
                raise HTTPException(404, f"no video for {clip_id}")
            return FileResponse(path, media_type="video/mp4")  # answers Range requests: the player seeks
        return RedirectResponse(view.video_url(clip_id), status_code=307)

    @router.get("/report", response_class=HTMLResponse)
    def report(title: str = Depends(get_title), view: DatasetView = Depends(get_view)):
        return HTMLResponse(dataset_report(view, title), headers={"Cache-Control": "no-store"})

    return router


def create_local_app(folder: Path) -> FastAPI:
    """``spatialvid view DIR``: the viewer over a local output folder, nothing else."""
    folder = Path(folder).resolve()
    view = DatasetView(LocalStore(folder))
    # Build the table's index while the user opens the printed URL (seconds for 10,000 clips).
    threading.Thread(target=view.index, name="viewer-index", daemon=True).start()
    app = FastAPI(title="spatialvid viewer", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(viewer_router(lambda: view, lambda: folder.name))
    return app
