"""Artifacts in an S3 bucket through the MinIO SDK: the distributed mode."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from minio import Minio
from minio.error import S3Error

from services.settings import S3Settings
from services.storage.base import ArtifactNotFound, ArtifactStore, check_key

_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}


def make_client(settings: S3Settings) -> Minio:
    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key.get_secret_value(),
        secure=settings.secure,
        region=settings.region,
    )


class S3Store(ArtifactStore):
    """Keys live under ``prefix`` in one bucket (``jobs/{job_id}/`` per job)."""

    def __init__(self, settings: S3Settings, prefix: str = "", client: Minio | None = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or make_client(settings)

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def scoped(self, prefix: str) -> "S3Store":
        return S3Store(self.settings, self.prefix + prefix, client=self.client)

    def object_name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(self.bucket, self.object_name(key), io.BytesIO(data), len(data))

    def put_stream(
        self, key: str, stream: BinaryIO, content_type: str = "application/octet-stream", parallel_uploads: int = 3
    ) -> None:
        """Upload a stream of unknown length as an S3 multipart upload, part by part
        (memory: about ``parallel_uploads + 2`` parts)."""
        self.client.put_object(
            self.bucket,
            self.object_name(key),
            stream,
            length=-1,
            part_size=self.settings.part_size,
            content_type=content_type,
            num_parallel_uploads=parallel_uploads,
        )

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(self.bucket, self.object_name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ArtifactNotFound(key) from None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def put_file(self, key: str, path: Path) -> None:
        self.client.fput_object(self.bucket, self.object_name(key), str(path), part_size=self.settings.part_size)

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, self.object_name(key))
            return True
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise

    def list(self, prefix: str = "") -> list[str]:
        objects = self.client.list_objects(self.bucket, prefix=self.prefix + prefix, recursive=True)
        return sorted(obj.object_name[len(self.prefix):] for obj in objects)

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, self.object_name(key))

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        suffix = Path(key).suffix
        with tempfile.TemporaryDirectory(prefix="spatialvid-s3-") as tmp:
            path = Path(tmp) / f"artifact{suffix}"
            try:
                self.client.fget_object(self.bucket, self.object_name(key), str(path))
            except S3Error as exc:
                if exc.code in _MISSING:
                    raise ArtifactNotFound(key) from None
                raise
            yield path

    @contextmanager
    def writer(self, key: str, suffix: str = "") -> Iterator[Path]:
        # An S3 object appears whole when its upload completes, so a temp file is enough.
        with tempfile.TemporaryDirectory(prefix="spatialvid-s3-") as tmp:
            path = Path(tmp) / f"artifact{suffix or Path(key).suffix}"
            yield path
            self.put_file(key, path)

    def url(self, key: str, expires_seconds: int | None = None) -> str:
        seconds = expires_seconds or self.settings.presign_seconds
        return self.client.presigned_get_object(self.bucket, self.object_name(key), expires=timedelta(seconds=seconds))
