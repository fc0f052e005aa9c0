"""WebDataset tar shards: one sample per clip, ``shard_clips`` clips per shard, streamable for training.

A sample's key is the clip's UUID; its members are ``{uuid}.mp4``, ``.poses.npy`` (world-to-camera
tx,ty,tz,qx,qy,qz,qw), ``.c2w.npy``, ``.intrinsics.npy`` (fx/W, fy/H, cx/W, cy/H), ``.indexes.txt``
(two fields), ``.depth.npz`` and ``.dyn_masks.npz`` (the native arrays), ``.caption.json``,
``.instructions.json`` and ``.metadata.json`` (the clip's metadata row). Shards are
``shard-000000.tar``...; ``shards.json`` records what each holds, so a re-export rewrites only shards
whose clips changed.
"""

from __future__ import annotations

import hashlib
import io
import json

import webdataset as wds

from services import artifacts as a
from services.dataset import formats as f
from services.export.plan import Entry, clip_signature
from services.storage.base import ArtifactNotFound, ArtifactStore

MANIFEST = "shards.json"
METADATA_CSV = "metadata.csv"
# Native files a sample carries as they are (extension in the tar = file name).
CARRIED = (a.POSES, a.C2W, a.INTRINSICS, a.DEPTH, a.DYN_MASKS, a.CAPTION, a.INSTRUCTIONS)


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def assign_shards(entries: list[Entry], shard_clips: int) -> list[list[Entry]]:
    """Consecutive runs of ``shard_clips`` clips in export order (new clips land in the last shards)."""
    shards = [entries[i:i + shard_clips] for i in range(0, len(entries), shard_clips)]
    for number, members in enumerate(shards):
        for e in members:
            e.place = shard_name(number)
    return shards


def shard_signature(members: list[Entry]) -> str:
    text = "|".join(f"{e.uuid}:{clip_signature(e.clip)}" for e in members)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_manifest(dest: ArtifactStore) -> dict[str, dict]:
    try:
        return dest.get_json(MANIFEST)
    except ArtifactNotFound:
        return {}


def sample(source: ArtifactStore, e: Entry, row: dict) -> dict[str, bytes]:
    clip = e.clip
    out = {"__key__": e.uuid, "mp4": source.get_bytes(clip.clip_key)}
    for name in CARRIED:
        key = clip.annotation_key(name)
        if source.exists(key):
            out[name] = source.get_bytes(key)
    key = clip.annotation_key(a.INDEXES)
    if source.exists(key):
        out[a.INDEXES] = f.format_indexes(f.parse_indexes(source.get_text(key))).encode()
    # NaN stays NaN (json allows it), so the row reads back like the metadata.csv row does
    out[a.SAMPLE_METADATA] = json.dumps(row).encode()
    return out


def write_shard(source: ArtifactStore, dest: ArtifactStore, name: str, members: list[Entry], rows: dict) -> None:
    """One shard, written to a temporary file and committed whole."""
    with dest.writer(name, ".tar") as path:
        with open(path, "wb") as stream:
            # mtime fixed: the same clips give the same shard bytes
            writer = wds.TarWriter(stream, encoder=False, mtime=0)
            for e in members:
                writer.write(sample(source, e, rows[e.clip.id]))
            writer.close()


def json_row(row: dict) -> dict:
    """A pandas row as plain JSON values (numpy scalars to Python; NaN kept)."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}


def manifest_entry(members: list[Entry]) -> dict:
    return {"signature": shard_signature(members), "clips": [e.uuid for e in members]}


def encode_manifest(manifest: dict) -> bytes:
    return json.dumps(manifest, indent=1, sort_keys=True).encode()


def table_bytes(table) -> bytes:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    return buffer.getvalue().encode()
