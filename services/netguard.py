"""Refuse http(s) sources that point inside the deployment (SSRF).

A job may name any URL; without this, a worker would fetch
http://169.254.169.254/ or an internal service on the job's behalf. Every
address the host resolves to must be public, and so must every redirect.
Operators with private video hosts set ``gateway.allow_private_sources``.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlparse


class ForbiddenSource(ValueError):
    pass


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_public_url(uri: str, allow_private: bool = False) -> None:
    """Raise ForbiddenSource unless ``uri`` is http(s) to public addresses only."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ForbiddenSource(f"{uri!r} is not an http(s) URL with a host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise ForbiddenSource(f"{uri!r}: cannot resolve {parsed.hostname} ({exc.strerror})") from None
    private = sorted({info[4][0] for info in infos if not _is_public(info[4][0])})
    if private:
        raise ForbiddenSource(f"{uri!r} resolves to a non-public address ({', '.join(private)})")
