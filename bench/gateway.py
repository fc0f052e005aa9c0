"""Gateway speed: status polls per second with their p99 latency, and a large streamed upload
(throughput and the gateway's peak memory).

    python bench/gateway.py                 # against the running local stack (.stack/)
    python bench/gateway.py --start         # bring a stack up in a temporary folder, then down
    python bench/gateway.py --upload-gb 1 --connections 32 --seconds 20

Polls are made by ``wrk`` (Debian: apt-get install wrk) when it is there, since a
Python load generator would take most of the 2 cores it measures; otherwise by
an asyncio httpx loop. The upload is generated on the fly (an mp4 header, then
zeros) and streamed as multipart with chunked encoding, so neither side holds
it; the gateway's RSS is sampled from /proc while it runs. Goals: >= 1,500
polls/s at p99 < 25 ms; upload RSS flat (< 150 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samples import bikes_path  # noqa: E402
from services.settings import load_settings  # noqa: E402
from services.stack import Stack, StackInfo  # noqa: E402


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of one process, in KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def gateway_pids(info: StackInfo) -> list[int]:
    """The gateway's process and its children (uvicorn --workers N runs N children)."""
    root = next(p.pid for p in info.processes if p.name == "gateway")
    children = Path(f"/proc/{root}/task/{root}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return [root, *kids]


# -- polls ------------------------------------------------------------------------
def polls_with_wrk(url: str, key: str, connections: int, seconds: int, threads: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-H", f"Authorization: Bearer {key}", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"tool": "wrk", "polls_per_s": rate, "p50_ms": ms("50"), "p99_ms": ms("99"),
            "non_2xx": int(errors.group(1)) if errors else 0, "connections": connections, "seconds": seconds}


async def _polls_with_httpx(url: str, key: str, connections: int, seconds: int) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, limits=limits) as http:
        async def one() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = await http.get(url)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        await asyncio.gather(*(one() for _ in range(connections)))
    latencies.sort()
    return {"tool": "httpx", "polls_per_s": len(latencies) / seconds,
            "p50_ms": latencies[len(latencies) // 2] * 1e3, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
            "non_2xx": errors, "connections": connections, "seconds": seconds}


# -- upload -------------------------------------------------------------------------
def upload(info: StackInfo, size: int) -> dict:
    head = bikes_path().read_bytes()[:4096]  # a real mp4 start: the gateway's sniffing accepts it
    boundary = "benchboundary7d1a"
    chunk = bytes(1 << 20)

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.mp4\"\r\n"
               "Content-Type: video/mp4\r\n\r\n").encode() + head
        sent = len(head)
        while sent < size:
            piece = chunk[: min(len(chunk), size - sent)]
            sent += len(piece)
            yield piece
        yield f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"stages\"\r\n\r\nclip\r\n--{boundary}--\r\n".encode()

    pids = gateway_pids(info)
    baseline = sum(rss_kib(p)[0] for p in pids)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], sum(rss_kib(p)[0] for p in pids))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"},
                      timeout=httpx.Timeout(600.0)) as http:
        response = http.post("/v1/jobs", content=body(),
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        if response.status_code != 202:
            raise SystemExit(f"upload refused: {response.status_code} {response.text}")
        job_id = response.json()["id"]
        http.delete(f"/v1/jobs/{job_id}")  # the bytes are not a video: nothing to process
    return {"bytes": size, "seconds": round(seconds, 2), "mb_per_s": round(size / seconds / 1e6, 1),
            "gateway_rss_baseline_mb": round(baseline / 1024, 1), "gateway_rss_peak_mb": round(peak[0] / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", action="store_true", help="start a stack in a temporary folder (and stop it)")
    parser.add_argument("--dir", type=Path, default=None, help="stack folder (default: settings.stack.dir)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--upload-gb", type=float, default=1.0)
    parser.add_argument("--gateway-workers", type=int, default=None, help="uvicorn workers (with --start)")
    args = parser.parse_args()

    settings = load_settings()
    stack = None
    if args.start:
        overrides = {"stack": {"dir": tempfile.mkdtemp(prefix="bench-stack-")},
                     "gateway": {"max_upload_bytes": int(args.upload_gb * 1e9) + (64 << 20)}}
        if args.gateway_workers:
            overrides["gateway"]["workers"] = args.gateway_workers
        settings = settings.with_overrides(overrides)
        stack = Stack(settings)
        info = stack.up(echo=lambda m: print(m, file=sys.stderr))
    else:
        info = StackInfo.load(args.dir or settings.stack.dir)
        if info is None:
            raise SystemExit("no running stack: `spatialvid stack up` first, or pass --start")
    try:
        with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"},
                          timeout=60) as http:
            with open(bikes_path(), "rb") as video:
                job = http.post("/v1/jobs", files={"files": ("bikes.mp4", video)}, data={"stages": "clip"}).json()
        url = f"{info.api_url}/v1/jobs/{job['id']}"
        time.sleep(2.0)
        pids = gateway_pids(info)
        cpu_before = cpu_seconds(pids)
        if shutil.which("wrk"):
            polls = polls_with_wrk(url, info.api_key, args.connections, args.seconds, args.threads)
        else:
            polls = asyncio.run(_polls_with_httpx(url, info.api_key, args.connections, args.seconds))
        # The gateway's own CPU per poll: what the rate would be with a core to itself, on a busy machine.
        cpu_ms = (cpu_seconds(pids) - cpu_before) * 1e3 / (polls["polls_per_s"] * polls["seconds"])
        polls["gateway_cpu_ms_per_poll"] = round(cpu_ms, 3)
        polls["polls_per_s_per_gateway_core"] = round(1e3 / cpu_ms)
        polls["load_average_1m"] = os.getloadavg()[0]
        results = {"polls": polls}
        if args.upload_gb > 0:
            results["upload"] = upload(info, int(args.upload_gb * 1e9))
        print(json.dumps(results, indent=2))
    finally:
        if stack is not None:
            stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
