"""The records that flow through the pipeline: videos, clips and stage status.

They are plain pydantic models so the embedded runner can keep them as JSON
files next to the output, and the distributed mode can keep them in Redis and
the bucket, without either knowing more than ``model_dump_json``.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, Field

# Columns every metadata row starts with, in this order (other tools read them).
BASE_COLUMNS = (
    "id",
    "source",
    "num_frames",
    "height",
    "width",
    "aspect_ratio",
    "fps",
    "resolution",
    "timestamp_start",
    "timestamp_end",
    "frame_start",
    "frame_end",
)

Scalar = str | int | float | bool | None


class StageState(str, enum.Enum):
    done = "done"
    failed = "failed"
    skipped = "skipped"


class StageStatus(BaseModel):
    state: StageState
    seconds: float = 0.0
    error: str | None = None
    note: str | None = None
    # Fingerprint of the settings the stage ran with; a change means "run again".
    config: str = ""


class VideoState(str, enum.Enum):
    pending = "pending"
    done = "done"
    failed = "failed"


class VideoRecord(BaseModel):
    """One input video and what clipping made of it."""

    source: str  # the path or URI the user gave
    source_id: str  # stem used in clip ids; unique within a run
    state: VideoState = VideoState.pending
    error: str | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    num_frames: int | None = None
    duration: float | None = None
    num_shots: int = 0
    clip_ids: list[str] = Field(default_factory=list)
    # Shots or pieces that produced no clip, by reason (e.g. "shorter than 3.0 s").
    dropped: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0
    # Fingerprint of the clip settings used; a change means "clip again".
    config: str = ""
    # Content hash, to skip the same video given twice.
    sha256: str = ""


class ClipRecord(BaseModel):
    """One clip: where it came from, what every stage added, and its state."""

    id: str
    source: str
    source_id: str
    num_frames: int
    height: int
    width: int
    fps: float
    timestamp_start: float
    timestamp_end: float
    frame_start: int
    frame_end: int
    # Metadata columns added by stages (scores, statistics, backends).
    columns: dict[str, Scalar] = Field(default_factory=dict)
    # Every filter rule the clip failed; empty means kept.
    filtered_by: list[str] = Field(default_factory=list)
    # Which backend (and version) produced each column or group of columns.
    provenance: dict[str, str] = Field(default_factory=dict)
    stages: dict[str, StageStatus] = Field(default_factory=dict)

    @property
    def aspect_ratio(self) -> float:
        return round(self.width / self.height, 4) if self.height else 0.0

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def clip_key(self) -> str:
        return f"clips/{self.id}.mp4"

    def annotation_key(self, name: str) -> str:
        return f"annotations/{self.id}/{name}"

    @property
    def failed_stage(self) -> str | None:
        for name, status in self.stages.items():
            if status.state is StageState.failed:
                return name
        return None

    @property
    def active(self) -> bool:
        """Still going on through the pipeline: not dropped by a filter, not failed."""
        return not self.filtered_by and self.failed_stage is None

    def is_done(self, stage: str) -> bool:
        status = self.stages.get(stage)
        return status is not None and status.state is StageState.done

    def metadata_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "num_frames": self.num_frames,
            "height": self.height,
            "width": self.width,
            "aspect_ratio": self.aspect_ratio,
            "fps": self.fps,
            "resolution": self.resolution,
            "timestamp_start": self.timestamp_start,
            "timestamp_end": self.timestamp_end,
            "frame_start": self.frame_start,
            "frame_end": self.frame_end,
        }
        row.update(self.columns)
        row["filtered_by"] = ",".join(self.filtered_by)
        failed = self.failed_stage
        row["failed_stage"] = failed or ""
        row["error"] = self.stages[failed].error if failed else ""
        return row
