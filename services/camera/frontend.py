"""Correspondence front end: KLT feature tracks with a forward-backward check.

Frames stream through once; per frame only the tracked points (ids and pixel
positions at the working resolution) are kept, a few kilobytes, so memory does
not grow with the number of pixels times frames. A hard cut shows up as the
tracks collapsing together with a change of the image's colour distribution;
it starts a new segment whose tracks are all new.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from services.camera.params import CameraSettings
from services.kernels.klt_ops import LKParams
from services.kernels.klt_ops import forward_backward as klt_forward_backward

MIN_WORKING_SIDE = 16  # px: a smaller frame has no room for a KLT window and its pyramid
MASK_OPEN = 255  # OpenCV's detection mask: non-zero where corners may be found


@dataclass
class FrameTracks:
    index: int  # frame index in the clip
    segment: int  # shot segment (increments at a detected hard cut)
    ids: np.ndarray  # (n,) int64 track ids, unique within the clip
    xy: np.ndarray  # (n,2) float32 pixel positions at the working resolution


@dataclass
class FrontEndConfig:
    """The front end's fixed tuning; the working size and track budget are the camera section's
    (``camera.working_max_side``, ``camera.max_tracks``), passed down as is."""

    camera: CameraSettings = field(default_factory=CameraSettings)
    min_distance: int = 12
    quality: float = 0.005
    fb_threshold_px: float = 0.7
    lk_window: int = 15
    lk_levels: int = 3
    cut_survival: float = 0.35  # fraction of tracks surviving one frame below which a cut is suspected
    cut_hist_corr: float = 0.6  # colour histogram correlation below which the suspicion is confirmed
    overlay_min_age: int = 24  # frames a track is followed before it can be called screen-fixed
    overlay_max_motion_px: float = 1.0  # ... if it never moved farther than this from its start
    overlay_scene_motion_px: float = 20.0  # ... while the median track of that age moved at least this far
    overlay_min_old: int = 8  # tracks of that age needed before their median motion says anything
    refill_divisor: int = 8  # new corners are detected once an eighth of max_tracks is missing (not for every loss)
    corner_block: int = 5  # Shi-Tomasi's neighbourhood (px): corners stable under the working size's blur
    lk_iterations: int = 30  # Lucas-Kanade iterations per pyramid level (OpenCV's default) ...
    lk_eps: float = 0.01  # ... or until the step is below this (px)
    hist_bins: int = 8  # bins per colour channel of the cut test's histogram: coarse, robust to motion and noise


def working_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    s = min(1.0, max_side / max(width, height))
    return max(MIN_WORKING_SIDE, int(round(width * s))), max(MIN_WORKING_SIDE, int(round(height * s)))


def _histogram(rgb: np.ndarray, bins: int) -> np.ndarray:
    h = cv2.calcHist([rgb], [0, 1, 2], None, [bins] * 3, [0, 256] * 3)
    return cv2.normalize(h, h).ravel()


class KLTTracker:
    def __init__(self, config: FrontEndConfig):
        self.cfg = config
        self.prev_gray: np.ndarray | None = None
        self.prev_hist: np.ndarray | None = None
        self.pts = np.zeros((0, 2), np.float32)
        self.ids = np.zeros(0, np.int64)
        self.next_id = 0
        self.segment = 0
        self.size: tuple[int, int] | None = None
        self.scale = 1.0  # working / original
        self.birth = np.zeros((0, 2), np.float32)  # where each live track started
        self.age = np.zeros(0, np.int64)  # frames each live track has been followed
        self.reach = np.zeros(0, np.float32)  # farthest each live track has moved from its start
        self.screen_fixed = np.zeros(0, bool)

    def _reset(self) -> None:
        self.pts = np.zeros((0, 2), np.float32)
        self.ids = np.zeros(0, np.int64)
        self.birth = np.zeros((0, 2), np.float32)
        self.age = np.zeros(0, np.int64)
        self.reach = np.zeros(0, np.float32)
        self.screen_fixed = np.zeros(0, bool)

    def _detect(self, gray: np.ndarray) -> None:
        max_tracks = self.cfg.camera.max_tracks
        need = max_tracks - len(self.pts)
        if need < max_tracks // self.cfg.refill_divisor:
            return
        mask = np.full(gray.shape, MASK_OPEN, np.uint8)
        for x, y in self.pts.astype(int):
            cv2.circle(mask, (int(x), int(y)), self.cfg.min_distance, 0, -1)
        corners = cv2.goodFeaturesToTrack(gray, need, self.cfg.quality, self.cfg.min_distance, mask=mask,
                                          blockSize=self.cfg.corner_block)
        if corners is None:
            return
        corners = corners.reshape(-1, 2).astype(np.float32)
        self.pts = np.concatenate([self.pts, corners])
        self.ids = np.concatenate([self.ids, np.arange(self.next_id, self.next_id + len(corners))])
        self.birth = np.concatenate([self.birth, corners])
        self.age = np.concatenate([self.age, np.zeros(len(corners), np.int64)])
        self.reach = np.concatenate([self.reach, np.zeros(len(corners), np.float32)])
        self.screen_fixed = np.concatenate([self.screen_fixed, np.zeros(len(corners), bool)])
        self.next_id += len(corners)

    def _track(self, gray: np.ndarray) -> np.ndarray:
        lk = LKParams(self.cfg.lk_window, self.cfg.lk_levels, iterations=self.cfg.lk_iterations, eps=self.cfg.lk_eps)
        # OpenCV on the CPU, torch ops on a GPU (kernels.device): the same algorithm, services/kernels/klt_ops.py
        p1, found, fb = klt_forward_backward(self.prev_gray, gray, self.pts, lk)
        h, w = gray.shape
        inside = (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
        keep = found & (fb < self.cfg.fb_threshold_px) & inside
        self.pts, self.ids = p1[keep], self.ids[keep]
        self.birth, self.age, self.screen_fixed = self.birth[keep], self.age[keep] + 1, self.screen_fixed[keep]
        self.reach = np.maximum(self.reach[keep], np.linalg.norm(self.pts - self.birth, axis=1))
        self._flag_screen_fixed()
        return keep

    def _flag_screen_fixed(self) -> None:
        """Burned-in text, logos and timecodes stay put on screen while the scene moves: a track that
        has not left its start while most tracks of its age have moved far is an overlay (or something
        carried with the camera), not a scene point. It is kept alive (so the spot is not re-detected)
        but no longer reported."""
        cfg = self.cfg
        old = self.age >= cfg.overlay_min_age
        if old.sum() < cfg.overlay_min_old:
            return
        if float(np.median(self.reach[old])) < cfg.overlay_scene_motion_px:
            return  # the scene itself is (mostly) still: a tripod shot, nothing to tell apart
        self.screen_fixed |= old & (self.reach < cfg.overlay_max_motion_px)

    def push(self, index: int, rgb: np.ndarray) -> FrameTracks:
        H, W = rgb.shape[:2]
        if self.size is None:
            self.size = working_size(W, H, self.cfg.camera.working_max_side)
            self.scale = self.size[0] / W
        small = rgb if (W, H) == self.size else cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        hist = _histogram(small, self.cfg.hist_bins)
        if self.prev_gray is not None and len(self.pts):
            n_before = len(self.pts)
            self._track(gray)
            survival = len(self.pts) / max(n_before, 1)
            corr = float(cv2.compareHist(self.prev_hist, hist, cv2.HISTCMP_CORREL))
            if survival < self.cfg.cut_survival and corr < self.cfg.cut_hist_corr:
                self.segment += 1
                self._reset()
        self._detect(gray)
        self.prev_gray, self.prev_hist = gray, hist
        shown = ~self.screen_fixed
        return FrameTracks(index, self.segment, self.ids[shown].copy(), self.pts[shown].copy())


def track_frames(frames: Iterable[np.ndarray], config: FrontEndConfig) -> Iterator[tuple[FrameTracks, tuple[int, int]]]:
    """Yield each frame's tracks and the working size, streaming (one frame in memory)."""
    tracker = KLTTracker(config)
    for index, rgb in enumerate(frames):
        ft = tracker.push(index, rgb)
        yield ft, (tracker.size, rgb.shape[1], rgb.shape[0])
