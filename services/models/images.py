"""Small array helpers shared by the model wrappers (no model code here)."""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def as_image_batch(images: np.ndarray) -> np.ndarray:
    """RGB frames as an (N, H, W, 3) array; a single (H, W, 3) frame becomes a batch of one."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB frames shaped (H, W, 3) or (N, H, W, 3), got {images.shape}")
    return images


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 (or float already in 0..1) to float32 0..1."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)


def imagenet_normalise(images01: np.ndarray) -> np.ndarray:
    return (images01 - IMAGENET_MEAN) / IMAGENET_STD
