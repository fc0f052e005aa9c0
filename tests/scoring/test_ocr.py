"""OCR text area on real frames, with and without burned-in text."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.scoring.base import SampledFrames
from services.scoring.ocr import OcrScorer, PPOCRDetector, text_area_ratio

from .conftest import read_rgb_frame


@pytest.fixture(scope="module")
def detector():
    return PPOCRDetector(threads=1)


def burn_subtitle(frame: np.ndarray, text: str = "Subtitles are burned into this frame") -> np.ndarray:
    out = frame.copy()
    for y in (300, 335):
        cv2.putText(out, text, (40, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 5, cv2.LINE_AA)
        cv2.putText(out, text, (40, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def frames_of(*rgb: np.ndarray) -> SampledFrames:
    return SampledFrames(rgb=np.stack(rgb), indices=list(range(len(rgb))), flow_pairs=np.zeros((0, 2, 1, 1), np.uint8),
                         flow_indices=[], num_frames=len(rgb), source_size=rgb[0].shape[1::-1])


def test_area_ratio_counts_union_at_frame_resolution():
    quarter = np.array([[[0, 0], [320, 0], [320, 180], [0, 180]]], np.float32)
    assert text_area_ratio(quarter, 360, 640) == pytest.approx(0.25, abs=0.01)
    # The same box twice covers the same area: overlaps count once.
    assert text_area_ratio(np.concatenate([quarter, quarter]), 360, 640) == pytest.approx(0.25, abs=0.01)
    assert text_area_ratio(np.zeros((0, 4, 2), np.float32), 360, 640) == 0.0


def test_burned_in_subtitles_raise_the_ratio(clips, detector):
    clean = read_rgb_frame(clips["plain"], 40)
    subtitled = burn_subtitle(clean)
    scorer = OcrScorer(detector)
    before = scorer.score(frames_of(clean))["ocr"]
    after = scorer.score(frames_of(subtitled))["ocr"]
    assert after > before + 0.03
    # Two subtitle lines of ~30 px over a 360 px frame: a few percent, well under the 0.3 limit.
    assert 0.03 < after < 0.3
    boxes = detector.detect(subtitled[None])[0]
    assert (boxes[..., 1] > 250).all(axis=1).any()  # found where the subtitles are


def test_text_overlay_case_agrees_with_its_ground_truth_text_masks(clips, detector):
    masks = np.load(clips["text"].parent / "gt_text_masks.npz")["masks"]
    index = 30
    frame = read_rgb_frame(clips["text"], index)
    ratio = OcrScorer(detector).score(frames_of(frame))["ocr"]
    truth = float(masks[index].mean())
    assert truth > 0.01
    # Detection boxes are padded around the glyphs (DB unclip ratio 1.6), so somewhat larger.
    assert truth * 0.7 < ratio < truth * 3
    # Detected boxes lie on the true text.
    boxes = detector.detect(frame[None])[0]
    drawn = np.zeros(masks[index].shape, np.uint8)
    cv2.fillPoly(drawn, [np.round(b).astype(np.int32) for b in boxes], 1)
    assert (drawn.astype(bool) & masks[index]).sum() > 0.8 * masks[index].sum()


def test_provenance_names_the_model(detector):
    assert "ch_PP-OCRv4_det" in OcrScorer(detector).provenance()["ocr"]
    assert "rapidocr_onnxruntime" in OcrScorer(detector).provenance()["ocr"]


def test_optional_text_reading_returns_the_burned_in_words(clips, detector):
    from services.scoring.ocr import PPOCRReader

    scorer = OcrScorer(detector, PPOCRReader(threads=1))
    clean = read_rgb_frame(clips["plain"], 40)
    out = scorer.score(frames_of(clean, burn_subtitle(clean, "Hello subtitle world")))
    assert "Hello" in out["ocr_text"] and "world" in out["ocr_text"]
    assert "ch_PP-OCRv4_rec" in scorer.provenance()["ocr_text"]
    assert scorer.score(frames_of(np.zeros((360, 640, 3), np.uint8)))["ocr_text"] == ""
