"""kill -9 a worker in the middle of a stage: its task goes to a new worker, the job
succeeds, and no clip is missing or counted twice."""

from __future__ import annotations

import os
import signal
import time

import pandas as pd

from samples import bikes_path
from services.stack import StackInfo
from workers import state as st

SLOW_STAGE, SLOW_QUEUE = "camera", "annotate_camera"


def test_killed_worker_loses_no_clip(stack, client, redis_client, tmp_path):
    stack_obj, _ = stack
    accepted = client.submit([bikes_path()], f"clip,score,filter,{SLOW_STAGE}", {"clip": {"min_seconds": 1.0}})
    job_id = accepted["id"]
    keys = st.Keys(job_id)

    # Wait until a clip is in the middle of the slow stage, then kill its worker (and its pool child).
    deadline = time.monotonic() + 600
    victim_clip = None
    while victim_clip is None and time.monotonic() < deadline:
        states = {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.clipstate).items()}
        victim_clip = next((c for c, s in states.items() if s == f"running:{SLOW_STAGE}"), None)
        time.sleep(0.2)
    assert victim_clip, "no clip reached the slow stage"
    time.sleep(1.0)  # well inside the stage (seconds per clip)
    info = StackInfo.load(stack_obj.dir)
    worker = next(p for p in info.processes if p.name.startswith(f"worker-{SLOW_QUEUE}") and stack_obj_alive(p))
    os.killpg(worker.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    stack_obj.start_worker(SLOW_QUEUE)

    status = client.wait(job_id, poll_s=1.0, timeout_s=900)
    assert status["state"] == "succeeded", status
    assert time.monotonic() - killed_at > 5  # the job did need the restored task

    # The killed clip's stage was delivered again (and ran to completion once more).
    attempts = {k.decode(): int(v) for k, v in redis_client.hgetall(keys.attempts).items()}
    assert attempts.get(f"{victim_clip}:{SLOW_STAGE}:0", 0) >= 2, attempts

    # No clip missing, none counted twice.
    clip_ids = [c.decode() for c in redis_client.zrange(keys.clips, 0, -1)]
    assert status["clips_total"] == len(clip_ids) == status["clips_finished"]
    kept = [c for c in clip_ids if redis_client.hget(keys.clipstate, c) == b"done"]
    assert status["stage_counts"][SLOW_STAGE]["done"] == len(kept) and status["stage_counts"][SLOW_STAGE]["failed"] == 0
    assert victim_clip in kept
    client.fetch(job_id, tmp_path / "out")
    table = pd.read_parquet(tmp_path / "out" / "metadata.parquet")
    assert sorted(table["id"]) == sorted(clip_ids) and table["id"].is_unique
    assert (table.set_index("id").loc[kept, "failed_stage"] == "").all()


def stack_obj_alive(proc) -> bool:
    from services.stack import _alive

    return _alive(proc)
