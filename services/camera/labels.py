"""Camera-motion labels and trajectory statistics, as the reference defines them,
computed from camera-to-world poses (the reference read world-to-camera positions
as camera centres; here the centre is the c2w translation).

Both work on poses sampled the way the reference's were: every ``int(0.2 * fps)``
frames (about 5 Hz); the label segments are returned in clip frame indices.

Labels: relative motion between samples i and i+interval, expressed in camera i's
axes (OpenCV: x right, y down, z forward): translation -> Dolly/Truck/Pedestal,
rotation as "yxz" Euler angles of the relative rotation -> Pan/Tilt/Roll, then the
reference's "enhanced" vote over intervals {1,3,5} x smoothings {0.03,0.05,0.1}.
One deliberate change: the reference's exponential smoothing runs forward only and
so lags the motion by ~1/alpha samples; here it runs forward and backward (zero phase).
"""

from __future__ import annotations

import itertools
from collections import Counter
from math import sqrt

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks
from scipy.spatial.transform import Rotation

from services.camera.vocabulary import Component, MotionLabel

STAY = MotionLabel.STAY.value  # the label of a sample step without motion

DIST_LEVELS = (0.08, 0.28, 0.92, 2.41)
# The reference votes over EMA alphas (0.03, 0.05, 0.1) at 5 Hz, which smears motion over 2-7 s, so
# labels lag and outlast the motion even on exact poses; these alphas keep its three-way vote but follow the motion.
SMOOTHING_ALPHAS = (0.5, 0.7, 1.0)
INTERVALS = (1, 2, 3)
# Stay wins when it has this many times the votes of the strongest motion (the reference's own 3x gap rule).
STAY_DOMINANCE = 3.0
# The reference's selection: a motion with this many times the votes of the next one stands alone; else every motion
# with at least RUNNER_UP_SHARE of the top votes is kept, at most MAX_LABELS of them.
MOTION_DOMINANCE = 3
RUNNER_UP_SHARE = 0.5
MAX_LABELS = 4
REFERENCE_SAMPLE_S = 0.2  # the reference sampled poses every 0.2 s (5 Hz)
# The reference's rotation threshold: its figure in degrees divided by this (1.5 deg -> 0.83 deg per sample step).
REFERENCE_ROTATION_DIVISOR = 1.8
# The helper axis for the level frame must not be nearly parallel to up (a well-conditioned cross product).
HELPER_AXIS_MAX_COS = 0.9
NORM_FLOOR = 1e-12  # a camera looking straight up has no level forward: no division by its zero length
PITCH_TIE_BREAK = 1e-3  # among equally sparse explanations of the motion, the least pitched camera wins
MIN_ANOMALY_SAMPLES = 4  # the constant-acceleration prediction needs three samples before the one it checks
MIN_TURN_LEG = 1e-8  # a sample this close to the path's start or end has no direction to turn from
TURN_SMOOTHING_SAMPLES = 5  # turning angles are smoothed over about a second at 5 Hz (pose jitter is not a turn)
TURN_MIN_SEPARATION = 5  # two turns count separately only a second or more apart


def reference_sample_step(fps: float) -> int:
    return max(1, int(REFERENCE_SAMPLE_S * fps))


def _ema(x: np.ndarray, alpha: float) -> np.ndarray:
    y = np.empty_like(x)
    y[0] = x[0]
    for i in range(1, len(x)):
        y[i] = alpha * x[i] + (1 - alpha) * y[i - 1]
    return y


