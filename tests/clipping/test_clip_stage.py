"""The clip stage on real footage: clips, records, frame accuracy, odd inputs and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from services.records import VideoRecord
from services.stages.base import VideoFailed
from services.stages.clip import ShotClippingStage, store_whole_clip, whole_clip
from services.video import cut as cut_module
from services.video.decode import read_frames
from services.video.probe import probe
from tests.clipping.helpers import BIKES_CUTS, all_frames, make_context, psnr, unprivileged


def _run(path, ctx, source_id=None):
    video = VideoRecord(source=str(path), source_id=source_id or path.stem)
    return ShotClippingStage().run(video, path, ctx)


def _assert_same_frame(clip_frame, frames, index, min_psnr=35.0, distinct=True):
    """``clip_frame`` is source frame ``index``, and clearly not its neighbours."""
    here = psnr(clip_frame, frames[index])
    assert here >= min_psnr, f"first frame PSNR {here:.1f} dB vs source frame {index}"
    for other in (index - 1, index + 1) if distinct else ():
        if 0 <= other < len(frames):
            assert here > psnr(clip_frame, frames[other]) + 3.0, f"frame {index} looks like frame {other}"


def test_bikes_reference_rules_give_no_clip_and_say_why(bikes, tmp_path):
    outcome = _run(bikes, make_context(tmp_path))
    assert outcome.clips == []
    assert outcome.video.num_shots == 6
    assert outcome.video.dropped == {"shorter than 3.0 s": 6}
    assert outcome.video.num_frames == 250 and outcome.video.fps == 25.0
    assert (outcome.video.width, outcome.video.height) == (640, 272)


def test_bikes_with_lower_minimum_one_clip_per_shot_frame_accurate(bikes, tmp_path):
    ctx = make_context(tmp_path, min_seconds=0.3, trim_seconds=0.0)
    outcome = _run(bikes, ctx)
    clips = outcome.clips
    assert [c.id for c in clips] == [f"bikes_{i}" for i in range(6)]
    starts = [c.frame_start for c in clips]
    assert starts[0] == 0
    for start, truth in zip(starts[1:], BIKES_CUTS):
        assert abs(start - truth) <= 2
    assert clips[-1].frame_end == 250
    source = all_frames(bikes)
    for clip in clips:
        assert clip.num_frames == clip.frame_end - clip.frame_start
        assert clip.timestamp_start == pytest.approx(clip.frame_start / 25.0)
        assert clip.timestamp_end == pytest.approx(clip.frame_end / 25.0)
        assert (clip.width, clip.height, clip.fps) == (640, 272, 25.0)
        with ctx.store.local_path(clip.clip_key) as path:
            info = probe(path)
            frames = all_frames(path)
        assert info.num_frames == clip.num_frames and info.fps == pytest.approx(25.0)
        _assert_same_frame(frames[0], source, clip.frame_start)
        _assert_same_frame(frames[-1], source, clip.frame_end - 1)
    assert "ffmpeg" in clips[0].provenance["clip"]


def test_settings_from_environment_lower_the_minimum(bikes, tmp_path, monkeypatch):
    monkeypatch.setenv("SPATIALVID_CLIP__MIN_SECONDS", "1")
    outcome = _run(bikes, make_context(tmp_path))
    # Shots of 1.84, 2.44, 2.0 and 2.2 s keep 1.2..1.8 s after trimming; 1.2 s and 0.32 s shots do not.
    assert len(outcome.clips) == 4
    assert outcome.video.dropped == {"shorter than 1.0 s": 2}


def test_vtest_is_cut_in_15_s_pieces_without_false_cuts(vtest, tmp_path):
    ctx = make_context(tmp_path)
    outcome = _run(vtest, ctx)
    assert outcome.video.num_shots == 1
    assert [(c.frame_start, c.frame_end) for c in outcome.clips] == [
        (3, 153), (153, 303), (303, 453), (453, 603), (603, 753), (753, 792),
    ]
    assert [c.timestamp_end - c.timestamp_start for c in outcome.clips][:5] == pytest.approx([15.0] * 5)
    clip = outcome.clips[2]
    with ctx.store.local_path(clip.clip_key) as path:
        frames = all_frames(path)
    assert len(frames) == 150 and frames[0].shape == (576, 768, 3)
    _assert_same_frame(frames[0], all_frames(vtest), 303)


def test_long_synthetic_shot_is_split_at_15_s(media, tmp_path):
    outcome = _run(media["long"], make_context(tmp_path))
    assert outcome.video.num_shots == 1
    # 34 s at 25 fps: trim 8 frames, then 375 + 375 frames, and the rest (84 frames, 3.36 s).
    assert [(c.frame_start, c.frame_end) for c in outcome.clips] == [(8, 383), (383, 758), (758, 842)]
    assert [c.num_frames for c in outcome.clips] == [375, 375, 84]


def test_portrait_by_transpose(media, tmp_path):
    ctx = make_context(tmp_path)
    outcome = _run(media["portrait"], ctx)
    assert len(outcome.clips) == 1
    clip = outcome.clips[0]
    assert (clip.width, clip.height) == (576, 768)
    with ctx.store.local_path(clip.clip_key) as path:
        first = all_frames(path)[0]
    _assert_same_frame(first, all_frames(media["portrait"]), clip.frame_start)


def test_portrait_by_rotation_metadata(media, tmp_path):
    info = probe(media["rotated"])
    assert abs(info.rotation) == 90 and (info.width, info.height) == (576, 768)
    ctx = make_context(tmp_path)
    outcome = _run(media["rotated"], ctx)
    assert len(outcome.clips) == 1
    clip = outcome.clips[0]
    assert (clip.width, clip.height) == (576, 768)
    with ctx.store.local_path(clip.clip_key) as path:
        assert probe(path).rotation == 0  # pixels are upright, no rotation left to apply
        first = all_frames(path)[0]
    # What the viewer sees: the landscape pixels turned a quarter turn the way the display
    # matrix says (ffprobe's rotation=90 is counter-clockwise, as np.rot90's k=1).
    assert info.rotation == 90
    landscape = all_frames(media["landscape"])
    upright = [np.ascontiguousarray(np.rot90(f, k=1)) for f in landscape]
    _assert_same_frame(first, upright, clip.frame_start)


def test_variable_frame_rate_is_put_on_its_average_rate_grid(media, tmp_path):
    info = probe(media["vfr"])
    # 180 frames over 8 s less or including the last frame's duration, depending on the muxer's version.
    assert info.variable_frame_rate and 180 / 8.0 - 1e-3 <= info.fps <= 180 / (8 - 1 / 15) + 1e-3
    ctx = make_context(tmp_path, min_seconds=1.0)
    outcome = _run(media["vfr"], ctx)
    assert outcome.video.num_shots == 2
    grid = list(read_frames(media["vfr"], fps=info.fps))  # the frames as numbered
    assert outcome.video.num_frames == len(grid)
    cut = outcome.clips[1].frame_start - 7  # the second shot starts 7 grid frames (0.3 s) earlier
    assert abs(cut - 4.0 * info.fps) <= 2
    for clip in outcome.clips:
        with ctx.store.local_path(clip.clip_key) as path:
            out = probe(path)
            first = next(read_frames(path))
        # Constant frame rate out, at the average rate, exactly the span's frames.
        assert not out.variable_frame_rate and out.fps == pytest.approx(info.fps, rel=1e-4)
        assert out.num_frames == clip.num_frames == clip.frame_end - clip.frame_start
        # Resampling repeats frames of the 15 fps part: neighbours may be identical.
        _assert_same_frame(first, grid, clip.frame_start, distinct=False)


def test_odd_size_and_max_height(media, vtest, tmp_path):
    outcome = _run(media["odd"], make_context(tmp_path / "odd"))
    assert outcome.video.width == 321 and outcome.video.height == 241
    assert [(c.width, c.height) for c in outcome.clips] == [(320, 240)]
    ctx = make_context(tmp_path / "small", max_height=288)
    outcome = _run(vtest, ctx)
    assert {(c.width, c.height) for c in outcome.clips} == {(384, 288)}
    with ctx.store.local_path(outcome.clips[0].clip_key) as path:
        info = probe(path)
    assert (info.width, info.height, info.fps) == (384, 288, 10.0)


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty", "empty file"),
        ("truncated", "truncated"),
        ("truncated_faststart", "truncated"),
        ("text", "plain text"),
        ("audio", "no video stream"),
        ("short", "too short"),
        ("unreadable", "permission denied"),
    ],
)
def test_bad_input_fails_with_a_clear_reason(media, tmp_path, name, words):
    ctx = make_context(tmp_path)
    with pytest.raises(VideoFailed) as caught:
        if name == "unreadable":
            with unprivileged():
                _run(media[name], ctx)
        else:
            _run(media[name], ctx)
    assert words in str(caught.value).lower()
    assert ctx.store.list("clips/") == []


def test_good_file_of_the_bad_set_clips(media, tmp_path):
    outcome = _run(media["good"], make_context(tmp_path))
    assert len(outcome.clips) == 1 and outcome.clips[0].num_frames == 150 - 16


def test_a_failed_cut_leaves_no_clip_behind(vtest, tmp_path, monkeypatch):
    ctx = make_context(tmp_path)
    real_cut = cut_module.cut_clip
    calls = []

    def failing_third_cut(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise cut_module.CutError("disk full (test)")
        return real_cut(*args, **kwargs)

    monkeypatch.setattr("services.stages.clip.cut_clip", failing_third_cut)
    with pytest.raises(VideoFailed, match="disk full"):
        _run(vtest, ctx)
    assert ctx.store.list() == []
    assert not list((tmp_path / "out").rglob("*.part*"))


def test_whole_file_as_one_clip(bikes, vtest, tmp_path):
    ctx = make_context(tmp_path)
    stage = ShotClippingStage()
    outcome = stage.whole_video(VideoRecord(source=str(bikes), source_id="bikes"), bikes, ctx)
    (clip,) = outcome.clips
    assert (clip.id, clip.frame_start, clip.frame_end, clip.num_frames) == ("bikes", 0, 250, 250)
    assert ctx.store.get_bytes("clips/bikes.mp4") == bikes.read_bytes()  # an mp4 is taken as is

    info = probe(vtest)
    record = whole_clip(info, str(vtest), "vtest")
    assert (record.frame_start, record.frame_end, record.timestamp_end) == (0, 795, 79.5)
    stored = store_whole_clip(vtest, record, info, ctx)  # an AVI is re-encoded to mp4
    with ctx.store.local_path("clips/vtest.mp4") as path:
        out = probe(path)
    assert out.codec == "h264" and out.num_frames == 795 == stored.num_frames
