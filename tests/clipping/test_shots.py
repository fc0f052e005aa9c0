"""Shot detection: real cuts found where they are, no false cuts, the reference's rules reproduced."""

from __future__ import annotations

import numpy as np
import pytest

from services.video.decode import read_frames
from services.video.probe import probe
from services.settings import ClipSettings
from services.video.shots import analysis_size, detect_shots
from tests.clipping.helpers import BIKES_CUTS, BIKES_FRAMES


def _detect(path, params=ClipSettings()):
    info = probe(path)
    size = analysis_size(info.width, info.height, 256)
    return detect_shots(read_frames(path, size=size, pix_fmt="bgr24", fps=info.fps), params)


def _assert_near(found, truth, tolerance=2):
    assert len(found) == len(truth), f"found {found}, expected {truth}"
    for got, want in zip(found, truth):
        assert abs(got - want) <= tolerance, f"found {found}, expected {truth}"


def test_bikes_cuts_are_where_the_shots_change(bikes):
    detection = _detect(bikes)
    assert detection.num_frames == BIKES_FRAMES
    _assert_near(detection.cuts, BIKES_CUTS)
    assert len(detection.shots) == 6


def test_vtest_fixed_camera_has_no_cut(vtest):
    detection = _detect(vtest)
    assert detection.num_frames == 795
    assert detection.cuts == ()


@pytest.mark.parametrize("frame_step", [1, 2])
def test_same_decisions_as_pyscenedetect(bikes, frame_step):
    """Our vectorised scores + rules decide like PySceneDetect run as the reference runs it."""
    scenedetect = pytest.importorskip("scenedetect")
    video = scenedetect.open_video(str(bikes))
    manager = scenedetect.SceneManager()
    manager.add_detector(scenedetect.ContentDetector(threshold=21, min_scene_len=15))
    manager.add_detector(scenedetect.AdaptiveDetector(adaptive_threshold=3.0, min_scene_len=15, luma_only=True))
    manager.detect_scenes(video=video, frame_skip=frame_step - 1)
    theirs = [start.frame_num for start, _ in manager.get_scene_list()[1:]]
    ours = _detect(bikes, ClipSettings(frame_step=frame_step)).sampled_cuts
    _assert_near(ours, theirs, tolerance=0)


def test_every_second_frame_as_the_reference_gets_bikes_wrong(bikes):
    """Why frame_step defaults to 1: sampling every 2nd frame merges the cut at 76 and invents others."""
    detection = _detect(bikes, ClipSettings(frame_step=2))
    assert not any(abs(cut - 76) <= 2 for cut in detection.cuts)


def _synthetic(cut_at: int, total: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(total):
        base = (40, 90, 120) if i < cut_at else (200, 160, 30)
        frame = np.clip(np.array(base) + rng.normal(0, 3, (72, 128, 3)), 0, 255).astype(np.uint8)
        frames.append(frame)
    return frames


@pytest.mark.parametrize("cut_at", [40, 41])
@pytest.mark.parametrize("frame_step", [1, 2])
def test_cut_is_exact_to_the_frame_even_when_sampling(cut_at, frame_step):
    detection = detect_shots(iter(_synthetic(cut_at, 90)), ClipSettings(frame_step=frame_step))
    assert detection.cuts == (cut_at,)
    assert detection.shots == [(0, cut_at), (cut_at, 90)]


def test_cuts_closer_than_min_scene_length_merge():
    frames = _synthetic(40, 90)
    for i in range(45, 90):  # a second cut 5 frames after the first
        frames[i] = 255 - frames[i]
    detection = detect_shots(iter(frames), ClipSettings(min_scene_frames=15))
    assert detection.cuts == (40,)
    detection = detect_shots(iter(frames), ClipSettings(min_scene_frames=3))
    assert detection.cuts == (40, 45)


def test_analysis_size_scales_the_longer_side():
    assert analysis_size(1280, 720, 256) == (256, 144)
    assert analysis_size(720, 1280, 256) == (144, 256)
    assert analysis_size(200, 100, 256) == (200, 100)


def test_empty_stream():
    detection = detect_shots(iter([]))
    assert detection.num_frames == 0 and detection.shots == []
