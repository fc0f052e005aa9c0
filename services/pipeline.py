"""The embedded executor: every stage, in one process, over a folder of videos.

Work goes stage by stage (clip every video, then score every clip, ...), with a progress bar per
stage. Records are saved after each item, so a re-run on the same output folder skips what is done
(unless ``force``) and a crash loses only the item in flight. What runs next, and how it is counted,
is decided in ``services/orchestration``; this module only moves records.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from services.execution import run_clip_stage, run_video_stage
from services.inputs import assign_ids, discover, file_digest
from services.orchestration import accounting, ingest
from services.orchestration.accounting import RunSummary
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
        self.summary = RunSummary(stages=stages, output=str(self.store.root))
        self.digests: dict[str, str] = {}  # content -> the first input with it

    def run(self, inputs: list[Path]) -> RunSummary:
        videos = assign_ids(discover(inputs))
        self.summary.videos_in = len(videos)
        ctx = StageContext(settings=self.settings, store=self.store, workdir=self.store.root)
        clipper = build_stage(CLIPPING)
        clipper.setup(ctx)
        stage, fingerprint = self.plan.ingest(clipper, self.settings)
        label = CLIPPING if self.plan.clipping else "ingest"
        clips = [c for item in self._each(label, CLIPPING, videos, lambda v: v.path.name)
                 for c in self._ingest(stage, item, ctx, fingerprint)]
        stages = [build_stage(name) for name in self.plan.clip_stages]
        for group in decode_groups(stages, self.settings.video.share_decode):
            clips = self._run_clip_stage(group[0], clips, ctx) if len(group) == 1 \
                else self._run_clip_stages(group, clips, ctx)
        finish_outputs(self.store, self.book, self.summary, clips)
        return self.summary

    def _each(self, label: str, stage: str, items: list, name_of, start=None):
        return timed_items(self.console, self.summary, label, stage, items, name_of, start)

    def _ingest(self, stage, item, ctx: StageContext, fingerprint: str) -> list[ClipRecord]:
        source = str(item.path)
        previous = self.book.load_video(item.source_id)
        if ingest.reusable(previous, fingerprint, self.plan.force):
            self.digests.setdefault(previous.sha256, source)
            accounting.count_video_record(self.summary, previous)
            return [c for c in (self.book.load_clip(i) for i in previous.clip_ids) if c is not None]
        video = VideoRecord(source=source, source_id=item.source_id)
        try:
            video.sha256 = file_digest(item.path)
        except OSError as exc:
            return self._store_video(ingest.unreadable(video, exc), previous)
        reason = ingest.duplicate_reason(self.digests.setdefault, video.sha256, source)
        if reason:
            accounting.count_video(self.summary, source, accounting.SKIPPED, None, {reason: 1})
            return []
        return self._store_video(run_video_stage(stage, video, item.path, ctx, fingerprint), previous)

    def _store_video(self, outcome, previous: VideoRecord | None) -> list[ClipRecord]:
        ingest.save_outcome(self.book, outcome, previous)
        accounting.count_video_record(self.summary, outcome.video)
        return outcome.clips

    def _run_clip_stage(self, stage: PerClipStage, clips: list[ClipRecord], ctx: StageContext) -> list[ClipRecord]:
        fingerprint = stage.fingerprint(self.settings)
        todo = [c for c in clips if self.plan.needs_run(stage, c, fingerprint)]
        updated = {c.id: c for c in clips}
        setup = (lambda: stage.setup(ctx)) if todo else None
        for clip in self._each(stage.name, stage.name, todo, lambda c: c.id, setup):
            updated[clip.id] = run_clip_stage(stage, clip, ctx, fingerprint)
            self.book.save_clip(updated[clip.id])
        note = accounting.resume_note(stage.name, clips, todo)
        if note:
            self.summary.notes.append(note)
        return [updated[c.id] for c in clips]

    def _run_clip_stages(self, stages: list[PerClipStage], clips: list[ClipRecord], ctx: StageContext) -> list[ClipRecord]:
        """Run ``stages`` (consecutive in the plan, all reading frames) clip by clip: a clip goes through all of
        them before the next one, so that one decode of it serves every stage that reads its frames."""
        fingerprints = {s.name: s.fingerprint(self.settings) for s in stages}
        ran: dict[str, list[ClipRecord]] = {s.name: [] for s in stages}
        seconds: Counter[str] = Counter()
        ready: set[str] = set()
        updated = {c.id: c for c in clips}
        decoded = DecodedClips(self.settings.video, self.settings.video.share_decode_max_mb << 20)
        ctx.decoded = decoded
        for clip in progress_items(self.console, "+".join(fingerprints), clips, lambda c: c.id):
            wanted = self.plan.shared_frames(stages, clip, self.settings, fingerprints)
            with decoded.open(self.store, clip, wanted):
                for stage in stages:  # the clip's record after the earlier stages: their prerequisites are met
                    if not self.plan.needs_run(stage, clip, fingerprints[stage.name]):
                        continue
                    if stage.name not in ready:
                        stage.setup(ctx)
                        ready.add(stage.name)
                    ran[stage.name].append(clip)
                    started = time.perf_counter()
                    clip = run_clip_stage(stage, clip, ctx, fingerprints[stage.name])
                    self.book.save_clip(clip)
                    seconds[stage.name] += time.perf_counter() - started
            updated[clip.id] = clip
        ctx.decoded = None
        for name, done in ran.items():
            self.summary.stage_seconds[name] = seconds[name]
            self.summary.stage_items[name] = len(done)
            note = accounting.resume_note(name, clips, done)
            if note:
                self.summary.notes.append(note)
        return [updated[c.id] for c in clips]
