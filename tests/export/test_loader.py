"""The PyTorch loader: the same sample from the native layout, the SpatialVID-HQ export and the shards;
its geometry; filters; a DataLoader with two workers; imports without the service extras."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from services.dataset.loader import SpatialVIDDataset, SpatialVIDShards, collate
from services.export.run import export
from samples import REPO_ROOT
from services.settings import ExportSettings
from services.storage.local import LocalStore
from services.video.decode import read_frames

OPTIONS = dict(num_frames=6, stride=3, size=(96, 224))


@pytest.fixture(scope="module")
def layouts(cases_native, bikes_native, tmp_path_factory):
    """Both sessions' outputs, each as native folder, HQ export and shards."""
    out = {}
    for name, native in (("cases", cases_native), ("bikes", bikes_native)):
        hq, shards = tmp_path_factory.mktemp(f"{name}-hq"), tmp_path_factory.mktemp(f"{name}-wds")
        export(LocalStore(native), LocalStore(hq), "spatialvid-hq", ExportSettings(group_size=1))
        export(LocalStore(native), LocalStore(shards), "webdataset", ExportSettings(shard_clips=2))
        out[name] = (native, hq, sorted(str(p) for p in shards.glob("shard-*.tar")))
    return out


def _same_value(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _assert_same_sample(a: dict, b: dict, depth_from_half: bool) -> None:
    assert a["key"] == b["key"]
    for name in ("frames", "c2w", "w2c", "K", "masks", "frame_indices"):
        assert torch.equal(a[name], b[name]), name
    if depth_from_half:  # the HQ layout stores disparity as float16
        valid = a["depth"] > 0
        assert torch.equal(valid, b["depth"] > 0)
        assert torch.allclose(b["depth"][valid], a["depth"][valid], rtol=2 ** -10)
    else:
        assert torch.equal(a["depth"], b["depth"])
    assert a["caption"] == b["caption"] and a["caption_json"] == b["caption_json"]
    assert set(a["metadata"]) == set(b["metadata"])
    assert all(_same_value(a["metadata"][k], b["metadata"][k]) for k in a["metadata"]), a["key"]


@pytest.mark.parametrize("footage", ["cases", "bikes"])
def test_same_sample_from_every_layout(layouts, footage):
    native, hq, shards = layouts[footage]
    from_native = SpatialVIDDataset(native, **OPTIONS)
    from_hq = SpatialVIDDataset(hq, **OPTIONS)
    assert (from_native.layout, from_hq.layout) == ("native", "spatialvid-hq")
    assert len(from_native) == len(from_hq) >= 2
    by_key = {s["key"]: s for s in SpatialVIDShards(shards, **OPTIONS)}
    assert len(by_key) == len(from_native)
    for i in range(len(from_native)):
        a, b = from_native[i], from_hq[i]
        _assert_same_sample(a, b, depth_from_half=True)
        _assert_same_sample(a, by_key[a["key"]], depth_from_half=False)
    if footage == "cases":
        assert any((from_native[i]["depth"] > 0).float().mean() > 0.2 for i in range(len(from_native)))
        assert any(from_native[i]["masks"].any() for i in range(len(from_native)))


def test_sample_geometry_matches_the_native_arrays(layouts):
    native = layouts["cases"][0]
    dataset = SpatialVIDDataset(native, **OPTIONS)
    sample = dataset[0]
    T, (H, W) = OPTIONS["num_frames"], OPTIONS["size"]
    assert sample["frames"].shape == (T, 3, H, W) and sample["frames"].dtype == torch.float32
    assert 0 <= float(sample["frames"].min()) and float(sample["frames"].max()) <= 1
    assert sample["depth"].shape == sample["masks"].shape == (T, H, W)
    ann = native / "annotations" / sample["key"]
    rows = np.arange(T) * OPTIONS["stride"]
    assert sample["frame_indices"].tolist() == rows.tolist()  # dense poses: row k is clip frame k
    every = np.stack(list(read_frames(native / "clips" / f"{sample['key']}.mp4", size=(W, H))))
    assert np.array_equal((sample["frames"] * 255).round().byte().permute(0, 2, 3, 1).numpy(), every[rows])
    c2w = np.load(ann / "c2w.npy")[rows]
    assert np.allclose(sample["c2w"].numpy(), c2w, atol=1e-5)  # from poses.npy (w2c quaternions), inverted
    assert torch.allclose(sample["c2w"] @ sample["w2c"], torch.eye(4).expand(T, 4, 4), atol=1e-5)
    intr = np.load(ann / "intrinsics.npy")[rows]
    assert np.allclose(sample["K"][:, 0, 0].numpy(), intr[:, 0] * W)
    assert np.allclose(sample["K"][:, 1, 1].numpy(), intr[:, 1] * H)
    assert np.allclose(sample["K"][:, :2, 2].numpy(), [W / 2, H / 2])
    native_size = SpatialVIDDataset(native, num_frames=2, stride=1)[0]
    assert native_size["frames"].shape[2:] == (360, 640)
    depth = np.load(ann / "depth.npz")["depth"][:2].astype(np.float32)
    assert np.array_equal(native_size["depth"].numpy(), np.repeat(np.repeat(depth, 2, axis=1), 2, axis=2))


def test_random_start_stays_in_the_clip(layouts):
    dataset = SpatialVIDDataset(layouts["cases"][0], num_frames=4, stride=2, start="random")
    starts = {int(dataset[0]["frame_indices"][0]) for _ in range(12)}
    assert len(starts) > 1 and max(starts) <= 24 - 7


def test_filters_on_metadata_columns(layouts):
    native, hq, shards = layouts["bikes"]
    everything = SpatialVIDDataset(native, **OPTIONS)
    keys = [c.key for c in everything.clips]
    longest = max(everything.clips, key=lambda c: c.metadata["num_frames"]).key
    for root in (native, hq):
        assert [c.key for c in SpatialVIDDataset(root, **OPTIONS, filters={"distLevel": 0}).clips] == keys
        assert SpatialVIDDataset(root, **OPTIONS, filters={"distLevel": (1, None)}).clips == []
        picked = SpatialVIDDataset(root, **OPTIONS, filters=lambda row: row["num_frames"] >= 45)
        assert [c.key for c in picked.clips] == [longest]
        assert len(SpatialVIDDataset(root, **OPTIONS, filters={"id": ["bikes_0", "bikes_2"]})) == 2
    assert len(SpatialVIDDataset(hq, **OPTIONS, filters={"luminance score": (80, None)})) >= 1  # published names
    streamed = SpatialVIDShards(shards, **OPTIONS, filters={"id": ["bikes_3"]})
    assert [s["key"] for s in streamed] == ["bikes_3"]
    with pytest.raises(KeyError):
        SpatialVIDDataset(native, **OPTIONS, filters={"no_such_column": 1})
    too_long = SpatialVIDDataset(native, num_frames=40, stride=1)
    assert [c.key for c in too_long.clips] == [longest]  # only the 45-frame clip has 40 annotated frames


def test_dataloader_with_two_workers(layouts):
    native, hq, shards = layouts["bikes"]
    loader = DataLoader(SpatialVIDDataset(hq, **OPTIONS), batch_size=2, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert [b["frames"].shape for b in batches] == [(2, 6, 3, 96, 224)] * 2
    assert sorted(k for b in batches for k in b["key"]) == ["bikes_0", "bikes_1", "bikes_2", "bikes_3"]
    assert isinstance(batches[0]["metadata"][0], dict) and isinstance(batches[0]["caption"][0], str)
    streamed = DataLoader(SpatialVIDShards(shards, **OPTIONS), batch_size=2, num_workers=2, collate_fn=collate)
    assert sorted(k for b in streamed for k in b["key"]) == ["bikes_0", "bikes_1", "bikes_2", "bikes_3"]


SERVICE_EXTRAS = ("fastapi", "starlette", "uvicorn", "celery", "kombu", "redis", "prometheus_client", "multipart")


def test_loader_imports_and_reads_without_the_service_extras(layouts):
    """With the service extras made unimportable, the loader still imports and yields samples."""
    hq = layouts["bikes"][1]
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {SERVICE_EXTRAS!r}:
            raise ImportError('service extra imported: ' + name)
sys.meta_path.insert(0, Block())
from services.dataset.loader import SpatialVIDDataset
sample = SpatialVIDDataset({str(hq)!r}, num_frames=2)[0]
print(sample['key'], tuple(sample['frames'].shape))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[0].startswith("bikes_")
