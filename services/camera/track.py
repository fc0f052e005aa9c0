"""The pure entry point: frames in, per-frame camera poses and intrinsics out.

Pipeline per clip: KLT tracks over every frame (streamed, compact) -> split at hard
cuts -> per segment: keyframe odometry at a prior focal, focal self-calibration on
the stretch with the most pan/tilt (or, where motion cannot tell it, orthogonal vanishing points
sampled while streaming), odometry again at that focal, a second bundle-adjustment pass over
overlapping 16-keyframe windows, every frame posed against the map -> a translation that only rigidly
moving objects carry is dropped (movers.py: the segment is tracked again as a pure rotation without them,
at a focal re-estimated without them) -> segments chained end to start.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from dataclasses import dataclass, field, replace

import numpy as np

from services.camera.frontend import FrameTracks, FrontEndConfig, KLTTracker
from services.camera.geometry import c2w_matrices
from services.camera.intrinsics import estimate_focal, focal_to_hfov, hfov_to_focal
from services.camera.movers import only, translation_from_movers
from services.camera.sfm import Intrinsics, SfmConfig, keyframe_positions, run_segment
from services.camera.vanishing import VanishingConfig, combine, frame_focal

BACKEND = "geometric-klt-ba/1"


@dataclass
class CameraTrack:
    c2w: np.ndarray  # (N,4,4) camera-to-world, OpenCV axes, first frame identity, up to scale
    intrinsics: np.ndarray  # (N,4) fx/W, fy/H, cx/W, cy/H
    frame_indices: np.ndarray  # (N,) clip frame of each row
    success: bool
    reason: str | None
    backend: str = BACKEND
    # Extra diagnostics (not part of the published layout)
    segments: list[tuple[int, int]] = field(default_factory=list)  # [start, end) frame ranges split at hard cuts
    focal_estimated: list[bool] = field(default_factory=list)
    focal_source: list[str] = field(default_factory=list)
    hfov_deg: list[float] = field(default_factory=list)
    inliers: np.ndarray | None = None  # (N,) inlier tracks per frame
    # The front end's tracks of every frame (for the quality verdict's independent checks; not published).
    frame_tracks: list[FrameTracks] = field(default_factory=list)
    working_size: tuple[int, int] | None = None  # (w, h) of the tracks' pixels
    notes: list[str] = field(default_factory=list)


def _split_segments(tracks: list[FrameTracks]) -> list[list[FrameTracks]]:
    out: list[list[FrameTracks]] = []
    for ft in tracks:
        if not out or ft.segment != out[-1][-1].segment:
            out.append([])
        out[-1].append(ft)
    return out


def _segment_focal(seg: list[FrameTracks], stride: int, vanishing: list[float | None], vp_cfg: VanishingConfig,
                   K0: Intrinsics, prior_label: str, cfg: SfmConfig) -> tuple[Intrinsics, str, bool]:
    """The segment's focal from its motion or, where the motion cannot tell it, its vanishing points."""
    Ww, Hw = 2 * K0.cx, 2 * K0.cy
    est = estimate_focal([seg[p] for p in keyframe_positions(len(seg), stride)], K0.f, Ww, Hw, prior_label, cfg)
    f, source, estimated = est.f, est.source, est.estimated
    vp = combine(vanishing, vp_cfg)
    if not est.estimated and not est.source.startswith("bound:") and vp is not None:
        # the motion cannot tell the focal; the scene's orthogonal vanishing points can
        f, estimated = vp.f, True
        source = (f"vanishing points ({vp.frames}/{vp.sampled} frames, spread {100 * vp.spread:.1f}%); "
                  f"motion: {est.source}")
    return Intrinsics(f, K0.cx, K0.cy), source, estimated


