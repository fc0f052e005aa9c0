"""WebDataset shards: read with the plain ``webdataset`` library, compared with the native files;
shard sizes, idempotence, and shards written to (and streamed from) an S3 object store."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import webdataset as wds
from minio import Minio

from services.dataset.formats import parse_indexes
from services.dataset.loader import SpatialVIDShards
from services.export.run import export
from services.settings import ExportSettings, S3Settings
from services.stack import free_port
from services.storage.local import LocalStore
from services.storage.s3 import S3Store

MEMBERS = {"mp4", "poses.npy", "c2w.npy", "intrinsics.npy", "indexes.txt", "depth.npz", "dyn_masks.npz",
           "caption.json", "instructions.json", "metadata.json"}


def test_shards_stream_with_webdataset_and_hold_the_native_files(bikes_native, tmp_path):
    out = tmp_path / "wds"
    summary = export(LocalStore(bikes_native), LocalStore(out), "webdataset", ExportSettings(shard_clips=3))
    assert (summary.clips, summary.written) == (4, 2)
    urls = [str(p) for p in sorted(out.glob("shard-*.tar"))]
    assert [p.rsplit("/", 1)[1] for p in urls] == ["shard-000000.tar", "shard-000001.tar"]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert [len(s) for s in (samples[:3], samples[3:])] == [3, 1]
    for sample in samples:
        assert MEMBERS <= set(sample)
        row = json.loads(sample["metadata.json"])
        ours = bikes_native / "annotations" / row["id"]
        assert sample["mp4"] == (bikes_native / "clips" / f"{row['id']}.mp4").read_bytes()
        for name in ("poses.npy", "c2w.npy", "intrinsics.npy", "depth.npz", "dyn_masks.npz", "caption.json"):
            assert sample[name] == (ours / name).read_bytes(), name
        text = sample["indexes.txt"].decode()
        assert all(len(line.split()) == 2 for line in text.splitlines())
        assert np.array_equal(parse_indexes(text), parse_indexes((ours / "indexes.txt").read_text()))
    mapping = (out / "clip_map.csv").read_text().splitlines()
    assert mapping[0].startswith("clip_id,uuid,shard") and len(mapping) == 5
    again = export(LocalStore(bikes_native), LocalStore(out), "webdataset", ExportSettings(shard_clips=3))
    assert (again.written, again.skipped) == (0, 2)
    fewer = export(LocalStore(bikes_native), LocalStore(out), "webdataset", ExportSettings(shard_clips=4))
    assert (fewer.written, fewer.removed) == (1, 1) and not (out / "shard-000001.tar").exists()


@pytest.fixture()
def s3(tmp_path):
    """A local S3 server (moto), started for the test and stopped after it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = S3Settings(endpoint=f"127.0.0.1:{port}", bucket="exports")
    client = Minio(settings.endpoint, access_key=settings.access_key,
                   secret_key=settings.secret_key.get_secret_value(), secure=False)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.2)
    try:
        yield settings
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_shards_to_the_object_store_stream_back_through_presigned_urls(bikes_native, s3, monkeypatch):
    from services.cli import main as cli

    monkeypatch.setenv("SPATIALVID_S3__ENDPOINT", s3.endpoint)
    assert cli(["export", str(bikes_native), "--format", "webdataset", "--out", "s3://exports/train/v1",
                "--shard-clips", "2"]) == 0
    store = S3Store(s3, prefix="train/v1")
    names = [k for k in store.list() if k.endswith(".tar")]
    assert names == ["shard-000000.tar", "shard-000001.tar"]
    assert {"clip_map.csv", "metadata.csv", "shards.json"} <= set(store.list())
    urls = [store.url(name) for name in names]
    keys = [s["key"] for s in SpatialVIDShards(urls, num_frames=4, size=(68, 160))]
    assert sorted(keys) == ["bikes_0", "bikes_1", "bikes_2", "bikes_3"]
