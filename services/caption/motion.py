"""Camera motion in words: labels, trajectory statistics and poses turned into sentences.

Pure functions, no I/O. Positions and rotations are read from camera-to-world
matrices in OpenCV axes (x right, y down, z forward) and expressed in the
first camera's frame, so "forward" means the way the camera first looked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from services.camera.vocabulary import MotionLabel
from services.caption.context import MotionSegment

# distLevel 0..4 (path length bands at 0.08 / 0.28 / 0.92 / 2.41) in words.
DIST_LEVEL_WORDS = (
    "stays essentially in place",
    "moves only slightly",
    "moves a moderate distance",
    "travels a long way",
    "travels a very long way",
)


def canonical(labels: Sequence[str]) -> tuple[str, ...]:
    """Labels in vocabulary order, duplicates removed, ``Stay`` dropped beside real motion."""
    ordered = tuple(label for label in MotionLabel.texts() if label in set(labels))
    moving = tuple(label for label in ordered if label != MotionLabel.STAY)
    return moving or (MotionLabel.STAY.value,)


def merge_adjacent(segments: Sequence[MotionSegment]) -> list[MotionSegment]:
    merged: list[MotionSegment] = []
    for seg in segments:
        labels = canonical(seg.labels)
        if merged and merged[-1].labels == labels:
            merged[-1] = MotionSegment(merged[-1].start, seg.end, labels)
        else:
            merged.append(MotionSegment(seg.start, seg.end, labels))
    return merged


def summarise_segments(segments: Sequence[MotionSegment], min_fraction: float = 0.05) -> list[MotionSegment]:
    """Merge runs of the same motion and drop flickers shorter than ``min_fraction`` of the clip.

    This is exactly the sequence the motion sentence describes, in order.
    """
    merged = merge_adjacent(segments)
    if not merged:
        return []
    span = merged[-1].end - merged[0].start
    kept = [seg for seg in merged if seg.length >= min_fraction * span]
    return merge_adjacent(kept or merged)


def motion_phrase(labels: Sequence[str]) -> str:
    """``("Dolly In", "Pan Right")`` -> "moves forward while panning right"."""
    labels = canonical(labels)
    head = MotionLabel(labels[0]).verb
    rest = [MotionLabel(label).verb_ing for label in labels[1:]]
    if not rest:
        return head
    return f"{head} while " + (rest[0] if len(rest) == 1 else ", ".join(rest[:-1]) + " and " + rest[-1])


def _when(seg: MotionSegment, fps: float | None) -> str:
    return f" ({seg.start / fps:.1f}-{seg.end / fps:.1f} s)" if fps else ""


def describe_segments(segments: Sequence[MotionSegment], fps: float | None = None) -> str:
    """One sentence that walks through the summarised motion segments in order."""
    parts = summarise_segments(segments)
    if not parts:
        return ""
    if len(parts) == 1:
        return f"Throughout the shot, the camera {motion_phrase(parts[0].labels)}."
    phrases = [motion_phrase(seg.labels) + _when(seg, fps) for seg in parts]
    if len(phrases) == 2:
        return f"The camera first {phrases[0]}, then {phrases[1]}."
    middle = "".join(f", then {p}" for p in phrases[1:-1])
    return f"The camera first {phrases[0]}{middle}, and finally {phrases[-1]}."


def trends_from_segments(segments: Sequence[MotionSegment], slight: bool = False) -> list[str]:
    """Up to three sustained motions (each covering at least 15% of the clip), in order of onset."""
    parts = merge_adjacent(segments)
    if not parts:
        return []
    span = max(1, parts[-1].end - parts[0].start)
    share: dict[str, int] = {}
    onset: dict[str, int] = {}
    for seg in parts:
        for label in seg.labels:
            share[label] = share.get(label, 0) + seg.length
            onset.setdefault(label, seg.start)
    major = [label for label in share if share[label] >= 0.15 * span]
    major = sorted(major, key=lambda label: -share[label])[:3]
    major.sort(key=lambda label: onset[label])
    return [("slight " if slight and MotionLabel(label).is_translation else "") + MotionLabel(label).trend
            for label in major]


# -- poses -------------------------------------------------------------------
def local_positions(c2w: np.ndarray) -> np.ndarray:
    """Camera centres relative to the first camera, in its axes (x right, y down, z forward)."""
    centres = c2w[:, :3, 3]
    return (centres - centres[0]) @ c2w[0, :3, :3]


def net_rotation_degrees(c2w: np.ndarray) -> tuple[float, float, float]:
    """(yaw right, pitch up, roll clockwise) of the last camera against the first, in degrees.

    Intrinsic y-x-z Euler angles of the relative rotation, in the camera's axes
    (the reference's order). With y pointing down, a positive angle about y
    turns the view right; about x, with this sign convention, tilts it up;
    about z, rolls it clockwise as seen from behind.
    """
    relative = c2w[0, :3, :3].T @ c2w[-1, :3, :3]
    yaw, pitch, roll = Rotation.from_matrix(relative).as_euler("YXZ", degrees=True)
    return float(yaw), float(pitch), float(roll)


def trends_from_poses(c2w: np.ndarray, moving: bool = True, min_degrees: float = 5.0) -> list[str]:
    """Dominant net motions read straight from the poses (used when no labels exist).

    Roll needs twice ``min_degrees``: a pan about a vertical axis while the
    camera looks down shows up partly as roll in the camera's own axes.
    """
    trends: list[str] = []
    net = local_positions(c2w)[-1]
    length = float(np.linalg.norm(net))
    if moving and length > 0:
        axes = (("right translate", "left translate"), ("downward translate", "upward translate"),
                ("forward translate", "backward translate"))
        for value, (positive, negative) in zip(net, axes):
            if abs(value) >= 0.5 * length:
                trends.append((positive if value > 0 else negative, abs(value)))
    yaw, pitch, roll = net_rotation_degrees(c2w)
    for value, threshold, (positive, negative) in (
        (yaw, min_degrees, ("right pan", "left pan")), (pitch, min_degrees, ("upward tilt", "downward tilt")),
        (roll, 2 * min_degrees, ("clockwise roll", "counter-clockwise roll")),
    ):
        if abs(value) >= threshold:
            trends.append((positive if value > 0 else negative, abs(value) / 30.0 * length))
    ranked = [name for name, _ in sorted(trends, key=lambda t: -t[1])][:3]
    return ranked or ["static hold"]


def describe_poses(c2w: np.ndarray, moving: bool = True) -> str:
    """A sentence on the net motion from the poses alone (when no labels exist)."""
    trends = trends_from_poses(c2w, moving)
    if trends == ["static hold"]:
        return "The camera stays essentially still; its net position and heading barely change."
    words = {"right translate": "moves to the right", "left translate": "moves to the left",
             "downward translate": "moves down", "upward translate": "moves up",
             "forward translate": "moves forward", "backward translate": "moves backward",
             "right pan": "turns right", "left pan": "turns left", "upward tilt": "tilts up",
             "downward tilt": "tilts down", "clockwise roll": "rolls clockwise",
             "counter-clockwise roll": "rolls counter-clockwise"}
    phrases = [words[t] for t in trends]
    joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"Over the shot, the camera mostly {joined}."


def quantised_translations(c2w: np.ndarray, max_points: int = 16, scale: int = 100) -> np.ndarray:
    """(3, K) integers in [-scale, scale]: x, y, z of the camera path, normalised by its extent.

    What the LLM gets instead of raw poses: relative to the first camera in its
    axes, sampled evenly, so the numbers say direction and pacing, not units.
    """
    positions = local_positions(c2w)
    picks = np.unique(np.linspace(0, len(positions) - 1, min(max_points, len(positions))).round().astype(int))
    sampled = positions[picks]
    extent = float(np.abs(sampled).max()) if sampled.size else 0.0
    if extent <= 1e-9:
        return np.zeros((3, len(picks)), dtype=int)
    return np.round(sampled / extent * scale).astype(int).T


def distance_sentence(dist_level: float | None, move_dist: float | None,
                      rot_angle: float | None, turns: float | None) -> str:
    """The trajectory statistics as one sentence (empty when none is known)."""
    clauses = []
    if dist_level is not None:
        level = int(min(4, max(0, round(dist_level))))
        clause = f"it {DIST_LEVEL_WORDS[level]}"
        if move_dist is not None:
            clause += f" (a path of {move_dist:.2f} scene units, distance level {level} of 4)"
        clauses.append(clause)
    elif move_dist is not None:
        clauses.append(f"its path is {move_dist:.2f} scene units long")
    if rot_angle is not None:
        clauses.append(f"it turns through about {rot_angle:.0f} degrees in all")
    if turns is not None:
        n = int(round(turns))
        clauses.append("its heading never changes sharply" if n == 0 else
                       f"its heading changes sharply {n} time{'s' if n != 1 else ''}")
    if not clauses:
        return ""
    body = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    return f"Overall, {body}."
