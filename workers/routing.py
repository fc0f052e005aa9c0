"""Which queue each stage's tasks go to: the one place that says so.

Tests, the stack and the deployment (docker-compose, Kubernetes) read
``QUEUES`` and ``QUEUE_NAMES``; a stage's workers are scaled and placed (CPU or
GPU nodes) by the queue they consume.
"""

from __future__ import annotations

from services.stages.registry import STAGES

# stage -> queue. Clipping runs on ``ingest``; the filter is cheap and rides on ``score``.
QUEUES: dict[str, str] = {
    "clip": "ingest",
    "score": "score",
    "filter": "score",
    "camera": "annotate_camera",
    "depth": "annotate_depth",
    "caption": "caption",
    "finalize": "finalize",
}

# Every queue, in pipeline order (one worker per queue in the local stack).
QUEUE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(QUEUES.values()))

INGEST_TASK = "spatialvid.ingest"
EXPAND_TASK = "spatialvid.expand"  # lists a prefix or manifest page by page (rides on the ingest queue)
FINALIZE_TASK = "spatialvid.finalize"

# The stages that run per clip (everything after clipping).
CLIP_STAGES: tuple[str, ...] = tuple(name for name in STAGES if name != "clip")


def stage_task(stage: str) -> str:
    """The Celery task name that runs ``stage`` on one clip."""
    return f"spatialvid.stage.{stage}"


def task_routes() -> dict[str, dict[str, str]]:
    routes = {INGEST_TASK: {"queue": QUEUES["clip"]}, EXPAND_TASK: {"queue": QUEUES["clip"]},
              FINALIZE_TASK: {"queue": QUEUES["finalize"]}}
    routes.update({stage_task(stage): {"queue": QUEUES[stage]} for stage in CLIP_STAGES})
    return routes


assert set(STAGES) <= set(QUEUES), "every stage needs a queue"
