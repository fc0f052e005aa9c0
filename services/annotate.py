"""Which frames of a clip are annotated: every frame, or a fixed rate (``annotate.rate_hz``).

The reference annotated about 5 frames per second of video; every frame is the default here (dense poses
for the users who want them). At a rate, the camera stage still tracks every frame at its own keyframe rate
and writes the poses of the chosen frames; depth and masks are computed on the chosen frames only, with
their neighbour views picked among all decoded frames (``track_dense.npz`` gives their poses).
"""

from __future__ import annotations

import numpy as np

def chosen_frames(num_frames: int, fps: float, rate_hz: float | None) -> np.ndarray:
    """Clip frame numbers to annotate: all of them, or the frame nearest each 1/rate_hz seconds from the
    first frame (never the same frame twice)."""
    if num_frames <= 0:
        return np.zeros(0, np.int64)
    if rate_hz is None or fps <= 0 or rate_hz >= fps:
        return np.arange(num_frames, dtype=np.int64)
    step = fps / rate_hz
    picked = np.round(np.arange(0.0, num_frames - 0.5, step)).astype(np.int64)
    return np.unique(picked[picked < num_frames])
