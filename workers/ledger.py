"""One job's state as the tasks read and write it: Redis while its clips' chains run, the bucket for
what lasts. Every task that touches a job makes one ``JobLedger`` (its keys, store and record book)."""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timezone
from functools import cached_property

import redis

from services.orchestration.accounting import SKIPPED, end_state
from services.recordbook import RecordBook
from services.records import ClipRecord, StageState, VideoRecord
from services.stages.base import VideoOutcome
from workers import state as st
from workers.runtime import Runtime

log = logging.getLogger(__name__)

# The job log keeps its last lines only: a job of many failing clips must not fill Redis.
MAX_LOG_LINES = 20_000


class JobLedger:
    def __init__(self, rt: Runtime, job_id: str) -> None:
        self.rt, self.redis, self.job_id = rt, rt.redis, job_id
        self.keys = st.Keys(job_id)

    @cached_property
    def _store_and_recorder(self):
        return self.rt.store(self.job_id)

    @property
    def store(self):
        return self._store_and_recorder[0]

    @property
    def recorder(self):
        """The store's transient errors: a stage failure caused by them is retried, not recorded."""
        return self._store_and_recorder[1]

    @cached_property
    def book(self) -> RecordBook:
        return RecordBook(self.store)

    # -- the job -------------------------------------------------------------------------------------
    def error(self) -> str | None:
        raw = self.redis.hget(self.keys.job, "error")
        return raw.decode() if raw else None

    def set_state(self, new: st.JobState, allowed: tuple[st.JobState, ...], time_field: str) -> bool:
        return bool(self.redis.eval(*st.set_state_args(self.keys, new, allowed, time_field)))

    def log(self, level: str, message: str) -> None:
        """One line of the job's log (finalize writes it to the job's log file); never fails the caller."""
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.rpush(self.keys.log, f"{stamp} {level} {socket.gethostname()}:{os.getpid()}: {message}")
            pipe.ltrim(self.keys.log, -MAX_LOG_LINES, -1)
            pipe.execute()
        except redis.RedisError:
            log.warning("could not add to job %s's log: %s", self.job_id, message)

    def expire(self) -> None:
        """Every key of the job gets the finished jobs' time to live."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.keys.all():
            pipe.expire(key, self.rt.settings.redis.job_ttl_s)
        pipe.execute()

    def observe_latency(self, stage: str, seconds: float, pipe=None) -> None:
        """Count one stage run into its latency histogram (on the caller's pipeline if given)."""
        (pipe or self.redis).eval(*st.observe_latency_args(stage, seconds))

    # -- videos --------------------------------------------------------------------------------------
    def ingested(self, source_id: str) -> bool:
        return bool(self.redis.sismember(self.keys.ingested, source_id))

    def claim_digest(self, sha256: str, source_id: str) -> str:
        """The input that first claimed this content (``source_id`` itself when first)."""
        if self.redis.hsetnx(self.keys.digests, sha256, source_id):
            return source_id
        return self.redis.hget(self.keys.digests, sha256).decode()

    def register_video(self, position: int, outcome: VideoOutcome, started: float) -> bool:
        """Save the video's record (bucket) and its clips' (Redis), register them; True when that
        completed the job."""
        self.book.save_video(outcome.video)  # the clips' records reach the bucket when their chains end
        order: list[str] = []
        for index, clip in enumerate(outcome.clips):
            order += [clip.id, str(position * 1_000_000 + index)]
        pipe = self.redis.pipeline(transaction=True)
        for clip in outcome.clips:
            pipe.hset(self.keys.records, clip.id, st.pack_record(clip))
        pipe.hincrbyfloat(self.keys.job, "seconds:clip", time.perf_counter() - started)
        pipe.execute()
        return self._register(outcome.video.source_id, _video_status(outcome.video), order)

    def register_skipped(self, name: str, source_id: str, reason: str) -> bool:
        status = st.VideoStatus(source=name, source_id=source_id, state=SKIPPED, error=None, dropped={reason: 1})
        return self._register(source_id, status, [])

    def _register(self, source_id: str, status: st.VideoStatus, order: list[str]) -> bool:
        k = self.keys
        return bool(self.redis.eval(st.REGISTER_VIDEO, 6, k.job, k.videos, k.ingested, k.clips, k.clipstate,
                                    k.finished, source_id, status.model_dump_json(), *order))

    def video_statuses(self) -> list[st.VideoStatus]:
        return [st.VideoStatus.model_validate_json(v) for v in self.redis.hvals(self.keys.videos)]

    # -- clips ---------------------------------------------------------------------------------------
    def mark(self, clip_id: str, where: str) -> None:
        """Where the clip's chain stands (queued:S, running:S, cancelled) for the job's status."""
        self.redis.hset(self.keys.clipstate, clip_id, where)

    def finished_ids(self) -> set[str]:
        return {c.decode() for c in self.redis.smembers(self.keys.finished)}

    def load_clip(self, clip_id: str) -> ClipRecord | None:
        return self.record_from(self.redis.hget(self.keys.records, clip_id), clip_id)

    def record_from(self, raw: bytes | None, clip_id: str) -> ClipRecord | None:
        """The clip's record from Redis's copy, else from the bucket."""
        return st.unpack_record(raw) if raw else self.book.load_clip(clip_id)

    def begin_stage(self, clip_id: str, attempt: str, stage: str) -> tuple[list, int | None, bytes | None]:
        """A clip-stage task's first round trip: the job's fields (``st.JOB_FIELDS``), and while the job is
        active the delivery counted, the clip's record read and the clip marked as running ``stage``."""
        fields, deliveries, raw = self.redis.eval(*st.begin_stage_args(self.keys, clip_id, attempt,
                                                                       f"running:{stage}"))
        return fields, deliveries, raw

    def save_clip(self, clip: ClipRecord, stage: str | None, attempt: str | None = None, *,
                  then: str | None = None, finish: bool = False) -> tuple[st.JobState | None, bool]:
        """The record into Redis, with the stage's counts, in one transaction. Redis holds the clip's
        state while its chain runs (the broker's messages live there too); the bucket gets the record
        when the chain ends or the job is finalized: one write per clip, not per stage.

        In the same transaction: the clip marked as queued for ``then`` (the stage it goes to next), or
        with ``finish`` its chain ended (``finish_clip``); and the job's state read. Returns (the job's
        state, whether this completed the job)."""
        if finish:
            self.book.save_clip(clip)  # the lasting copy first: a crash before the count redelivers the task
        k = self.keys
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(k.records, clip.id, st.pack_record(clip))
        if stage is not None:
            status = clip.stages.get(stage)
            outcome = "done" if status and status.state is StageState.done else "failed"
            other = "failed" if outcome == "done" else "done"
            pipe.srem(k.stage(stage, other), clip.id)
            pipe.sadd(k.stage(stage, outcome), clip.id)
            if status:
                pipe.hincrbyfloat(k.job, f"seconds:{stage}", status.seconds)
                self.observe_latency(stage, status.seconds, pipe)
        if attempt is not None:  # the delivery count matters only while the stage runs
            pipe.hdel(k.attempts, attempt)
        if then is not None:
            pipe.hset(k.clipstate, clip.id, f"queued:{then}")
        if finish:
            self._queue_finish(pipe, clip)
        pipe.hget(k.job, "state")
        replies = pipe.execute()
        state = replies[-1]
        complete = bool(replies[-2]) if finish else False
        return (st.JobState(state.decode()) if state else None), complete

    def finish_clip(self, clip: ClipRecord) -> bool:
        """End the clip's chain: its final record to the bucket (the lasting copy), then count it in
        Redis; True when that completed the job."""
        self.book.save_clip(clip)
        pipe = self.redis.pipeline(transaction=False)
        self._queue_finish(pipe, clip)
        return bool(pipe.execute()[0])

    def _queue_finish(self, pipe, clip: ClipRecord) -> None:
        k = self.keys
        pipe.eval(st.FINISH_CLIP, 5, k.job, k.ingested, k.clips, k.finished, k.clipstate, clip.id, end_state(clip))


def _video_status(video: VideoRecord) -> st.VideoStatus:
    return st.VideoStatus(source=video.source, source_id=video.source_id, state=video.state.value,
                          error=video.error, clips=len(video.clip_ids), dropped=video.dropped)
