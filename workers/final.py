"""What finalize reads of a job (every record, the video statuses, the stage counts) and what it writes
beside the dataset tables (the job's log and job.json)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from services.artifacts import JOB, LOG
from services.orchestration import accounting
from services.orchestration.accounting import RunSummary
from services.records import ClipRecord, VideoRecord
from workers import state as st
from workers.ledger import JobLedger
from workers.runtime import JobSpec

# Parallel bucket reads and writes in finalize: each is a round trip, not CPU.
FINALIZE_READERS = 16


def clip_records(ledger: JobLedger) -> list[ClipRecord]:
    """Every clip's record, read from Redis in batches (10,000 bucket reads would take minutes), in
    dataset order. Clips whose chain did not end (a cancelled job) get their record written to the
    bucket here."""
    finished = ledger.finished_ids()
    records = [st.unpack_record(raw) for _, raw in ledger.redis.hscan_iter(ledger.keys.records, count=1000)]
    if not records:  # Redis lost them (a flushed instance): the bucket has every record written
        records = ledger.book.all_clips()
    else:
        unfinished = [clip for clip in records if clip.id not in finished]
        if unfinished:
            with ThreadPoolExecutor(FINALIZE_READERS) as pool:
                list(pool.map(ledger.book.save_clip, unfinished))
    return sorted(records, key=lambda c: (c.source_id, c.frame_start))


def video_records(ledger: JobLedger) -> list[VideoRecord]:
    """Every video's record from the bucket, read in parallel (one small object per video)."""
    with ThreadPoolExecutor(FINALIZE_READERS) as pool:
        found = pool.map(ledger.book.load_video_key, ledger.book.all_video_keys())
        return [video for video in found if video is not None]


def summary(job: JobSpec, ledger: JobLedger, records: list[VideoRecord], videos: list[st.VideoStatus],
            output: str) -> RunSummary:
    result = RunSummary(stages=job.stages, videos_in=job.n_videos, output=output)
    for video in videos:
        accounting.count_video(result, video.source, video.state, video.error, video.dropped)
    accounting.count_shots_dropped(result, records)
    raw = {k.decode(): v.decode() for k, v in ledger.redis.hgetall(ledger.keys.job).items()}
    result.stage_seconds = {k.split(":", 1)[1]: float(v) for k, v in raw.items() if k.startswith("seconds:")}
    result.stage_items["clip"] = job.n_videos
    stages = job.plan.clip_stages
    pipe = ledger.redis.pipeline(transaction=False)
    for stage in stages:
        pipe.scard(ledger.keys.stage(stage, "done"))
        pipe.scard(ledger.keys.stage(stage, "failed"))
    counts = pipe.execute()
    for i, stage in enumerate(stages):
        result.stage_items[stage] = counts[2 * i] + counts[2 * i + 1]
    return result


def write_log(ledger: JobLedger) -> None:
    lines = ledger.redis.lrange(ledger.keys.log, 0, -1)
    ledger.store.put_bytes(LOG, "".join(f"{line.decode()}\n" for line in lines).encode())


def write_job_json(ledger: JobLedger, final: st.JobState | None) -> None:
    """The job's status beside its outputs, with ``final`` as its state (None: the state Redis has)."""
    pipe = ledger.redis.pipeline(transaction=False)
    st.queue_status_reads(pipe, ledger.keys)
    found = st.status_from_reads(ledger.job_id, pipe.execute())
    if found is None:
        return
    owner, status = found
    if final is not None:
        status.state = final
        status.progress = 1.0
        status.timings.finished_at = st.now()
        status.timings.elapsed_s = round(status.timings.finished_at - status.timings.created_at, 3)
    payload = {"owner": owner, **status.model_dump(mode="json")}
    ledger.store.put_bytes(JOB, json.dumps(payload, indent=2).encode())
