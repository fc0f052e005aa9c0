"""A gravity prior for motion masks: what stands below the horizon rests on something.

An object moving parallel to the camera's translation (an oncoming car under a dolly, a car driving
along the street under a truck) is, for every view, exactly a static object at another depth: an
oncoming one looks 1.5-5x nearer than it is. Geometry alone cannot tell; gravity can. Seen at its
apparent depth the car hovers: the ground visible just below its lower edge in the image is far
behind it. A resting object meets the ground where its lower edge does (the depth is continuous
there); a table top or a bumper hangs over ground at most 1.2-1.5x its own distance.

So: fit the ground plane to the frame's triangulated points, cut the depth map into
depth-continuous regions that are not ground, and call a region hovering when, below most of its
lower edge, the first ground pixel is many times farther than the region's own lower edge.
Everything here is in pose units and relative to the camera's height over the plane, so it holds
for poses up to scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.depth.geometry import pixel_grid


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
    edge_log: float = 0.05  # |log z| jump between neighbours that separates regions
    look_below: int = 40  # rows below a region's lower edge searched for the ground
    hover_ratio: float = 1.6  # ground this many times farther than the region's lower edge: hovering
    min_edge_share: float = 0.5  # of the region's lower-edge columns that must hover (and see ground)
    min_area: int = 40  # depth-grid pixels
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
    keep = norms > 1e-12
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
    return np.where(facing < -1e-9, plane.height / np.maximum(-facing, 1e-9), np.inf)


def _first_ground_below(ground: np.ndarray, limit: int) -> np.ndarray:
    """(h, w) int: the row of the first ground pixel strictly below each pixel within ``limit`` rows, else -1."""
    h, w = ground.shape
    nearest = np.full((h, w), -1, np.int64)
    running = np.full(w, -1, np.int64)
    for y in range(h - 1, -1, -1):
        nearest[y] = np.where((running >= 0) & (running - y <= limit), running, -1)
        running = np.where(ground[y], y, running)
    return nearest


def hovering_regions(depth: np.ndarray, K: np.ndarray, plane: GroundPlane,
                     params: SupportParams = SupportParams()) -> np.ndarray:
    """(h, w) bool: depth-continuous non-ground regions that hover over ground far behind them."""
    h, w = depth.shape
    valid = depth > 0
    ground = valid & (np.abs(depth / plane_depth(plane, K, h, w) - 1.0) < params.ground_rel)
    log_z = np.log(np.where(valid, depth, 1.0))
    edge = np.zeros((h, w), bool)
    jump_x = np.abs(np.diff(log_z, axis=1)) > params.edge_log
    jump_y = np.abs(np.diff(log_z, axis=0)) > params.edge_log
    edge[:, 1:] |= jump_x
    edge[:, :-1] |= jump_x
    edge[1:] |= jump_y
    edge[:-1] |= jump_y
    body = valid & ~edge & ~ground
    count, labels = cv2.connectedComponents(body.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros((h, w), bool)
    # a region's lower edge: its pixels whose neighbour below is not in the region
    below_label = np.vstack([labels[1:], np.zeros((1, w), labels.dtype)])
    lower_edge = (labels > 0) & (below_label != labels)
    ground_row = _first_ground_below(ground, params.look_below)
    ys, xs = np.nonzero(lower_edge)
    region = labels[ys, xs]
    gy = ground_row[ys, xs]
    sees_ground = gy >= 0
    ratio = np.where(sees_ground, depth[np.maximum(gy, 0), xs] / depth[ys, xs], 0.0)
    edge_count = np.bincount(region, minlength=count)
    hover_count = np.bincount(region, weights=(ratio > params.hover_ratio).astype(np.float64), minlength=count)
    area = np.bincount(labels.ravel(), minlength=count)
    hovering = (area >= params.min_area) & (hover_count >= params.min_edge_share * np.maximum(edge_count, 1))
    hovering[0] = False
    return hovering[labels]
