"""The Celery queues, what their workers need, and which queue each stage's tasks go to: the one place that says so.

Tests, the stack, the gateway's metrics and the deployment read it: ``k8s/generate.py`` writes
``k8s/base/workers.yaml`` and ``deploy/compose.py`` writes the workers of ``docker-compose.yml`` from ``WORKERS``
(tests/deploy fails while either file is stale). Adding a queue is one line in ``WORKERS`` (and a stage routed to it
in ``QUEUES``), then ``python k8s/generate.py && python deploy/compose.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from services.stages.registry import ALIASES, STAGES


@dataclass(frozen=True)
class Workers:
    """What one queue's workers need (the defaults suit a CPU stage of a few minutes per task)."""

    gpu: bool = False  # the stage runs CUDA kernels / GPU models: the GPU image, GPU nodes in the gpu overlay
    host_concurrency: int = 1  # tasks one docker-compose worker runs at once (Kubernetes scales pods instead)
    cpu: str = "2"  # Kubernetes CPU request and limit per worker pod
    memory: str = "4Gi"  # Kubernetes memory request and limit per worker pod
    grace_s: int = 600  # how long a running task may finish when its pod stops (acks_late re-queues it after)
    max_replicas: int = 8  # KEDA's ceiling on worker pods
    min_replicas: int = 1  # KEDA's floor (0: the queue scales to zero when idle)
    list_length: int = 4  # pending tasks per pod that KEDA aims for


# queue -> its workers, in pipeline order (one worker per queue in the local stack and in docker compose).
WORKERS: dict[str, Workers] = {
    "ingest": Workers(grace_s=900, list_length=2),  # downloads and cuts whole videos: long tasks, few at once
    "score": Workers(grace_s=300, max_replicas=16, list_length=8),
    "annotate_camera": Workers(gpu=True, cpu="4", memory="8Gi", grace_s=1200, max_replicas=16, min_replicas=0),
    "annotate_depth": Workers(gpu=True, cpu="4", memory="8Gi", grace_s=1200, max_replicas=16, min_replicas=0),
    # camera and depth of one clip in one task (workers.annotate_together): the two stages' time per task
    "annotate": Workers(gpu=True, cpu="4", memory="8Gi", grace_s=2400, max_replicas=16, min_replicas=0),
    # Waits on the VLM/LLM endpoints rather than computing: two tasks per compose worker.
    "caption": Workers(host_concurrency=2, cpu="1", memory="2Gi", grace_s=300, min_replicas=0, list_length=16),
    "finalize": Workers(cpu="1", memory="2Gi", grace_s=300, max_replicas=2),
}

# stage -> queue. Clipping runs on ``ingest``; the filter is cheap and rides on ``score``. ``annotate`` (the
# stage list's name for camera and depth) runs both on one clip in one task, so that one decode of the clip serves
# them (services/video/shared.py): a deployment sends them there instead of to annotate_camera and annotate_depth
# when workers.annotate_together is on; the separate queues stay, for workers that scale apart.
QUEUES: dict[str, str] = {
    "clip": "ingest",
    "score": "score",
    "filter": "score",
    "camera": "annotate_camera",
    "depth": "annotate_depth",
    "annotate": "annotate",
    "caption": "caption",
    "finalize": "finalize",
}

# Every queue, in pipeline order.
QUEUE_NAMES: tuple[str, ...] = tuple(WORKERS)
GPU_QUEUES: tuple[str, ...] = tuple(name for name, workers in WORKERS.items() if workers.gpu)

INGEST_TASK = "spatialvid.ingest"
EXPAND_TASK = "spatialvid.expand"  # lists a prefix or manifest page by page (rides on the ingest queue)
FINALIZE_TASK = "spatialvid.finalize"
ANNOTATE_TASK = "spatialvid.annotate"
ANNOTATE_STAGES: tuple[str, ...] = ALIASES["annotate"]

# The stages that run per clip (everything after clipping).
CLIP_STAGES: tuple[str, ...] = tuple(name for name in STAGES if name != "clip")


def stage_task(stage: str) -> str:
    """The Celery task name that runs ``stage`` on one clip."""
    return f"spatialvid.stage.{stage}"


def next_task(stages: list[str], stage: str, annotate_together: bool) -> tuple[str, str]:
    """(task, queue) that runs ``stage``, the next of the job's clip ``stages``: the ``annotate`` task when camera
    and depth follow each other there and the deployment puts them together."""
    at = stages.index(stage)
    if annotate_together and tuple(stages[at:at + len(ANNOTATE_STAGES)]) == ANNOTATE_STAGES:
        return ANNOTATE_TASK, QUEUES["annotate"]
    return stage_task(stage), QUEUES[stage]


def task_routes() -> dict[str, dict[str, str]]:
    routes = {INGEST_TASK: {"queue": QUEUES["clip"]}, EXPAND_TASK: {"queue": QUEUES["clip"]},
              FINALIZE_TASK: {"queue": QUEUES["finalize"]}, ANNOTATE_TASK: {"queue": QUEUES["annotate"]}}
    routes.update({stage_task(stage): {"queue": QUEUES[stage]} for stage in CLIP_STAGES})
    return routes


assert set(STAGES) <= set(QUEUES), "every stage needs a queue"
assert set(QUEUES.values()) <= set(WORKERS), "every queue a stage uses needs its workers in WORKERS"


if __name__ == "__main__":
    # `python -m workers.routing --gpu`: the GPU queues, comma-separated (the GPU image's default `-Q`).
    print(",".join(GPU_QUEUES if "--gpu" in sys.argv[1:] else QUEUE_NAMES))
