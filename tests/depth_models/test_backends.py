"""The weight-based backends' plumbing with stand-in clients whose answers are known.

The stand-ins are test doubles for the model-client seam (``infer(dict) -> dict``), not models: they
let the metric (UniDepth V2) path, which cannot load here, and SAM 2.1 masks that survive the
reference's 30% rule be checked exactly. The real loaders run in the stage tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from services.depth.learned import (
    METRIC_UNITS,
    POSE_UNITS,
    AlignedDepthAnything,
    LearnedDepthAndMasks,
    ModelClients,
    ModelNotAvailable,
    Sam2Masks,
)
from services.stages.base import ClipFailed

H, W, h, w = 72, 128, 36, 64


def true_depth(frame: np.ndarray) -> np.ndarray:
    """The scene depth a stand-in "sees" in a frame (a ramp whose offset is coded in the frame's pixel 0)."""
    y = np.linspace(0, 1, frame.shape[0], dtype=np.float32)[:, None]
    x = np.linspace(0, 1, frame.shape[1], dtype=np.float32)[None, :]
    return 1.0 + 4.0 * y + 0.5 * x + float(frame[0, 0, 0]) / 100.0


@dataclass
class StubClient:
    name: str
    backend: str
    answer: object
    calls: list = field(default_factory=list)

    def infer(self, inputs):
        self.calls.append({k: np.asarray(v).shape for k, v in inputs.items()})
        return self.answer(inputs)

    def ready(self):
        return True


def relative_stub(scale=0.2, shift=-0.05):
    # Relative disparity = true disparity up to an affine map (what Depth Anything is trained to give).
    return StubClient("depth_anything_v2", "stub-depth-anything",
                      lambda x: {"disparity": np.stack([(1 / true_depth(f) - shift) / scale for f in x["image"]])})


def metric_stub():
    return StubClient("unidepth", "stub-unidepth", lambda x: {"depth": np.stack([true_depth(f) for f in x["image"]])})


def frames(n: int) -> np.ndarray:
    out = np.zeros((n, H, W, 3), np.uint8)
    out[:, 0, 0, 0] = np.arange(n) * 10
    return out


def grid_depth(frame: np.ndarray) -> np.ndarray:
    import cv2

    return 1.0 / cv2.resize(1.0 / true_depth(frame), (w, h), interpolation=cv2.INTER_AREA)


def test_metric_reference_gives_metres_and_ignores_the_geometric_units():
    batch = frames(3)
    geometric = np.stack([0.25 * grid_depth(f) for f in batch]).astype(np.float32)  # poses in other units
    backend = AlignedDepthAnything(relative_stub(), metric_stub(), "geometric-x")
    assert backend.metric and backend.units == METRIC_UNITS
    assert "unidepth-v2 metric depth [stub-depth-anything; stub-unidepth]" in backend.name
    results = backend.align_batch(batch, geometric)
    for f, r in zip(batch, results):
        assert r.ok
        np.testing.assert_allclose(r.depth, grid_depth(f), rtol=1e-3)


def test_geometric_reference_gives_pose_units():
    batch = frames(2)
    geometric = np.stack([0.25 * grid_depth(f) for f in batch]).astype(np.float32)
    geometric[:, :10] = 0  # no parallax there: not used, but covered by the model
    backend = AlignedDepthAnything(relative_stub(), None, "geometric-x", "UniDepth V2 not available")
    assert not backend.metric and backend.units == POSE_UNITS
    assert "geometric multi-view depth (up to scale) [stub-depth-anything; geometric-x]" in backend.name
    for f, r in zip(batch, backend.align_batch(batch, geometric)):
        np.testing.assert_allclose(r.depth, 0.25 * grid_depth(f), rtol=1e-3)


@dataclass
class FakeGeometric:
    """Stands in for GeometricDepthAndMasks: known depth and a box mask per frame."""

    depth: object = field(default_factory=lambda: type("D", (), {"name": "geometric-depth-x"})())
    masks: object = field(default_factory=lambda: type("M", (), {"name": "geometric-masks-x"})())
    consumed: list = field(default_factory=list)

    def iter_both(self, frames_iter, c2w, K, timings=None):
        window = []
        for i, f in enumerate(frames_iter):  # like the real pass, frames are read ahead of their outputs
            window.append(f)
            self.consumed.append(i)
            if len(window) > 2:
                yield self._out(window.pop(0))
        for f in window:
            yield self._out(f)

    @staticmethod
    def _out(f):
        mask = np.zeros((H, W), bool)
        top = 2 + 8 * (f[0, 0, 0] // 10)  # frame i's object: rows top..top+12, a band of its own
        mask[top:top + 12, 40:80] = True
        return (0.25 * grid_depth(f)).astype(np.float32), mask


def box_masks_stub():
    """SAM 2.1 stand-in: one mask per prompt, the bounding box of its points."""
    def answer(x):
        out = np.zeros((len(x["points"]), H, W), bool)
        for k, pts in enumerate(x["points"]):
            x0, y0 = np.floor(pts.min(0)).astype(int)
            x1, y1 = np.ceil(pts.max(0)).astype(int)
            out[k, y0:y1 + 1, x0:x1 + 1] = True
        return {"masks": out, "scores": np.ones(len(out), np.float32)}
    return StubClient("sam2", "stub-sam2", answer)


def test_one_pass_streams_frames_in_order_through_batched_model_calls():
    n = 7
    geometric = FakeGeometric()
    sam = box_masks_stub()
    both = LearnedDepthAndMasks(geometric, AlignedDepthAnything(relative_stub(), metric_stub(), "g"),
                                Sam2Masks(sam, "geometric-masks-x", skip_sky=False), batch_frames=3)
    out = list(both.iter_both(iter(frames(n)), None, None))
    assert len(out) == n
    for i, (d, m) in enumerate(out):
        np.testing.assert_allclose(d, grid_depth(frames(n)[i]), rtol=1e-3)  # frame i's own depth, in order
        # SAM's box around the prompts on the geometric region (kept: well under 30% of the frame)
        assert m.dtype == bool and m.shape == (H, W) and 0 < m.mean() < 0.3
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        assert 2 + 8 * i - 2 <= rows[0] and rows[-1] <= 2 + 8 * i + 12 + 1, (i, rows)  # frame i's own object
        assert 38 <= cols[0] and cols[-1] <= 81
    assert both.depth.name.startswith("depth-anything-v2") and both.masks.name.startswith("sam2.1 (stub-sam2)")
    assert [c["image"][0] for c in both.learned_depth.relative.calls] == [3, 3, 1]
    assert all(len(c["image"]) == 3 for c in sam.calls)  # one frame per SAM call (H, W, 3)
    assert "on 7 of 7 frames" in both.notes[0] and "7 masks kept" in both.notes[1]


def test_no_aligned_frame_fails_the_clip():
    class Blind(FakeGeometric):
        @staticmethod
        def _out(f):
            return np.zeros((h, w), np.float32), np.zeros((H, W), bool)

    both = LearnedDepthAndMasks(Blind(), AlignedDepthAnything(relative_stub(), None, "g", "no UniDepth"), None)
    with pytest.raises(ClipFailed, match=r"no frame could be aligned to the geometric depth \(no UniDepth\)"):
        list(both.iter_both(iter(frames(3)), None, None))


def test_model_clients_are_kept_and_failures_are_not(tmp_path):
    from services.settings import Settings
    from tests.depth_models.conftest import write_depth_anything

    settings = Settings().with_overrides({"models": {"weights_dir": str(tmp_path)}})
    clients = ModelClients()
    with pytest.raises(ModelNotAvailable, match="Depth Anything V2: weights not found"):
        clients.get("depth_anything_v2", settings.models, settings.triton)
    write_depth_anything(tmp_path, seed=1)  # the weights arrive: the next clip gets the model
    first = clients.get("depth_anything_v2", settings.models, settings.triton)
    assert clients.get("depth_anything_v2", settings.models, settings.triton) is first


def test_metric_runs_measure_metres_per_pose_unit():
    """UniDepth's metres against the geometric depth in pose units (here 0.25 of the truth): 4 metres a unit."""
    both = LearnedDepthAndMasks(FakeGeometric(), AlignedDepthAnything(relative_stub(), metric_stub(), "g"), None,
                                batch_frames=2)
    out = list(both.iter_both(iter(frames(5)), None, None))
    assert len(out) == 5
    assert both.metres_per_pose_unit == pytest.approx(4.0, rel=1e-3)
    assert "4 metres per pose unit (median over 5 frames" in both.notes[0]
    # aligned to the geometric depth instead: nothing metric to report
    plain = LearnedDepthAndMasks(FakeGeometric(), AlignedDepthAnything(relative_stub(), None, "g", "no UniDepth"), None)
    list(plain.iter_both(iter(frames(3)), None, None))
    assert plain.metres_per_pose_unit is None
