"""What an export holds and where each clip goes: selection, stable UUIDs, groups and the clip map.

The clip map (``clip_map.csv`` at the export's root) is the export's memory: our clip id, its UUID, its
place (group or shard) and the signature of the clip record it was written from. A re-export keeps every
clip where it was, skips clips whose signature is unchanged (so an interrupted export resumes and a repeat
is a no-op), rewrites changed ones, and appends new clips after the old ones.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from dataclasses import dataclass

from services.recordbook import RecordBook
from services.records import ClipRecord
from services.storage.base import ArtifactNotFound, ArtifactStore

CLIP_MAP = "clip_map.csv"
# Fixed namespace of clip UUIDs (uuid5 of the namespace URL): the same source and frames get the same
# name in every export, on every machine.
CLIP_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://spatialvid/clips")
# Bumped when an exported file's format changes, so clips exported before are written again.
EXPORT_FORMAT_VERSION = "1"


def clip_uuid(source_identity: str, clip: ClipRecord) -> str:
    """uuid5 of the source (its content hash when known) and the clip's frame range in it."""
    return str(uuid.uuid5(CLIP_NAMESPACE, f"{source_identity}/{clip.frame_start}-{clip.frame_end}"))


def clip_signature(clip: ClipRecord) -> str:
    """Changes whenever any stage wrote something new for the clip (its record changes with it)."""
    return hashlib.sha256((EXPORT_FORMAT_VERSION + clip.model_dump_json()).encode()).hexdigest()[:16]


@dataclass
class Entry:
    clip: ClipRecord
    uuid: str
    place: str  # "group_0001" or "shard-000000.tar"
    signature: str  # of the record the files were written from; "" = not written yet


@dataclass
class Previous:
    uuid: str
    place: str
    signature: str


def exportable(clips: list[ClipRecord], include_filtered: bool) -> list[ClipRecord]:
    """Kept clips (filtered ones too when asked); failed clips never: their annotations are incomplete."""
    return [c for c in clips if c.failed_stage is None and (include_filtered or not c.filtered_by)]


def load_source(source: ArtifactStore, include_filtered: bool) -> tuple[list[ClipRecord], dict[str, str]]:
    """The clips to export in table order, and each clip's source identity (content hash or path)."""
    book = RecordBook(source)
    clips = sorted(book.all_clips(), key=lambda c: (c.source_id, c.frame_start))
    hashes = {v.source_id: v.sha256 for v in book.all_videos() if v.sha256}
    identity = {c.id: hashes.get(c.source_id) or c.source for c in clips}
    return exportable(clips, include_filtered), identity


def read_clip_map(dest: ArtifactStore, place_column: str) -> dict[str, Previous]:
    try:
        text = dest.get_text(CLIP_MAP)
    except ArtifactNotFound:
        return {}
    rows = csv.DictReader(io.StringIO(text))
    return {r["clip_id"]: Previous(r["uuid"], r[place_column], r["signature"]) for r in rows}


def write_clip_map(dest: ArtifactStore, entries: list[Entry], place_column: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["clip_id", "uuid", place_column, "source", "signature"])
    for e in entries:
        writer.writerow([e.clip.id, e.uuid, e.place, e.clip.source, e.signature])
    dest.put_text(CLIP_MAP, out.getvalue())


def order_entries(clips: list[ClipRecord], identity: dict[str, str], previous: dict[str, Previous]) -> list[Entry]:
    """Clips already exported first, in their old order; new clips after them in table order."""
    rank = {clip_id: i for i, clip_id in enumerate(previous)}
    ordered = sorted(clips, key=lambda c: (0, rank[c.id]) if c.id in rank else (1, 0))
    entries = []
    for clip in ordered:
        old = previous.get(clip.id)
        name = clip_uuid(identity[clip.id], clip)
        kept = old is not None and old.uuid == name
        entries.append(Entry(clip, name, old.place if kept else "", old.signature if kept else ""))
    return entries


def group_name(number: int) -> str:
    return f"group_{number:04d}"


def assign_groups(entries: list[Entry], group_size: int) -> None:
    """Clips keep their group; new ones fill the last group, then open the next (group_0001 first)."""
    counts: dict[int, int] = {}
    for e in entries:
        if e.place:
            n = int(e.place.split("_")[1])
            counts[n] = counts.get(n, 0) + 1
    current = max(counts, default=1)
    for e in entries:
        if e.place:
            continue
        while counts.get(current, 0) >= group_size:
            current += 1
        e.place = group_name(current)
        e.signature = ""
        counts[current] = counts.get(current, 0) + 1
