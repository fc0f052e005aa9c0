"""RAFT: a randomly initialised network saved in the published DataParallel layout loads and runs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from services.models import raft  # noqa: E402
from services.models.weights import WeightsMissing  # noqa: E402

# Names as they appear in princeton-vl's raft-things.pth (DataParallel prefix, batch-norm
# buffers of the context encoder, the stride-2 blocks' norm3 stored twice).
PUBLISHED_KEYS = [
    "module.fnet.conv1.weight",
    "module.fnet.layer2.0.downsample.0.weight",
    "module.cnet.norm1.running_mean",
    "module.cnet.layer2.0.norm3.weight",
    "module.cnet.layer2.0.downsample.1.running_var",
    "module.cnet.layer3.1.norm2.num_batches_tracked",
    "module.update_block.encoder.convc1.weight",
    "module.update_block.gru.convq2.bias",
    "module.update_block.flow_head.conv2.weight",
    "module.update_block.mask.2.bias",
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    (root / "raft").mkdir()
    torch.manual_seed(0)
    network = raft.build_network()  # PyTorch's default random initialisation
    with torch.no_grad():
        # Non-trivial batch-norm statistics, so that loading them is exercised too.
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    state = {f"module.{k}": v for k, v in network.state_dict().items()}
    torch.save(state, root / "raft" / "raft-things.pth")
    return root, state


def test_layout_matches_the_published_names(weights):
    _, state = weights
    for key in PUBLISHED_KEYS:
        assert key in state, key
    # fnet uses instance norm without affine parameters: no norm keys at all.
    assert not any(k.startswith("module.fnet.norm") or ".fnet.layer1.0.norm" in k for k in state)
    # Unique parameters: the count torchvision publishes for the same architecture (raft_large).
    assert sum(p.numel() for p in raft.build_network().parameters()) == 5_257_536


def test_missing_weights(tmp_path):
    with pytest.raises(WeightsMissing, match="raft-things.pth"):
        raft.load(tmp_path)


def test_loads_and_predicts_any_frame_size(weights):
    root, _ = weights
    model = raft.load(root, iterations=2)
    assert "raft/raft-things.pth" in model.backend
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 130, 141, 3), dtype=np.uint8)  # not multiples of 8: padded, then cropped
    b = np.roll(a, 2, axis=2)
    flow = model.infer({"image1": a, "image2": b})["flow"]
    assert flow.shape == (2, 130, 141, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    again = model.infer({"image1": a[1], "image2": b[1]})["flow"][0]
    np.testing.assert_allclose(again, flow[1], rtol=1e-4, atol=1e-4)


def test_padding_is_the_authors_default():
    assert raft.pad_to_multiple_of_8(45, 61) == (1, 2, 0, 3)
    assert raft.pad_to_multiple_of_8(360, 640) == (0, 0, 0, 0)


def test_too_small_frames_are_refused_clearly(weights):
    model = raft.load(weights[0], iterations=1)
    frame = np.zeros((100, 300, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 128"):
        model.predict(frame, frame)
