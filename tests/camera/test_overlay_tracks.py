"""Burned-in overlays (subtitles, logos, timecodes) sit still on screen while the scene moves: the
front end must stop reporting their tracks, and must not drop anything on a tripod shot."""

from __future__ import annotations

import cv2
import numpy as np

from services.camera.frontend import FrontEndConfig, KLTTracker
from services.camera.params import CameraSettings

W, H = 320, 180


def _frames(pan_px_per_frame: float, n: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (H, W * 3, 3), dtype=np.uint8), (0, 0), 1.5)
    out = []
    for k in range(n):
        x0 = int(round(k * pan_px_per_frame))
        frame = np.ascontiguousarray(scene[:, x0 : x0 + W])
        cv2.rectangle(frame, (20, 140), (300, 172), (0, 0, 0), -1)  # the caption box, fixed on screen
        cv2.putText(frame, "SUBTITLE 00:01", (28, 165), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        out.append(frame)
    return out


def _reported(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    tracker = KLTTracker(FrontEndConfig(camera=CameraSettings(working_max_side=W)))
    for k, rgb in enumerate(frames):
        ft = tracker.push(k, rgb)
    return ft.xy, ft.ids


def test_overlay_tracks_are_dropped_while_the_scene_moves():
    xy, _ = _reported(_frames(1.5))
    # well inside the caption box (its top edge mixes the moving scene into the tracking window)
    in_box = (xy[:, 1] > 146) & (xy[:, 1] < 168) & (xy[:, 0] > 26) & (xy[:, 0] < 294)
    assert len(xy) > 50
    assert in_box.sum() == 0, xy[in_box]


def test_a_tripod_shot_keeps_every_track():
    tracker = KLTTracker(FrontEndConfig(camera=CameraSettings(working_max_side=W)))
    frames = _frames(0.0)
    for k, rgb in enumerate(frames):
        ft = tracker.push(k, rgb)
    assert len(ft.ids) == len(tracker.ids) > 50
    in_box = (ft.xy[:, 1] > 136)
    assert in_box.sum() > 0
