"""Stream a multipart upload straight into the object store.

The request body is parsed as it arrives (python-multipart's push parser);
each file part is handed, in 1 MiB pieces through a small bounded queue, to a
thread that runs the S3 multipart upload (``S3Store.put_stream``). Memory
stays flat whatever the file size: a few MiB of queue plus the parts the S3
client has in flight. Nothing touches the local disk.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from gateway.errors import ApiError
from gateway.sniff import HEAD_BYTES, container_of
from services.inputs import VIDEO_SUFFIXES, safe_stem
from services.storage.s3 import S3Store

FEED_BYTES = 1 << 20  # what the async side hands to the upload thread at a time
MAX_FIELD_BYTES = 1 << 20
MAX_FILES = 100
_uploaders = ThreadPoolExecutor(max_workers=32, thread_name_prefix="s3-upload")


class _Aborted(Exception):
    pass


class UploadPipe:
    """A file-like object the S3 client reads from, fed by the request handler."""

    def __init__(self, depth: int = 4) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self._buffer = b""
        self._eof = False
        self.reader_done = threading.Event()

    # -- writer side (runs in a thread, may block while the queue is full) --
    def put(self, item: bytes | BaseException | None) -> None:
        while not self.reader_done.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # -- reader side (the S3 client) --
    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes, as many as there are until EOF: the S3 client asks for a whole
        part, and one join here is cheaper than its appending piece by piece."""
        pieces: list[bytes] = []
        wanted = size if size >= 0 else float("inf")
        got = 0
        while got < wanted:
            if not self._buffer:
                if self._eof:
                    break
                item = self._queue.get()
                if item is None:
                    self._eof = True
                    continue
                if isinstance(item, BaseException):
                    raise item  # minio aborts the multipart upload
                self._buffer = item
            take = min(len(self._buffer), wanted - got)
            if take == len(self._buffer):
                pieces.append(self._buffer)
                self._buffer = b""
            else:
                pieces.append(self._buffer[:take])
                self._buffer = self._buffer[take:]
            got += take
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


@dataclass
class StoredUpload:
    filename: str  # as the client named it
    key: str  # object name in the bucket
    size: int
    container: str


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    size: int = 0
    head: bytearray = field(default_factory=bytearray)
    pending: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    pipe: UploadPipe | None = None
    future: asyncio.Future | None = None
    key: str = ""
    container: str = ""


