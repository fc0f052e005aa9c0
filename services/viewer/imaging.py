"""Per-frame images and point clouds for the browser: compact PNGs and a packed binary array, never JSON lists."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

# Depth is shown as inverse depth (near is bright), spread over these percentiles of the clip's valid pixels so that
# one colour means one depth in every frame of the clip.
DEPTH_PERCENTILES = (2.0, 98.0)
# The mask overlay's colour and opacity (RGBA): magenta stands out against foliage, sky and roads alike.
MASK_RGBA = (255, 0, 200, 150)
# PNG deflate level: 1 encodes a 640x360 frame in about a millisecond; flat masks still shrink 50-100x.
PNG_LEVEL = 1
# Magic and version of the point-cloud payload (little-endian): b"SVPC", u32 count, then count*3 float32 positions
# in the poses' world frame and count*3 uint8 RGB colours.
POINTS_MAGIC = b"SVPC"


@dataclass(frozen=True)
class DepthScale:
    """Inverse-depth range mapped onto the colour map (None: the clip has no valid depth)."""

    low: float | None
    high: float | None


def depth_scale(depth: np.ndarray) -> DepthScale:
    valid = depth[depth > 0]
    if valid.size == 0:
        return DepthScale(None, None)
    # A strided sample is enough for percentiles and keeps a long clip's scan cheap.
    sample = 1.0 / valid[:: max(1, valid.size // 200_000)].astype(np.float32)
    low, high = np.percentile(sample, DEPTH_PERCENTILES)
    return DepthScale(float(low), float(max(high, low * 1.0001 + 1e-9)))


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def depth_png(frame: np.ndarray, scale: DepthScale) -> bytes:
    """One depth frame as a turbo-coloured RGBA PNG; invalid pixels (0) are transparent."""
    valid = frame > 0
    rgba = np.zeros((*frame.shape, 4), np.uint8)
    if scale.low is not None and valid.any():
        inverse = np.zeros(frame.shape, np.float32)
        inverse[valid] = 1.0 / frame[valid].astype(np.float32)
        level = np.clip((inverse - scale.low) / (scale.high - scale.low), 0.0, 1.0)
        bgr = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
        rgba[..., :3] = bgr
        rgba[..., 3] = np.where(valid, 255, 0)
    return _png(rgba)  # OpenCV writes BGRA: the colour map is BGR already


def mask_png(mask: np.ndarray) -> bytes:
    """One dynamic mask as an RGBA PNG: coloured where True, transparent elsewhere."""
    r, g, b, a = MASK_RGBA
    bgra = np.zeros((*mask.shape, 4), np.uint8)
    bgra[mask] = (b, g, r, a)
    return _png(bgra)


def thumbnail_jpeg(frame_rgb: np.ndarray, width: int) -> bytes:
    height = max(2, round(frame_rgb.shape[0] * width / frame_rgb.shape[1]))
    small = cv2.resize(frame_rgb, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def depth_camera_matrix(intrinsics: np.ndarray, depth_shape: tuple[int, int]) -> np.ndarray:
    """The 3x3 camera matrix at the depth map's size from the dataset's normalised ``fx/W, fy/H, cx/W, cy/H``."""
    dh, dw = depth_shape
    fx, fy, cx, cy = intrinsics[:4]
    return np.array([[fx * dw, 0, cx * dw], [0, fy * dh, cy * dh], [0, 0, 1]], np.float64)


def unproject(depth: np.ndarray, c2w: np.ndarray, k_depth: np.ndarray, image_rgb: np.ndarray,
              stride: int) -> tuple[np.ndarray, np.ndarray]:
    """World points (M,3) and their RGB colours (M,3) from one depth frame, every ``stride``-th pixel.

    ``k_depth`` is the camera matrix at the depth map's size; the colour comes from the same spot of ``image_rgb``.
    """
    height, width = image_rgb.shape[:2]
    dh, dw = depth.shape
    ys, xs = np.mgrid[0:dh:stride, 0:dw:stride]
    z = depth[ys, xs].astype(np.float32)
    keep = z > 0
    ys, xs, z = ys[keep], xs[keep], z[keep]
    fx, fy, cx, cy = k_depth[0, 0], k_depth[1, 1], k_depth[0, 2], k_depth[1, 2]
    camera = np.stack([(xs - cx) / fx * z, (ys - cy) / fy * z, z], axis=1)
    world = camera @ c2w[:3, :3].T + c2w[:3, 3]
    rows = np.clip(((ys + 0.5) * height / dh).astype(int), 0, height - 1)
    cols = np.clip(((xs + 0.5) * width / dw).astype(int), 0, width - 1)
    return world.astype(np.float32), image_rgb[rows, cols].astype(np.uint8)


def pack_points(points: np.ndarray, colours: np.ndarray) -> bytes:
    count = len(points)
    return (POINTS_MAGIC + struct.pack("<I", count) + np.ascontiguousarray(points, "<f4").tobytes()
            + np.ascontiguousarray(colours, np.uint8).tobytes())


def unpack_points(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    if data[:4] != POINTS_MAGIC:
        raise ValueError("not a point-cloud payload")
    (count,) = struct.unpack("<I", data[4:8])
    points = np.frombuffer(data, "<f4", count * 3, 8).reshape(count, 3)
    colours = np.frombuffer(data, np.uint8, count * 3, 8 + count * 12).reshape(count, 3)
    return points, colours
