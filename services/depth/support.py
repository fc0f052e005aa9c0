"""A gravity prior for motion masks: what stands below the horizon rests on something.

An object moving parallel to the camera's translation (an oncoming car under a dolly, a car driving
along the street under a truck) is, for every view, exactly a static object at another depth: an
oncoming one looks 1.5-5x nearer than it is. Geometry alone cannot tell; gravity can. Seen at its
apparent depth the car hovers: the ground visible just below its lower edge in the image is far
behind it. A resting object meets the ground where its lower edge does (the depth is continuous
there); a table top or a bumper hangs over ground at most 1.2-1.5x its own distance.

So: fit the ground plane to the frame's triangulated points, cut the frame into colour segments
(graph-based segmentation: an object's faces are segments of their own even where they are too
plain to triangulate), give each segment the median of the depth measured inside it, and call a
segment hovering when, below at least half of its bottom outline in view, the first ground pixel
is many times farther than the segment. The bottom outline (the lowest pixel of each column), not
every lower edge: the sides of a ball resting on a box overhang the ground behind the box, its
bottom does not. Columns that end on the frame's last row show nothing of what the object stands
on and do not count (a truck passing close runs off the frame). The depth measured on a moving
object is sparse (its rims and marks), so the median over the whole segment is what fills the
plain inside.

The other way round, an object moving with the camera (a car driving away under a dolly) looks
farther than it is and sinks: along the ray of its own bottom outline the ground plane, seen just
below it, is many times nearer than the depth measured on it, so the ground would hide it; a static
surface cannot be behind the ground along its own ray. That test uses the depth measured just
above each outline pixel in its own segment (a wall along a street spans near and far; its median
stands behind its near end) and wants the ground within a few rows below (behind a nearer object
the ground found farther down belongs to that object's foreground).

Everything here is in pose units and relative to the camera's height over the plane, so it holds
for poses up to scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.depth.geometry import DIVISION_FLOOR, pixel_grid

MIN_FACING = 1e-9  # a ray this close to parallel with the ground never meets it
BIN_HEADROOM = 1e-6  # the histogram's top edge sits just above the largest value, so that value falls inside


@dataclass(frozen=True)
class GroundPlane:
    normal: np.ndarray  # (3,) unit normal in the camera frame, pointing from the ground towards the camera
    height: float  # the camera's distance above the plane (pose units); n.X + height = 0 on the plane


@dataclass(frozen=True)
class SupportParams:
    min_points: int = 500  # triangulated points below the top third needed to fit a plane
    max_tilt_deg: float = 40.0  # the plane's normal within this of the camera's up axis (-y)
    inlier_rel: float = 0.01  # point-to-plane distance as a share of the point's range
    min_inlier_share: float = 0.15  # of the candidate points, for the plane to count as the ground
    ground_rel: float = 0.15  # a pixel is ground where its depth is within this of the plane's (smeared flow blurs it)
    look_below: int = 40  # rows below a segment's lower edge searched for the ground
    hover_ratio: float = 1.6  # ground this many times farther than the segment: hovering (nearer: sinking)
    # of the segment's bottom outline in view (its lowest pixel in each column, where that is not the
    # frame's last row), this share must hover over ground
    min_hover_share: float = 0.5
    min_outline_px: int = 5
    # a sinking outline must meet the ground within this many rows (behind a nearer object, the ground
    # found below is that object's foreground, not what the segment stands on)
    sink_ground_gap: int = 8
    min_area: int = 40  # depth-grid pixels
    # a segment's depth is the median of its measured pixels: at least this many, and this share of it
    min_measured_px: int = 10
    min_measured_share: float = 0.005
    # a segment with no depth of its own (the plain inside of an object, split from its blurred rim by the
    # segmentation) takes the nearest depth measured within this many pixels of it
    borrow_px: int = 3
    max_ground_share: float = 0.3  # of its measured pixels on the ground plane: the segment is ground
    ransac_iterations: int = 256
    sample_points: int = 4000


def _rays(K: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w, 3) camera-frame rays with z = 1 (a pixel with depth z sees z * ray)."""
    return (np.linalg.inv(K) @ pixel_grid(h, w)).T.reshape(h, w, 3)


