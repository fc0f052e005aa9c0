"""The stage order of one run: prerequisites, whether a clip needs a stage, which stage comes next."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.records import ClipRecord, StageState
from services.settings import Settings
from services.stages.base import PerClipStage, VideoStage
from services.stages.clip import ingest_stage
from services.video.decode import FrameRequest

# The stage that turns input videos into clips; every other stage runs on clips.
CLIPPING = "clip"
# The stage that still runs on a filtered clip (it is the one that filters).
FILTERING = "filter"


@dataclass(frozen=True)
class Plan:
    """The stages a run asked for, in pipeline order, and whether finished work is done again."""

    stages: list[str]
    force: bool = False

    @property
    def clipping(self) -> bool:
        """Whether inputs are cut into shots (otherwise each input file is one clip)."""
        return CLIPPING in self.stages

    @property
    def clip_stages(self) -> list[str]:
        return [name for name in self.stages if name != CLIPPING]

    @property
    def ingest_label(self) -> str:
        """What the run's first step does to the inputs (its progress bar's label)."""
        return CLIPPING if self.clipping else "ingest"

    def ingest(self, clipper: VideoStage, settings: Settings) -> tuple[VideoStage, str]:
        """What turns an input into clips in this run, and its fingerprint."""
        return ingest_stage(clipper, self.clipping, settings)

    def prerequisites(self, name: str) -> list[str]:
        """The clip stages this run has before ``name``: each must be done on a clip first."""
        return [n for n in self.stages[: self.stages.index(name)] if n != CLIPPING]

    def needs_run(self, stage: PerClipStage, clip: ClipRecord, fingerprint: str) -> bool:
        """Whether ``stage`` should run on ``clip`` in this run."""
        if any(not clip.is_done(name) for name in self.prerequisites(stage.name)):
            return False
        return self.may_run(stage, clip, fingerprint)

    def may_run(self, stage: PerClipStage, clip: ClipRecord, fingerprint: str) -> bool:
        """Whether ``stage`` will run on ``clip`` once its prerequisites are done (what a decode shared by
        consecutive stages must provide for)."""
        if clip.filtered_by and stage.name != FILTERING:
            return False
        if self.force:
            return True
        status = clip.stages.get(stage.name)
        return status is None or status.state is not StageState.done or status.config != fingerprint

    def shared_frames(self, stages: Sequence[PerClipStage], clip: ClipRecord, settings: Settings,
                      fingerprints: Mapping[str, str] | None = None) -> list[FrameRequest]:
        """What one decode of ``clip`` must produce for ``stages`` (consecutive, each reading frames): the frames
        of every one of them that may still run on it; none when the settings do not share decodes."""
        if not settings.video.share_decode:
            return []
        fingerprints = fingerprints or {s.name: s.fingerprint(settings) for s in stages}
        return [request for stage in stages if self.may_run(stage, clip, fingerprints[stage.name])
                for request in stage.frame_requests(clip, settings)]

    def next_stage(self, clip: ClipRecord, after: str | None) -> str | None:
        """The stage the clip goes to after ``after`` (None: first), or None when its chain ends
        (every stage passed, filtered out, or failed)."""
        stages = self.clip_stages
        position = stages.index(after) + 1 if after else 0
        return stages[position] if clip.active and position < len(stages) else None
