"""The embedded mode: every stage, in one process, over a folder of videos.

Work goes stage by stage (clip every video, then score every clip, ...), with
a progress bar per stage. Records are saved after each item, so a re-run on
the same output folder skips what is done (unless ``force``) and a crash
loses only the item in flight.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from services.execution import needs_run, run_clip_stage, run_video_stage
from services.inputs import assign_ids, discover, file_digest
from services.metadata import clips_table, videos_table, write_table
from services.recordbook import RecordBook
from services.records import ClipRecord, VideoRecord, VideoState
from services.settings import Settings
from services.stages.base import ClipStage, StageContext, VideoOutcome
from services.stages.clip import ingest_stage
from services.stages.registry import build_stage
from services.storage.local import LocalStore
from services.video.shared import DecodedClips, decode_groups

log = logging.getLogger(__name__)

# The run's log in the output layout (the embedded run's logging, the distributed job's task log).
LOG_FILE = "spatialvid.log"


class RunSummary(BaseModel):
    stages: list[str]
    videos_in: int = 0
    videos_failed: dict[str, str] = Field(default_factory=dict)  # source -> reason
    videos_skipped: dict[str, str] = Field(default_factory=dict)  # duplicates
    clips_out: int = 0
    clips_kept: int = 0
    # Shots that became no clip, and clips dropped by a filter rule, by reason.
    dropped: dict[str, int] = Field(default_factory=dict)
    failed_by_stage: dict[str, int] = Field(default_factory=dict)
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    stage_items: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    output: str = ""


class EmbeddedPipeline:
    def __init__(
        self,
        settings: Settings,
        out_dir: Path,
        stages: list[str],
        force: bool = False,
        console: Console | None = None,
    ) -> None:
        self.settings = settings
        self.store = LocalStore(out_dir)
        self.book = RecordBook(self.store)
        self.stage_names = stages
        self.force = force
        self.console = console or Console(stderr=True)
        self.summary = RunSummary(stages=stages, output=str(self.store.root))

    # -- public -----------------------------------------------------------
    def run(self, inputs: list[Path]) -> RunSummary:
        videos = assign_ids(discover(inputs))
        self.summary.videos_in = len(videos)
        ctx = StageContext(settings=self.settings, store=self.store, workdir=self.store.root)
        clips = self._clip_videos(videos, ctx)
        stages = [build_stage(name) for name in self.stage_names if name != "clip"]
        for group in decode_groups(stages, self.settings.video.share_decode):
            clips = self._run_clip_stages(group, clips, ctx)
        self._finish(clips)
        return self.summary

    # -- stages -----------------------------------------------------------
    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[item]}", style="dim"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )

    def _clip_videos(self, videos, ctx: StageContext) -> list[ClipRecord]:
        clipping = "clip" in self.stage_names
        clipper = build_stage("clip")
        clipper.setup(ctx)
        stage, fingerprint = ingest_stage(clipper, clipping, self.settings)
        clips: list[ClipRecord] = []
        digests: dict[str, str] = {}
        started = time.perf_counter()
        with self._progress() as progress:
            task = progress.add_task("clip" if clipping else "ingest", total=len(videos), item="")
            for item in videos:
                progress.update(task, item=item.path.name)
                clips += self._clip_one(stage, item, ctx, fingerprint, digests)
                progress.advance(task)
        self.summary.stage_seconds["clip"] = time.perf_counter() - started
        self.summary.stage_items["clip"] = len(videos)
        return clips

    def _clip_one(self, stage, item, ctx, fingerprint, digests) -> list[ClipRecord]:
        source = str(item.path)
        previous = self.book.load_video(item.source_id)
        if previous and not self.force and previous.state is VideoState.done and previous.config == fingerprint:
            digests.setdefault(previous.sha256, source)
            self._count_video(previous)
            return [c for c in (self.book.load_clip(i) for i in previous.clip_ids) if c is not None]
        video = VideoRecord(source=source, source_id=item.source_id)
        try:
            video.sha256 = file_digest(item.path)
        except OSError as exc:
            video.state, video.error = VideoState.failed, f"cannot read {source}: {exc.strerror or exc}"
            return self._store_video(VideoOutcome(video=video, clips=[]), previous)
        if video.sha256 in digests:
            self.summary.videos_skipped[source] = f"same content as {digests[video.sha256]}"
            return []
        digests[video.sha256] = source
        return self._store_video(run_video_stage(stage, video, item.path, ctx, fingerprint), previous)

    def _store_video(self, outcome: VideoOutcome, previous: VideoRecord | None) -> list[ClipRecord]:
        # Clips of an earlier clipping that this one no longer makes are stale.
        if previous:
            for stale in set(previous.clip_ids) - {c.id for c in outcome.clips}:
                self.book.delete_clip(stale)
        for clip in outcome.clips:
            self.book.save_clip(clip)
        self.book.save_video(outcome.video)  # saved last: it marks the video as done
        self._count_video(outcome.video)
        return outcome.clips

    def _count_video(self, video: VideoRecord) -> None:
        if video.state is VideoState.failed:
            self.summary.videos_failed[video.source] = video.error or "unknown error"
        for reason, n in video.dropped.items():
            key = f"clip: {reason}"
            self.summary.dropped[key] = self.summary.dropped.get(key, 0) + n

    def _run_clip_stages(self, stages: list[ClipStage], clips: list[ClipRecord], ctx: StageContext) -> list[ClipRecord]:
        """Run ``stages`` (consecutive in the pipeline) clip by clip: a clip goes through all of them before the
        next one, so that one decode of it serves every stage that reads its frames."""
        names = [s.name for s in stages]
        earlier = [n for n in self.stage_names[:self.stage_names.index(names[0])] if n != "clip"]
        fingerprints = {s.name: s.fingerprint(self.settings) for s in stages}
        decoded = DecodedClips(self.settings.video, self.settings.video.share_decode_max_mb << 20)
        ctx.decoded = decoded if len(stages) > 1 else None
        updated, ready, skipped = {c.id: c for c in clips}, set(), Counter()
        with self._progress() as progress:
            task = progress.add_task("+".join(names), total=len(clips), item="")
            for clip in clips:
                progress.update(task, item=clip.id)
                todo = [s for s in stages if needs_run(s, clip, fingerprints[s.name], earlier, self.force)]
                wanted = [r for s in todo for r in s.frame_requests(clip, self.settings)] if ctx.decoded else []
                with decoded.open(self.store, clip, wanted):
                    for stage in stages:
                        prerequisites = earlier + names[:names.index(stage.name)]
                        if not needs_run(stage, clip, fingerprints[stage.name], prerequisites, self.force):
                            skipped[stage.name] += clip.is_done(stage.name)
                            continue
                        if stage.name not in ready:
                            stage.setup(ctx)
                            ready.add(stage.name)
                        started = time.perf_counter()
                        clip = run_clip_stage(stage, clip, ctx, fingerprints[stage.name])
                        self.book.save_clip(clip)
                        self.summary.stage_seconds[stage.name] = (self.summary.stage_seconds.get(stage.name, 0.0)
                                                                  + time.perf_counter() - started)
                        self.summary.stage_items[stage.name] = self.summary.stage_items.get(stage.name, 0) + 1
                updated[clip.id] = clip
                progress.advance(task)
        ctx.decoded = None
        for name in names:
            self.summary.stage_seconds.setdefault(name, 0.0)
            self.summary.stage_items.setdefault(name, 0)
            if skipped[name]:
                self.summary.notes.append(f"{name}: {skipped[name]} clip(s) already done, skipped (use --force to redo)")
        return [updated[c.id] for c in clips]

    # -- output -----------------------------------------------------------
    def _finish(self, clips: list[ClipRecord]) -> None:
        finish_outputs(self.store, self.book, self.summary, clips)


def finish_outputs(store, book: RecordBook, summary: RunSummary, clips: list[ClipRecord],
                   all_clips: list[ClipRecord] | None = None, all_videos: list[VideoRecord] | None = None) -> None:
    """Count this run's clips into the summary and write the dataset tables
    (shared with the distributed mode's finalize task, so both write the same files).
    ``all_clips`` / ``all_videos``: every record of the output, where the caller has them already
    (otherwise read from the book)."""
    summary.clips_out = len(clips)
    summary.clips_kept = sum(1 for c in clips if c.active)
    rules = Counter(rule for c in clips for rule in c.filtered_by)
    for rule, n in rules.items():
        summary.dropped[f"filter: {rule}"] = n
    failures = Counter(c.failed_stage for c in clips if c.failed_stage)
    summary.failed_by_stage = dict(failures)
    # Stage notes, e.g. "filter: rule aesthetic skipped (no aesthetic score)", counted over clips.
    notes = Counter(f"{name}: {status.note}" for c in clips for name, status in c.stages.items() if status.note)
    summary.notes += [f"{text} ({n} clip{'s' if n > 1 else ''})" for text, n in notes.items()]
    # The tables cover the whole output folder: earlier runs' inputs too.
    all_clips = sorted(book.all_clips() if all_clips is None else all_clips, key=lambda c: (c.source_id, c.frame_start))
    write_table(store, "metadata", clips_table(all_clips))
    write_table(store, "videos", videos_table(book.all_videos() if all_videos is None else all_videos))
    store.put_json("provenance.json", _provenance(all_clips))
    store.put_bytes("summary.json", summary.model_dump_json(indent=2).encode())


def _provenance(clips: list[ClipRecord]) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {}
    for clip in clips:
        for column, backend in clip.provenance.items():
            found.setdefault(column, set()).add(backend)
    return {column: sorted(backends) for column, backends in sorted(found.items())}

