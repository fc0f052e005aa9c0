"""The filter stage: names every rule a clip fails; the runner keeps only clips that fail none."""

from __future__ import annotations

from services.records import ClipRecord
from services.scoring.rules import describe, evaluate
from services.stages.base import ClipOutcome, PerClipStage, StageContext


class FilterStage(PerClipStage):
    name = "filter"

    def run(self, clip: ClipRecord, ctx: StageContext) -> ClipOutcome:
        verdict = evaluate(clip.columns, ctx.settings.filter)
        note = "; ".join(f"rule {rule} skipped ({why})" for rule, why in verdict.skipped.items()) or None
        return ClipOutcome(
            columns={"filter_skipped": ",".join(verdict.skipped)},
            provenance={"filtered_by": f"reference thresholds: {describe(ctx.settings.filter)}"},
            filtered_by=verdict.failed,
            note=note,
        )
