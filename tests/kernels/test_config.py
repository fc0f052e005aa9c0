"""A stage's ``kernels`` settings reach the operators: ``--config``'s section picks the device, not only the
environment."""

from __future__ import annotations

from pathlib import Path

from services.kernels import backend, loader
from services.kernels.config import configured, kernel_settings
from services.settings import load_settings


def test_config_file_kernels_section_switches_the_kernels_off(tmp_path: Path):
    config = tmp_path / "settings.yaml"
    config.write_text("kernels:\n  device: cpu\n  jit: false\n")
    section = load_settings(config).kernels
    with configured(section):
        assert kernel_settings() is section
        assert backend.current().device.type == "cpu"
        assert "switched off (kernels.device=cpu)" in loader.kernel_status().reason
    assert kernel_settings() is not section  # outside the block: the process settings again


def test_the_camera_and_depth_stages_run_inside_their_kernels_section(monkeypatch):
    from services.settings import Settings
    from services.stages.camera import CameraStage
    from services.stages.depth import DepthStage

    seen = []
    settings = Settings().with_overrides({"kernels": {"device": "cpu"}})

    class Ctx:
        pass

    ctx = Ctx()
    ctx.settings = settings
    for stage in (CameraStage(), DepthStage()):
        monkeypatch.setattr(stage, "_run", lambda clip, ctx: seen.append(kernel_settings().device))
        stage.run(None, ctx)
    assert seen == ["cpu", "cpu"]
