"""Job and clip state in Redis: the key layout, the atomic updates and the status model.

Counting is idempotent by construction: a clip is counted by adding its id to
a set (``SADD``), never by incrementing a counter, so a task that runs twice
(a redelivery after a crash, a retry) counts once. Changes that must happen
together (state transitions, registering a video's clips, finishing a clip
and checking whether the job is complete) are Lua scripts, atomic in Redis.

The gateway (redis.asyncio) and the workers (redis) share this module; both
client kinds take the same pipeline commands.
"""

from __future__ import annotations

import enum
import json
import time
import zlib
from typing import Any

from pydantic import BaseModel, Field

from services.records import ClipRecord
from workers.routing import CLIP_STAGES

PREFIX = "svid"
JOBS_BY_STATE = f"{PREFIX}:stats:jobs_by_state"
WORKERS = f"{PREFIX}:workers"
# Jobs not yet ended (queued or running): what the watchdog looks after.
ACTIVE_JOBS = f"{PREFIX}:jobs:active"
# Stage latency histogram buckets (seconds), shared by the workers that fill
# them and the gateway's /metrics that reads them.
LATENCY_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class JobState(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    partially_failed = "partially_failed"
    cancelled = "cancelled"


TERMINAL = {JobState.succeeded, JobState.failed, JobState.partially_failed, JobState.cancelled}
ACTIVE = (JobState.queued, JobState.running)


class Keys:
    """Every Redis key of one job."""

    def __init__(self, job_id: str) -> None:
        self.id = job_id
        base = f"{PREFIX}:job:{job_id}"
        self.job = base  # hash: owner, state, times, stages, overrides, inputs
        self.videos = f"{base}:videos"  # hash source_id -> VideoStatus json
        self.ingested = f"{base}:ingested"  # set of source_ids clipped (or failed)
        self.clips = f"{base}:clips"  # zset clip_id -> order (video, index)
        self.finished = f"{base}:finished"  # set of clip_ids at the end of their chain
        self.clipstate = f"{base}:clipstate"  # hash clip_id -> queued|running:S|done|filtered|failed:S|cancelled
        self.records = f"{base}:records"  # hash clip_id -> ClipRecord json (the bucket has the same)
        self.attempts = f"{base}:attempts"  # hash "clip:stage:retry" -> deliveries
        self.digests = f"{base}:digests"  # hash sha256 -> source_id (same content given twice)
        self.log = f"{base}:log"  # list of log lines (finalize writes them to spatialvid.log)
        # Jobs over a prefix or manifest (services/listing.py): inputs registered page by page.
        self.inputs = f"{base}:inputs"  # hash source_id -> JobInput json (with its position)
        self.pages = f"{base}:pages"  # hash cursor -> {"ids": [...], "next": cursor} of the page read there
        self.stems = f"{base}:stems"  # hash stem -> how many inputs took it (unique source ids)

    def stage(self, stage: str, outcome: str) -> str:
        return f"{self.job}:stage:{stage}:{outcome}"  # set of clip_ids, outcome done|failed

    def all(self) -> list[str]:
        fixed = [self.job, self.videos, self.ingested, self.clips, self.finished, self.clipstate,
                 self.records, self.attempts, self.digests, self.log, self.inputs, self.pages, self.stems]
        return fixed + [self.stage(s, o) for s in CLIP_STAGES for o in ("done", "failed")]


def pack_record(clip: ClipRecord) -> bytes:
    """A clip record as Redis keeps it: deflated JSON (a third of the size: keys and backends repeat)."""
    return zlib.compress(clip.model_dump_json().encode(), 1)


def unpack_record(raw: bytes) -> ClipRecord:
    """Either form: deflated, or plain JSON as jobs started before the change kept it."""
    return ClipRecord.model_validate_json(raw if raw[:1] == b"{" else zlib.decompress(raw))


def stage_histogram_key(stage: str) -> str:
    return f"{PREFIX}:metrics:stage:{stage}"


# One observation into a stage's latency histogram (cumulative ``le:`` buckets, count, sum) as one command.
# KEYS: the histogram. ARGV: seconds, then the bucket bounds.
OBSERVE_LATENCY = """
local seconds = tonumber(ARGV[1])
for i = 2, #ARGV do
  if seconds <= tonumber(ARGV[i]) then redis.call('HINCRBY', KEYS[1], 'le:' .. ARGV[i], 1) end
end
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HINCRBYFLOAT', KEYS[1], 'sum', ARGV[1])
return 1
"""


def observe_latency_args(stage: str, seconds: float) -> tuple:
    return (OBSERVE_LATENCY, 1, stage_histogram_key(stage), repr(float(seconds)), *map(str, LATENCY_BUCKETS))


# -- Lua ----------------------------------------------------------------------
# Complete = every video clipped and every registered clip finished. Returned
# to the caller, who then sends ``finalize`` (idempotent, so at-least-once is fine).
_COMPLETE = """
local function complete(job, ingested, clips, finished)
  if redis.call('HGET', job, 'listing') == '1' then return 0 end  -- more inputs to come
  local n = tonumber(redis.call('HGET', job, 'n_videos') or '0')
  if redis.call('SCARD', ingested) < n then return 0 end
  if redis.call('SCARD', finished) < redis.call('ZCARD', clips) then return 0 end
  return 1
end
"""

# KEYS: job, stats, active jobs. ARGV: new state, ",allowed,from,states,", time field ('' = none), now,
# job id, 1 if the new state is active, the job's error ('' = none: written with the state, so no reader
# sees the new state without its reason).
SET_STATE = """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return 0 end
if not string.find(ARGV[2], ',' .. cur .. ',', 1, true) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[7]) end
redis.call('HINCRBY', KEYS[2], cur, -1)
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if ARGV[6] == '1' then redis.call('SADD', KEYS[3], ARGV[5]) else redis.call('SREM', KEYS[3], ARGV[5]) end
return 1
"""

# KEYS: job, videos, ingested, clips, clipstate, finished. ARGV: source_id, video json, then clip_id, order pairs.
REGISTER_VIDEO = _COMPLETE + """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('ZADD', KEYS[4], ARGV[i + 1], ARGV[i])
  redis.call('HSETNX', KEYS[5], ARGV[i], 'queued')
end
redis.call('SADD', KEYS[3], ARGV[1])
return complete(KEYS[1], KEYS[3], KEYS[4], KEYS[6])
"""

# KEYS: job, ingested, clips, finished, clipstate. ARGV: clip_id, final clip state.
FINISH_CLIP = _COMPLETE + """
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
return complete(KEYS[1], KEYS[2], KEYS[3], KEYS[4])
"""

# A clip-stage task's opening reads, in one round trip: the job's fields (``JOB_FIELDS``); while the job is active,
# the delivery counted (by attempt) and the clip's record, and where the record is in Redis the clip marked as
# running the stage (a task that then finds nothing to run marks the clip again when it sends it on).
# KEYS: job, attempts, records, clipstate. ARGV: attempt, clip_id, running mark, ",active,states,", then JOB_FIELDS
# (owner, state and stages first). Returns {job fields (false where missing), deliveries or false, record or false}.
BEGIN_STAGE = """
local fields = redis.call('HMGET', KEYS[1], unpack(ARGV, 5))
local state = fields[2]
if not fields[1] or not state or not fields[3] or not string.find(ARGV[4], ',' .. state .. ',', 1, true) then
  return {fields, false, false}
end
local deliveries = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local raw = redis.call('HGET', KEYS[3], ARGV[2])
if raw then redis.call('HSET', KEYS[4], ARGV[2], ARGV[3]) end
return {fields, deliveries, raw}
"""
# What a task reads of the job hash (Runtime.job_from takes them in this order).
JOB_FIELDS = ("owner", "state", "stages", "overrides", "n_videos")


def begin_stage_args(keys: Keys, clip_id: str, attempt: str, running: str) -> tuple:
    active = "," + ",".join(s.value for s in ACTIVE) + ","
    return (BEGIN_STAGE, 4, keys.job, keys.attempts, keys.records, keys.clipstate, attempt, clip_id, running,
            active, *JOB_FIELDS)

# One page of a listed job's inputs, registered once (a redelivered page gets the same ids back).
# KEYS: job, pages, stems, inputs, ingested, clips, finished.
# ARGV: cursor, next cursor, max inputs, then name, uri, stem triples. Returns {complete, page json}.
REGISTER_PAGE = _COMPLETE + """
local page = redis.call('HGET', KEYS[2], ARGV[1])
if not page then
  local n = tonumber(redis.call('HGET', KEYS[1], 'n_videos') or '0')
  local limit = tonumber(ARGV[3])
  local ids = {}
  local nxt = ARGV[2]
  for i = 4, #ARGV, 3 do
    if n >= limit then
      nxt = ''
      redis.call('HSET', KEYS[1], 'error', 'listed only the first ' .. limit .. ' sources (gateway.max_listed_sources)')
      break
    end
    local stem = ARGV[i + 2]
    local id = stem
    local c = redis.call('HINCRBY', KEYS[3], stem, 1)
    if c > 1 then id = stem .. '-' .. c end
    while redis.call('HEXISTS', KEYS[4], id) == 1 do
      c = redis.call('HINCRBY', KEYS[3], stem, 1)
      id = stem .. '-' .. c
    end
    redis.call('HSET', KEYS[4], id, cjson.encode({source_id = id, name = ARGV[i], uri = ARGV[i + 1], position = n}))
    n = n + 1
    ids[#ids + 1] = id
  end
  redis.call('HSET', KEYS[1], 'n_videos', n)
  page = cjson.encode({ids = ids, next = nxt})
  redis.call('HSET', KEYS[2], ARGV[1], page)
  if nxt == '' then redis.call('HSET', KEYS[1], 'listing', '0') end
end
return {complete(KEYS[1], KEYS[5], KEYS[6], KEYS[7]), page}
"""

# KEYS: job, stats, active jobs. ARGV: owner, created, mapping json, job id. Creates the job once.
CREATE_JOB = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = cjson.decode(ARGV[3])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HINCRBY', KEYS[2], 'queued', 1)
redis.call('SADD', KEYS[3], ARGV[4])
return 1
"""


def set_state_args(keys: Keys, new: JobState, allowed: tuple[JobState, ...], time_field: str = "",
                   error: str = "") -> tuple:
    allowed_list = "," + ",".join(s.value for s in allowed) + ","
    active = "1" if new in ACTIVE else "0"
    return (SET_STATE, 3, keys.job, JOBS_BY_STATE, ACTIVE_JOBS, new.value, allowed_list, time_field,
            repr(time.time()), keys.id, active, error)


def now() -> float:
    return time.time()


# -- status model -------------------------------------------------------------
class StageCounts(BaseModel):
    done: int = 0
    failed: int = 0


class VideoStatus(BaseModel):
    source: str
    source_id: str
    state: str = "pending"  # pending | done | failed | skipped
    error: str | None = None
    clips: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)


class Timings(BaseModel):
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    elapsed_s: float = 0.0
    # Seconds spent in each stage, summed over its items (work time, not wall time).
    stage_seconds: dict[str, float] = Field(default_factory=dict)


class JobStatus(BaseModel):
    id: str
    state: JobState
    stages: list[str]
    progress: float = Field(ge=0.0, le=1.0)
    videos_total: int
    videos_clipped: int
    clips_total: int
    clips_finished: int
    stage_counts: dict[str, StageCounts]
    timings: Timings
    videos: list[VideoStatus]
    # Per-video errors (source -> reason), and the job's own error if it failed as a whole.
    errors: dict[str, str] = Field(default_factory=dict)
    error: str | None = None


# Every read a status needs, in one script call (one round trip, one reply to parse).
# KEYS: job, videos, ingested, clips, finished, then each clip stage's done and failed sets.
READ_STATUS = """
local out = {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),
             redis.call('SCARD', KEYS[3]), redis.call('ZCARD', KEYS[4]), redis.call('SCARD', KEYS[5])}
