"""Prometheus metrics, read from Redis at scrape time.

The numbers live where the work happens (workers fill the stage histograms,
state transitions count jobs by state), so every gateway replica reports the
same values and nothing is lost when a gateway restarts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from gateway.deps import Services
from services.stages.registry import STAGES
from workers import state as st
from workers.routing import QUEUE_NAMES


class _Snapshot:
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):
        yield from self.families


async def render(svc: Services) -> bytes:
    pipe = svc.redis.pipeline(transaction=False)
    pipe.hgetall(st.JOBS_BY_STATE)
    for stage in STAGES:
        pipe.hgetall(st.stage_histogram_key(stage))
    for queue in QUEUE_NAMES:
        pipe.llen(queue)
    pipe.hlen(st.WORKERS)
    results = await pipe.execute()

    jobs = GaugeMetricFamily("spatialvid_jobs", "Jobs by state", labels=["state"])
    by_state = {k.decode(): int(v) for k, v in results[0].items()}
    for job_state in st.JobState:
        jobs.add_metric([job_state.value], max(0, by_state.get(job_state.value, 0)))

    latency = HistogramMetricFamily("spatialvid_stage_seconds", "Time to run one stage on one item", labels=["stage"])
    for i, stage in enumerate(STAGES):
        raw = {k.decode(): v.decode() for k, v in results[1 + i].items()}
        count = int(raw.get("count", 0))
        buckets = [(str(bound), int(raw.get(f"le:{bound}", 0))) for bound in st.LATENCY_BUCKETS]
        latency.add_metric([stage], buckets + [("+Inf", count)], float(raw.get("sum", 0.0)))

    depth = GaugeMetricFamily("spatialvid_queue_depth", "Tasks waiting in each queue", labels=["queue"])
    offset = 1 + len(STAGES)
    for i, queue in enumerate(QUEUE_NAMES):
        depth.add_metric([queue], int(results[offset + i]))
    workers = GaugeMetricFamily("spatialvid_workers", "Workers that announced themselves ready")
    workers.add_metric([], int(results[-1]))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([jobs, latency, depth, workers]))
    return generate_latest(registry)
