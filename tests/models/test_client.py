"""The model-client seam: in-process by default, Triton when the settings say so, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from services.models import client as client_module
from services.models import get_model_client, known_models
from services.models.client import InProcessClient, ModelClient
from services.models.weights import WeightsMissing
from services.settings import Settings


class Doubler:
    name = "doubler"
    backend = "doubler (test)"

    def infer(self, inputs):
        return {"y": inputs["x"] * 2}


def test_in_process_client_wraps_a_model():
    c = InProcessClient(Doubler())
    assert isinstance(c, ModelClient) and c.ready() and c.backend == "doubler (test)"
    np.testing.assert_array_equal(c.infer({"x": np.arange(3)})["y"], [0, 2, 4])


def test_registry_loads_in_process_by_default(tmp_path, monkeypatch):
    monkeypatch.setitem(client_module._LOADERS, "doubler", f"{__name__}:load_doubler")
    settings = Settings(models={"weights_dir": tmp_path})
    c = get_model_client("doubler", settings.models, settings.triton)
    assert isinstance(c, InProcessClient) and c.name == "doubler"
    assert "depth_anything_v2" in known_models() and "sam2" in known_models()


def load_doubler(weights_dir, device="cpu"):
    assert device == "cpu"
    return Doubler()


def test_missing_weights_surface_from_the_registry(tmp_path):
    settings = Settings(models={"weights_dir": tmp_path})
    with pytest.raises(WeightsMissing, match="raft-things.pth"):
        get_model_client("raft", settings.models, settings.triton)


def test_unknown_model():
    with pytest.raises(KeyError, match="unknown model"):
        get_model_client("nope", Settings().models, Settings().triton)


def test_triton_is_chosen_per_model_and_imported_lazily(monkeypatch):
    made = {}

    class FakeTriton:
        def __init__(self, name, settings):
            made["name"] = name

    fake_module = type(sys)("services.models.triton_client")
    fake_module.TritonModelClient = FakeTriton
    monkeypatch.setitem(sys.modules, "services.models.triton_client", fake_module)
    settings = Settings(models={"client": {"sam2": "triton"}})
    assert isinstance(get_model_client("sam2", settings.models, settings.triton), FakeTriton) and made["name"] == "sam2"
