"""Artifact stores: one interface, a local folder and an S3 bucket."""

from services.storage.base import ArtifactNotFound, ArtifactStore
from services.storage.local import LocalStore

__all__ = ["ArtifactNotFound", "ArtifactStore", "LocalStore", "open_store"]


def open_store(settings, root=None, prefix: str = "") -> ArtifactStore:
    """The store the settings name; ``root`` overrides the local folder."""
    if settings.storage.backend == "s3":
        from services.storage.s3 import S3Store

        return S3Store(settings.s3, prefix=prefix)
    return LocalStore(root if root is not None else settings.storage.root)
