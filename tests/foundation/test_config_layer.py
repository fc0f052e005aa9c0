"""One configuration layer: a stage's settings section is the object its maths receives, and the maths below the
stages reads neither the global settings nor the environment."""

from __future__ import annotations

import re
from pathlib import Path

from services.camera.params import CameraSettings
from services.depth.params import DepthSettings
from services.kernels.config import KernelSettings
from services.quality.params import QualitySettings
from services.settings import Settings

SERVICES = Path(__file__).resolve().parents[2] / "services"
READS_SETTINGS = re.compile(r"^\s*(from services\.settings import|import services\.settings)|os\.environ|getenv\(",
                            re.M)


def test_sections_are_the_maths_parameter_objects():
    fields = Settings.model_fields
    assert fields["camera"].annotation is CameraSettings
    assert fields["depth"].annotation is DepthSettings
    assert fields["quality"].annotation is QualitySettings
    assert fields["kernels"].annotation is KernelSettings


def test_maths_packages_read_no_settings_and_no_environment():
    offenders = []
    for package in ("camera", "depth", "quality"):
        for path in sorted((SERVICES / package).glob("*.py")):
            if READS_SETTINGS.search(path.read_text()):
                offenders.append(str(path.relative_to(SERVICES)))
    # kernels: only config.py, whose fallback outside any stage is the process's own settings
    for path in sorted((SERVICES / "kernels").glob("*.py")):
        text = path.read_text()
        if path.name != "config.py" and re.search(r"services\.settings|load_settings", text):
            offenders.append(str(path.relative_to(SERVICES)))
    assert not offenders, offenders


def test_depth_fixed_tuning_is_not_a_setting():
    """The masks' fixed tuning is class constants: not config keys, and not part of the stage's fingerprint."""
    assert "mask_noise_px" not in DepthSettings.model_fields
    assert DepthSettings().mask_noise_px == DepthSettings.mask_noise_px
    assert "max_offset" in DepthSettings.model_fields


def test_the_kernels_read_no_settings_their_section_outside_a_stage_is_handed_over():
    """The settings layer hands the kernels the process's section (services/settings.py); no kernels module,
    config.py included, imports the settings."""
    from services.kernels.config import kernel_settings

    offenders = [path.name for path in sorted((SERVICES / "kernels").glob("*.py"))
                 if re.search(r"services\.settings|load_settings", path.read_text())]
    assert not offenders, offenders
    assert kernel_settings() == Settings().kernels
