"""workers.annotate_together: one task on the ``annotate`` queue runs camera and depth on a clip (one decode of it),
in a stack of its own whose workers have the setting on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.client.api import GatewayClient
from services.stack import Stack, StackInfo
from tests.data import CASES, require
from tests.distributed.conftest import distributed_settings, running_stack
from workers.routing import ANNOTATE_TASK, QUEUES, stage_task

CUT_CASE = CASES / "cut_room_street_dyn1"  # two shots: two clips


@pytest.fixture(scope="module")
def together_stack(tmp_path_factory):
    settings = distributed_settings(tmp_path_factory.mktemp("annotate-stack")).with_overrides(
        {"workers": {"annotate_together": True}})
    with running_stack(settings) as running:
        yield running


def worker_logs(stack: Stack) -> dict[str, str]:
    """Each worker's log by its queue."""
    logs: dict[str, str] = {}
    for proc in StackInfo.load(stack.dir).processes:
        if proc.name.startswith("worker-"):
            queue = proc.name.removeprefix("worker-").rsplit("-", 1)[0]
            logs[queue] = logs.get(queue, "") + Path(proc.log).read_text(errors="replace")
    return logs


def test_annotate_worker_runs_camera_and_depth(together_stack, tmp_path):
    stack, info = together_stack
    with GatewayClient(info.api_url, info.api_key, timeout_s=120) as client:
        accepted = client.submit([require(CUT_CASE / "video.mp4", "tests/data/cases")], "clip,camera,depth",
                                 {"clip": {"min_seconds": 1.0}})
        status = client.wait(accepted["id"], poll_s=1.0, timeout_s=900)
        assert status["state"] == "succeeded", status
        assert status["clips_total"] == 2
        for stage in ("camera", "depth"):
            assert (status["stage_counts"][stage]["done"], status["stage_counts"][stage]["failed"]) == (2, 0)
        client.fetch(accepted["id"], tmp_path / "out")
    for clip_dir in (tmp_path / "out" / "annotations").iterdir():
        assert {"poses.npy", "depth.npz", "dyn_masks.npz"} <= {p.name for p in clip_dir.iterdir()}
    logs = worker_logs(stack)
    succeeded = re.findall(rf"Task {re.escape(ANNOTATE_TASK)}\[[^\]]+\] succeeded", logs[QUEUES["annotate"]])
    assert len(succeeded) == 2
    # the separate queues' workers ran nothing (their logs list the tasks they know at start only)
    for stage in ("camera", "depth"):
        assert f"Task {stage_task(stage)}[" not in logs[QUEUES[stage]]
