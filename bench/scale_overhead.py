"""Where a clip-stage task's orchestration goes: Redis round trips, object-store requests, Celery publishes
and record (de)serialisation per task, on the real stack with stub stages (``bench/scale.py``'s Bench).

    PYTHONPATH=$PWD nice -n 5 .venv/bin/python bench/scale_overhead.py [--clips 200] [--log bench/results/scale_overhead.log]

One job of ``--clips`` clips through every stage, stubs sleeping 0 s. Counts come from two sides:
Redis's ``INFO commandstats`` (reset before the job: every command any client sent, the broker's included)
and a cProfile of every task in the workers (call counts of the Redis client's round trips, the object
store's HTTP requests, Celery's publishes, the record codec). Appends a table to ``--log``.
"""

from __future__ import annotations

import argparse
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale import STAGES, Bench, overhead  # noqa: E402
from bench.stub_stages import StubPlan  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# (what, file suffix, function name) in the workers' profiles: each call is one of what.
PROFILED = [
    ("redis single commands", "redis/client.py", "_execute_command"),
    ("redis pipelines (one trip each)", "redis/client.py", "_execute_pipeline"),
    ("redis transactions (one trip each)", "redis/client.py", "_execute_transaction"),
    ("redis script calls (EVAL/EVALSHA)", "redis/commands/core.py", "_eval"),
    ("object-store requests", "minio/api.py", "_url_open"),
    ("celery publishes", "celery/app/base.py", "send_task"),
    ("record encodes (pack_record)", "workers/state.py", "pack_record"),
    ("record decodes (unpack_record)", "workers/state.py", "unpack_record"),
    ("job reads (Runtime.job)", "workers/runtime.py", "job"),
    ("clip-stage tasks profiled", "workers/tasks.py", "run_stage"),
]


def profile_counts(folder: Path) -> dict[str, tuple[int, float]]:
    """(calls, cumulative seconds) per PROFILED row, summed over every worker's profile."""
    files = [str(p) for p in folder.glob("*.prof")]
    stats = pstats.Stats(*files).stats if files else {}
    out = {}
    for label, suffix, name in PROFILED:
        calls, cum = 0, 0.0
        for (path, _, func), (_, ncalls, _, cumtime, _) in stats.items():
            if func == name and path.endswith(suffix):
                calls += ncalls
                cum += cumtime
        out[label] = (calls, cum)
    return out


def commandstats(client) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--label", default="", help="a line naming the code measured (e.g. the commit)")
    parser.add_argument("--top", type=int, default=0, help="print the profiles' top functions (own time)")
    parser.add_argument("--log", type=Path, default=RESULTS / "scale_overhead.log")
    args = parser.parse_args()
    per_video = min(100, args.clips)
    with tempfile.TemporaryDirectory(prefix="spatialvid-overhead-") as tmp, \
            Bench(Path(tmp), StubPlan(size_scale=0.001, profile=True)) as bench:
        bench.set_plan(sleep_s={}, clips_per_video=per_video)
        sources = bench.inputs("overhead", args.clips // per_video)
        for path in bench.timings.glob("*.prof"):
            path.unlink()  # the warm-up's
        time.sleep(1.0)
        bench.redis.config_resetstat()
        started = time.time()
        job_id = bench.submit(sources)
        # Waiting reads the status once a second: a handful of EVALSHA calls, counted below with the rest.
        deadline = time.monotonic() + 1800
        with bench.client() as c:
            while c.status(job_id)["state"] in ("queued", "running"):
                if time.monotonic() > deadline:
                    raise TimeoutError(job_id)
                time.sleep(1.0)
        wall = time.time() - started
        cmds = commandstats(bench.redis)
        time.sleep(2.0)
        # The profiles are dumped every 50 tasks per process: let the last ones land, then stop the stack.
        lines = bench.task_lines(started)
        counts = profile_counts(bench.timings)
        if args.top:
            pstats.Stats(*map(str, bench.timings.glob("*.prof"))).sort_stats("tottime").print_stats(args.top)
    tasks = [r for r in lines if r["task"].startswith("spatialvid.stage.")]
    n = len(tasks)
    ov = overhead(lines)["clip_stage_all"]
    out = [f"# {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC {args.label}",
           f"# one job of {args.clips} clips, stages {STAGES}, stubs sleeping 0 s: {n} clip-stage tasks, "
           f"{len(lines) - n} other (ingest, finalize); wall {wall:.1f} s; loadavg {os.getloadavg()}",
           f"# per clip-stage task: worker CPU {ov['worker_cpu_ms_mean']} ms (stub's writes included), "
           f"outside the stub {ov['orchestration_cpu_ms_mean']} ms, "
           f"wall overhead mean {ov['overhead_ms_mean']} ms, p50 {ov['overhead_ms_p50']} ms",
           "## Redis commands per clip-stage task (INFO commandstats over the job: every client, broker included)"]
    total = sum(cmds.values())
    for name, calls in sorted(cmds.items(), key=lambda kv: -kv[1]):
        if calls >= n // 20:
            out.append(f"  {name:<34} {calls:>8} {calls / n:8.2f}")
    out.append(f"  {'all commands':<34} {total:>8} {total / n:8.2f}")
    profiled = counts.pop("clip-stage tasks profiled")[0]
    out.append(f"## inside the tasks (cProfile, {profiled} clip-stage tasks profiled; ingest and finalize "
               "calls included), per clip-stage task")
    for label, (calls, cum) in counts.items():
        out.append(f"  {label:<34} {calls / max(1, profiled):8.2f}  {1000 * cum / max(1, profiled):7.2f} ms")
    text = "\n".join(out) + "\n"
    print(text)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "a") as handle:
        handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
