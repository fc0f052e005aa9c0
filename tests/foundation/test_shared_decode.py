"""One decode of a clip feeds every stage of the process that reads its frames (services/video/shared.py)."""

from __future__ import annotations

import io
import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from services.pipeline import EmbeddedPipeline
from services.records import ClipRecord
from services.settings import load_settings
from services.storage.local import LocalStore
from services.video.decode import FrameRequest, read_frames
from services.video.shared import DecodedClips
from tests.data import CASES, require

CUT_CASE = CASES / "cut_room_street_dyn1"  # two shots: two clips
FRAME_STAGES = ["camera", "depth", "caption"]


def clip_decodes(monkeypatch) -> Counter:
    """Counts the ffmpeg runs that decode a stored clip to raw frames, by clip file name."""
    counts: Counter = Counter()
    real = subprocess.Popen

    def spy(cmd, *args, **kwargs):
        if isinstance(cmd, list) and "rawvideo" in cmd:
            source = Path(cmd[cmd.index("-i") + 1])
            if source.parent.name == "clips":
                counts[source.name] += 1
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    return counts


def test_shared_frames_are_the_frames_of_separate_decodes(tmp_path):
    video = require(CUT_CASE / "video.mp4", "tests/data/cases")
    store = LocalStore(tmp_path)
    clip = ClipRecord(id="c_0", source="x", source_id="c", num_frames=96, width=640, height=360, fps=24.0,
                      timestamp_start=0, timestamp_end=4, frame_start=0, frame_end=96)
    store.put_file(clip.clip_key, video)
    requests = [FrameRequest(size=(320, 180)), FrameRequest(), FrameRequest(size=(160, 90), step=7, count=5),
                FrameRequest(size=(256, 144), pix_fmt="gray", step=3)]
    decoded = DecodedClips(load_settings().video, max_bytes=1 << 30)
    with decoded.open(store, clip, requests):
        for request in requests + requests[:1]:  # a second reader of the same request reads the same output
            shared = list(decoded.frames(clip, request))
            alone = list(read_frames(video, size=request.size, pix_fmt=request.pix_fmt, step=request.step,
                                     count=request.count))
            assert len(shared) == len(alone) > 0
            assert all(np.array_equal(a, b) for a, b in zip(shared, alone))
        assert decoded.frames(clip, FrameRequest(size=(64, 36))) is None  # not planned: the stage decodes alone
    assert decoded.passes == 1
    assert decoded.frames(clip, requests[0]) is None  # closed: the clip's frames are forgotten


def test_a_clip_over_the_size_limit_is_not_shared(tmp_path):
    video = require(CUT_CASE / "video.mp4", "tests/data/cases")
    store = LocalStore(tmp_path)
    clip = ClipRecord(id="c_0", source="x", source_id="c", num_frames=96, width=640, height=360, fps=24.0,
                      timestamp_start=0, timestamp_end=4, frame_start=0, frame_end=96)
    store.put_file(clip.clip_key, video)
    decoded = DecodedClips(load_settings().video, max_bytes=96 * 640 * 360 * 3 - 1)
    with decoded.open(store, clip, [FrameRequest()]):
        assert decoded.frames(clip, FrameRequest()) is None
    assert decoded.passes == 0


def _annotate(tmp_path: Path, name: str, share: bool) -> tuple[Path, EmbeddedPipeline]:
    settings = load_settings().with_overrides({"clip": {"min_seconds": 1.0}, "video": {"share_decode": share}})
    out = tmp_path / name
    pipeline = EmbeddedPipeline(settings, out, ["clip", *FRAME_STAGES], console=Console(file=io.StringIO()))
    summary = pipeline.run([require(CUT_CASE / "video.mp4", "tests/data/cases")])
    assert summary.clips_out == 2 and not summary.failed_by_stage, summary
    return out, pipeline


@pytest.mark.parametrize("share", [True, False])
def test_embedded_run_decodes_each_clip_once(tmp_path, monkeypatch, share):
    counts = clip_decodes(monkeypatch)
    out, _ = _annotate(tmp_path, "out", share)
    clips = sorted(p.name for p in (out / "clips").iterdir())
    assert len(clips) == 2
    # camera, depth and caption (measuring luminance: no score stage ran) each read their clip's frames
    assert counts == {name: 1 if share else 3 for name in clips}


def test_shared_decode_gives_the_outputs_of_separate_decodes(tmp_path):
    shared, _ = _annotate(tmp_path, "shared", True)
    alone, _ = _annotate(tmp_path, "alone", False)
    files = sorted(p.relative_to(shared) for p in (shared / "annotations").rglob("*") if p.is_file())
    assert {f.name for f in files} >= {"poses.npy", "depth.npz", "dyn_masks.npz", "caption.json"}
    for rel in files:
        a, b = shared / rel, alone / rel
        if rel.suffix in (".npy", ".npz"):
            x, y = np.load(a), np.load(b)
            if rel.suffix == ".npy":
                assert np.array_equal(x, y), rel
            else:
                assert sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files), rel
        elif rel.suffix == ".json":
            assert json.loads(a.read_text()) == json.loads(b.read_text()), rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel
