"""Depth as the published layout ships it: a zip of per-frame OpenEXR files holding disparity.

Files in the zip are ``{row:05d}.exr`` (row = line of ``indexes.txt``), so sorted order is frame order.
Each holds one HALF channel ``Z`` = disparity = 1 / z-depth (in the poses' units), 0 where the depth is
invalid; the published reader returns ``clip(1 / Z, 1e-3, 1e2)``. Written and read with the ``OpenEXR``
package (the format's own bindings).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import OpenEXR

CHANNEL = "Z"


def depth_to_disparity(depth: np.ndarray) -> np.ndarray:
    """1 / depth where depth > 0, else 0 (float32; 1/x is its own inverse, so this also inverts back)."""
    depth = np.asarray(depth, np.float32)
    return np.where(depth > 0, 1.0 / np.maximum(depth, 1e-12), 0.0).astype(np.float32)


def encode_disparity_exr(disparity: np.ndarray) -> bytes:
    """One (h, w) disparity image as a scanline EXR with a single HALF channel ``Z``."""
    pixels = np.ascontiguousarray(disparity, dtype=np.float16)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    buffer = io.BytesIO()
    with OpenEXR.File(header, {CHANNEL: pixels}) as exr:
        exr.write(buffer)
    return buffer.getvalue()


def decode_disparity_exr(data: bytes) -> np.ndarray:
    """The ``Z`` channel of an EXR file as (h, w) float32."""
    with OpenEXR.File(io.BytesIO(data)) as exr:
        channels = exr.channels()
        if CHANNEL not in channels:
            raise ValueError(f"EXR file has no {CHANNEL!r} channel (channels: {sorted(channels)})")
        return np.asarray(channels[CHANNEL].pixels, np.float32)


def disparity_zip_bytes(depth: np.ndarray) -> bytes:
    """(N, h, w) z-depth (0 = invalid) -> zip of per-frame HALF ``Z`` disparity EXRs."""
    buffer = io.BytesIO()
    # The EXRs are compressed already: storing them uncompressed in the zip costs nothing and saves time.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, d in enumerate(depth):
            info = zipfile.ZipInfo(f"{i:05d}.exr", date_time=(1980, 1, 1, 0, 0, 0))  # fixed: same bytes on re-export
            zf.writestr(info, encode_disparity_exr(depth_to_disparity(d)))
    return buffer.getvalue()


def write_disparity_zip(path: str | Path, depth: np.ndarray) -> None:
    Path(path).write_bytes(disparity_zip_bytes(depth))


def read_disparity_zip(source: str | Path | bytes, rows: list[int] | None = None) -> np.ndarray:
    """Zip of per-frame disparity EXRs (sorted by name) -> (N, h, w) float32 disparity;
    ``rows`` picks frames by position."""
    with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".exr"))
        picked = names if rows is None else [names[r] for r in rows]
        return np.stack([decode_disparity_exr(zf.read(n)) for n in picked])


def read_depth_zip(source: str | Path | bytes, rows: list[int] | None = None) -> np.ndarray:
    """Zip of disparity EXRs -> (N, h, w) z-depth, 0 where the disparity is 0 (invalid)."""
    return depth_to_disparity(read_disparity_zip(source, rows))
