"""The dataset tables: metadata (one row per clip) and videos (one row per input)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from services.records import BASE_COLUMNS, ClipRecord, VideoRecord
from services.storage.base import ArtifactStore

# Columns that describe a row's state rather than the clip; they go last.
STATE_COLUMNS = ("filtered_by", "failed_stage", "error")


def clips_table(clips: Iterable[ClipRecord]) -> pd.DataFrame:
    rows = [clip.metadata_row() for clip in clips]
    extra: list[str] = []
    for row in rows:  # stage columns in the order stages added them
        extra += [c for c in row if c not in BASE_COLUMNS and c not in STATE_COLUMNS and c not in extra]
    columns = [*BASE_COLUMNS, *extra, *STATE_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def videos_table(videos: Iterable[VideoRecord]) -> pd.DataFrame:
    rows = [
        {
            "source": v.source,
            "source_id": v.source_id,
            "state": v.state.value,
            "error": v.error or "",
            "fps": v.fps,
            "width": v.width,
            "height": v.height,
            "num_frames": v.num_frames,
            "num_shots": v.num_shots,
            "num_clips": len(v.clip_ids),
            "dropped": "; ".join(f"{reason}: {n}" for reason, n in sorted(v.dropped.items())),
        }
        for v in videos
    ]
    return pd.DataFrame(rows, columns=[
        "source", "source_id", "state", "error", "fps", "width", "height",
        "num_frames", "num_shots", "num_clips", "dropped",
    ])


def write_table(store: ArtifactStore, stem: str, table: pd.DataFrame) -> list[str]:
    """Write ``{stem}.csv`` and ``{stem}.parquet`` atomically; returns the keys."""
    with store.writer(f"{stem}.csv", ".csv") as path:
        table.to_csv(path, index=False)
    with store.writer(f"{stem}.parquet", ".parquet") as path:
        table.to_parquet(path, index=False)
    return [f"{stem}.csv", f"{stem}.parquet"]
