"""The benchmark's stage stubs (bench/stub_stages.py) stay out of real deployments."""

from __future__ import annotations

import pytest

from bench.stub_stages import STUB_BACKEND, StubClipStage, StubPlan
from services.settings import load_settings
from services.stages.registry import build_stage
from workers.runtime import BENCH_STUBS_ENV, _stage_builder


def test_without_the_switch_workers_build_the_real_stages(monkeypatch):
    monkeypatch.delenv(BENCH_STUBS_ENV, raising=False)
    assert _stage_builder(load_settings()) is build_stage


def test_the_switch_is_refused_against_a_redis_off_the_loopback(monkeypatch, tmp_path):
    plan = tmp_path / "plan.json"
    StubPlan().save(plan)
    monkeypatch.setenv(BENCH_STUBS_ENV, str(plan))
    settings = load_settings().with_overrides({"redis": {"url": "redis://redis.spatialvid.svc:6379/0"}})
    with pytest.raises(RuntimeError, match="loopback"):
        _stage_builder(settings)


def test_with_the_switch_on_a_loopback_stack_every_stage_is_a_labelled_stub(monkeypatch, tmp_path):
    plan = tmp_path / "plan.json"
    StubPlan().save(plan)
    monkeypatch.setenv(BENCH_STUBS_ENV, str(plan))
    build = _stage_builder(load_settings().with_overrides({"redis": {"url": "redis://127.0.0.1:6390/0"}}))
    camera = build("camera")
    assert isinstance(camera, StubClipStage) and camera.name == "camera"
    assert build("clip").name == "clip"
    assert STUB_BACKEND == "bench-stub"
