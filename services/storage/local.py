"""Artifacts in a local folder: the embedded default."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.storage.base import ArtifactNotFound, ArtifactStore, check_key
from services.storage.files import temp_beside


class LocalStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextmanager
    def writer(self, key: str, suffix: str = "") -> Iterator[Path]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = temp_beside(target, suffix)
        try:
            yield tmp_path
            os.replace(tmp_path, target)
        finally:
            tmp_path.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as tmp:
            tmp.write_bytes(data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(key) from None

    def put_file(self, key: str, path: Path) -> None:
        with self.writer(key) as tmp:
            shutil.copyfile(path, tmp)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and ".part" not in p.name
        )
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise ArtifactNotFound(key)
        yield path

    def url(self, key: str, expires_seconds: int = 900) -> str:
        return self.path(key).as_uri()
