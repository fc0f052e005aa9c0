"""Export/import of depth as a zip of per-frame OpenEXR files holding disparity (the reference's layout).

OpenCV wheels here ship without an EXR encoder, so this module has a small pure
writer/reader for the subset needed: single-part scanline images, one FLOAT
(or HALF) channel, NO_COMPRESSION. Files in the zip are ``{row:05d}.exr``
(row = position in ``indexes.txt``); pixels are disparity = 1 / z-depth in the
poses' units, with 0 where the depth is invalid. The channel is named ``Y``;
the reader takes the first channel whatever its name. Any EXR viewer opens them.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

_MAGIC = 20000630
_PIXEL_TYPES = {1: np.dtype("<f2"), 2: np.dtype("<f4")}


def _attr(name: str, kind: str, payload: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(payload)) + payload


def encode_exr(image: np.ndarray, channel: str = "Y", half: bool = False) -> bytes:
    """One (h, w) float image as an uncompressed scanline EXR file."""
    img = np.ascontiguousarray(image, dtype=np.float16 if half else np.float32)
    h, w = img.shape
    pixel_type = 1 if half else 2
    chlist = channel.encode() + b"\0" + struct.pack("<iB3xii", pixel_type, 0, 1, 1) + b"\0"
    box = struct.pack("<iiii", 0, 0, w - 1, h - 1)
    header = b"".join([
        struct.pack("<ii", _MAGIC, 2),
        _attr("channels", "chlist", chlist),
        _attr("compression", "compression", b"\0"),
        _attr("dataWindow", "box2i", box),
        _attr("displayWindow", "box2i", box),
        _attr("lineOrder", "lineOrder", b"\0"),
        _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
        _attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
        b"\0",
    ])
    row_bytes = w * img.dtype.itemsize
    block = 8 + row_bytes
    start = len(header) + 8 * h
    offsets = struct.pack(f"<{h}Q", *(start + y * block for y in range(h)))
    rows = img.astype(img.dtype.newbyteorder("<"), copy=False)
    chunks = [struct.pack("<ii", y, row_bytes) + rows[y].tobytes() for y in range(h)]
    return header + offsets + b"".join(chunks)


def decode_exr(data: bytes) -> np.ndarray:
    """The first channel of an uncompressed single-part scanline EXR as (h, w) float32."""
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != _MAGIC:
        raise ValueError("not an OpenEXR file")
    if version & 0x1200:
        raise ValueError("tiled / multi-part EXR is not supported")
    pos = 8
    attrs: dict[str, tuple[str, bytes]] = {}
    while data[pos] != 0:
        name_end = data.index(b"\0", pos)
        kind_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, kind_end + 1)
        value_start = kind_end + 5
        attrs[data[pos:name_end].decode()] = (data[name_end + 1:kind_end].decode(), data[value_start:value_start + size])
        pos = value_start + size
    pos += 1
    if attrs["compression"][1] != b"\0":
        raise ValueError("only NO_COMPRESSION EXR files are supported")
    xmin, ymin, xmax, ymax = struct.unpack("<iiii", attrs["dataWindow"][1])
    w, h = xmax - xmin + 1, ymax - ymin + 1
    chlist = attrs["channels"][1]
    channels = []
    cpos = 0
    while chlist[cpos] != 0:
        end = chlist.index(b"\0", cpos)
        (ptype,) = struct.unpack_from("<i", chlist, end + 1)
        channels.append((chlist[cpos:end].decode(), _PIXEL_TYPES[ptype]))
        cpos = end + 17
    channels.sort(key=lambda c: c[0])  # EXR stores channels alphabetically
    offsets = struct.unpack_from(f"<{h}Q", data, pos)
    out = np.empty((h, w), np.float32)
    for off in offsets:
        y, _size = struct.unpack_from("<ii", data, off)
        p = off + 8
        first_dtype = channels[0][1]
        out[y - ymin] = np.frombuffer(data, first_dtype, w, p)
    return out


def depth_to_disparity(depth: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth, np.float32)
    return np.where(depth > 0, 1.0 / np.maximum(depth, 1e-12), 0.0).astype(np.float32)


def write_disparity_zip(path: str | Path, depth: np.ndarray, half: bool = False) -> None:
    """(N, h, w) z-depth (0 = invalid) -> zip of per-frame disparity EXRs."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, d in enumerate(depth):
            zf.writestr(f"{i:05d}.exr", encode_exr(depth_to_disparity(d), half=half))


def read_disparity_zip(path: str | Path) -> np.ndarray:
    """Zip of per-frame disparity EXRs (sorted by name) -> (N, h, w) float32 disparity."""
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".exr"))
        return np.stack([decode_exr(zf.read(n)) for n in names])


def read_depth_zip(path: str | Path) -> np.ndarray:
    """Zip of disparity EXRs -> (N, h, w) z-depth, 0 where the disparity is 0."""
    return depth_to_disparity(read_disparity_zip(path))  # 1/x is its own inverse, 0 stays 0
