"""The embedded runner's bookkeeping, with stand-in stages (the real ones have their own tests)."""

from pathlib import Path

import pandas as pd
import pytest

from services.pipeline import EmbeddedPipeline
from services.settings import load_settings
from services.stages import registry
from tests.foundation import fake_stages


@pytest.fixture(autouse=True)
def fake_registry(monkeypatch):
    module = "tests.foundation.fake_stages"
    monkeypatch.setattr(registry, "STAGES", {
        "clip": f"{module}:FakeClip", "score": f"{module}:FakeScore",
        "filter": f"{module}:FakeFilter", "camera": f"{module}:FakeCamera",
    })
    fake_stages.CALLS.clear()


def make_inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_text("3")
    (folder / "bad.mp4").write_text("bad")
    (folder / "poison.mp4").write_text("1")
    (folder / "crash.mp4").write_text("1\n")  # content differs from poison.mp4
    (folder / "copy_of_a.mp4").write_text("3")  # same content as a.mp4
    return folder


def run(tmp_path, stages=("clip", "score", "filter", "camera"), force=False, **settings):
    return EmbeddedPipeline(load_settings(**settings), tmp_path / "out", list(stages), force=force).run(
        [tmp_path / "in", tmp_path / "missing.mp4"]
    )


def test_run_writes_tables_and_records_every_failure(tmp_path: Path):
    make_inputs(tmp_path)
    summary = run(tmp_path, filter={"motion_max": 15.0})
    out = tmp_path / "out"
    assert summary.videos_in == 6  # every input given, the skipped copy included
    assert set(Path(s).name for s in summary.videos_failed) == {"bad.mp4", "missing.mp4"}
    assert "not a video" in summary.videos_failed[str(tmp_path / "in" / "bad.mp4")]
    assert list(summary.videos_skipped) == [str((tmp_path / "in" / "copy_of_a.mp4").absolute())]
    assert summary.clips_out == 5 and summary.clips_kept == 2  # a_0, a_1 pass; a_2 filtered; 2 failed
    assert summary.dropped == {"filter: score": 1}
    assert summary.failed_by_stage == {"score": 2}
    meta = pd.read_parquet(out / "metadata.parquet")
    assert list(meta.columns[:12]) == [
        "id", "source", "num_frames", "height", "width", "aspect_ratio", "fps", "resolution",
        "timestamp_start", "timestamp_end", "frame_start", "frame_end",
    ]
    assert list(meta["id"]) == ["a_0", "a_1", "a_2", "crash_0", "poison_0"]
    rows = meta.set_index("id")
    assert rows.loc["a_2", "filtered_by"] == "score"
    assert rows.loc["poison_0", "error"] == "poison clip (test)"
    assert rows.loc["crash_0", "error"].startswith("ZeroDivisionError")
    assert rows.loc["a_1", "success"] == True  # noqa: E712 - a real bool column
    assert pd.read_csv(out / "metadata.csv")["id"].tolist() == list(meta["id"])
    videos = pd.read_csv(out / "videos.csv").set_index("source_id")
    assert videos.loc["bad", "state"] == "failed" and "not a video" in videos.loc["bad", "error"]
    assert (out / "provenance.json").read_text().count("fake 1.0") == 1


def test_rerun_skips_done_work_and_force_redoes_it(tmp_path: Path):
    make_inputs(tmp_path)
    run(tmp_path)
    first = list(fake_stages.CALLS)
    fake_stages.CALLS.clear()
    run(tmp_path)
    # Only the failed items are tried again.
    assert ("clip", "a") not in fake_stages.CALLS
    assert [c for c in fake_stages.CALLS if c[0] == "score"] == [("score", "crash_0"), ("score", "poison_0")]
    fake_stages.CALLS.clear()
    run(tmp_path, force=True)
    assert sorted(fake_stages.CALLS) == sorted(first)


def test_changed_settings_rerun_that_stage_and_later_ones(tmp_path: Path):
    make_inputs(tmp_path)
    run(tmp_path)  # default motion_max 14: a_1 (score 10) kept, a_2 (score 20) filtered
    fake_stages.CALLS.clear()
    run(tmp_path, filter={"motion_max": 25.0})
    stages_run = {stage for stage, clip in fake_stages.CALLS if clip.startswith("a")}
    assert stages_run == {"filter", "camera"}  # score unchanged; a_2 is now kept and goes on
    assert ("camera", "a_2") in fake_stages.CALLS


def test_reclipping_removes_stale_clips(tmp_path: Path):
    make_inputs(tmp_path)
    run(tmp_path)
    out = tmp_path / "out"
    assert (out / "clips" / "a_2.mp4").exists()
    summary = run(tmp_path, clip={"min_seconds": 6.0})
    assert summary.clips_out == 0 and summary.dropped["clip: shorter than min"] == 3 + 1 + 1
    assert not (out / "clips" / "a_2.mp4").exists()
    assert not (out / "annotations" / "a_0").exists() or not any((out / "annotations" / "a_0").iterdir())
    assert pd.read_csv(out / "metadata.csv").empty


def test_without_clip_stage_each_file_is_one_clip(tmp_path: Path):
    make_inputs(tmp_path)
    summary = run(tmp_path, stages=("score",))
    assert summary.clips_out == 4
    meta = pd.read_csv(tmp_path / "out" / "metadata.csv")
    assert sorted(meta["id"]) == ["a", "bad", "crash", "poison"]
    assert set(meta["frame_start"]) == {0}
