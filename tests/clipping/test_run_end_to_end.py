"""`spatialvid run --stages clip` as a user runs it: good and bad inputs in one folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from services.records import BASE_COLUMNS

REPO = Path(__file__).resolve().parents[2]
# Root reads every file whatever its mode; without these capabilities it is bound by them.
DROP_ROOT_READ = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
CAN_MAKE_UNREADABLE = os.geteuid() != 0 or shutil.which("setpriv") is not None

# Input name -> words its error must contain.
BAD = {
    "empty.mp4": "empty file",
    "truncated.mp4": "truncated",
    "notes.mp4": "plain text",
    "audio.mp4": "no video stream",
    "short.mp4": "too short",
}


@pytest.fixture()
def workspace(media, bikes, tmp_path):
    root = tmp_path
    folder = root / "in"
    folder.mkdir()
    shutil.copy(media["good"], folder / "good.mp4")
    shutil.copy(bikes, folder / "bikes.mp4")
    for name in BAD:
        source = {"notes.mp4": "text"}.get(name, name.removesuffix(".mp4"))
        shutil.copy(media[source], folder / name)
    if CAN_MAKE_UNREADABLE:
        secret = folder / "secret.mp4"
        shutil.copy(media["good"], secret)
        # Distinct content, so the runner does not skip it as a copy of good.mp4.
        with open(secret, "ab") as handle:
            handle.write(b"\0" * 16)
        secret.chmod(0)
    return root


def spatialvid_run(root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPATIALVID_")}
    env["PYTHONPATH"] = str(REPO)
    prefix = DROP_ROOT_READ if os.geteuid() == 0 else []
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "services.cli", "run", str(root / "in"), "--out", str(root / "out"),
         "--stages", "clip", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _mtimes(out: Path) -> dict[str, int]:
    """When the finished work was written: clips, their records, the records of videos done."""
    done = [out / "records" / "videos" / f"{stem}.json" for stem in ("good", "bikes")]
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for p in [*(out / "clips").glob("*.mp4"), *(out / "records" / "clips").glob("*.json"), *done]
    }


def test_spatialvid_run_clips_good_inputs_and_reports_bad_ones(workspace):
    out = workspace / "out"
    result = spatialvid_run(workspace)

    # Layout: the one good clip, nothing half-written.
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["good_0.mp4"]
    assert not list(out.rglob("*.part*"))

    # metadata.csv / .parquet: the base columns first, one row per clip, source frames.
    for table in (pd.read_csv(out / "metadata.csv"), pd.read_parquet(out / "metadata.parquet")):
        assert list(table.columns[: len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
        assert table["id"].tolist() == ["good_0"]
        row = table.iloc[0]
        # 6 s at 25 fps, 0.3 s (8 frames) trimmed at both ends.
        assert (row.frame_start, row.frame_end, row.num_frames) == (8, 142, 134)
        assert (row.width, row.height, row.fps, row.resolution) == (320, 240, 25.0, "320x240")
        assert row.timestamp_start == pytest.approx(0.32) and row.timestamp_end == pytest.approx(5.68)

    # Per-file errors, in the summary and in the job's metadata (videos table).
    summary = json.loads((out / "summary.json").read_text())
    failed = {Path(source).name: reason for source, reason in summary["videos_failed"].items()}
    expected = dict(BAD, **({"secret.mp4": "permission denied"} if CAN_MAKE_UNREADABLE else {}))
    assert set(failed) == set(expected)
    for name, words in expected.items():
        assert words in failed[name].lower(), (name, failed[name])
    assert summary["clips_out"] == 1
    assert summary["dropped"] == {"clip: shorter than 3.0 s": 6}  # the six short shots of bikes.mp4
    videos = pd.read_csv(out / "videos.csv").set_index("source_id")
    assert videos.loc["good", "state"] == "done" and videos.loc["good", "num_clips"] == 1
    assert videos.loc["bikes", "num_shots"] == 6 and "shorter than 3.0 s: 6" in videos.loc["bikes", "dropped"]
    for name, words in expected.items():
        stem = name.removesuffix(".mp4")
        assert videos.loc[stem, "state"] == "failed" and words in videos.loc[stem, "error"].lower()
    assert "too short" in result.stdout.lower()  # the printed summary names failures too

    # Resume: a second run redoes nothing that was done (failed inputs are tried again); --force redoes all.
    before = _mtimes(out)
    spatialvid_run(workspace)
    assert _mtimes(out) == before
    spatialvid_run(workspace, "--force")
    after = _mtimes(out)
    assert after.keys() == before.keys()
    assert all(after[key] != before[key] for key in before)
    assert pd.read_csv(out / "metadata.csv")["id"].tolist() == ["good_0"]
