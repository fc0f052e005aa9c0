"""Who limits 1,000 status pollers on this machine, the gateway or the polling client?

    PYTHONPATH=$PWD nice -n 5 .venv/bin/python bench/scale_pollers.py [POLLERS] >> bench/results/scale_pollers.log

A stack with stub stages (``bench/scale.py``'s Bench, job TTL 60 s), 20 finished jobs of 10 clips, then POLLERS
clients polling each a job's status once a second for 20 s: (1) ``bench/scale.py``'s client (plain keep-alive
HTTP/1.1 on asyncio streams, a process of its own), (2) httpx's AsyncClient in the bench's process (what
``bench/scale.py`` used before), (3) the first again once Redis has forgotten the jobs (status from job.json).
Prints polls/s, latency, and the CPU per poll of the client and of the gateway's process.
"""
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import httpx
from bench.scale import Bench, _poller_process, pct
from bench.stub_stages import StubPlan

def httpx_poll(url, key, job_ids, pollers, seconds):
    lat, err = [], []
    async def main():
        limits = httpx.Limits(max_connections=pollers, max_keepalive_connections=pollers)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=60) as http:
            end = time.monotonic() + seconds
            async def poller(i):
                while time.monotonic() < end:
                    t = time.perf_counter()
                    try:
                        r = await http.get(f"/v1/jobs/{job_ids[i % len(job_ids)]}")
                        if r.status_code != 200: err.append(r.status_code)
                    except httpx.HTTPError as e:
                        err.append(type(e).__name__)
                    lat.append(time.perf_counter() - t)
                    await asyncio.sleep(1.0)
            await asyncio.gather(*(poller(i) for i in range(pollers)))
    cpu = time.process_time()
    asyncio.run(main())
    return lat, err, time.process_time() - cpu

def lean_poll(bench, job_ids, pollers, seconds):
    spawn = multiprocessing.get_context("spawn")
    stop, q = spawn.Event(), spawn.Queue()
    p = spawn.Process(target=_poller_process, args=(bench.info.api_url, bench.info.api_key, job_ids, pollers, stop, q))
    p.start(); time.sleep(seconds); stop.set(); r = q.get(timeout=120); p.join()
    return r["latencies"], r["errors"], r["cpu_s"]

def report(name, bench, fn):
    g0 = bench.gateway_cpu_s(); t0 = time.time()
    lat, err, cpu = fn()
    wall = time.time() - t0; g = bench.gateway_cpu_s() - g0
    print(f"{name}: polls {len(lat)} ({len(lat)/wall:.0f}/s) errors {len(err)} p50 {1000*pct(lat,.5):.1f} ms p99 {1000*pct(lat,.99):.1f} ms "
          f"client CPU {1000*cpu/max(1,len(lat)):.2f} ms/poll gateway CPU {1000*g/max(1,len(lat)):.2f} ms/poll load {os.getloadavg()[0]:.1f}", flush=True)

def main():
    with tempfile.TemporaryDirectory() as tmp, Bench(Path(tmp), StubPlan(size_scale=0.001)) as bench:
        bench.set_plan(sleep_s={}, clips_per_video=10)
        src = bench.inputs("p", 20)
        ids = [bench.submit([s], "clip,score") for s in src]
        bench.wait(ids, 600)
        N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
        report(f"lean client, separate process, {N} pollers, jobs in Redis", bench, lambda: lean_poll(bench, ids, N, 20))
        report(f"httpx in-process, {N} pollers, jobs in Redis", bench, lambda: httpx_poll(bench.info.api_url, bench.info.api_key, ids, N, 20))
        time.sleep(max(0, 65 - 40))
        assert not bench.redis.exists(f"svid:job:{ids[0]}"), "still in redis"
        report(f"lean client, separate process, {N} pollers, jobs expired (bucket)", bench, lambda: lean_poll(bench, ids, N, 20))

if __name__ == "__main__":
    main()
