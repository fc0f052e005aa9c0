"""OCR text detection through a real Triton server equals the in-process detector."""

from __future__ import annotations

import numpy as np
import pytest

from services.models.triton_client import TritonModelClient
from services.scoring.ocr import PPOCRDetector, text_area_ratio

# Starts a real tritonserver (CPU configs).
pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def local_detector():
    return PPOCRDetector(threads=1)


@pytest.fixture(scope="module", params=["http", "grpc"])
def triton_detector(request, triton_server):
    settings = triton_server.settings.with_overrides({"triton": {"protocol": request.param}})
    client = TritonModelClient("ocr_det", settings.triton)
    yield PPOCRDetector(remote=client)
    client.close()


def test_boxes_through_triton_equal_in_process(text_frames, local_detector, triton_detector):
    expected = local_detector.detect(text_frames)
    got = triton_detector.detect(text_frames)
    assert len(got) == len(expected) == len(text_frames)
    # The frames with burned-in text have boxes; the test would be vacuous otherwise.
    assert sum(len(b) > 0 for b in expected) >= 4
    for mine, theirs in zip(got, expected):
        assert mine.shape == theirs.shape
        np.testing.assert_array_equal(mine, theirs)
        assert text_area_ratio(mine, 360, 640) == pytest.approx(text_area_ratio(theirs, 360, 640), abs=1e-3)
    assert "Triton model ocr_det" in triton_detector.backend


def test_batches_larger_than_the_request_size_are_split(text_frames, triton_server, local_detector):
    settings = triton_server.settings.with_overrides({"triton": {"max_batch_size": 2, "max_inflight": 2}})
    client = TritonModelClient("ocr_det", settings.triton)
    try:
        got = PPOCRDetector(remote=client).detect(text_frames)
    finally:
        client.close()
    expected = local_detector.detect(text_frames)
    assert [len(b) for b in got] == [len(b) for b in expected]
