"""Colour segments of a frame, and what the motion masks do with them.

A graph-based segmentation (Felzenszwalb-Huttenlocher, cv2.ximgproc) cuts the frame into regions of
similar colour: an object's plain faces are regions of their own even where flow and triangulation
see only their rims. The gravity prior judges whole segments (support.py); recent marks hold whole
segments (held_segments); and the mask's halo, the flow smeared onto the background around an
object, is trimmed where it covers little of a background segment (trim_to_segments).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SegmentParams:
    # at this share of the depth grid (half: 5 ms instead of 25 at 320x180); min_px counts pixels at that size
    scale: float = 0.5
    sigma: float = 0.5
    k: float = 300.0
    min_px: int = 12


def colour_segments(image: np.ndarray, params: SegmentParams = SegmentParams()) -> np.ndarray:
    """(h, w) int32 segment labels 0..n-1 of a uint8 colour (or grey) image."""
    h, w = image.shape[:2]
    small = (max(1, round(w * params.scale)), max(1, round(h * params.scale)))
    if small != (w, h):
        image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    segmenter = cv2.ximgproc.segmentation.createGraphSegmentation(
        params.sigma, params.k, params.min_px)
    labels = segmenter.processImage(np.ascontiguousarray(image))
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST) if small != (w, h) else labels


def held_segments(labels: np.ndarray, memory: np.ndarray, level: float, share: float) -> np.ndarray:
    """(h, w) bool: the segments at least ``share`` of whose pixels have a ``memory`` of ``level`` or more.

    The memory is where the prior marked objects in recent frames, carried along their flow and fading; an
    object keeps its mark, in this frame's segment shapes, through frames where its outline shows no
    ground (it passes the frame's edge, or the measured depth on it is too thin that frame)."""
    count = int(labels.max()) + 1
    flat = labels.ravel()
    remembered = np.bincount(flat, weights=(memory >= level).ravel().astype(np.float64), minlength=count)
    area = np.bincount(flat, minlength=count)
    return (remembered >= share * np.maximum(area, 1))[labels]


def trim_to_segments(mask: np.ndarray, labels: np.ndarray, min_cover: float, max_component_share: float) -> np.ndarray:
    """``mask`` without its pixels in segments it covers less than ``min_cover`` of, where those pixels are
    also less than ``max_component_share`` of their connected mask region: the halo and smear of a region
    over the background goes, while an object whose colour runs into the background's (a dark car on a
    dark road: most of its region lies in one big segment) keeps its mask."""
    if not mask.any():
        return mask
    count = int(labels.max()) + 1
    area = np.bincount(labels.ravel(), minlength=count)
    cover = np.bincount(labels[mask], minlength=count) / np.maximum(area, 1)
    regions, region = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    pair = region[mask].astype(np.int64) * count + labels[mask]
    in_pair = np.bincount(pair, minlength=regions * count).reshape(regions, count)
    share = in_pair / np.maximum(in_pair.sum(1, keepdims=True), 1)
    trimmed = (cover[None, :] < min_cover) & (share < max_component_share)
    out = mask.copy()
    out[mask] = ~trimmed[region[mask], labels[mask]]
    return out
