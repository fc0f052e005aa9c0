"""The score stage: every score of a clip from one decode of it."""

from __future__ import annotations

from services.records import ClipRecord
from services.scoring.base import ScoringError
from services.scoring.suite import ScoringSuite, build_suite
from services.artifacts import CLIP_VIDEO
from services.stages.base import ClipFailed, ClipOutcome, Files, PerClipStage, StageContext


class ScoreStage(PerClipStage):
    name = "score"
    config_sections = ("score", "models")

    def __init__(self) -> None:
        self.suite: ScoringSuite | None = None

    def inputs(self, settings) -> Files:
        return Files(required=(CLIP_VIDEO,))

    def setup(self, ctx: StageContext) -> None:
        if self.suite is None:
            settings = ctx.settings
            self.suite = build_suite(settings.score, settings.models, settings.triton, settings.video)

    def run(self, clip: ClipRecord, ctx: StageContext) -> ClipOutcome:
        self.setup(ctx)
        with ctx.store.local_path(clip.clip_key) as path:
            try:
                report = self.suite.score_file(path, (clip.width, clip.height), clip.num_frames)
            except ScoringError as exc:
                raise ClipFailed(str(exc)) from None
        columns, provenance = dict(report.columns), dict(report.provenance)
        if "aesthetic" not in columns:
            # The column exists but stays empty; the filter stage skips its rule.
            columns["aesthetic"] = None
            provenance["aesthetic"] = "; ".join(self.suite.notes) or "not computed"
        return ClipOutcome(columns=columns, provenance=provenance, note="; ".join(self.suite.notes) or None)
