"""The SpatialVID-HQ export, read back the way the published readers read it and compared with the
native arrays; its naming, table, idempotence, resumption and filtering."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.cli import main as cli
from services.export import hq, run
from services.export.run import export
from services.settings import ExportSettings
from services.storage.local import LocalStore

from . import published_reader as ref
from .conftest import copy_tree

HQ_FILES = {"caption.json", "dyn_masks.npz", "indexes.txt", "instructions.json", "intrinsics.npy", "poses.npy"}


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _export(native: Path, out: Path, **options) -> run.ExportSummary:
    return export(LocalStore(native), LocalStore(out), "spatialvid-hq", ExportSettings(**options))


def _check_against_native(native: Path, out: Path) -> int:
    """Every exported clip read like the published readers do equals our native arrays; returns the
    number of valid depth pixels compared."""
    table = pd.read_csv(out / hq.METADATA_CSV)
    native_table = pd.read_csv(native / "metadata.csv").set_index("id")
    valid_pixels = 0
    for _, row in table.iterrows():
        ours = native / "annotations" / row["clip_id"]
        ann = out / row["annotation path"]
        assert {p.name for p in ann.iterdir()} == HQ_FILES
        assert (out / row["video path"]).read_bytes() == (native / "clips" / f"{row['clip_id']}.mp4").read_bytes()

        frames = ref.read_indexes(ann / "indexes.txt")
        native_frames = [int(line.split()[-1]) for line in (ours / "indexes.txt").read_text().splitlines()]
        assert frames == native_frames and len(frames) > 0

        assert np.array_equal(np.load(ann / "poses.npy"), np.load(ours / "poses.npy"))
        assert np.array_equal(np.load(ann / "intrinsics.npy"), np.load(ours / "intrinsics.npy"))
        width, height = (int(v) for v in row["resolution"].split("x"))
        K = ref.read_intrinsics(ann / "intrinsics.npy", width, height)
        assert K.shape == (len(frames), 3, 3)
        assert np.allclose(K[:, 0, 2], width / 2) and np.allclose(K[:, 1, 2], height / 2)

        masks = ref.read_masks(ann / "dyn_masks.npz")
        assert np.array_equal(masks, np.load(ours / "dyn_masks.npz")["masks"])

        depth = ref.read_depth(out / "depths" / row["annotation path"].split("/")[1] / f"{row['id']}.zip")
        native_depth = np.load(ours / "depth.npz")["depth"].astype(np.float32)
        assert depth.shape == native_depth.shape
        valid = native_depth > 0
        with np.errstate(divide="ignore"):
            disparity = (1.0 / native_depth).astype(np.float16).astype(np.float32)  # what HALF can hold
            expected = np.clip(1.0 / disparity, *ref.DEPTH_CLIP)
        assert np.all(depth[~valid] == ref.DEPTH_CLIP[1])  # invalid (0) -> disparity 0 -> the clip's far end
        assert np.allclose(depth[valid], expected[valid], rtol=1e-6)
        near = valid & (native_depth < ref.DEPTH_CLIP[1])
        assert np.allclose(depth[near], native_depth[near], rtol=2 ** -10)  # float16 rounding of 1/depth
        valid_pixels += int(valid.sum())

        assert json.loads((ann / "caption.json").read_text()) == json.loads((ours / "caption.json").read_text())
        assert row["num frames"] == native_table.loc[row["clip_id"], "num_frames"]
    return valid_pixels


def test_bikes_export_reads_back_like_the_published_readers(bikes_native, tmp_path):
    out = tmp_path / "hq"
    summary = _export(bikes_native, out, group_size=3)
    assert summary.clips == summary.written == 4
    assert _check_against_native(bikes_native, out) == 0  # pans: no parallax, no valid depth anywhere
    table = pd.read_csv(out / hq.METADATA_CSV)
    assert list(table.columns[:len(hq.REFERENCE_COLUMNS)]) == list(hq.REFERENCE_COLUMNS)
    assert "clip_id" in table.columns and "depth_backend" in table.columns
    assert sorted(table["group id"].tolist()) == [1, 1, 1, 2]  # groups of three
    for _, row in table.iterrows():
        parsed = uuid.UUID(row["id"])
        assert parsed.version == 5 and str(parsed) == row["id"]
        assert row["video path"] == f"videos/group_{row['group id']:04d}/{row['id']}.mp4"
    mapping = pd.read_csv(out / "clip_map.csv")
    assert set(mapping["clip_id"]) == set(table["clip_id"])
    assert {f"annotations/{g}/{u}" for g, u in zip(mapping["group"], mapping["uuid"])} == set(table["annotation path"])


def test_shared_cases_export_compares_valid_depth_and_masks(cases_native, tmp_path):
    out = tmp_path / "hq"
    _export(cases_native, out)
    native = pd.read_csv(cases_native / "metadata.csv")
    assert len(native) == 2 and native["failed_stage"].isna().all()
    assert _check_against_native(cases_native, out) > 10_000  # translating cameras: real depth compared
    masks = [np.load(p)["masks"] for p in (cases_native / "annotations").glob("*/dyn_masks.npz")]
    assert any(m.any() for m in masks)  # moving objects: the CSR masks carry real content


def test_reexport_is_idempotent_and_names_are_deterministic(bikes_native, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _export(bikes_native, first)
    before = _tree(first)
    again = _export(bikes_native, first)
    assert again.written == 0 and again.skipped == 4
    assert _tree(first) == before
    _export(bikes_native, second)  # a fresh export elsewhere: same names, same bytes
    assert _tree(second) == before


def test_interrupted_export_resumes(bikes_native, tmp_path, monkeypatch):
    out = tmp_path / "hq"
    monkeypatch.setattr(run, "SAVE_EVERY_S", 0.0)  # the clip map saved after every clip
    real = hq.export_clip
    calls = []

    def crash_on_third(source, dest, entry):
        calls.append(entry.clip.id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(source, dest, entry)

    monkeypatch.setattr(hq, "export_clip", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        _export(bikes_native, out)
    assert not (out / hq.METADATA_CSV).exists()
    monkeypatch.setattr(hq, "export_clip", real)
    resumed = _export(bikes_native, out)
    assert (resumed.skipped, resumed.written) == (2, 2)
    assert _tree(out) == _tree(_fresh(bikes_native, tmp_path / "fresh"))
    assert not [p for p in out.rglob("*") if ".part" in p.name]


def _fresh(native: Path, out: Path) -> Path:
    _export(native, out)
    return out


def test_filtered_clips_are_left_out_unless_asked(bikes_native, tmp_path):
    native = copy_tree(bikes_native, tmp_path / "native")
    record = native / "records" / "clips" / "bikes_1.json"
    data = json.loads(record.read_text())
    data["filtered_by"] = ["motion"]
    record.write_text(json.dumps(data))
    out = tmp_path / "hq"
    summary = _export(native, out, include_filtered=True)
    assert summary.clips == 4
    assert _export(native, out).removed == 1  # now without it: its files go
    table = pd.read_csv(out / hq.METADATA_CSV)
    assert "bikes_1" not in set(table["clip_id"]) and len(table) == 3
    assert len(list((out / "videos").rglob("*.mp4"))) == 3
    assert len(list((out / "annotations").glob("*/*"))) == 3


def test_cli_export_and_its_errors(bikes_native, tmp_path, capsys):
    out = tmp_path / "hq"
    assert cli(["export", str(bikes_native), "--format", "spatialvid-hq", "--out", str(out), "--group-size", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["clips"] == 4
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["group_0001", "group_0002"]
    assert cli(["export", str(tmp_path / "nothing"), "--format", "spatialvid-hq", "--out", str(out)]) == 2
    assert cli(["export", str(bikes_native), "--format", "spatialvid-hq", "--out", str(out),
                "--group-size", "0"]) == 2