for i = 6, #KEYS do out[i] = redis.call('SCARD', KEYS[i]) end
return out
"""


def status_keys(keys: Keys) -> list[str]:
    stage_sets = [keys.stage(s, o) for s in CLIP_STAGES for o in ("done", "failed")]
    return [keys.job, keys.videos, keys.ingested, keys.clips, keys.finished, *stage_sets]


def _as_dict(value: Any) -> dict:
    """A hash from HGETALL (a dict) or from Lua (a flat [field, value, ...] list)."""
    if isinstance(value, dict):
        return value
    return dict(zip(value[::2], value[1::2]))


def queue_status_reads(pipe: Any, keys: Keys) -> None:
    """Queue every read a status needs on one pipeline (one round trip)."""
    pipe.hgetall(keys.job)
    pipe.hgetall(keys.videos)
    pipe.scard(keys.ingested)
    pipe.zcard(keys.clips)
    pipe.scard(keys.finished)
    for stage in CLIP_STAGES:
        pipe.scard(keys.stage(stage, "done"))
        pipe.scard(keys.stage(stage, "failed"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def status_from_reads(job_id: str, results: list[Any]) -> tuple[str, JobStatus] | None:
    """(owner, status) from the results of ``queue_status_reads``; None if the job is unknown."""
    job = {_text(k): _text(v) for k, v in _as_dict(results[0]).items()}
    if not all(k in job for k in ("owner", "state", "stages", "created")):
        return None  # unknown, or lost: a hash a late write recreated after Redis lost the job
    videos = [VideoStatus.model_validate_json(v) for v in _as_dict(results[1]).values()]
    ingested, clips_total, finished = int(results[2]), int(results[3]), int(results[4])
    stages: list[str] = json.loads(job["stages"])
    counts = {}
    for i, stage in enumerate(CLIP_STAGES):
        if stage in stages:
            counts[stage] = StageCounts(done=int(results[5 + 2 * i]), failed=int(results[6 + 2 * i]))
    n_videos = int(job.get("n_videos", "0"))
    inputs = json.loads(job.get("inputs", "[]"))
    by_id = {v.source_id: v for v in videos}
    listed = [by_id.get(i["source_id"]) or VideoStatus(source=i["name"], source_id=i["source_id"]) for i in inputs]
    named = {i["source_id"] for i in inputs}
    listed += [v for v in videos if v.source_id not in named]  # a listed job's inputs, as they are ingested
    state = JobState(job["state"])
    if state in TERMINAL and state is not JobState.cancelled:
        progress = 1.0
    else:
        video_part = ingested / n_videos if n_videos else 1.0
        clip_part = finished / clips_total if clips_total else video_part
        progress = round(0.2 * video_part + 0.8 * min(clip_part, video_part), 4)
    created = float(job["created"])
    started = float(job["started"]) if job.get("started") else None
    ended = float(job["finished"]) if job.get("finished") else None
    seconds = {k.split(":", 1)[1]: round(float(v), 3) for k, v in job.items() if k.startswith("seconds:")}
    status = JobStatus(
        id=job_id,
        state=state,
        stages=stages,
        progress=progress,
        videos_total=n_videos,
        videos_clipped=ingested,
        clips_total=clips_total,
        clips_finished=finished,
        stage_counts=counts,
        timings=Timings(
            created_at=created,
            started_at=started,
            finished_at=ended,
            elapsed_s=round((ended or time.time()) - created, 3),
            stage_seconds=seconds,
        ),
        videos=listed,
        errors={v.source: v.error for v in listed if v.error},
        error=job.get("error") or None,
    )
    return job["owner"], status