def smooth_poses(c2w: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Zero-phase EMA of centres and (hemisphere-aligned) quaternions."""
    C = c2w[:, :3, 3]
    q = Rotation.from_matrix(c2w[:, :3, :3]).as_quat()
    for i in range(1, len(q)):
        if np.dot(q[i - 1], q[i]) < 0:
            q[i] = -q[i]
    Cs = _ema(_ema(C, alpha)[::-1], alpha)[::-1]
    qs = _ema(_ema(q, alpha)[::-1], alpha)[::-1]
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    return Rotation.from_quat(qs).as_matrix(), Cs


def _level_angles(R: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heading (about ``up``), pitch and roll of each camera, radians, unwrapped."""
    f, r = R[:, :, 2], R[:, :, 0]
    h1 = np.cross(up, [1.0, 0.0, 0.0]) if abs(up[0]) < HELPER_AXIS_MAX_COS else np.cross(up, [0.0, 0.0, 1.0])
    h1 /= np.linalg.norm(h1)
    h2 = np.cross(up, h1)  # h1 -> h2 is a positive (counter-clockwise from above) turn about up
    yaw = np.unwrap(np.arctan2(f @ h2, f @ h1))
    pitch = np.arcsin(np.clip(f @ up, -1.0, 1.0))
    r0 = np.cross(f, up)
    r0 /= np.maximum(np.linalg.norm(r0, axis=1, keepdims=True), NORM_FLOOR)
    d0 = np.cross(f, r0)
    roll = np.unwrap(np.arctan2((r * d0).sum(1), (r * r0).sum(1)))
    return yaw, pitch, roll


def motion_components(R: np.ndarray, C: np.ndarray, up: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """(len(i), 6): dolly, truck, pedestal (translation along the level forward / right / up of
    camera i) and pan (left +), tilt (up +), roll (clockwise +) in radians, from sample i to j."""
    yaw, pitch, roll = _level_angles(R, up)
    f = R[i, :, 2]
    fh = f - (f @ up)[:, None] * up
    fh /= np.maximum(np.linalg.norm(fh, axis=1, keepdims=True), NORM_FLOOR)
    rh = np.cross(fh, up)
    d = C[j] - C[i]
    return np.column_stack([(d * fh).sum(1), (d * rh).sum(1), d @ up,
                            yaw[j] - yaw[i], pitch[j] - pitch[i], roll[j] - roll[i]])


def _pair_instructions(R: np.ndarray, C: np.ndarray, up: np.ndarray, t_thr: float, r_thr_deg: float,
                       interval: int) -> list[list[str]]:
    r_thr = np.radians(r_thr_deg * sqrt(interval) / REFERENCE_ROTATION_DIVISOR)
    t_thr = t_thr * sqrt(interval)
    i = np.arange(0, len(R) - interval, _stride(interval))
    if not len(i):
        return []
    comp = motion_components(R, C, up, i, i + interval)
    thr = np.array([t_thr] * 3 + [r_thr] * 3)
    out = []
    for row in comp:
        ins = [MotionLabel.of(k, row[k] > 0).value for k in Component if abs(row[k]) > thr[k]]
        out.append(ins or [STAY])
    return out


def estimate_up(c2w: np.ndarray, t_thr: float, r_thr_rad: float, max_pitch_deg: float = 60.0) -> np.ndarray:
    """World up in the world frame (the first camera's axes), assuming the first frame's horizon is
    level (no roll) and choosing the camera pitch that describes the motion with the fewest
    simultaneous components (dolly/truck are level, pans turn about the vertical, pedestals are
    vertical): an L1 sparsity fit. No motion -> pitch 0 (the camera looks at the horizon)."""
    R0 = c2w[0, :3, :3]
    R, C = c2w[:, :3, :3], c2w[:, :3, 3]
    i = np.arange(len(R) - 1)
    best, best_up = np.inf, R0 @ np.array([0.0, -1.0, 0.0])
    scale = np.array([t_thr] * 3 + [r_thr_rad] * 3)
    for pitch in np.radians(np.arange(-max_pitch_deg, max_pitch_deg + 0.5, 1.0)):
        up = R0 @ np.array([0.0, -np.cos(pitch), -np.sin(pitch)])
        comp = motion_components(R, C, up, i, i + 1) / scale
        cost = np.abs(comp).sum() + PITCH_TIE_BREAK * abs(pitch)
        if cost < best:
            best, best_up = cost, up
    return best_up


PAIR_STRIDE = None  # None: the reference's int(sqrt(interval) + 1); 1: every pair


def _stride(interval: int) -> int:
    return PAIR_STRIDE or int(sqrt(interval) + 1)


def _select(votes: Counter) -> list[str]:
    """The reference's conflict removal and 'smart selection' (at most 4 labels)."""
    chosen, taken = [], set()
    for inst, count in votes.most_common():
        if MotionLabel(inst).opposite in taken:
            continue
        chosen.append((inst, count))
        taken.add(inst)
    if not chosen:
        return [STAY]
    if len(chosen) == 1:
        return [chosen[0][0]]
    others = [c for c in chosen if c[0] != STAY]
    if not others:
        return [STAY]
    stay = sum(c for i, c in chosen if i == STAY)
    if stay >= STAY_DOMINANCE * others[0][1]:
        # not in the reference (any single motion vote beat Stay, so labels ran on after the camera stopped)
        return [STAY]
    counts = [c for _, c in others]
    top = counts[0]
    if len(others) >= 2 and top >= counts[1] * MOTION_DOMINANCE:
        sel = [i for i, c in others if c == top]
    else:
        sel = [i for i, c in others if c >= top * RUNNER_UP_SHARE][:MAX_LABELS]
    if len(sel) < 2 and len(others) >= 2 and top < counts[1] * MOTION_DOMINANCE:
        sel = [i for i, _ in others[:2]]
    return sel or [STAY]


def path_length(C: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(C, axis=0), axis=1).sum()) if len(C) > 1 else 0.0


def sample_instructions(c2w: np.ndarray, intervals=INTERVALS, alphas=SMOOTHING_ALPHAS, f_translation: float = 1.1,
                        min_translation: float = 0.01, rotation_deg: float = 1.5) -> list[list[str]]:
    """Per-sample-step labels (len = number of poses - 1) for poses already at the reference's rate."""
    n = len(c2w)
    if n < 2:
        return []
    t_thr = max(path_length(c2w[:, :3, 3]) / n / f_translation, min_translation)
    up = estimate_up(c2w, t_thr, np.radians(rotation_deg / REFERENCE_ROTATION_DIVISOR))
    results = []
    for interval, alpha in itertools.product(intervals, alphas):
        R, C = smooth_poses(c2w, alpha)
        results.append((interval, _pair_instructions(R, C, up, t_thr, rotation_deg, interval)))
    final = []
    for start in range(n - 1):
        votes: Counter = Counter()
        for interval, seq in results:
            stride = _stride(interval)
            for k, ins in enumerate(seq):
                s0 = k * stride
                if s0 <= start and start + 1 <= s0 + interval:
                    votes.update(ins)
        final.append(_select(votes) if votes else [STAY])
    return final


def motion_instructions(c2w: np.ndarray, fps: float, frame_indices: np.ndarray | None = None,
                        segments: list[tuple[int, int]] | None = None, **kwargs) -> dict[str, list[str]]:
    """``{"start->end": labels}`` in clip frame indices (end exclusive), from dense c2w poses.

    Poses are sampled every ``int(0.2 fps)`` frames; each step's labels cover the frames
    between its two samples. Segments (hard cuts) are labelled independently.
    """
    n = len(c2w)
    idx = np.arange(n) if frame_indices is None else np.asarray(frame_indices)
    segments = segments or [(int(idx[0]), int(idx[-1]) + 1)] if n else []
    step = reference_sample_step(fps)
    per_frame: list[list[str]] = [[STAY] for _ in range(n)]
    for a, b in segments:
        rows = np.nonzero((idx >= a) & (idx < b))[0]
        if len(rows) < 2:
            continue
        samples = rows[::step]
        if samples[-1] != rows[-1]:
            samples = np.append(samples, rows[-1])
        labels = sample_instructions(c2w[samples], **kwargs)
        for k, lab in enumerate(labels):
            for r in range(samples[k], samples[k + 1] + (1 if k == len(labels) - 1 else 0)):
                per_frame[r] = lab
    out: dict[str, list[str]] = {}
    start = 0
    for r in range(1, n + 1):
        if r == n or per_frame[r] != per_frame[start]:
            out[f"{int(idx[start])}->{int(idx[r - 1]) + 1}"] = per_frame[start]
            start = r
    return out


# ---- trajectory statistics -------------------------------------------------------------------
def anomaly(C: np.ndarray, threshold: float = 0.03, consecutive: int = 2) -> bool:
    """Constant-acceleration prediction error above ``threshold`` on ``consecutive`` samples in a row."""
    if len(C) < MIN_ANOMALY_SAMPLES:
        return True  # the reference flags clips too short to judge
    v1 = C[2:-1] - C[1:-2]
    v2 = C[1:-2] - C[:-3]
    pred = C[2:-1] + v1 + 0.5 * (v1 - v2)
    err = np.linalg.norm(pred - C[3:], axis=1) > threshold
    run = 0
    for e in err:
        run = run + 1 if e else 0
        if run >= consecutive:
            return True
    return False


def dist_level(distance: float) -> int:
    return int(sum(distance >= t for t in DIST_LEVELS))


def rotation_total(R: np.ndarray) -> float:
    """Sum of the angles (radians) of consecutive relative rotations."""
    if len(R) < 2:
        return 0.0
    rel = np.einsum("nji,njk->nik", R[:-1], R[1:])
    return float(np.linalg.norm(Rotation.from_matrix(rel).as_rotvec(), axis=1).sum())


def trajectory_turns(C: np.ndarray, threshold: float = 0.45) -> int:
    n = len(C)
    if n < 3:
        return 0
    v1 = C[1:-1] - C[0]
    v2 = C[-1] - C[1:-1]
    n1, n2 = np.linalg.norm(v1, axis=1), np.linalg.norm(v2, axis=1)
    ok = (n1 >= MIN_TURN_LEG) & (n2 >= MIN_TURN_LEG)
    if not ok.any():
        return 0
    cos = (v1[ok] * v2[ok]).sum(1) / (n1[ok] * n2[ok])
    angles = gaussian_filter1d(np.arccos(np.clip(cos, -1, 1)), sigma=TURN_SMOOTHING_SAMPLES, mode="reflect")
    peaks, _ = find_peaks(angles, height=threshold, distance=TURN_MIN_SEPARATION)
    count = len(peaks)
    if angles.max() > threshold and not np.isin(angles.max(), angles[peaks]):
        count += 1
    return count


def trajectory_stats(c2w: np.ndarray, fps: float | None = None) -> dict:
    """``anomaly, moveDist, distLevel, rotAngle, trajTurns`` on poses sampled at the reference's rate."""
    P = c2w[:: reference_sample_step(fps)] if fps else c2w
    if fps and len(c2w) and (len(c2w) - 1) % reference_sample_step(fps):
        P = np.concatenate([P, c2w[-1:]])
    C = P[:, :3, 3]
    d = path_length(C)
    return dict(anomaly=bool(anomaly(C)), moveDist=d, distLevel=dist_level(d),
                rotAngle=rotation_total(P[:, :3, :3]), trajTurns=int(trajectory_turns(C)))