def fit_ground_plane(depth: np.ndarray, K: np.ndarray, params: SupportParams = SupportParams(),
                     seed: int = 0) -> GroundPlane | None:
    """RANSAC plane through the triangulated points of the lower two thirds, roughly horizontal and below
    the camera; None when no such plane carries enough of them (no visible ground, or too little depth)."""
    h, w = depth.shape
    candidates = depth > 0
    candidates[: h // 3] = False
    if candidates.sum() < params.min_points:
        return None
    points = (_rays(K, h, w) * depth[..., None])[candidates]
    rng = np.random.default_rng(seed)
    if len(points) > params.sample_points:
        points = points[rng.choice(len(points), params.sample_points, replace=False)]
    triples = points[rng.integers(0, len(points), (params.ransac_iterations, 3))]
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    norms = np.linalg.norm(normals, axis=1)
    keep = norms > DIVISION_FLOOR
    normals, triples = normals[keep] / norms[keep, None], triples[keep]
    normals *= np.where(normals[:, 1:2] > 0, -1.0, 1.0)  # point up: camera y is down
    heights = -(normals * triples[:, 0]).sum(1)
    level = (-normals[:, 1] >= np.cos(np.radians(params.max_tilt_deg))) & (heights > 0)
    if not level.any():
        return None
    normals, heights = normals[level], heights[level]
    ranges = np.linalg.norm(points, axis=1)
    distance = np.abs(points @ normals.T + heights) / ranges[:, None]  # (points, planes)
    counts = (distance < params.inlier_rel).sum(0)
    best = int(np.argmax(counts))
    if counts[best] < params.min_inlier_share * len(points):
        return None
    return GroundPlane(normal=normals[best], height=float(heights[best]))


def plane_depth(plane: GroundPlane, K: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w) z-depth at which each pixel's ray meets the plane; inf above the horizon."""
    facing = _rays(K, h, w) @ plane.normal
    return np.where(facing < -MIN_FACING, plane.height / np.maximum(-facing, MIN_FACING), np.inf)


def _first_ground_below(ground: np.ndarray, limit: int) -> np.ndarray:
    """(h, w) int: the row of the first ground pixel strictly below each pixel within ``limit`` rows, else -1."""
    h, w = ground.shape
    nearest = np.full((h, w), -1, np.int64)
    running = np.full(w, -1, np.int64)
    for y in range(h - 1, -1, -1):
        nearest[y] = np.where((running >= 0) & (running - y <= limit), running, -1)
        running = np.where(ground[y], y, running)
    return nearest


def _segment_medians(labels: np.ndarray, depth: np.ndarray, count: int) -> np.ndarray:
    """(count,) median of the positive depths in each segment, 0 where it has none."""
    valid = depth > 0
    seg, values = labels[valid], depth[valid].astype(np.float64)
    if not len(values):
        return np.zeros(count)
    # one sort orders by segment, then by depth: segment + depth scaled into [0, 1)
    top = float(values.max()) * (1 + BIN_HEADROOM)
    keys = np.sort(seg + values / top)
    seg_sorted = np.floor(keys).astype(np.int64)
    ordered = (keys - seg_sorted) * top
    starts = np.searchsorted(seg_sorted, np.arange(count))
    sizes = np.bincount(seg_sorted, minlength=count)
    medians = np.zeros(count)
    has = sizes > 0
    lo = starts[has] + (sizes[has] - 1) // 2
    hi = starts[has] + sizes[has] // 2
    medians[has] = 0.5 * (ordered[lo] + ordered[hi])
    return medians


def _depth_above_in_segment(labels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(h, w): at each pixel, the depth of the lowest measured pixel at or above it in its column without
    leaving its segment; 0 where there is none."""
    h, w = depth.shape
    out = np.zeros((h, w), np.float32)
    running = np.zeros(w, np.float32)
    for y in range(h):
        if y > 0:
            running = np.where(labels[y] == labels[y - 1], running, 0.0)
        running = np.where(depth[y] > 0, depth[y], running)
        out[y] = running
    return out


def ungrounded_segments(labels: np.ndarray, depth: np.ndarray, K: np.ndarray, plane: GroundPlane,
                        params: SupportParams = SupportParams()) -> np.ndarray:
    """(h, w) bool: the colour segments (``labels``, segments.colour_segments) whose median measured depth hangs
    over ground far behind them, or whose depth sinks them far below the ground at their bottom outline.
    ``depth``: z-depth measured where the views allow, 0 elsewhere."""
    h, w = depth.shape
    count = int(labels.max()) + 1
    flat = labels.ravel()
    valid = depth > 0
    ground_depth = plane_depth(plane, K, h, w)
    ground = valid & (np.abs(depth / ground_depth - 1.0) < params.ground_rel)
    area = np.bincount(flat, minlength=count)
    measured = np.bincount(flat, weights=valid.ravel(), minlength=count)
    on_ground = np.bincount(flat, weights=ground.ravel(), minlength=count)
    seg_depth = own_depth = _segment_medians(labels, depth, count)
    needed = np.maximum(params.min_measured_px, params.min_measured_share * area)
    if params.borrow_px > 0 and (measured < needed).any():
        # nearest wins: the largest inverse depth around each pixel
        size = 2 * params.borrow_px + 1
        inv = np.where(valid, 1.0 / np.maximum(depth, DIVISION_FLOOR), 0.0).astype(np.float32)
        near = cv2.dilate(inv, np.ones((size, size), np.uint8))
        borrowed = np.where(valid, 0.0, np.where(near > 0, 1.0 / np.maximum(near, DIVISION_FLOOR), 0.0))
        lacking = (measured == 0)[labels] & (borrowed > 0)
        borrowed = np.where(lacking, borrowed, 0.0)
        seg_depth = np.where(measured == 0, _segment_medians(labels, borrowed, count), seg_depth)
        measured = measured + np.bincount(flat, weights=lacking.ravel(), minlength=count)
    # the bottom outline: each segment's lowest pixel in each of its columns, where that is not the frame's
    # last row (an object cut off by the frame shows nothing of what it stands on)
    below = np.vstack([labels[1:], np.full((1, w), -1, labels.dtype)])
    ys, xs = np.nonzero(below != labels)
    segment = labels[ys, xs]
    lowest = np.full((count, w), -1, np.int64)
    np.maximum.at(lowest, (segment, xs), ys)
    segment, xs = np.nonzero((lowest >= 0) & (lowest < h - 1))
    ys = lowest[segment, xs]
    ground_row = _first_ground_below(ground, params.look_below)[ys, xs]
    hovers = (ground_row >= 0) & (seg_depth[segment] > 0) & (
        ground_depth[np.maximum(ground_row, 0), xs] > params.hover_ratio * seg_depth[segment])
    # sinking: the depth just above the outline pixel (its segment, its column) far behind the plane along
    # that pixel's own ray, with ground right below
    contact = ground_depth[ys, xs]
    local = _depth_above_in_segment(labels, depth)[ys, xs]
    # a column with no depth of its own: the segment's own median (never a borrowed depth: at a plain object's
    # top that is the farther background above it)
    local = np.where(local > 0, local, own_depth[segment])
    sinks = (ground_row >= 0) & (ground_row - ys <= params.sink_ground_gap) & np.isfinite(contact) & (
        local > params.hover_ratio * contact)
    outline = np.bincount(segment, minlength=count)
    hover_count = np.bincount(segment, weights=hovers.astype(np.float64), minlength=count)
    sink_count = np.bincount(segment, weights=sinks.astype(np.float64), minlength=count)
    # (a sinking object's upper part may lie on the plane's continuation: only hovering excludes ground)
    not_ground = on_ground <= params.max_ground_share * np.maximum(measured, 1)
    hovering = (
        (area >= params.min_area)
        & (measured >= needed)
        & (outline >= params.min_outline_px)
        & ((not_ground & (hover_count >= params.min_hover_share * outline))
           | (sink_count >= params.min_hover_share * outline))
    )
    return hovering[labels]

