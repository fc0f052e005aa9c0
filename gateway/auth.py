"""API keys: bearer tokens, kept hashed in the settings (``gateway.api_keys``: owner -> hash).

Keys are random 256-bit tokens, so a plain SHA-256 is enough to make the
stored form useless to a reader (no dictionary to try), and cheap enough to
check on every status poll. ``python -m gateway.auth`` makes a new key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "svk_" + secrets.token_urlsafe(32)


class KeyRing:
    """Owner lookup by key; comparisons in constant time."""

    def __init__(self, hashed: dict[str, str]) -> None:
        self._by_hash = {h.lower(): owner for owner, h in hashed.items()}

    def owner(self, key: str) -> str | None:
        digest = hash_key(key)
        for stored, owner in self._by_hash.items():
            if hmac.compare_digest(stored, digest):
                return owner
        return None


if __name__ == "__main__":
    key = new_key()
    print(f"key:  {key}\nhash: {hash_key(key)}")
    print("set it with SPATIALVID_GATEWAY__API_KEYS='{\"NAME\": \"" + hash_key(key) + "\"}'")
