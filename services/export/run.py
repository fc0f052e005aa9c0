"""Run an export: from an output folder (any artifact store) to a SpatialVID-HQ tree or WebDataset shards.

Idempotent and resumable: the clip map records each clip's place and the signature of the record its
files came from; clips (or shards) whose signature is unchanged are skipped, every file is written whole
(temporary name, then renamed or uploaded), and the map is saved as work goes, so an interrupted export
redoes at most the items since the last save. Clips that left the export (now filtered, failed or gone)
have their files removed.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import Literal

import pandas as pd
from pydantic import BaseModel

from services.export import hq, shards
from services.export.plan import (
    assign_groups,
    clip_signature,
    load_source,
    order_entries,
    read_clip_map,
    write_clip_map,
)
from services.metadata import clips_table
from services.recordbook import RecordBook
from services.settings import ExportSettings
from services.storage.base import ArtifactStore
from services.storage.local import LocalStore

log = logging.getLogger(__name__)

Format = Literal["spatialvid-hq", "webdataset"]
FORMATS: tuple[Format, ...] = ("spatialvid-hq", "webdataset")
# Save the clip map at least this often (seconds) while exporting: what a crash can make us redo.
SAVE_EVERY_S = 10.0

Progress = Callable[[int, int], None]


class ExportSummary(BaseModel):
    format: str
    clips: int = 0  # in the export
    written: int = 0  # clips (HQ) or shards (WebDataset) written by this run
    skipped: int = 0  # already up to date
    removed: int = 0  # clips or shards no longer in the export
    seconds: float = 0.0


def native_table(source: ArtifactStore) -> pd.DataFrame:
    """Our metadata table as a reader of ``metadata.csv`` sees it (types as the CSV gives them back)."""
    table = clips_table(RecordBook(source).all_clips())
    return pd.read_csv(io.StringIO(table.to_csv(index=False)))


def export(source: ArtifactStore, dest: ArtifactStore, fmt: Format, settings: ExportSettings,
           progress: Progress | None = None) -> ExportSummary:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    started = time.perf_counter()
    clips, identity = load_source(source, settings.include_filtered)
    run = _export_hq if fmt == "spatialvid-hq" else _export_shards
    summary = run(source, dest, clips, identity, settings, progress or (lambda done, total: None))
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _export_hq(source, dest, clips, identity, settings, progress) -> ExportSummary:
    previous = read_clip_map(dest, "group")
    entries = order_entries(clips, identity, previous)
    assign_groups(entries, settings.group_size)
    summary = ExportSummary(format="spatialvid-hq", clips=len(entries))
    summary.removed = _remove_stale_clips(dest, entries, previous)
    write_clip_map(dest, entries, "group")  # places first: a resumed run puts every clip where it was
    last_save = time.monotonic()
    for done, e in enumerate(entries, 1):
        current = clip_signature(e.clip)
        if e.signature == current and hq.is_complete(dest, e):
            summary.skipped += 1
        else:
            hq.export_clip(source, dest, e)
            e.signature = current
            summary.written += 1
            if time.monotonic() - last_save > SAVE_EVERY_S:
                write_clip_map(dest, entries, "group")
                last_save = time.monotonic()
        progress(done, len(entries))
    table = hq.metadata_table(entries, native_table(source))
    dest.put_bytes(hq.METADATA_CSV, shards.table_bytes(table))
    write_clip_map(dest, entries, "group")
    return summary


def _remove_stale_clips(dest, entries, previous) -> int:
    """Files of clips that were exported before but are not now (or moved): removed."""
    now = {e.clip.id: (e.uuid, e.place) for e in entries}
    removed = 0
    for clip_id, old in previous.items():
        if now.get(clip_id) == (old.uuid, old.place) or not old.place:
            continue
        for key in hq.clip_keys(old.uuid, old.place):
            dest.delete(key)
        # a local export keeps no empty clip folder behind (object stores have no folders)
        folder = dest.root / "annotations" / old.place / old.uuid if isinstance(dest, LocalStore) else None
        if folder is not None and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        removed += 1
    return removed


def _export_shards(source, dest, clips, identity, settings, progress) -> ExportSummary:
    previous = read_clip_map(dest, "shard")
    entries = order_entries(clips, identity, previous)
    plan = shards.assign_shards(entries, settings.shard_clips)
    summary = ExportSummary(format="webdataset", clips=len(entries))
    manifest = shards.read_manifest(dest)
    table = native_table(source).set_index("id", drop=False)
    rows = {e.clip.id: shards.json_row(table.loc[e.clip.id].to_dict()) for e in entries}
    for number, members in enumerate(plan):
        name = shards.shard_name(number)
        wanted = shards.manifest_entry(members)
        if manifest.get(name) == wanted and dest.exists(name):
            summary.skipped += 1
        else:
            shards.write_shard(source, dest, name, members, rows)
            manifest[name] = wanted
            dest.put_bytes(shards.MANIFEST, shards.encode_manifest(manifest))
            summary.written += 1
        for e in members:
            e.signature = clip_signature(e.clip)
        progress(sum(len(m) for m in plan[:number + 1]), len(entries))
    for name in sorted(set(manifest) - {shards.shard_name(n) for n in range(len(plan))}):
        dest.delete(name)
        del manifest[name]
        summary.removed += 1
    dest.put_bytes(shards.MANIFEST, shards.encode_manifest(manifest))
    listed = table.loc[[e.clip.id for e in entries]].assign(
        uuid=[e.uuid for e in entries], shard=[e.place for e in entries])
    dest.put_bytes(shards.METADATA_CSV, shards.table_bytes(listed))
    write_clip_map(dest, entries, "shard")
    return summary


def export_job_formats(store: ArtifactStore, settings: ExportSettings) -> list[ExportSummary]:
    """The distributed job's exports, into ``export/{format}/`` beside the job's native layout."""
    if not hasattr(store, "scoped"):
        raise TypeError("job exports need a store with scoped prefixes (S3Store)")
    return [export(store, store.scoped(f"export/{fmt}/"), fmt, settings) for fmt in settings.formats]
