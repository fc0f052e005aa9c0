"""The artifact store: where clips, annotations and metadata are kept.

Stages only ever see this interface. Keys are relative POSIX paths
(``clips/bikes_0.mp4``, ``annotations/bikes_0/poses.npy``); an implementation
maps them to a folder (embedded mode) or a bucket prefix (distributed mode).
Every write is all-or-nothing: a reader never sees half a file.
"""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np


class ArtifactNotFound(KeyError):
    """The key does not exist in the store."""


def check_key(key: str) -> str:
    """Reject keys that could escape the store's root."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key.endswith("/"):
        raise ValueError(f"invalid artifact key: {key!r}")
    return str(path)


class ArtifactStore(ABC):
    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Copy a local file into the store under ``key``."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys below ``prefix``, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """A readable local file with the key's content, for tools that need a path."""

    @abstractmethod
    @contextmanager
    def writer(self, key: str, suffix: str = "") -> Iterator[Path]:
        """A temporary local path to write to; committed under ``key`` only on success."""

    @abstractmethod
    def url(self, key: str, expires_seconds: int = 900) -> str:
        """Where a client can fetch the artifact (a file path or a presigned URL)."""

    # Conveniences on top of the primitives.
    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, indent=2, sort_keys=False).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_text(self, key: str, text: str) -> None:
        self.put_bytes(key, text.encode())

    def get_text(self, key: str) -> str:
        return self.get_bytes(key).decode()

    def put_npy(self, key: str, array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        self.put_bytes(key, buffer.getvalue())

    def get_npy(self, key: str) -> np.ndarray:
        return np.load(io.BytesIO(self.get_bytes(key)), allow_pickle=False)

    def put_npz(self, key: str, compressed: bool = True, **arrays: np.ndarray) -> None:
        with self.writer(key, suffix=".npz") as path:
            (np.savez_compressed if compressed else np.savez)(path, **arrays)

    def get_npz(self, key: str) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(self.get_bytes(key)), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
