"""Text area: the share of the frame covered by detected text, max over the frames.

Boxes and frame area are measured at the same resolution (the reference
divides 640x360 boxes by the source's area, so on 720p input its filter never
fires). Overlapping boxes count once: the boxes are drawn into a mask.

The detector is a small client (``detect(frames) -> boxes``) so that a Triton
client can replace the in-process ONNX one without touching the scorer.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from services.models.params import ModelSettings, TritonSettings
from services.scoring.base import SampledFrames, Scalar, Scorer

if TYPE_CHECKING:
    from services.models.client import ModelClient


class TextDetector(Protocol):
    """Finds text boxes: (K, H, W, 3) uint8 RGB frames -> per frame an (N, 4, 2) array of corners in pixels."""

    backend: str

    def detect(self, frames: np.ndarray) -> list[np.ndarray]: ...


def boxes_mask(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width) bool: the union of quadrilateral boxes (N, 4, 2) in pixels."""
    mask = np.zeros((height, width), np.uint8)
    # One polygon at a time: fillPoly with several fills overlaps by the even-odd rule (holes).
    for box in np.round(boxes).astype(np.int32):
        cv2.fillPoly(mask, [box], 1)
    return mask.astype(bool)


def text_area_ratio(boxes: np.ndarray, height: int, width: int) -> float:
    """Share of an HxW frame covered by the union of quadrilateral boxes (N, 4, 2)."""
    if len(boxes) == 0:
        return 0.0
    return float(boxes_mask(boxes, height, width).mean())


class PPOCRDetector:
    """PP-OCRv4 text detection (the model in rapidocr_onnxruntime's wheel), in this process.

    Pre- and post-processing follow PaddleOCR's defaults: the longer side is
    limited to 960 px and both sides rounded to multiples of 32, inputs are BGR
    scaled to [-1, 1], and the DB post-process maps boxes back to the frame.
    """

    MODEL_FILE = "ch_PP-OCRv4_det_infer.onnx"

    def __init__(self, threads: int = 1, limit_side_len: int = 960, remote: "ModelClient | None" = None) -> None:
        import onnxruntime as ort
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess

        # ``remote``: a model client for Triton's ``ocr_det`` ({"image"} -> {"maps"}), which runs
        # the same ONNX; pre- and post-processing stay here, so the boxes are the same.
        self.remote = remote
        if remote is None:
            model = Path(rapidocr_onnxruntime.__file__).parent / "models" / self.MODEL_FILE
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
        self.postprocess = DBPostProcess(
            thresh=0.3, box_thresh=0.5, max_candidates=1000, unclip_ratio=1.6, use_dilation=True, score_mode="fast"
        )
        self.limit_side_len = limit_side_len
        version = importlib.metadata.version("rapidocr_onnxruntime")
        self.backend = f"rapidocr_onnxruntime {version} ch_PP-OCRv4_det (onnxruntime {ort.__version__})"
        if remote is not None:
            self.backend = f"rapidocr_onnxruntime {version} ch_PP-OCRv4_det served by {remote.backend}"

    def _input_size(self, height: int, width: int) -> tuple[int, int]:
        ratio = min(1.0, self.limit_side_len / max(height, width))
        return (max(32, int(round(width * ratio / 32)) * 32), max(32, int(round(height * ratio / 32)) * 32))

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        if len(frames) == 0:
            return []
        height, width = frames.shape[1:3]
        size = self._input_size(height, width)
        resized = np.stack([cv2.resize(f[..., ::-1], size) for f in frames])
        if self.remote is not None:
            # Triton's ocr_det takes the resized BGR uint8 frames (4x less to send) and
            # scales them to [-1, 1] exactly as below before the same network.
            maps = self.remote.infer({"image": resized})["maps"]
        else:
            batch = (resized.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(0, 3, 1, 2)
            maps = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]
        results = []
        for probability in maps:
            boxes, _scores = self.postprocess(probability[None], (height, width))
            results.append(_clean_boxes(np.asarray(boxes, np.float32).reshape(-1, 4, 2), height, width))
        return results


