"""Burned-in text kept out of the motion masks (services/depth/overlays.py)."""

from __future__ import annotations

import numpy as np
import pytest

from services.depth.overlays import OverlayText, burned_in, text_mask


def _box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


class ScriptedDetector:
    """Text boxes by frame number: a subtitle that stays put and a sign that slides 12 px a frame."""

    backend = "scripted"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        index = int(frames[0, 0, 0, 0])  # the test writes the frame number into pixel (0, 0)
        self.calls.append(index)
        sign_x = 20 + 12 * index
        return [np.stack([_box(100, 150, 220, 170), _box(sign_x, 40, sign_x + 40, 60)])]


def _frames(n):
    for i in range(n):
        f = np.zeros((180, 320, 3), np.uint8)
        f[0, 0, 0] = i
        yield f


def test_text_that_stays_put_is_burned_in_and_text_that_moves_is_not():
    still = text_mask(np.stack([_box(10, 10, 60, 20)]), 100, 100, pad=0)
    moved = text_mask(np.stack([_box(40, 50, 90, 60)]), 100, 100, pad=0)
    both_now = still | moved
    assert (burned_in(both_now, [still]) == still).all()
    assert not burned_in(both_now, []).any()  # one sample alone proves nothing


def test_overlay_text_streams_with_the_frames_and_excludes_only_the_fixed_subtitle():
    detector = ScriptedDetector()
    overlay = OverlayText(detector, every=4)
    frames = overlay.tap(_frames(12))
    exclusions = overlay.exclusions()
    seen = []
    # read ahead as the depth loop does (it holds max_offset = 8 frames beyond the one it works on)
    ahead = [next(frames) for _ in range(8)]
    for i in range(12):
        nxt = next(frames, None)
        if nxt is not None:
            ahead.append(nxt)
        seen.append(next(exclusions))
    assert detector.calls == [0, 4, 8]  # every 4th frame only
    for i, mask in enumerate(seen):
        assert mask is not None and mask.shape == (180, 320)
        assert mask[160, 160], i  # the subtitle, from the very first frame (judged against the next sample)
        assert not mask[50, 20 + 12 * (i - i % 4) + 20], i  # the sliding sign stays eligible
    assert len(overlay._samples) <= 3  # old samples are dropped: memory stays flat


def test_every_must_be_positive():
    with pytest.raises(ValueError):
        OverlayText(ScriptedDetector(), every=0)


def test_burned_in_text_case_loses_its_subtitle_false_positives():
    """orbit_text_dyn2 (subtitles, a timecode and a channel logo over a moving camera) with the real PP-OCR
    detector: the masks keep the moving objects and drop the text."""
    pytest.importorskip("rapidocr_onnxruntime")
    from services.depth.backends import GeometricDepthAndMasks
    from services.scoring.ocr import PPOCRDetector
    from tests.depth.conftest import case_dir, evaluator

    frames_n = 24
    K = np.load(case_dir("orbit_text_dyn2") / "gt_intrinsics.npy")
    start = 66  # the dolly phase, where the objects are found and the text was the main false positive
    frames = np.stack(list(_case_frames("orbit_text_dyn2", start, frames_n)))
    c2w = np.load(case_dir("orbit_text_dyn2") / "gt_poses.npy")[start:start + frames_n]
    gt = np.load(case_dir("orbit_text_dyn2") / "gt_dynamic_masks.npz")["masks"][start:start + frames_n]
    text = np.load(case_dir("orbit_text_dyn2") / "gt_text_masks.npz")["masks"][start:start + frames_n]

    def masks(overlay):
        both = GeometricDepthAndMasks(overlay_text=overlay)
        return np.stack([m for _, m in both.iter_both(iter(frames), c2w, K)])

    plain = masks(None)
    kept_out = masks(OverlayText(PPOCRDetector(threads=1), every=4))
    score = lambda m: evaluator().mask_metrics(gt, m, np.arange(frames_n))  # noqa: E731
    assert (plain & text).sum() > 2000  # without it the text is marked
    assert (kept_out & text).sum() < 0.1 * (plain & text).sum()
    assert score(kept_out)["recall"] >= score(plain)["recall"] - 0.01  # the objects stay
    assert score(kept_out)["precision"] > score(plain)["precision"] + 0.05  # measured: 0.70 -> 0.77


def _case_frames(name, start, count):
    from samples import read_case_frames
    from tests.depth.conftest import case_dir

    return read_case_frames(case_dir(name), count=start + count)[start:]
