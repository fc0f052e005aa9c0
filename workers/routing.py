"""Which queue each stage's tasks go to: the one place that says so.

Tests, the stack and the deployment (docker-compose, Kubernetes) read
``QUEUES`` and ``QUEUE_NAMES``; a stage's workers are scaled and placed (CPU or
GPU nodes) by the queue they consume.
"""

from __future__ import annotations

from services.stages.registry import ALIASES, STAGES

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

# Every queue, in pipeline order (one worker per queue in the local stack).
QUEUE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(QUEUES.values()))

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
