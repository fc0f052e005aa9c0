"""The stage interface: one small contract that every stage implements.

A stage turns a typed record into a typed outcome, reading and writing
artifacts only through the store in its context. The embedded runner and the
Celery workers call the very same objects; neither knows what a stage does.

Two kinds exist:
- a ``VideoStage`` takes one input video and fans it out into clips (``ShotClippingStage``);
- a ``PerClipStage`` takes one clip and adds columns and annotation files.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from services.records import ClipRecord, Scalar, VideoRecord
from services.settings import Settings
from services.storage.base import ArtifactStore
from services.video.decode import FrameRequest
from services.video.shared import DecodedClips


class ClipFailed(Exception):
    """This clip cannot go through the stage; the message says why. The run goes on."""


class VideoFailed(Exception):
    """This input video cannot be clipped; the message says why. The run goes on."""


@dataclass
class StageContext:
    settings: Settings
    store: ArtifactStore
    # A scratch folder for the stage's temporary files (deleted by the caller).
    workdir: Path
    # Optional fine-grained progress, fraction 0..1 of the current item.
    progress: Callable[[float], None] | None = None
    # Models and other heavy state loaded once by setup(), keyed by stage.
    cache: dict[str, object] = field(default_factory=dict)
    # The process's shared decode of the clip being worked on; None: each stage decodes what it reads alone.
    decoded: DecodedClips | None = None


class ClipOutcome(BaseModel):
    """What a clip stage adds to a clip."""

    columns: dict[str, Scalar] = Field(default_factory=dict)
    artifacts: list[str] = Field(default_factory=list)
    # Which backend and version produced each column (or group of columns).
    provenance: dict[str, str] = Field(default_factory=dict)
    # Set by the filter stage only: every rule the clip failed ([] = kept).
    filtered_by: list[str] | None = None
    note: str | None = None


class VideoOutcome(BaseModel):
    """What clipping made of one video."""

    video: VideoRecord
    clips: list[ClipRecord]


@dataclass(frozen=True)
class Files:
    """Files a stage reads or writes, by their names in ``services/artifacts.py``: the ``required`` ones
    must be there (the runner checks, ``services/orchestration/contracts.py``), the ``optional`` may."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.required + self.optional


class Stage(ABC):
    name: ClassVar[str]
    # Settings sections whose values change this stage's output. A clip whose
    # stage ran with other values runs again on resume. Default: (name,).
    config_sections: ClassVar[tuple[str, ...] | None] = None

    def fingerprint(self, settings: Settings) -> str:
        sections = self.config_sections
        if sections is None:
            sections = (self.name,) if self.name in Settings.model_fields else ()
        payload = {s: getattr(settings, s).model_dump(mode="json") for s in sections}
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def setup(self, ctx: StageContext) -> None:
        """Load models or other heavy state once per process. Default: nothing."""

    def inputs(self, settings: Settings) -> Files:
        """The files this stage reads with these settings. Default: none."""
        return Files()

    def outputs(self, settings: Settings) -> Files:
        """The files this stage writes with these settings. Default: none."""
        return Files()


class PerClipStage(Stage):
    # Whether run() reads the clip's decoded frames (then frame_requests says which).
    reads_frames: ClassVar[bool] = False

    @abstractmethod
    def run(self, clip: ClipRecord, ctx: StageContext) -> ClipOutcome: ...

    def frame_requests(self, clip: ClipRecord, settings: Settings) -> tuple[FrameRequest, ...]:
        """The decoded frames ``run`` will read, so that one decode of the clip can serve every stage of the
        process that reads it. Default: none."""
        return ()


class VideoStage(Stage):
    @abstractmethod
    def run(self, video: VideoRecord, local_path: Path, ctx: StageContext) -> VideoOutcome: ...
