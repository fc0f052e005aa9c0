"""Real footage through the real stack; the fetched layout matches `spatialvid run`."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from samples import bikes_path
from services.stages.registry import available_stages

CONFIG = {"clip": {"min_seconds": 1.0}}
# Files only one mode writes: the distributed job's final state.
ONLY_EMBEDDED: set[str] = set()
ONLY_DISTRIBUTED = {"job.json"}
# Files whose content holds timings, the input's path or log lines, so only their presence is compared.
VOLATILE = {"summary.json", "videos.csv", "videos.parquet", "metadata.csv", "metadata.parquet", "spatialvid.log"}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_job_output_matches_the_embedded_run(client, tmp_path):
    stages = available_stages()
    assert "clip" in stages
    accepted = client.submit([bikes_path()], ",".join(stages), CONFIG)
    assert accepted["stages"] == stages

    # The embedded run of the same input and config, meanwhile (its own process).
    config_file = tmp_path / "config.yaml"
    config_file.write_text(json.dumps(CONFIG))  # JSON is YAML
    embedded = tmp_path / "embedded"
    run = subprocess.Popen(
        ["nice", "-n", "5", sys.executable, "-m", "services.cli", "run", str(bikes_path()), "--out", str(embedded),
         "--config", str(config_file), "--stages", ",".join(stages)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    status = client.wait(accepted["id"], poll_s=1.0, timeout_s=1500)
    _, err = run.communicate(timeout=1500)
    assert run.returncode == 0, err.decode()[-2000:]

    assert status["state"] == "succeeded", status
    assert status["videos_clipped"] == 1 and status["clips_total"] >= 3
    assert status["clips_finished"] == status["clips_total"]

    fetched = tmp_path / "fetched"
    written = client.fetch(accepted["id"], fetched)
    assert len(written) == len(set(written))
    # Fetched files get the mode the umask gives (0644 under the usual 022), like the embedded store's.
    umask = os.umask(0o022)
    os.umask(umask)
    assert {stat.S_IMODE((fetched / key).stat().st_mode) for key in written} == {0o666 & ~umask}
    assert {stat.S_IMODE(p.stat().st_mode) for p in embedded.rglob("*") if p.is_file()} == {0o666 & ~umask}

    # Same files (beside each mode's own one).
    assert _files(fetched) - ONLY_DISTRIBUTED == _files(embedded) - ONLY_EMBEDDED
    # Clips and annotations byte for byte; records differ only in timings.
    for key in sorted(_files(embedded) - ONLY_EMBEDDED - VOLATILE):
        if key.startswith("records/"):
            continue
        assert _digest(fetched / key) == _digest(embedded / key), key
    for key in sorted(k for k in _files(embedded) if k.startswith("records/clips/")):
        ours, theirs = json.loads((fetched / key).read_text()), json.loads((embedded / key).read_text())
        for record in (ours, theirs):
            record.pop("source")
            for status_ in record["stages"].values():
                status_.pop("seconds")
        assert ours == theirs, key

    # The metadata table: same rows and columns, same values (the source is the upload's name).
    ours = pd.read_parquet(fetched / "metadata.parquet")
    theirs = pd.read_parquet(embedded / "metadata.parquet")
    assert list(ours.columns) == list(theirs.columns)
    assert list(ours["id"]) == list(theirs["id"])
    assert list(ours["source"]) == [Path(s).name for s in theirs["source"]]
    for column in ours.columns.drop("source"):
        a, b = ours[column], theirs[column]
        if pd.api.types.is_float_dtype(a):
            assert np.allclose(a.to_numpy(float), b.to_numpy(float), equal_nan=True), column
        else:
            assert a.tolist() == b.tolist(), column
    assert (fetched / "job.json").exists() and json.loads((fetched / "job.json").read_text())["state"] == "succeeded"


def test_clip_endpoints_serve_the_files(client, info):
    """Listing (paginated) and one clip's presigned URLs, on a quick clip-only job."""
    accepted = client.submit([bikes_path()], "clip,score", CONFIG)
    status = client.wait(accepted["id"], poll_s=0.5, timeout_s=600)
    assert status["state"] == "succeeded", status
    total = status["clips_total"]
    first = client.clips(accepted["id"], offset=0, limit=2)
    assert first["total"] == total and len(first["items"]) == min(2, total)
    rest = client.clips(accepted["id"], offset=2, limit=100)
    ids = [c["id"] for c in first["items"] + rest["items"]]
    assert ids == [f"bikes_{i}" for i in range(total)]
    assert all(c["state"] == "done" and "score" in c["stages_done"] for c in first["items"])
    detail = client.clip(accepted["id"], ids[0])
    assert detail["metadata"]["id"] == ids[0]
    urls = {f["key"]: f["url"] for f in detail["files"]}
    assert f"clips/{ids[0]}.mp4" in urls
    video = httpx.get(urls[f"clips/{ids[0]}.mp4"], timeout=30)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    metrics = httpx.get(f"{info.api_url}/metrics", timeout=30).text
    assert 'spatialvid_jobs{state="succeeded"}' in metrics
    assert 'spatialvid_stage_seconds_count{stage="score"}' in metrics
    assert 'spatialvid_queue_depth{queue="ingest"}' in metrics
