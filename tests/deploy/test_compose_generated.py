"""docker-compose.yml's workers are generated from workers/routing.py (deploy/compose.py): the committed file must
be current, and a new queue must show up in it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from workers import routing

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("deploy_compose", ROOT / "deploy" / "compose.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_compose_workers_are_current():
    text = (ROOT / "docker-compose.yml").read_text()
    assert text == _generator().render(text), "docker-compose.yml is stale: run `python deploy/compose.py`"


def test_a_new_queue_gets_a_compose_worker(monkeypatch):
    """The staleness check above can fail: one more queue in routing changes the rendered file."""
    monkeypatch.setitem(routing.WORKERS, "annotate_extra", routing.Workers(gpu=True))
    text = (ROOT / "docker-compose.yml").read_text()
    rendered = _generator().render(text)
    assert rendered != text
    services = yaml.safe_load(rendered)["services"]
    assert services["worker-annotate-extra"]["image"] == "spatialvid-gpu:latest"
    command = services["worker-annotate-extra"]["command"]
    assert command[command.index("-Q") + 1] == "annotate_extra"


def test_compose_runs_one_worker_per_queue_with_its_image():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    workers = {name: s for name, s in services.items() if name.startswith("worker-")}
    assert len(workers) == len(routing.WORKERS)
    for queue, needs in routing.WORKERS.items():
        worker = workers["worker-" + queue.replace("_", "-")]
        assert worker["image"] == ("spatialvid-gpu:latest" if needs.gpu else "spatialvid-cpu:latest")
        assert worker["command"][worker["command"].index("--concurrency") + 1] == str(needs.host_concurrency)
