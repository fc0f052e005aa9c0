"""What a run leaves beside its clips when it ends: the dataset tables, provenance and summary."""

from __future__ import annotations

from services.artifacts import METADATA_TABLE, PROVENANCE, SUMMARY, VIDEOS_TABLE
from services.metadata import clips_table, videos_table, write_table
from services.orchestration.accounting import RunSummary, count_clips
from services.recordbook import RecordBook
from services.records import ClipRecord, VideoRecord


def finish_outputs(store, book: RecordBook, summary: RunSummary, clips: list[ClipRecord],
                   all_clips: list[ClipRecord] | None = None, all_videos: list[VideoRecord] | None = None) -> None:
    """Count this run's clips into the summary and write the dataset tables (both modes write the
    same files). ``all_clips`` / ``all_videos``: every record of the output, where the caller has them
    already (otherwise read from the book)."""
    count_clips(summary, clips)
    # The tables cover the whole output folder: earlier runs' inputs too.
    all_clips = sorted(book.all_clips() if all_clips is None else all_clips, key=lambda c: (c.source_id, c.frame_start))
    write_table(store, METADATA_TABLE, clips_table(all_clips))
    write_table(store, VIDEOS_TABLE, videos_table(book.all_videos() if all_videos is None else all_videos))
    store.put_json(PROVENANCE, _provenance(all_clips))
    store.put_bytes(SUMMARY, summary.model_dump_json(indent=2).encode())


def _provenance(clips: list[ClipRecord]) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {}
    for clip in clips:
        for column, backend in clip.provenance.items():
            found.setdefault(column, set()).add(backend)
    return {column: sorted(backends) for column, backends in sorted(found.items())}
