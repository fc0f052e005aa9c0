"""Large inputs named in one line: every video under an S3 prefix, or the URIs a manifest file lists.

Read one page at a time, each page resuming from the cursor the previous one returned, so a job over
hundreds of thousands of keys never holds the whole list in one request, one task or one message:
- a prefix: keys in S3's order, video suffixes only (as ``spatialvid run`` takes a folder); the cursor
  is the last key seen (``start_after``);
- a manifest: a text object, one ``s3://bucket/key`` or ``http(s)://`` URI per line, blank lines and
  ``#`` comments skipped; the cursor is the byte offset of the next line (a ranged read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlparse

from minio import Minio

from services.inputs import VIDEO_SUFFIXES

# What a manifest read fetches at a time; a line longer than this is refused, not split.
MANIFEST_CHUNK_BYTES = 1 << 16


class ListingError(ValueError):
    """The prefix or manifest cannot be read as a list of sources."""


@dataclass(frozen=True)
class ListingSpec:
    kind: str  # "prefix" | "manifest"
    uri: str  # s3://bucket/prefix/ or s3://bucket/key

    @property
    def bucket(self) -> str:
        return urlparse(self.uri).netloc

    @property
    def key(self) -> str:
        return urlparse(self.uri).path.lstrip("/")


@dataclass(frozen=True)
class Page:
    uris: list[str]
    cursor: str  # where the next page starts; "" = this was the last page


def read_page(client: Minio, spec: ListingSpec, cursor: str, size: int) -> Page:
    if spec.kind == "prefix":
        return _prefix_page(client, spec, cursor, size)
    if spec.kind == "manifest":
        return _manifest_page(client, spec, int(cursor or 0), size)
    raise ListingError(f"unknown listing kind {spec.kind!r}")


def _prefix_page(client: Minio, spec: ListingSpec, start_after: str, size: int) -> Page:
    uris: list[str] = []
    last = start_after
    # The client pages S3's listing by 1,000 keys; stop after ``size`` videos (plus the next key, to know
    # whether there is more).
    for obj in client.list_objects(spec.bucket, prefix=spec.key, recursive=True, start_after=start_after or None):
        if len(uris) == size:
            return Page(uris=uris, cursor=last)
        last = obj.object_name
        if PurePosixPath(obj.object_name).suffix.lower() in VIDEO_SUFFIXES:
            uris.append(f"s3://{spec.bucket}/{obj.object_name}")
    return Page(uris=uris, cursor="")


def _manifest_page(client: Minio, spec: ListingSpec, offset: int, size: int) -> Page:
    uris: list[str] = []
    pending = b""
    position = offset  # byte offset of ``pending``'s first byte
    response = client.get_object(spec.bucket, spec.key, offset=offset)
    try:
        for chunk in response.stream(MANIFEST_CHUNK_BYTES):
            pending += chunk
            while len(uris) < size and (end := pending.find(b"\n")) >= 0:
                line, pending = pending[:end], pending[end + 1:]
                position += end + 1
                _take(line, uris)
            if len(uris) == size:
                return Page(uris=uris, cursor=str(position))
            if len(pending) > MANIFEST_CHUNK_BYTES:
                raise ListingError(f"manifest {spec.uri}: a line at byte {position} is longer than "
                                   f"{MANIFEST_CHUNK_BYTES} bytes")
    finally:
        response.close()
        response.release_conn()
    _take(pending, uris)  # the last line may have no newline
    return Page(uris=uris, cursor="")


def _take(line: bytes, uris: list[str]) -> None:
    text = line.decode("utf-8", errors="replace").strip()
    if text and not text.startswith("#"):
        uris.append(text)
