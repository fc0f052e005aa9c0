"""Focal from orthogonal vanishing points: a drawn Manhattan scene (floor grid and two walls seen
from a corner) at a known focal, a scene of random segments (no answer), and the per-clip vote."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from services.camera.vanishing import VanishingConfig, combine, frame_focal

W, H = 640, 360


def _manhattan_frame(f: float, yaw_deg: float, pitch_deg: float, seed: int = 0) -> np.ndarray:
    """Grid lines on a floor (z=0) and on two walls (x=4, y=4), seen from (0,0,1.5) looking across the corner."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W), 90, np.uint8)
    img += rng.integers(0, 20, img.shape, dtype=np.uint8)
    # world z up; camera looks along +x rotated by yaw about z, pitched down
    look = Rotation.from_euler("zy", [yaw_deg, pitch_deg], degrees=True).as_matrix()
    R_wc = look @ np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)  # columns: camera x, y, z in world
    C = np.array([0.0, 0.0, 1.5])
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    segments = []
    for s in np.arange(-4, 4.01, 0.5):
        segments += [((s, -4, 0), (s, 4, 0)), ((-4, s, 0), (4, s, 0))]  # floor grid
    for s in np.arange(0.5, 3.01, 0.5):
        segments += [((4, -4, s), (4, 4, s)), ((-4, 4, s), (4, 4, s))]  # horizontal lines on the walls
    for s in np.arange(-4, 4.01, 0.5):
        segments += [((4, s, 0), (4, s, 3)), ((s, 4, 0), (s, 4, 3))]  # vertical lines on the walls
    for a, b in segments:
        pts = np.linspace(a, b, 60)
        cam = (pts - C) @ R_wc
        front = cam[:, 2] > 0.2
        if front.sum() < 2:
            continue
        cam = cam[front]
        px = (cam @ K.T)[:, :2] / cam[:, 2:]
        p, q = px[0], px[-1]
        ok, p1, p2 = cv2.clipLine((0, 0, W, H), tuple(int(v) for v in np.clip(p, -1e5, 1e5)),
                                  tuple(int(v) for v in np.clip(q, -1e5, 1e5)))
        if ok:
            cv2.line(img, p1, p2, 230, 2, cv2.LINE_AA)
    return img


def test_focal_from_a_manhattan_scene():
    cfg = VanishingConfig()
    rng = np.random.default_rng(0)
    for f_true, yaw, pitch in [(500.0, 45.0, 10.0), (380.0, 30.0, 6.0), (700.0, 50.0, 12.0)]:
        f = frame_focal(_manhattan_frame(f_true, yaw, pitch), cfg, rng)
        assert f is not None, (f_true, yaw, pitch)
        assert abs(f / f_true - 1) < 0.02, (f, f_true)


def test_random_segments_give_no_focal():
    rng = np.random.default_rng(1)
    img = np.full((H, W), 90, np.uint8)
    for _ in range(150):
        p = rng.uniform((0, 0), (W, H))
        q = p + rng.normal(0, 60, 2)
        cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q), 230, 2, cv2.LINE_AA)
    found = [frame_focal(img, VanishingConfig(), np.random.default_rng(k)) for k in range(4)]
    assert combine(found, VanishingConfig()) is None, found


def test_the_clip_vote_needs_agreeing_frames():
    cfg = VanishingConfig()
    assert combine([500.0, 503.0, None, 498.0, 501.0], cfg).f == 500.5
    assert combine([500.0, None, None, None, 501.0, 499.0, None], cfg) is None  # too few frames
    assert combine([500.0, 560.0, 470.0, 530.0], cfg) is None  # they disagree
