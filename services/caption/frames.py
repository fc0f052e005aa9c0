"""Frames for the VLM: about one per second, scaled to fit 640x360, as base64 JPEG data URLs."""

from __future__ import annotations

import base64

import cv2
import numpy as np


def fit_size(width: int, height: int, box_w: int = 640, box_h: int = 360) -> tuple[int, int]:
    """Even (w, h) that fits the box keeping the aspect ratio; portrait clips get the box turned."""
    if height > width:
        box_w, box_h = box_h, box_w
    scale = min(box_w / width, box_h / height, 1.0)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def sampling(num_frames: int, fps: float, per_second: float, max_frames: int) -> tuple[int, int]:
    """(step, count): every ``step``-th frame from the first, ``count`` of them.

    About ``per_second`` frames per second of video, never more than ``max_frames``
    (longer clips get a wider step so the frames still cover the whole clip).
    """
    if num_frames <= 0:
        return 1, 0
    step = max(1, int(round(fps / per_second))) if fps > 0 else 1
    count = -(-num_frames // step)
    if count > max_frames:
        step = -(-num_frames // max_frames)
        count = -(-num_frames // step)
    return step, count


def jpeg_data_url(rgb: np.ndarray, quality: int = 85) -> str:
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.tobytes()).decode("ascii")
