"""Errors as JSON with a stable ``code``: clients branch on the code, people read the message."""

from __future__ import annotations

import logging

import kombu.exceptions
import redis.exceptions
import urllib3.exceptions

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

# Seconds a client is asked to wait before retrying while Redis or the object store is down
# (about what a restarted Redis needs to load its append-only file).
RETRY_AFTER_S = 5


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list | dict | None = None


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list | dict | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details, headers


def _body(code: str, message: str, details=None) -> dict:
    body = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return body


# Codes for the framework's own HTTP errors (unknown route, wrong method, ...).
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}


def _jsonable_errors(errors: list) -> list:
    out = []
    for error in errors:
        out.append({"loc": [str(p) for p in error.get("loc", ())], "msg": str(error.get("msg", "")),
                    "type": str(error.get("type", ""))})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _jsonable_errors(exc.errors())
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        return JSONResponse(_body("invalid_request", f"{where}: {first['msg']}" if where else first["msg"], errors),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    @app.exception_handler(kombu.exceptions.OperationalError)
    @app.exception_handler(urllib3.exceptions.HTTPError)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        # Redis, the queue or the object store is down (a restart, an outage): the request may
        # succeed later, so it is a 503 with a hint when to retry, never a 500.
        log.warning("a backing service is unavailable: %s: %s", type(exc).__name__, exc)
        what = "the object store" if isinstance(exc, urllib3.exceptions.HTTPError) else "Redis"
        return JSONResponse(_body("unavailable", f"{what} is unreachable at the moment; try again shortly"),
                            status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(_body("internal_error", "an unexpected error happened; it was logged"), status_code=500)
