"""A job that asks for training exports finds them in its bucket folder (export/{format}/) when it ends."""

from __future__ import annotations

import tarfile

import pandas as pd

from services.dataset.loader import SpatialVIDShards
from samples import bikes_path

CONFIG = {"clip": {"min_seconds": 1.0},
          "export": {"formats": ["spatialvid-hq", "webdataset"], "group_size": 3, "shard_clips": 2}}


def test_job_writes_the_requested_exports_to_the_bucket(client, tmp_path):
    accepted = client.submit([bikes_path()], "clip", CONFIG)
    status = client.wait(accepted["id"], poll_s=1.0, timeout_s=600)
    assert status["state"] == "succeeded", status
    fetched = tmp_path / "job"
    client.fetch(accepted["id"], fetched)
    clips = pd.read_csv(fetched / "metadata.csv")
    assert len(clips) >= 3

    hq = fetched / "export" / "spatialvid-hq"
    table = pd.read_csv(hq / "data" / "train" / "SpatialVID_HQ_metadata.csv")
    assert sorted(table["clip_id"]) == sorted(clips["id"])
    for _, row in table.iterrows():
        assert (hq / row["video path"]).is_file()
        assert row["video path"].startswith(f"videos/group_{row['group id']:04d}/")
    assert table["group id"].value_counts().max() == 3
    assert (hq / "clip_map.csv").is_file()

    shards = sorted((fetched / "export" / "webdataset").glob("shard-*.tar"))
    assert len(shards) == (len(clips) + 1) // 2
    with tarfile.open(shards[0]) as tar:
        assert sum(name.endswith(".mp4") for name in tar.getnames()) == 2
    # clip stage only: no camera annotations, so a training loader has nothing to yield from them
    assert list(SpatialVIDShards([str(p) for p in shards], num_frames=2)) == []
