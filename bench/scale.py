"""The queue machinery at scale: the real gateway, Redis, Celery and object store, every stage a stub.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/scale.py [--clips 10000] [--big-stages clip,camera]

Starts a stack (``services.stack``) whose workers run ``bench/stub_stages.py`` instead of the stages
(``SVID_BENCH_STUB_STAGES``; loopback only), then:

1. one job of ``--chain-clips`` clips through every stage, and one of ``--clips`` clips (``--big-stages``):
   orchestration overhead per clip-stage task (task time not spent in the stub), Redis memory per job
   and per clip while the job lives and after its TTL, the finalize time;
2. ``--jobs`` jobs of ``--job-clips`` clips at once, with ``--pollers`` concurrent status pollers
   (loopback, bounded to that many connections): gateway latency under load;
3. throughput with 1, 2, 4, 8 stub workers per clip-stage queue, stubs sleeping ``--scale-sleep-s``.

Prints the figures and writes them to ``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stub_stages import STUB_ENV, StubPlan  # noqa: E402
from services.client.api import GatewayClient  # noqa: E402
from services.settings import load_settings  # noqa: E402
from services.stack import Stack, StackInfo  # noqa: E402
from services.storage.s3 import make_client  # noqa: E402
from workers.routing import CLIP_STAGES, QUEUES  # noqa: E402
from workers.state import Keys  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = "clip,score,filter,camera,depth,caption"
INPUTS_PREFIX = "bench-inputs/"
TTL_S = 60  # the smallest job TTL the settings allow
# A minimal MP4 head (ftyp box) the gateway's sniffing accepts; the stub clip stage never decodes it.
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, folder: Path, plan: StubPlan) -> None:
        self.folder = folder
        self.plan_path = folder / "plan.json"
        self.plan = plan
        self.timings = folder / "timings"
        self.timings.mkdir()
        plan.timings_dir = str(self.timings)
        plan.save(self.plan_path)
        os.environ[STUB_ENV] = str(self.plan_path)
        self.settings = load_settings().with_overrides({
            "stack": {"dir": str(folder / "stack"), "start_timeout_s": 300},
            "redis": {"job_ttl_s": TTL_S},
            "gateway": {"allow_private_sources": True},
        })
        # The stack's development key ("dev") may name the bench's inputs (a grant, as an operator gives one).
        inputs = f"s3://{self.settings.s3.bucket}/{INPUTS_PREFIX}"
        self.settings = self.settings.with_overrides({"gateway": {"tenants": {"dev": {"s3_prefixes": [inputs]}}}})
        self.stack = Stack(self.settings)
        self.info: StackInfo | None = None
        self.redis: redis.Redis | None = None
        self.extra_workers: dict[str, list] = defaultdict(list)

    def set_plan(self, **changes) -> None:
        for key, value in changes.items():
            setattr(self.plan, key, value)
        self.plan.save(self.plan_path)
        time.sleep(0.05)  # a later mtime even on coarse clocks

    def __enter__(self) -> "Bench":
        started = time.perf_counter()
        self.info = self.stack.up()
        print(f"stack up in {time.perf_counter() - started:.1f} s", flush=True)
        self.redis = redis.Redis.from_url(self.info.redis_url)
        s3 = self.settings.s3.model_copy(update={"endpoint": self.info.s3_endpoint, "secure": False})
        self.minio = make_client(s3)
        try:
            self.warm_up()
        except BaseException:
            self.stack.down()  # __exit__ does not run when __enter__ fails
            raise
        return self

    def warm_up(self) -> None:
        """One small job first: every worker builds its runtime (and hooks the timings) before measuring."""
        clips = self.plan.clips_per_video
        self.set_plan(clips_per_video=1)
        self.wait([self.submit(self.inputs("warmup", 2))], 300)
        self.set_plan(clips_per_video=clips)

    def __exit__(self, *exc) -> None:
        self.stack.down()

    def client(self) -> GatewayClient:
        return GatewayClient(self.info.api_url, self.info.api_key, timeout_s=300)

    # -- inputs and jobs ----------------------------------------------------------------
    def inputs(self, tag: str, n: int) -> list[str]:
        """``n`` distinct tiny objects (the job dedups equal content) named as videos."""
        def put(i: int) -> str:
            key = f"{INPUTS_PREFIX}{tag}/{i:05d}.mp4"
            data = MP4_HEAD + f"{tag}-{i}".encode()
            import io

            self.minio.put_object(self.info.bucket, key, io.BytesIO(data), len(data))
            return f"s3://{self.info.bucket}/{key}"

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(put, range(n)))

    def submit(self, sources: list[str], stages: str = STAGES) -> str:
        with self.client() as c:
            return c.submit_sources(sources, stages=stages)["id"]

    def wait(self, job_ids: list[str], timeout_s: float) -> dict[str, dict]:
        deadline = time.monotonic() + timeout_s
        done: dict[str, dict] = {}
        with self.client() as c:
            while len(done) < len(job_ids):
                for job_id in job_ids:
                    if job_id not in done:
                        status = c.status(job_id)
                        if status["state"] not in ("queued", "running"):
                            done[job_id] = status
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(job_ids) - len(done)} job(s) not finished after {timeout_s} s")
                time.sleep(0.5)
        return done

    # -- measurements ---------------------------------------------------------------------
    def job_memory(self, job_id: str) -> dict[str, int]:
        """Bytes Redis holds for the job's keys (MEMORY USAGE, every element sampled)."""
        sizes = {}
        for key in Keys(job_id).all():
            used = self.redis.memory_usage(key, samples=0)
            if used:
                sizes[key.rsplit(job_id, 1)[-1] or "job"] = int(used)
        return sizes

    def used_memory(self) -> int:
        return int(self.redis.info("memory")["used_memory"])

    def task_lines(self, since: float) -> list[dict]:
        lines = []
        for path in self.timings.glob("*.jsonl"):
            for text in path.read_text().splitlines():
                row = json.loads(text)
                if row["start"] >= since:
                    lines.append(row)
        return lines

    def gateway_cpu_s(self) -> float:
        """CPU seconds the gateway's process has used so far (user + system, from /proc)."""
        pid = next(p.pid for p in self.info.processes if p.name == "gateway")
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def add_workers(self, per_queue: int, queues: list[str]) -> None:
        """One at a time: the stack records each worker in its state file (``stack down`` stops those)."""
        for queue in queues:
            while len(self.extra_workers[queue]) < per_queue - 1:
                self.extra_workers[queue].append(self.stack.start_worker(queue))


