"""Is this upload a video container? A cheap look at its first bytes.

Only the container's signature is checked here (a text file or an image is
refused at once, with a clear message); whether the video inside decodes is
the ingest worker's job, which fails that one video with its reason.
"""

from __future__ import annotations

# Bytes needed to decide.
HEAD_BYTES = 192


def container_of(head: bytes) -> str | None:
    """The container format the bytes start with, or None if no video container does."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4/mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska/webm"
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "mpeg-ps"
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:  # two TS packet syncs
        return "mpeg-ts"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf/wmv"
    if head.startswith(b"OggS"):
        return "ogg"
    return None
