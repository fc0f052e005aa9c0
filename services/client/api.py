"""A small HTTP client for the gateway (what the submit/status/wait/fetch commands use)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from services.settings import Settings
from services.storage.files import temp_beside

TERMINAL_STATES = {"succeeded", "failed", "partially_failed", "cancelled"}


class ApiFailure(RuntimeError):
    """The gateway answered with an error (its code and message), or could not be reached."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})" if status else message)
        self.status, self.code, self.message = status, code, message


def resolve_target(settings: Settings, api: str | None = None, key: str | None = None) -> tuple[str, str]:
    """The gateway URL and API key: flags, then settings/environment, then the local stack."""
    url = api or settings.client.api_url
    secret = key or (settings.client.api_key.get_secret_value() if settings.client.api_key else "")
    if not url or not secret:
        from services.stack import StackInfo

        info = StackInfo.load(settings.stack.dir)
        if info is not None:
            url, secret = url or info.api_url, secret or info.api_key
    if not url:
        raise ApiFailure(0, "no_gateway", "no gateway: pass --api URL, set SPATIALVID_API_URL, "
                         "or start one with `spatialvid stack up`")
    if not secret:
        raise ApiFailure(0, "no_key", "no API key: pass --key KEY or set SPATIALVID_API_KEY")
    return url.rstrip("/"), secret


class GatewayClient:
    def __init__(self, url: str, key: str, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(timeout_s, connect=10.0),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "GatewayClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
                code, message = body.get("code", "error"), body.get("message", response.text)
            except (ValueError, AttributeError):
                code, message = "error", response.text[:500]
            raise ApiFailure(response.status_code, code, message)
        return response.json()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._check(self.http.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            raise ApiFailure(0, "unreachable", f"cannot reach the gateway at {self.url}: {exc}") from None

    # -- jobs ---------------------------------------------------------------
    def submit(self, videos: Iterable[Path], stages: str | None = None, config: dict | None = None) -> dict:
        """Upload the videos (streamed from disk, never read whole) and start a job."""
        data: dict[str, str] = {}
        if stages:
            data["stages"] = stages
        if config:
            data["config"] = json.dumps(config)
        with ExitStack() as stack:
            files = [("files", (Path(v).name, stack.enter_context(open(v, "rb")), "application/octet-stream"))
                     for v in videos]
            return self._request("POST", "/v1/jobs", files=files, data=data)

    def submit_sources(self, sources: list[str], stages: str | None = None, config: dict | None = None) -> dict:
        body: dict[str, Any] = {"sources": sources}
        if stages:
            body["stages"] = stages
        if config:
            body["config"] = config
        return self._request("POST", "/v1/jobs", json=body)

    def submit_listing(self, prefix: str | None = None, manifest: str | None = None, stages: str | None = None,
                       config: dict | None = None) -> dict:
        """A job over every video below an S3 prefix, or every URI of a manifest object (listed by the workers)."""
        body: dict[str, Any] = {"prefix": prefix} if prefix else {"manifest": manifest}
        if stages:
            body["stages"] = stages
        if config:
            body["config"] = config
        return self._request("POST", "/v1/jobs", json=body)

    def status(self, job_id: str) -> dict:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict:
        return self._request("DELETE", f"/v1/jobs/{job_id}")

    def clips(self, job_id: str, offset: int = 0, limit: int = 100) -> dict:
        return self._request("GET", f"/v1/jobs/{job_id}/clips", params={"offset": offset, "limit": limit})

    def clip(self, job_id: str, clip_id: str) -> dict:
        return self._request("GET", f"/v1/jobs/{job_id}/clips/{clip_id}")

    def files(self, job_id: str) -> dict:
        return self._request("GET", f"/v1/jobs/{job_id}/files")

    def wait(self, job_id: str, poll_s: float = 1.0, timeout_s: float | None = None,
             on_update: Callable[[dict], None] | None = None) -> dict:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.status(job_id)
            if on_update:
                on_update(status)
            if status["state"] in TERMINAL_STATES:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status['state']} after {timeout_s} s")
            time.sleep(poll_s)

    def fetch(self, job_id: str, out: Path, on_file: Callable[[str, int], None] | None = None,
              partial: bool = False) -> list[str]:
        """Download every file of the job's layout into ``out`` (each written atomically). A job that
        has not ended has no tables yet: refused unless ``partial``."""
        out = Path(out)
        state = self.status(job_id)["state"]
        if state not in TERMINAL_STATES and not partial:
            raise ApiFailure(0, "job_not_ended", f"job {job_id} is still {state}: its layout is not complete "
                             "until it ends (wait for it, or fetch --partial for what is there now)")
        listing = self.files(job_id)
        written = []
        with httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0)) as plain:
            for entry in listing["files"]:
                relative = PurePosixPath(entry["key"])
                if relative.is_absolute() or ".." in relative.parts:
                    raise ApiFailure(0, "bad_listing", f"refusing to write outside {out}: {entry['key']}")
                target = out.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = temp_beside(target)
                try:
                    with open(tmp, "wb") as handle, plain.stream("GET", entry["url"]) as response:
                        if response.status_code != 200:
                            raise ApiFailure(response.status_code, "download_failed",
                                             f"cannot download {entry['key']}: HTTP {response.status_code}")
                        for chunk in response.iter_bytes(1 << 20):
                            handle.write(chunk)
                    os.replace(tmp, target)
                finally:
                    Path(tmp).unlink(missing_ok=True)
                written.append(entry["key"])
                if on_file:
                    on_file(entry["key"], entry["size"])
        return written
