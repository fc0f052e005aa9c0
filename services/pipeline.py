"""The embedded executor: every stage, in one process, over a folder of videos.

Work goes stage by stage (clip every video, then score every clip, ...), with a progress bar per
stage. Records are saved after each item, so a re-run on the same output folder skips what is done
(unless ``force``) and a crash loses only the item in flight. What runs next, and how it is counted,
is decided in ``services/orchestration``; this module only moves records.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from services.execution import run_clip_stage
from services.inputs import assign_ids, discover
from services.orchestration import accounting, ingest
from services.orchestration.outputs import finish_outputs
from services.orchestration.plan import CLIPPING, Plan
from services.progress import progress_items, timed_items
from services.recordbook import RecordBook
from services.records import ClipRecord, VideoRecord
from services.settings import Settings
from services.stages.base import PerClipStage, StageContext
from services.stages.registry import build_stage
from services.storage.local import LocalStore
from services.video.shared import DecodedClips, decode_groups


class EmbeddedPipeline:
    def __init__(self, settings: Settings, out_dir: Path, stages: list[str], force: bool = False,
                 console: Console | None = None) -> None:
        self.settings = settings
        self.store = LocalStore(out_dir)
        self.book = RecordBook(self.store)
        self.plan = Plan(stages, force)
        self.console = console or Console(stderr=True)
        self.summary = accounting.RunSummary(stages=stages, output=str(self.store.root))
        self.claim = ingest.first_claims()  # content -> the first input with it

    def run(self, inputs: list[Path]) -> accounting.RunSummary:
        videos = assign_ids(discover(inputs))
        self.summary.videos_in = len(videos)
        ctx = StageContext(settings=self.settings, store=self.store, workdir=self.store.root)
        clipper = build_stage(CLIPPING)
        clipper.setup(ctx)
        stage, fingerprint = self.plan.ingest(clipper, self.settings)
        each = timed_items(self.console, self.summary, self.plan.ingest_label, CLIPPING, videos, lambda v: v.path.name)
        clips = [c for item in each for c in self._ingest(stage, item, ctx, fingerprint)]
        stages = [build_stage(name) for name in self.plan.clip_stages]
        for group in decode_groups(stages, self.settings.video.share_decode):
            clips = self._run_clip_stage(group[0], clips, ctx) if len(group) == 1 \
                else self._run_clip_stages(group, clips, ctx)
        finish_outputs(self.store, self.book, self.summary, clips)
        return self.summary

    def _ingest(self, stage, item, ctx: StageContext, fingerprint: str) -> list[ClipRecord]:
        source, previous = str(item.path), self.book.load_video(item.source_id)
        if ingest.reusable(previous, fingerprint, self.plan.force):
            return self.book.load_clips(ingest.resume(previous, source, self.claim, self.summary))
        video = VideoRecord(source=source, source_id=item.source_id)
        outcome = ingest.clip_input(stage, video, item.path, ctx, fingerprint, self.claim)
        if isinstance(outcome, ingest.Skipped):
            accounting.count_skipped(self.summary, source, outcome.reason)
            return []
        ingest.save_outcome(self.book, outcome, previous)
        accounting.count_video_record(self.summary, outcome.video)
        return outcome.clips

    def _run_clip_stage(self, stage: PerClipStage, clips: list[ClipRecord], ctx: StageContext) -> list[ClipRecord]:
        fingerprint = stage.fingerprint(self.settings)
        todo = [c for c in clips if self.plan.needs_run(stage, c, fingerprint)]
        updated = {c.id: c for c in clips}
        setup = (lambda: stage.setup(ctx)) if todo else None
        for clip in timed_items(self.console, self.summary, stage.name, stage.name, todo, lambda c: c.id, setup):
            updated[clip.id] = run_clip_stage(stage, clip, ctx, fingerprint)
            self.book.save_clip(updated[clip.id])
        accounting.note_resumed(self.summary, stage.name, clips, todo)
        return [updated[c.id] for c in clips]

    def _run_clip_stages(self, stages: list[PerClipStage], clips: list[ClipRecord], ctx: StageContext) -> list[ClipRecord]:
        """Run consecutive frame-reading ``stages`` clip by clip, so that one decode of a clip serves them all."""
        fingerprints = {s.name: s.fingerprint(self.settings) for s in stages}
        tally, ready = accounting.StageTally.of(fingerprints), set()
        updated = {c.id: c for c in clips}
        ctx.decoded = decoded = DecodedClips.for_settings(self.settings.video)
        for clip in progress_items(self.console, "+".join(fingerprints), clips, lambda c: c.id):
            with decoded.open(self.store, clip, self.plan.shared_frames(stages, clip, self.settings, fingerprints)):
                for stage in stages:  # the clip's record after the earlier stages: their prerequisites are met
                    if self.plan.needs_run(stage, clip, fingerprints[stage.name]):
                        if stage.name not in ready:
                            stage.setup(ctx)
                            ready.add(stage.name)
                        with tally.timed(stage.name, clip):
                            clip = run_clip_stage(stage, clip, ctx, fingerprints[stage.name])
                            self.book.save_clip(clip)
            updated[clip.id] = clip
        ctx.decoded = None
        tally.count(self.summary, clips)
        return [updated[c.id] for c in clips]