def _orchestration_cpu(rows: list[dict]) -> float:
    """The worker's CPU per task outside the stub (the stub's CPU is its object-store writes)."""
    return round(1000 * statistics.fmean(r["cpu"] - r.get("stub_cpu", 0.0) for r in rows), 2)


def overhead(lines: list[dict]) -> dict:
    """Per task kind: task wall time, stub time, and the rest (orchestration) in ms."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in lines:
        by_task[row["task"].rsplit(".", 1)[-1]].append(row)
    out = {}
    for name, rows in sorted(by_task.items()):
        rest = [1000 * (r["end"] - r["start"] - r["stub"]) for r in rows]
        out[name] = {"tasks": len(rows), "overhead_ms_mean": round(statistics.fmean(rest), 2),
                     "worker_cpu_ms_mean": round(1000 * statistics.fmean(r["cpu"] for r in rows), 2),
                     "orchestration_cpu_ms_mean": _orchestration_cpu(rows),
                     "overhead_ms_p50": round(pct(rest, 0.5), 2), "overhead_ms_p99": round(pct(rest, 0.99), 2),
                     "stub_ms_mean": round(1000 * statistics.fmean(r["stub"] for r in rows), 2)}
    clip_rows = [r for r in lines if r["task"].startswith("spatialvid.stage.")]
    if clip_rows:
        rest = [1000 * (r["end"] - r["start"] - r["stub"]) for r in clip_rows]
        out["clip_stage_all"] = {"tasks": len(rest), "overhead_ms_mean": round(statistics.fmean(rest), 2),
                                 "worker_cpu_ms_mean": round(1000 * statistics.fmean(r["cpu"] for r in clip_rows), 2),
                                 "orchestration_cpu_ms_mean": _orchestration_cpu(clip_rows),
                                 "overhead_ms_p50": round(pct(rest, 0.5), 2),
                                 "overhead_ms_p99": round(pct(rest, 0.99), 2)}
        # Hand-over: from one stage's task end to the next stage's task start, same clip (broker hop + queueing).
        chains: dict[str, list[dict]] = defaultdict(list)
        for r in clip_rows:
            chains[r["clip"]].append(r)
        hops = []
        for rows in chains.values():
            rows.sort(key=lambda r: r["start"])
            hops += [1000 * (b["start"] - a["end"]) for a, b in zip(rows, rows[1:])]
        out["handover_ms"] = {"p50": round(pct(hops, 0.5), 2), "p99": round(pct(hops, 0.99), 2)}
    return out


# -- scenarios -----------------------------------------------------------------------------
def one_job(bench: Bench, tag: str, clips: int, per_video: int, stages: str, timeout_s: float) -> dict:
    bench.set_plan(sleep_s={}, clips_per_video=per_video)
    videos = clips // per_video
    sources = bench.inputs(tag, videos)
    before = bench.used_memory()
    started = time.time()
    job_id = bench.submit(sources, stages)
    # Memory while the job lives: sampled as it runs, the largest per-clip figure kept.
    peak = {"bytes": 0, "clips": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(2.0):
            sizes = bench.job_memory(job_id)
            total = sum(sizes.values())
            if total > peak["bytes"]:
                peak.update(bytes=total, clips=int(bench.redis.zcard(Keys(job_id).clips)), keys=sizes,
                            used_memory_delta=bench.used_memory() - before)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    status = bench.wait([job_id], timeout_s)[job_id]
    stop.set()
    sampler.join()
    ended = time.time()
    at_end = bench.job_memory(job_id)
    lines = bench.task_lines(started)
    finalize = [r for r in lines if r["task"].endswith("finalize")]
    result = {
        "stages": stages, "clips": status["clips_total"], "videos": videos, "state": status["state"],
        "wall_s": round(ended - started, 1),
        "clips_per_s": round(status["clips_total"] / (ended - started), 2),
        "overhead": overhead(lines),
        "finalize_s": round(max(r["end"] - r["start"] for r in finalize), 2) if finalize else None,
        "redis_peak_job_bytes": peak["bytes"], "redis_peak_clips": peak["clips"],
        "redis_bytes_per_clip_peak": round(peak["bytes"] / max(1, peak["clips"]), 1),
        "redis_peak_keys": peak.get("keys", {}),
        "redis_used_memory_delta_at_peak": peak.get("used_memory_delta"),
        "redis_job_bytes_at_end": sum(at_end.values()),
    }
    print(json.dumps(result, indent=1), flush=True)
    return {"job_id": job_id, **result}


def after_ttl(bench: Bench, job_id: str, before_jobs: int) -> dict:
    time.sleep(TTL_S + 2)
    left = [k.decode() for k in bench.redis.scan_iter(f"svid:job:{job_id}*", count=1000)]
    result = {"keys_left_after_ttl": left, "job_bytes_after_ttl": sum(bench.job_memory(job_id).values()),
              "used_memory_after_ttl": bench.used_memory(), "used_memory_before_jobs": before_jobs,
              "other_keys": sorted(k.decode() for k in bench.redis.scan_iter("*", count=1000)
                                   if not k.startswith(b"svid:job:"))[:30]}
    with bench.client() as c:
        result["status_from_bucket_after_ttl"] = c.status(job_id)["state"]
    print(json.dumps(result, indent=1), flush=True)
    return result


async def _poll(url: str, key: str, job_ids: list[str], pollers: int, stop: "multiprocessing.synchronize.Event",
                latencies: list[float], errors: list[str]) -> None:
    """``pollers`` clients, each on its own keep-alive connection, GET a job's status once a second.

    A plain HTTP/1.1 exchange on asyncio streams: what is timed is the gateway's answer, not a client
    library's connection pool (see bench/results/scale_pollers.log for what httpx's cost)."""
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port

    async def poller(i: int) -> None:
        request = (f"GET /v1/jobs/{job_ids[i % len(job_ids)]} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Authorization: Bearer {key}\r\n\r\n").encode()
        await asyncio.sleep(random.random())  # clients do not all start in the same instant
        reader = writer = None
        while not stop.is_set():
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                code = int(head.split(b" ", 2)[1])
                if code != 200:
                    errors.append(str(code))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                errors.append(type(exc).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(1.0)  # a client polling once a second, as `spatialvid wait` does
        if writer is not None:
            writer.close()

    await asyncio.gather(*(poller(i) for i in range(pollers)))


def _poller_process(url: str, key: str, job_ids: list[str], pollers: int, stop, results) -> None:
    """The pollers in a process of their own (not sharing the bench's interpreter): latencies and its CPU."""
    import uvloop

    latencies: list[float] = []
    errors: list[str] = []
    cpu = time.process_time()
    uvloop.run(_poll(url, key, job_ids, pollers, stop, latencies, errors))
    results.put({"latencies": latencies, "errors": errors, "cpu_s": time.process_time() - cpu})


def many_jobs(bench: Bench, jobs: int, job_clips: int, stages: str, pollers: int, timeout_s: float) -> dict:
    per_video = min(job_clips, 10)
    bench.set_plan(sleep_s={}, clips_per_video=per_video)
    sources = bench.inputs("many", jobs * (job_clips // per_video))
    per_job = job_clips // per_video
    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        job_ids = list(pool.map(lambda part: bench.submit(part, stages),
                                [sources[i * per_job:(i + 1) * per_job] for i in range(jobs)]))
    submit_s = time.time() - started
    gateway_cpu_before = bench.gateway_cpu_s()
    spawn = multiprocessing.get_context("spawn")
    stop, polled = spawn.Event(), spawn.Queue()
    poll_process = spawn.Process(target=_poller_process, args=(bench.info.api_url, bench.info.api_key, job_ids,
                                                                pollers, stop, polled), daemon=True)
    if pollers:
        poll_process.start()
    memory = []
    deadline = time.monotonic() + timeout_s
    statuses = {}
    with bench.client() as c:
        while len(statuses) < len(job_ids) and time.monotonic() < deadline:
            for job_id in job_ids:
                if job_id not in statuses and (s := c.status(job_id))["state"] not in ("queued", "running"):
                    statuses[job_id] = s
            sample = job_ids[len(statuses) % len(job_ids)]
            memory.append(sum(bench.job_memory(sample).values()))
            time.sleep(2.0)
    ended = time.time()
    polls = {"latencies": [], "errors": [], "cpu_s": 0.0}
    if pollers:
        stop.set()
        polls = polled.get(timeout=120)
        poll_process.join(timeout=30)
    latencies, errors = polls["latencies"], polls["errors"]
    gateway_cpu_s = bench.gateway_cpu_s() - gateway_cpu_before
    lines = bench.task_lines(started)
    finalize = [r["end"] - r["start"] for r in lines if r["task"].endswith("finalize")]
    result = {
        "jobs": jobs, "clips_per_job": job_clips, "stages": stages, "finished": len(statuses),
        "states": dict(sorted({s["state"]: sum(1 for x in statuses.values() if x["state"] == s["state"])
                               for s in statuses.values()}.items())),
        "submit_s": round(submit_s, 1), "wall_s": round(ended - started, 1),
        "clips_per_s": round(sum(s["clips_total"] for s in statuses.values()) / (ended - started), 2),
        "overhead": overhead(lines),
        "finalize_s_p50": round(pct(finalize, 0.5), 3), "finalize_s_max": round(max(finalize), 3) if finalize else None,
        "redis_job_bytes_max_sampled": max(memory) if memory else None,
        "pollers": pollers, "polls": len(latencies), "poll_errors": len(errors),
        "poll_latency_ms_p50": round(1000 * pct(latencies, 0.5), 1),
        "poll_latency_ms_p99": round(1000 * pct(latencies, 0.99), 1),
        "polls_per_s": round(len(latencies) / (ended - started), 1),
        "poll_errors_by_kind": dict(Counter(errors)),
        "poller_client_cpu_ms_per_poll": round(1000 * polls["cpu_s"] / max(1, len(latencies)), 3),
        # the gateway's CPU over the run, per request answered (polls and the bench's own status reads)
        "gateway_cpu_ms_per_poll": round(1000 * gateway_cpu_s / max(1, len(latencies)), 3),
    }
    print(json.dumps(result, indent=1), flush=True)
    return result


def scaling(bench: Bench, workers: list[int], sleep_s: float, clips_per_worker: int, timeout_s: float) -> dict:
    queues = [q for q in dict.fromkeys(QUEUES[s] for s in CLIP_STAGES)]
    bench.set_plan(sleep_s={s: sleep_s for s in ("clip", *CLIP_STAGES)}, clips_per_video=10)
    rows = []
    for n in workers:
        bench.add_workers(n, queues + [QUEUES["clip"]])
        clips = clips_per_worker * n
        sources = bench.inputs(f"scale{n}", max(1, clips // 10))
        started = time.time()
        job_id = bench.submit(sources)
        status = bench.wait([job_id], timeout_s)[job_id]
        wall = time.time() - started
        lines = [r for r in bench.task_lines(started) if r["task"].startswith("spatialvid.stage.")]
        # Steady-state rate: clip-stage tasks finished per second between the 10th and 90th percentile ends.
        ends = sorted(r["end"] for r in lines)
        lo, hi = ends[len(ends) // 10], ends[9 * len(ends) // 10]
        rate = (0.8 * len(ends)) / (hi - lo) if hi > lo else float("nan")
        rows.append({"workers_per_queue": n, "clips": status["clips_total"], "wall_s": round(wall, 1),
                     "clip_stage_tasks_per_s": round(rate, 2),
                     "clips_per_s_end_to_end": round(status["clips_total"] / wall, 2),
                     "overhead_ms_mean": overhead(lines).get("clip_stage_all", {}).get("overhead_ms_mean")})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["clip_stage_tasks_per_s"]
    for row in rows:
        row["efficiency_vs_linear"] = round(row["clip_stage_tasks_per_s"] / (base * row["workers_per_queue"]), 3)
    # The ceiling: the score queue runs score and filter, so it carries 2 of the 5 clip-stage tasks.
    return {"stub_sleep_s": sleep_s, "rows": rows}


def _print_profiles(folder: Path) -> None:
    import pstats

    files = [str(p) for p in folder.glob("*.prof")]
    if files:
        pstats.Stats(*files).sort_stats("cumulative").print_stats(45)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain-clips", type=int, default=1000, help="clips in the job through every stage")
    parser.add_argument("--clips", type=int, default=10_000, help="clips in the one big job")
    parser.add_argument("--clips-per-video", type=int, default=100)
    parser.add_argument("--big-stages", default=STAGES, help="the big job's stages (fewer: a shorter run)")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--job-clips", type=int, default=50)
    parser.add_argument("--many-stages", default=STAGES)
    parser.add_argument("--pollers", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--scale-sleep-s", type=float, default=0.5)
    parser.add_argument("--scale-clips-per-worker", type=int, default=20)
    parser.add_argument("--size-scale", type=float, default=0.001,
                        help="artifact sizes times this (the object store is in memory here)")
    parser.add_argument("--profile", action="store_true", help="cProfile every task (timings folder, kept)")
    parser.add_argument("--skip", default="", help="comma list of chain,big,ttl,many,scaling")
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    load = os.getloadavg()
    results: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "machine": {"cpus": os.cpu_count(), "loadavg_at_start": load}}
    with tempfile.TemporaryDirectory(prefix="spatialvid-scale-") as tmp, \
            Bench(Path(tmp), StubPlan(size_scale=args.size_scale, profile=args.profile)) as bench:
        before = bench.used_memory()
        if "chain" not in skip:
            results["chain_job"] = one_job(bench, "chain", args.chain_clips, min(100, args.chain_clips), STAGES,
                                           args.timeout_s)
        if "big" not in skip:
            results["big_job"] = one_job(bench, "big", args.clips, args.clips_per_video, args.big_stages,
                                               args.timeout_s)
        if "many" not in skip:
            results["many_jobs"] = many_jobs(bench, args.jobs, args.job_clips, args.many_stages, args.pollers,
                                             args.timeout_s)
        if "ttl" not in skip and ("big_job" in results or "chain_job" in results):
            last = results.get("big_job") or results["chain_job"]
            results["after_ttl"] = after_ttl(bench, last["job_id"], before)
        if "scaling" not in skip:
            workers = [int(w) for w in args.workers.split(",")]
            results["scaling"] = scaling(bench, workers, args.scale_sleep_s, args.scale_clips_per_worker,
                                         args.timeout_s)
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        if args.profile:
            _print_profiles(bench.timings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
