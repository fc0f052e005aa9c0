"""The API's typed requests and responses (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workers.state import JobState, JobStatus, StageCounts, Timings, VideoStatus

__all__ = [
    "ClipDetail", "ClipFile", "ClipList", "ClipSummary", "FileEntry", "FileList", "JobAccepted", "JobRequest",
    "JobState", "JobStatus", "StageCounts", "Timings", "VideoStatus", "Health",
]


class JobRequest(BaseModel):
    """A job over videos already reachable: ``s3://bucket/key`` objects or http(s) URLs, listed in the
    request (``sources``), or every video under an S3 prefix (``prefix``), or every URI of a manifest
    object, one per line (``manifest``). Exactly one of the three."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] | None = Field(default=None, min_length=1, max_length=1000,
                                      description="s3://bucket/key or http(s):// URLs")
    prefix: str | None = Field(default=None, min_length=1, description="s3://bucket/prefix/: every video file below it")
    manifest: str | None = Field(default=None, min_length=1,
                                description="s3://bucket/key of a text file, one URI per line")
    stages: list[str] | str | None = Field(
        default=None, description="stage names (or one comma list); annotate = camera,depth; default: all")
    config: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="settings overrides by section (clip, score, filter, annotate, camera, depth, caption, export)")

    @model_validator(mode="after")
    def one_kind_of_input(self) -> "JobRequest":
        given = [name for name in ("sources", "prefix", "manifest") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of sources, prefix, manifest (got {', '.join(given) or 'none'})")
        return self


class JobAccepted(BaseModel):
    id: str
    url: str
    state: JobState
    stages: list[str]
    videos: list[str]


class ClipSummary(BaseModel):
    id: str
    state: str = Field(description="queued | queued:STAGE | running:STAGE | done | filtered | failed:STAGE | cancelled")
    source_id: str
    timestamp_start: float
    timestamp_end: float
    num_frames: int
    filtered_by: list[str]
    failed_stage: str | None
    error: str | None
    stages_done: list[str]
    # Scores and other scalar columns added by the stages so far.
    columns: dict[str, str | int | float | bool | None]


class ClipList(BaseModel):
    items: list[ClipSummary]
    total: int
    offset: int
    limit: int
    next_offset: int | None


class ClipFile(BaseModel):
    key: str
    url: str
    expires_in_s: int


class ClipDetail(BaseModel):
    id: str
    state: str
    metadata: dict[str, Any]
    provenance: dict[str, str]
    files: list[ClipFile]


class FileEntry(BaseModel):
    key: str
    size: int
    url: str


class FileList(BaseModel):
    job_id: str
    expires_in_s: int
    files: list[FileEntry]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