def build_text_detector(models: ModelSettings, triton: TritonSettings, threads: int) -> PPOCRDetector:
    """PP-OCR text detection where ``models.client['ocr_det']`` says: this process (on ``threads`` threads) or
    the Triton server."""
    remote = None
    if models.client.get("ocr_det") == "triton":
        from services.models.triton_client import TritonClient

        remote = TritonClient("ocr_det", triton)
    return PPOCRDetector(threads=threads, remote=remote)


def _clean_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip to the frame and drop slivers of 3 px or less, as PaddleOCR does."""
    if len(boxes) == 0:
        return boxes
    boxes[..., 0] = np.clip(boxes[..., 0], 0, width - 1)
    boxes[..., 1] = np.clip(boxes[..., 1], 0, height - 1)
    sides_a = np.linalg.norm(boxes[:, 0] - boxes[:, 1], axis=1)
    sides_b = np.linalg.norm(boxes[:, 0] - boxes[:, 3], axis=1)
    return boxes[(sides_a > 3) & (sides_b > 3)]


class PPOCRReader:
    """PP-OCRv4 text recognition (rapidocr_onnxruntime's wheel) on the crops of given boxes."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
        from rapidocr_onnxruntime.utils import read_yaml

        root = Path(rapidocr_onnxruntime.__file__).parent
        config = read_yaml(str(root / "config.yaml"))["Rec"]
        config.update(model_path=str(root / config["model_path"]), intra_op_num_threads=threads, inter_op_num_threads=1)
        self.recognizer = TextRecognizer(config)
        version = importlib.metadata.version("rapidocr_onnxruntime")
        self.backend = f"rapidocr_onnxruntime {version} ch_PP-OCRv4_rec (onnxruntime {ort.__version__})"

    def read(self, frame: np.ndarray, boxes: np.ndarray) -> list[str]:
        """Text in each box of an RGB frame (boxes (N, 4, 2) clockwise from top-left)."""
        if len(boxes) == 0:
            return []
        bgr = np.ascontiguousarray(frame[..., ::-1])
        crops = [_crop(bgr, box) for box in boxes]
        results, _ = self.recognizer(crops)
        return [text for text, _score in results]


def _crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    width = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    height = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    warp = cv2.getPerspectiveTransform(box.astype(np.float32), target)
    crop = cv2.warpPerspective(image, warp, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return np.rot90(crop) if height >= 1.5 * width else crop  # vertical text, as PaddleOCR reads it


class OcrScorer(Scorer):
    name = "ocr"
    columns = ("ocr",)

    def __init__(self, detector: TextDetector, reader: PPOCRReader | None = None, max_text_boxes: int = 3) -> None:
        self.detector = detector
        self.reader = reader
        self.max_text_boxes = max_text_boxes
        if reader is not None:
            self.columns = ("ocr", "ocr_text")

    def score(self, frames: SampledFrames) -> dict[str, Scalar]:
        height, width = frames.rgb.shape[1:3]
        boxes = self.detector.detect(frames.rgb)
        ratios = [text_area_ratio(b, height, width) for b in boxes]
        out: dict[str, Scalar] = {"ocr": max(ratios) if ratios else None}
        if self.reader is not None:
            out["ocr_text"] = self._read_largest(frames.rgb, boxes, ratios)
        return out

    def _read_largest(self, rgb: np.ndarray, boxes: list[np.ndarray], ratios: list[float]) -> str:
        """The text of the largest boxes of the frame with the most text, in reading order."""
        if not ratios or max(ratios) == 0:
            return ""
        best = int(np.argmax(ratios))
        found = boxes[best]
        areas = np.array([cv2.contourArea(b.astype(np.float32)) for b in found])
        keep = found[np.argsort(-areas)[: self.max_text_boxes]]
        keep = keep[np.lexsort((keep[:, 0, 0], keep[:, 0, 1]))]  # top to bottom, then left to right
        return " | ".join(t for t in self.reader.read(rgb[best], keep) if t)

    def provenance(self) -> dict[str, str]:
        out = {"ocr": f"{self.detector.backend}, text-box union / frame area, max over frames"}
        if self.reader is not None:
            out["ocr_text"] = f"{self.reader.backend}, largest {self.max_text_boxes} boxes of the frame with most text"
        return out
