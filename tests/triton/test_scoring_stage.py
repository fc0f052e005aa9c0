"""The score stage with its models on Triton writes the same metadata as with them in process."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from services.execution import run_clip_stage
from services.records import ClipRecord, StageState
from services.stages.base import StageContext
from services.stages.score import ScoreStage
from services.storage.local import LocalStore
from services.video.probe import probe

# Starts a real tritonserver (CPU configs).
pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def text_clip(text_frames, tmp_path_factory):
    """2 s at 25 fps of real footage with burned-in text (each of the 6 frames held ~8 frames)."""
    import imageio_ffmpeg

    path = tmp_path_factory.mktemp("triton-clip") / "text.mp4"
    frames = np.repeat(text_frames, 9, axis=0)[:50]
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", "640x360", "-r", "25", "-i", "-", "-c:v", "libx264", "-crf", "18", "-preset", "veryfast",
         "-pix_fmt", "yuv420p", str(path)],
        input=frames.tobytes(), check=True,
    )
    return path


def score(clip_path, settings, tmp_path, name: str) -> ClipRecord:
    store = LocalStore(tmp_path / name)
    info = probe(clip_path)
    clip = ClipRecord(id="text_0", source=str(clip_path), source_id="s", num_frames=info.num_frames,
                      height=info.height, width=info.width, fps=info.fps, timestamp_start=0.0,
                      timestamp_end=info.duration, frame_start=0, frame_end=info.num_frames)
    store.put_file(clip.clip_key, clip_path)
    ctx = StageContext(settings=settings, store=store, workdir=tmp_path)
    result = run_clip_stage(ScoreStage(), clip, ctx, "fp")
    assert result.stages["score"].state is StageState.done, result.stages["score"].error
    return result


def test_score_stage_on_triton_gives_the_same_metadata(triton_server, text_clip, tmp_path):
    served = triton_server.settings.with_overrides({"models": {"client": {"ocr_det": "triton", "aesthetic": "triton"}}})
    local = triton_server.settings.with_overrides({"models": {"client": {}}})
    expected = score(text_clip, local, tmp_path, "local")
    got = score(text_clip, served, tmp_path, "triton")

    assert set(got.columns) == set(expected.columns)
    assert expected.columns["ocr"] > 0.01  # burned-in text was found: the comparison means something
    assert isinstance(expected.columns["aesthetic"], float)  # the tiny LAION checkpoint scored it
    for column, value in expected.columns.items():
        if column == "aesthetic":
            assert got.columns[column] == pytest.approx(value, rel=1e-5, abs=1e-6)
        else:
            assert got.columns[column] == value, column
    assert "Triton model ocr_det" in got.provenance["ocr"]
    assert "Triton model aesthetic" in got.provenance["aesthetic"]
    assert "Triton" not in expected.provenance["ocr"] and "Triton" not in expected.provenance["aesthetic"]
