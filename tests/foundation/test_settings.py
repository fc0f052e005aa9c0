from pathlib import Path

import pytest
from pydantic import ValidationError

from services.settings import ConfigError, load_settings


def test_defaults_are_the_reference_values():
    settings = load_settings()
    assert settings.clip.min_seconds == 3.0 and settings.clip.max_seconds == 15.0
    assert settings.clip.trim_seconds == 0.3
    assert (settings.filter.luminance_min, settings.filter.luminance_max) == (20.0, 140.0)
    assert (settings.filter.motion_min, settings.filter.motion_max) == (2.0, 14.0)
    assert settings.filter.ocr_max == 0.3 and settings.filter.aesthetic_min == 4.0


def test_environment_overrides_nested_fields(monkeypatch):
    monkeypatch.setenv("SPATIALVID_CLIP__MIN_SECONDS", "1")
    monkeypatch.setenv("SPATIALVID_FILTER__OCR_MAX", "0.25")
    settings = load_settings()
    assert settings.clip.min_seconds == 1.0
    assert settings.filter.ocr_max == 0.25


def test_yaml_file_sets_fields_and_environment_wins(tmp_path: Path, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text("clip:\n  min_seconds: 2.5\n  max_seconds: 10\nfilter:\n  ocr_max: 0.1\n")
    monkeypatch.setenv("SPATIALVID_FILTER__OCR_MAX", "0.2")
    settings = load_settings(config)
    assert settings.clip.min_seconds == 2.5 and settings.clip.max_seconds == 10
    assert settings.filter.ocr_max == 0.2
    # The file only applies to the call that names it.
    assert load_settings().clip.min_seconds == 3.0


@pytest.mark.parametrize(
    "text",
    [
        "clip:\n  min_secnds: 1\n",  # typo in a field
        "clipping:\n  min_seconds: 1\n",  # unknown section
        "clip:\n  min_seconds: lots\n",  # wrong type
        "clip:\n  min_seconds: 20\n",  # min above max
    ],
)
def test_bad_config_files_are_errors(tmp_path: Path, text: str):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ValidationError):
        load_settings(config)


def test_unreadable_or_non_mapping_config(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(listing)


def test_job_overrides_are_validated():
    settings = load_settings()
    assert settings.with_overrides({"clip": {"min_seconds": 1}}).clip.min_seconds == 1
    with pytest.raises(ValidationError):
        settings.with_overrides({"clip": {"nope": 1}})
    # Secrets survive the round trip.
    assert settings.with_overrides({}).s3.secret_key.get_secret_value() == settings.s3.secret_key.get_secret_value()


def test_jobs_cannot_redirect_captions_or_touch_infrastructure():
    from services.settings import check_job_overrides

    check_job_overrides({"clip": {"min_seconds": 1}, "caption": {"vlm_temperature": 0.5}})
    for section, field in [("caption", "vlm_url"), ("caption", "llm_url"), ("caption", "api_key"),
                           ("caption", "llm_api_key"), ("caption", "vlm_model"), ("caption", "backend"),
                           ("score", "torch_threads"), ("s3", "endpoint"), ("storage", "root"),
                           ("models", "weights_dir"), ("video", "ffmpeg")]:
        with pytest.raises(ValueError, match=field if section == "caption" else section):
            check_job_overrides({section: {field: "x"}})


def test_the_job_allow_list_names_real_fields_only():
    """A typo in the allow-list would silently refuse a field; a removed field must leave it."""
    from services.settings import JOB_SETTABLE_FIELDS, Settings

    for section, fields in JOB_SETTABLE_FIELDS.items():
        known = type(getattr(Settings(), section)).model_fields
        assert set(fields) <= set(known), (section, set(fields) - set(known))