def track_camera(frames: Iterable[np.ndarray], fps: float, settings) -> CameraTrack:
    """Track every frame; ``settings`` is the camera section, ``CameraSettings`` (services/camera/params.py)."""
    fe = FrontEndConfig(camera=settings)
    tracker = KLTTracker(fe)
    tracks: list[FrameTracks] = []
    vp_cfg, rng = VanishingConfig(), np.random.default_rng(0)
    vanishing: dict[int, list[float | None]] = {}  # segment -> per-sampled-frame focal (working pixels)
    width = height = 0
    for index, rgb in enumerate(frames):
        ft = tracker.push(index, rgb)
        tracks.append(ft)
        height, width = rgb.shape[:2]
        if settings.vanishing_every and not settings.known_hfov_deg and index % settings.vanishing_every == 0:
            # only a few numbers per frame are kept: memory stays flat with clip length
            vanishing.setdefault(ft.segment, []).append(frame_focal(tracker.prev_gray, vp_cfg, rng))
    n = len(tracks)
    if n == 0:
        return CameraTrack(np.zeros((0, 4, 4)), np.zeros((0, 4)), np.zeros(0, int), False, "no frames", BACKEND)
    Ww, Hw = tracker.size
    cfg = SfmConfig(camera=settings)
    stride = max(1, int(round(fps / settings.keyframe_rate_hz)))
    f_prior = hfov_to_focal(settings.prior_hfov_deg, Ww)
    prior_label = f"hfov {settings.prior_hfov_deg:g} deg"
    if settings.known_hfov_deg:
        f_prior, prior_label = hfov_to_focal(settings.known_hfov_deg, Ww), f"given hfov {settings.known_hfov_deg:g} deg"
    K0 = Intrinsics(f_prior, Ww / 2.0, Hw / 2.0)

    c2w = np.tile(np.eye(4), (n, 1, 1))
    intr = np.zeros((n, 4))
    inliers = np.zeros(n, int)
    result = CameraTrack(c2w, intr, np.arange(n), True, None, BACKEND)
    failures: list[str] = []
    base = np.eye(4)
    segment_focal = partial(_segment_focal, stride=stride, vp_cfg=vp_cfg, K0=K0, prior_label=prior_label, cfg=cfg)
    for seg in _split_segments(tracks):
        a, b = seg[0].index, seg[-1].index + 1
        result.segments.append((a, b))
        if len(seg) < 2:
            c2w[a:b] = base
            intr[a:b] = (K0.f / Ww, K0.f / Hw, 0.5, 0.5)
            result.focal_estimated.append(False)
            result.focal_source.append("prior: single-frame segment")
            result.hfov_deg.append(focal_to_hfov(K0.f, Ww))
            continue
        K, source, estimated = K0, f"prior ({prior_label})", False
        if not settings.known_hfov_deg:
            K, source, estimated = segment_focal(seg, vanishing=vanishing.get(seg[0].segment, []))
        res = run_segment(seg, K, cfg, stride)
        if settings.mover_test and not all(res.odometry.rotation_only[1:]):
            focal_trusted = estimated or bool(settings.known_hfov_deg)
            verdict = translation_from_movers([seg[p] for p in res.keyframes], K, cfg, res.odometry, focal_trusted)
            if verdict.drop:
                seg = [only(ft, verdict.mover_ids, keep=False) for ft in seg]
                if not settings.known_hfov_deg:  # the movers no longer bias the focal
                    K, source, estimated = segment_focal(seg, vanishing=vanishing.get(seg[0].segment, []))
                res = run_segment(seg, K, replace(cfg, rotation_only=True), stride)
                result.notes.append(f"frames {a}-{b}: {verdict.note()}")
        if res.failure:
            failures.append(res.failure)
        T = base @ c2w_matrices(res.R, res.C)
        c2w[a:b] = T
        base = T[-1]
        intr[a:b] = (K.f / Ww, K.f / Hw, 0.5, 0.5)
        inliers[a:b] = res.inliers
        result.focal_estimated.append(estimated)
        result.focal_source.append(source)
        result.hfov_deg.append(focal_to_hfov(K.f, Ww))
    result.inliers = inliers
    result.frame_tracks, result.working_size = tracks, (Ww, Hw)
    if len(result.segments) > 1:
        cuts = ", ".join(str(s[0]) for s in result.segments[1:])
        result.notes.append(f"hard cut at frame {cuts}: tracked as {len(result.segments)} segments chained end to start; "
                            "scale is not shared across segments")
    if failures:
        result.success = False
        result.reason = "; ".join(failures)
    return result
