"""Every weight-dependent Triton model loads a tiny published-format checkpoint and answers
as the in-process code does; missing weights make one model unavailable, not the server."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from services.models.triton_client import ModelUnavailable, TritonModelClient
from services.stages.base import ClipFailed
from services.triton_server import TritonServer

from .conftest import require_installation, triton_settings
from .tiny_weights import WITHOUT_WRITER, WRITERS

# Starts a real tritonserver (CPU configs).
pytestmark = pytest.mark.services

REPOSITORY = Path(__file__).resolve().parents[2] / "triton_models"


@pytest.fixture(scope="module")
def frames(text_frames) -> np.ndarray:
    """Two real frames, made small so that the CPU models stay quick."""
    import cv2

    # 128 rows: RAFT's smallest input.
    return np.stack([cv2.resize(f, (224, 128), interpolation=cv2.INTER_AREA) for f in text_frames[:2]])


def in_process(name: str, weights_dir: Path):
    if name == "aesthetic":
        from services.scoring.aesthetic import AestheticScorer

        scorer = AestheticScorer.from_dir(weights_dir)
        return lambda inputs: {"score": scorer.predict(inputs["image"])[:, None]}
    from services.models.client import load_model

    return load_model(name, weights_dir).infer


def sample_inputs(name: str, frames: np.ndarray) -> dict[str, np.ndarray]:
    if name == "sam2":
        points = np.array([[[30, 40], [60, 50], [90, 30]], [[150, 90], [170, 100], [200, 80]]], np.float32)
        return {"image": frames[0], "points": points, "labels": np.ones((2, 3), np.int32)}
    if name == "raft":
        pair = frames[:1, :, 48:176]  # one 128x128 pair: RAFT is slow on a CPU
        return {"image1": pair, "image2": np.roll(pair, 3, axis=2)}
    return {"image": frames}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_model_loads_tiny_checkpoint_and_answers_like_in_process(name, triton_server, tiny_weights, frames):
    weights_dir, _ = tiny_weights
    client = TritonModelClient(name, triton_server.settings.triton)
    try:
        inputs = sample_inputs(name, frames)
        got = client.infer(inputs)
        expected = in_process(name, weights_dir)(inputs)
    finally:
        client.close()
    assert set(got) == set(expected)
    for key, want in expected.items():
        have = got[key]
        assert have.shape == want.shape and have.dtype == want.dtype, key
        if want.dtype == bool:
            # Masks threshold logits at 0: a pixel whose logit is ~0 may flip; allow 0.1%.
            assert np.mean(have != want) <= 1e-3, key
        else:
            np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4, err_msg=key)


@pytest.mark.parametrize("name", sorted(WITHOUT_WRITER))
def test_model_without_its_code_is_unavailable_with_a_clear_reason(name, triton_server):
    state = triton_server.model_states()[name]
    assert state["state"] == "UNAVAILABLE"
    # No checkpoint is written for it: the loader names the published files it looked for.
    assert "weights missing" in state["reason"] and "model.safetensors" in state["reason"], state
    with pytest.raises(ModelUnavailable, match=f"{name} is unavailable"):
        TritonModelClient(name, triton_server.settings.triton)
    pytest.skip(f"{name} cannot answer here: {WITHOUT_WRITER[name]} (reported: {state['reason'][:120]})")


def test_model_errors_come_back_as_clip_failures_with_the_models_message(triton_server, frames):
    client = TritonModelClient("sam2", triton_server.settings.triton)
    try:
        # Labels that do not fit the points: the model itself refuses them.
        bad = {"image": frames[0], "points": np.zeros((2, 3, 2), np.float32), "labels": np.ones((2, 5), np.int32)}
        with pytest.raises(ClipFailed, match=r"Triton model sam2 failed: sam2: ValueError: .*reshape"):
            client.infer(bad)
        # The model is still serving afterwards.
        assert client.infer(sample_inputs("sam2", frames))["masks"].shape == (2, 128, 224)
    finally:
        client.close()


def test_unreachable_server_is_retried_with_backoff_then_reported(tiny_weights):
    weights_dir, _ = tiny_weights
    settings = triton_settings(weights_dir).with_overrides(
        {"triton": {"max_retries": 2, "backoff_base_s": 0.1, "ready_timeout_s": 0.5}}
    )
    with pytest.raises(ModelUnavailable, match="not ready .* after"):
        TritonModelClient("ocr_det", settings.triton)
    client = TritonModelClient("ocr_det", settings.triton, wait=False)
    with pytest.raises(ClipFailed, match="unavailable at .* after 3 attempts"):
        client.infer({"image": np.zeros((1, 32, 32, 3), np.uint8)})


def test_missing_weights_make_that_model_unavailable_while_the_others_serve(tmp_path, text_frames):
    empty = tmp_path / "weights"
    empty.mkdir()
    settings = triton_settings(empty, models=["ocr_det", "depth_anything_v2", "sam2"])
    require_installation(settings)
    server = TritonServer(settings, log_path=tmp_path / "tritonserver.log")
    server.start()
    try:
        states = server.model_states()
        assert states["ocr_det"]["state"] == "READY"
        for name, expected_file in [("depth_anything_v2", "model.safetensors"), ("sam2", "sam2.1_hiera_large.pt")]:
            assert states[name]["state"] == "UNAVAILABLE"
            assert "weights missing" in states[name]["reason"] and expected_file in states[name]["reason"]
            with pytest.raises(ModelUnavailable, match=f"{name} is unavailable.*weights missing"):
                TritonModelClient(name, settings.triton)
        with pytest.raises(ModelUnavailable, match="raft is not loaded"):
            TritonModelClient("raft", settings.triton)
        from services.scoring.ocr import PPOCRDetector

        client = TritonModelClient("ocr_det", settings.triton)
        try:
            boxes = PPOCRDetector(remote=client).detect(text_frames[:1])
        finally:
            client.close()
        assert len(boxes[0]) > 0

        # A server that does not answer SIGTERM is killed, with its stubs and shared memory.
        regions = list(Path("/dev/shm").glob(f"{server.shm_prefix}*"))
        assert regions, "the Python backend's shared memory carries this server's prefix"
        pid = server.process.pid
        os.kill(pid, signal.SIGSTOP)
        server.stop(timeout_s=2)
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        assert not list(Path("/dev/shm").glob(f"{server.shm_prefix}*"))
    finally:
        server.stop()


# ---------------------------------------------------------------------------- configs


def _tensors(text: str, section: str) -> list[tuple[str, str, str]]:
    body = re.search(section + r"\s*\[(.*?)\n\]", text, re.S).group(1)
    return re.findall(r'name:\s*"(\w+)",\s*data_type:\s*(TYPE_\w+),\s*dims:\s*\[([^\]]*)\]', body)


@pytest.mark.parametrize("model_dir", sorted(p for p in REPOSITORY.iterdir() if (p / "config.pbtxt").exists()))
def test_production_and_cpu_configs_declare_the_same_model(model_dir):
    production = (model_dir / "config.pbtxt").read_text()
    cpu = (model_dir / "configs" / "cpu.pbtxt").read_text()
    assert f'name: "{model_dir.name}"' in production and f'name: "{model_dir.name}"' in cpu
    assert (model_dir / "1" / "model.py").is_file()
    for section in ("input", "output"):
        assert _tensors(production, section) == _tensors(cpu, section) != []
    assert "KIND_GPU" in production and "KIND_CPU" not in production
    assert "KIND_CPU" in cpu and "KIND_GPU" not in cpu
    for text in (production, cpu):
        assert re.search(r"dynamic_batching\s*\{[^}]*preferred_batch_size[^}]*max_queue_delay_microseconds", text)
        assert int(re.search(r"max_batch_size:\s*(\d+)", text).group(1)) > 0


@pytest.mark.parametrize("name", ["depth_anything_v2", "sam2", "unidepth", "raft"])
def test_configs_follow_the_loaders_tensor_contract(name):
    import importlib

    from services.models.client import _LOADERS

    module = importlib.import_module(_LOADERS[name].partition(":")[0]) if name in _LOADERS else None
    if module is None or not hasattr(module, "INPUTS") or not (REPOSITORY / name).exists():
        pytest.skip(f"{name}: no loader with a tensor contract or no Triton model yet")
    text = (REPOSITORY / name / "config.pbtxt").read_text()
    per_item = re.search(r'"per_item".*?string_value:\s*"true"', text, re.S) is not None
    to_triton = {"uint8": "TYPE_UINT8", "float32": "TYPE_FP32", "int32": "TYPE_INT32", "bool": "TYPE_BOOL",
                 "int64": "TYPE_INT64", "float16": "TYPE_FP16"}
    for section, contract in (("input", module.INPUTS), ("output", module.OUTPUTS)):
        declared = {n: (t, [int(d) for d in dims.split(",")]) for n, t, dims in _tensors(text, section)}
        assert set(declared) == set(contract), section
        for tensor, (dtype, shape) in contract.items():
            # The in-process contract has a batch axis unless the model runs per item.
            dims = list(shape) if per_item else list(shape)[1:]
            assert declared[tensor] == (to_triton[dtype], dims), tensor


# ---------------------------------------------------------------------------- launching


def test_backend_folder_is_symlinks_and_environment_puts_the_venv_first(tmp_path):
    from services.settings import load_settings
    from services.triton_server import find_installation, prepare_backend_dir, server_environment

    settings = load_settings()
    require_installation(settings)
    install = find_installation(settings.triton.venv)
    backends = prepare_backend_dir(install, tmp_path / "backends")
    files = sorted(p.name for p in (backends / "python").iterdir())
    assert files == ["libtriton_python.so", "triton_python_backend_stub", "triton_python_backend_utils.py"]
    for path in (backends / "python").iterdir():
        # Symlinks: the stub's $ORIGIN-relative RPATH must resolve inside the wheel.
        assert path.is_symlink() and path.resolve().is_file()
    assert (backends / "python" / "triton_python_backend_stub").resolve() == install.stub.resolve()
    assert f"python_backend_stubs/{install.python_version}/" in str(install.stub)
    env = server_environment(install, tmp_path / "weights")
    assert env["LD_LIBRARY_PATH"].split(os.pathsep)[0] == str(install.libdir)
    assert (install.libdir / f"libpython{install.python_version}.so.1.0").exists()
    assert env["PATH"].split(os.pathsep)[0] == str(install.venv / "bin")
    assert env["SPATIALVID_MODELS__WEIGHTS_DIR"] == str((tmp_path / "weights").resolve())
