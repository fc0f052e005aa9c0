"""The score and filter stages through the runner's executor: columns, provenance, drops, failures."""

from __future__ import annotations

import shutil

import pytest

from services.execution import run_clip_stage
from services.records import ClipRecord, StageState
from services.settings import Settings
from services.stages.base import StageContext
from services.stages.filter import FilterStage
from services.stages.score import ScoreStage
from services.storage.local import LocalStore
from services.video.probe import probe


@pytest.fixture(scope="module")
def score_stage():
    return ScoreStage()


def make_clip(store: LocalStore, clip_id: str, source) -> ClipRecord:
    info = probe(source)
    store.put_file(f"clips/{clip_id}.mp4", source)
    return ClipRecord(id=clip_id, source=str(source), source_id="s", num_frames=info.num_frames, height=info.height,
                      width=info.width, fps=info.fps, timestamp_start=0.0, timestamp_end=info.duration,
                      frame_start=0, frame_end=info.num_frames)


def context(tmp_path, **settings) -> StageContext:
    cfg = Settings(models={"weights_dir": tmp_path / "no-weights"}, **settings)
    return StageContext(settings=cfg, store=LocalStore(tmp_path / "out"), workdir=tmp_path)


def test_pan_clip_is_scored_and_kept_except_for_no_aesthetic(clips, tmp_path, score_stage):
    ctx = context(tmp_path)
    clip = make_clip(ctx.store, "pan_0", clips["pan"])
    scored = run_clip_stage(score_stage, clip, ctx, "fp")
    assert scored.stages["score"].state is StageState.done, scored.stages["score"].error
    cols = scored.columns
    for column in ("luminance_mean", "luminance_min", "luminance_max", "motion", "flow_magnitude", "ocr",
                   "quality_brisque"):
        assert isinstance(cols[column], float), column
        assert column in scored.provenance
    assert cols["aesthetic"] is None
    assert "not computed" in scored.provenance["aesthetic"]
    assert "BRISQUE" in scored.stages["score"].note
    filtered = run_clip_stage(FilterStage(), scored, ctx, "fp")
    assert filtered.filtered_by == []  # motion, luminance and OCR hold on this pan
    assert filtered.columns["filter_skipped"] == "aesthetic"
    assert "rule aesthetic skipped" in filtered.stages["filter"].note
    assert filtered.active


def test_dark_and_still_clips_are_dropped_naming_each_rule(clips, tmp_path, score_stage):
    ctx = context(tmp_path)
    dark = run_clip_stage(score_stage, make_clip(ctx.store, "dark_0", clips["dark"]), ctx, "fp")
    dark = run_clip_stage(FilterStage(), dark, ctx, "fp")
    assert "luminance" in dark.filtered_by and not dark.active
    still = run_clip_stage(score_stage, make_clip(ctx.store, "still_0", clips["still"]), ctx, "fp")
    still = run_clip_stage(FilterStage(), still, ctx, "fp")
    assert still.filtered_by == ["motion"]
    # Thresholds come from settings: with motion_min 0 the still clip is kept.
    relaxed = context(tmp_path, filter={"motion_min": 0.0})
    assert run_clip_stage(FilterStage(), still, relaxed, "fp").filtered_by == []


def test_corrupt_clip_fails_with_a_clear_reason_and_does_not_raise(clips, tmp_path, score_stage):
    ctx = context(tmp_path)
    good = make_clip(ctx.store, "bad_0", clips["pan"])
    ctx.store.put_bytes(good.clip_key, b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    result = run_clip_stage(score_stage, good, ctx, "fp")
    status = result.stages["score"]
    assert status.state is StageState.failed
    assert "cannot decode clip" in status.error
    assert not result.active


def test_truncated_clip_fails_with_a_clear_reason(clips, tmp_path, score_stage):
    ctx = context(tmp_path)
    clip = make_clip(ctx.store, "cut_0", clips["pan"])
    truncated = tmp_path / "truncated.mp4"
    shutil.copy(clips["pan"], truncated)
    data = truncated.read_bytes()
    ctx.store.put_bytes(clip.clip_key, data[: len(data) // 3])
    status = run_clip_stage(score_stage, clip, ctx, "fp").stages["score"]
    assert status.state is StageState.failed
    assert "decode" in status.error


def test_missing_clip_file_fails(tmp_path, score_stage, clips):
    ctx = context(tmp_path)
    clip = make_clip(ctx.store, "gone_0", clips["pan"])
    ctx.store.delete(clip.clip_key)
    status = run_clip_stage(score_stage, clip, ctx, "fp").stages["score"]
    assert status.state is StageState.failed and "missing" in status.error