class MultipartUpload:
    """Receives one multipart request: file parts go to ``store``; text fields are returned."""

    def __init__(self, store: S3Store, max_bytes: int, parallel_uploads: int = 2) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.parallel_uploads = parallel_uploads
        self.total = 0
        self.fields: dict[str, str] = {}
        self.files: list[StoredUpload] = []
        self._events: list[tuple] = []
        self._part: _Part | None = None
        self._header_field = bytearray()
        self._header_value = bytearray()

    async def receive(self, request: Request) -> tuple[dict[str, str], list[StoredUpload]]:
        _, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if not boundary:
            raise ApiError(400, "bad_multipart", "multipart body without a boundary in its Content-Type")
        parser = MultipartParser(boundary, self._callbacks())
        try:
            async for chunk in request.stream():
                try:
                    parser.write(chunk)
                except MultipartParseError as exc:
                    raise ApiError(400, "bad_multipart", f"malformed multipart body: {exc}") from None
                await self._drain()
            parser.finalize()
            await self._drain()
            if self._part is not None:
                raise ApiError(400, "bad_multipart", "the multipart body ended in the middle of a part")
        except ClientDisconnect:
            await self.abort(_Aborted("client disconnected"))
            raise ApiError(400, "client_disconnected", "the client went away during the upload") from None
        except BaseException as exc:
            await self.abort(exc if isinstance(exc, Exception) else _Aborted("cancelled"))
            raise
        return self.fields, self.files

    async def abort(self, exc: BaseException) -> None:
        """Stop the upload in flight (its multipart upload is aborted) and delete the finished ones."""
        part = self._part
        if part is not None and part.pipe is not None:
            await asyncio.to_thread(part.pipe.put, exc)
            try:
                await part.future
            except Exception:
                pass
        keys = [f.key for f in self.files]
        if keys:
            await asyncio.to_thread(self._delete, keys)

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.store.client.remove_object(self.store.bucket, key)
            except Exception:  # best effort: a stray upload is harmless
                pass

    # -- parser callbacks only record events; the async loop acts on them --
    def _callbacks(self) -> dict:
        events = self._events

        def data_cb(kind: str):
            return lambda data, start, end: events.append((kind, bytes(data[start:end])))

        return {
            "on_part_begin": lambda: events.append(("begin",)),
            "on_header_field": data_cb("hfield"),
            "on_header_value": data_cb("hvalue"),
            "on_header_end": lambda: events.append(("hend",)),
            "on_headers_finished": lambda: events.append(("headers",)),
            "on_part_data": data_cb("data"),
            "on_part_end": lambda: events.append(("end",)),
        }

    async def _drain(self) -> None:
        events, self._events[:] = list(self._events), []
        for event in events:
            kind = event[0]
            if kind == "begin":
                self._part = _Part()
            elif kind == "hfield":
                self._header_field += event[1]
            elif kind == "hvalue":
                self._header_value += event[1]
            elif kind == "hend":
                self._part.headers[self._header_field.decode("latin-1").lower()] = self._header_value.decode("latin-1")
                self._header_field.clear()
                self._header_value.clear()
            elif kind == "headers":
                self._start_part(self._part)
            elif kind == "data":
                await self._data(self._part, event[1])
            elif kind == "end":
                await self._end_part(self._part)
                self._part = None

    def _start_part(self, part: _Part) -> None:
        _, params = parse_options_header(part.headers.get("content-disposition", ""))
        part.name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        part.filename = filename.decode("utf-8", "replace") if filename is not None else None
        if part.filename is not None:
            if len(self.files) >= MAX_FILES:
                raise ApiError(413, "too_many_files", f"at most {MAX_FILES} files per job")
        elif part.name not in ("stages", "config"):
            raise ApiError(422, "unknown_field",
                           f"unknown form field {part.name!r}: send files, and optionally 'stages' and 'config'")

    async def _data(self, part: _Part, data: bytes) -> None:
        if part.filename is None:
            part.value += data
            if len(part.value) > MAX_FIELD_BYTES:
                raise ApiError(413, "too_large", f"form field {part.name!r} is larger than {MAX_FIELD_BYTES} bytes")
            return
        part.size += len(data)
        self.total += len(data)
        if self.total > self.max_bytes:
            raise ApiError(413, "too_large", f"the upload is larger than the limit of {self.max_bytes} bytes")
        if part.pipe is None:
            part.head += data
            if len(part.head) >= HEAD_BYTES:
                self._open_upload(part)
            return
        part.pending += data
        if len(part.pending) >= FEED_BYTES:
            await self._feed(part)

    def _open_upload(self, part: _Part) -> None:
        container = container_of(bytes(part.head[:HEAD_BYTES]))
        if container is None:
            raise ApiError(415, "not_a_video",
                           f"{part.filename!r} is not a video file (no video container signature at its start; "
                           "accepted: mp4/mov, mkv/webm, avi, mpeg-ps/ts, flv, wmv, ogg)")
        part.container = container
        name = PurePosixPath(part.filename or "video").name
        suffix = PurePosixPath(name).suffix.lower()
        safe = safe_stem(PurePosixPath(name)) + (suffix if suffix in VIDEO_SUFFIXES else "")
        part.key = f"{len(self.files)}/{safe}"
        part.pipe = UploadPipe()
        part.pending, part.head = part.head, bytearray()
        loop = asyncio.get_running_loop()
        pipe = part.pipe

        def upload() -> None:
            try:
                self.store.put_stream(part.key, pipe, parallel_uploads=self.parallel_uploads)
            finally:
                pipe.reader_done.set()

        part.future = loop.run_in_executor(_uploaders, upload)

    async def _feed(self, part: _Part) -> None:
        chunk, part.pending = bytes(part.pending), bytearray()
        if part.future.done():  # the upload thread stopped early: surface its error
            part.future.result()
            raise ApiError(502, "storage_error", "the object store stopped accepting the upload")
        await asyncio.to_thread(part.pipe.put, chunk)

    async def _end_part(self, part: _Part) -> None:
        if part.filename is None:
            try:
                self.fields[part.name] = part.value.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, "bad_field", f"form field {part.name!r} is not UTF-8 text") from None
            return
        if part.size == 0:
            raise ApiError(400, "empty_upload", f"{part.filename!r} is empty (0 bytes)")
        if part.pipe is None:  # smaller than the sniffing window
            self._open_upload(part)
        if part.pending:
            await self._feed(part)
        await asyncio.to_thread(part.pipe.put, None)
        try:
            await part.future
        except Exception as exc:
            raise ApiError(502, "storage_error", f"could not store {part.filename!r}: {type(exc).__name__}") from exc
        self.files.append(StoredUpload(filename=part.filename or "video", key=self.store.object_name(part.key),
                                       size=part.size, container=part.container))
