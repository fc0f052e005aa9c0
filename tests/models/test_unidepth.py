"""UniDepth V2: the loader's failure modes (the model code itself is GitHub-only and not installed here)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from services.models import unidepth
from services.models.weights import ModelPackageMissing, WeightsMissing


def test_missing_weights_name_the_published_layout(tmp_path):
    with pytest.raises(WeightsMissing, match=r"config.json, model.safetensors") as info:
        unidepth.load(tmp_path)
    assert str((tmp_path / "unidepth").resolve()) in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("unidepth") is not None, reason="unidepth is installed")
def test_without_the_package_the_error_says_where_it_comes_from(tmp_path):
    folder = tmp_path / "unidepth"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": {"name": "UniDepthV2"}}))
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelPackageMissing, match="lpiccinelli-eth/UniDepth"):
        unidepth.load(tmp_path)
