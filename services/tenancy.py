"""Which objects a job may read: its owner's own uploads and job files, and the prefixes the
operator grants to the owner's key (``gateway.tenants: {owner: {s3_prefixes: [s3://bucket/prefix/]}}``).

Everything else the service's S3 credentials reach (other buckets, the rest of the main bucket,
other owners' jobs) is refused, with one answer whether the object exists or not, so a key can
neither read nor probe what it was not given.
"""

from __future__ import annotations

from urllib.parse import urlparse

# The main bucket's folders that belong to a job: ``{folder}/{job_id}/...``.
JOB_FOLDERS = ("jobs", "uploads")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def plain_key(key: str) -> bool:
    """No empty, '.' or '..' segments: a key that an HTTP layer could normalise into another one."""
    return bool(key) and all(part not in ("", ".", "..") for part in key.split("/"))


def job_of(bucket: str, key: str, main_bucket: str) -> str | None:
    """The job whose files ``key`` is in (its own upload or output), if any."""
    parts = key.split("/")
    if bucket == main_bucket and len(parts) >= 3 and parts[0] in JOB_FOLDERS and parts[1]:
        return parts[1]
    return None


def granted(owner: str, bucket: str, key: str, tenants: dict) -> bool:
    """True if the operator granted ``owner`` a prefix that holds ``bucket/key``."""
    tenant = tenants.get(owner)
    for prefix in (tenant.s3_prefixes if tenant else ()):
        grant_bucket, grant_key = split_s3_uri(prefix)
        if grant_key and not grant_key.endswith("/"):
            grant_key += "/"  # a prefix is a folder: "videos" does not grant "videos-private/"
        if bucket == grant_bucket and key.startswith(grant_key):
            return True
    return False
