"""Burned-in text (subtitles, timecodes, channel logos) kept out of the motion masks.

Overlay text is not part of the scene: while the camera moves it stays put on the screen, so it
contradicts the camera motion as much as any moving object, and a running timecode changes even on a
tripod. It is found with the text detector the scoring stage uses (PP-OCR), on every ``every``-th frame,
and only text that stays where it was on the screen between two neighbouring samples is taken for
burned in: writing on a moving bus or a shop sign moves with the scene and stays eligible. (A camera
that follows the bus exactly would see its writing as burned in; the rest of the bus keeps its mask.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from services.scoring.ocr import TextDetector, boxes_mask


def text_mask(boxes: np.ndarray, height: int, width: int, pad: int = 3) -> np.ndarray:
    """(height, width) bool: the union of quadrilateral boxes (N, 4, 2) in pixels, grown by ``pad`` pixels."""
    mask = boxes_mask(boxes, height, width)
    if pad > 0 and mask.any():
        mask = cv2.dilate(mask.astype(np.uint8), np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)) > 0
    return mask


def burned_in(text: np.ndarray, neighbours: list[np.ndarray], min_overlap: float = 0.5) -> np.ndarray:
    """The text regions of one sample that a neighbouring sample also shows as text at the same place
    (at least ``min_overlap`` of the region's area): what stayed put on the screen."""
    if not text.any() or not neighbours:
        return np.zeros_like(text)
    count, labels = cv2.connectedComponents(text.astype(np.uint8), connectivity=8)
    area = np.bincount(labels.ravel(), minlength=count)
    stays = np.zeros(count, bool)
    for other in neighbours:
        stays |= np.bincount(labels[other], minlength=count) >= min_overlap * area
    stays[0] = False
    return stays[labels]


class OverlayText:
    """Streams alongside the frames: ``tap`` runs the detector on every ``every``-th frame as they pass,
    ``exclusions`` yields one bool mask per frame (what to keep out of the motion masks).

    A frame's mask is the burned-in text of the latest sample at or before it, judged against the samples
    on either side. ``exclusions`` must lag ``tap`` by at least ``every`` frames for the later sample to be
    seen (the depth loop reads ``max_offset`` frames ahead); without it only the earlier one is used."""

    def __init__(self, detector: TextDetector, every: int = 4) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.detector = detector
        self.every = every
        self.backend = detector.backend
        self._samples: dict[int, np.ndarray] = {}
        self.seconds = 0.0  # spent in the detector (benchmarks report it)

    def tap(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The frames, unchanged; a new stream (clip) starts afresh."""
        self._samples = {}
        self.seconds = 0.0
        for index, frame in enumerate(frames):
            if index % self.every == 0:
                start = time.perf_counter()
                rgb = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
                boxes = self.detector.detect(rgb[None])[0]
                self._samples[index] = text_mask(boxes, *rgb.shape[:2])
                self.seconds += time.perf_counter() - start
            yield frame

    def exclusions(self) -> Iterator[np.ndarray | None]:
        index = 0
        while True:
            sample = index - index % self.every
            text = self._samples.get(sample)
            if text is None:
                yield None
            else:
                neighbours = [self._samples[s] for s in (sample - self.every, sample + self.every) if s in self._samples]
                yield burned_in(text, neighbours)
            # samples two steps back are no longer anyone's neighbour: memory stays flat
            self._samples.pop(sample - 2 * self.every, None)
            index += 1
