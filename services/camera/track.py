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
from services.camera.sfm import Intrinsics, SfmConfig, SfmResult, keyframe_positions, run_segment
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
    vp_cfg = VanishingConfig()
    streamed = _stream_tracks(frames, settings, vp_cfg)
    n = len(streamed.tracks)
    if n == 0:
        return CameraTrack(np.zeros((0, 4, 4)), np.zeros((0, 4)), np.zeros(0, int), False, "no frames", BACKEND)
    Ww, Hw = streamed.working_size
    K0, prior_label = _focal_prior(settings, Ww, Hw)
    stride = max(1, int(round(fps / settings.keyframe_rate_hz)))
    solve = partial(_solve_segment, K0=K0, prior_label=prior_label, settings=settings, cfg=SfmConfig(camera=settings),
                    stride=stride, vp_cfg=vp_cfg, vanishing=streamed.vanishing)
    result = CameraTrack(np.tile(np.eye(4), (n, 1, 1)), np.zeros((n, 4)), np.arange(n), True, None, BACKEND)
    result.inliers = np.zeros(n, int)
    failures = _chain_segments(result, _split_segments(streamed.tracks), solve, K0, (Ww, Hw))
    result.frame_tracks, result.working_size = streamed.tracks, (Ww, Hw)
    if len(result.segments) > 1:
        cuts = ", ".join(str(s[0]) for s in result.segments[1:])
        result.notes.append(f"hard cut at frame {cuts}: tracked as {len(result.segments)} segments chained end to start; "
                            "scale is not shared across segments")
    if failures:
        result.success = False
        result.reason = "; ".join(failures)
    return result


@dataclass
class _Streamed:
    """What one pass over the frames leaves: every frame's tracks and the vanishing-point focal samples."""

    tracks: list[FrameTracks]
    vanishing: dict[int, list[float | None]]  # segment -> per-sampled-frame focal (working pixels)
    working_size: tuple[int, int] | None


def _stream_tracks(frames: Iterable[np.ndarray], settings, vp_cfg: VanishingConfig) -> _Streamed:
    tracker = KLTTracker(FrontEndConfig(camera=settings))
    rng = np.random.default_rng(0)
    streamed = _Streamed([], {}, None)
    sample_vanishing = settings.vanishing_every and not settings.known_hfov_deg
    for index, rgb in enumerate(frames):
        ft = tracker.push(index, rgb)
        streamed.tracks.append(ft)
        if sample_vanishing and index % settings.vanishing_every == 0:
            # only a few numbers per frame are kept: memory stays flat with clip length
            streamed.vanishing.setdefault(ft.segment, []).append(frame_focal(tracker.prev_gray, vp_cfg, rng))
    streamed.working_size = tracker.size
    return streamed


def _focal_prior(settings, Ww: int, Hw: int) -> tuple[Intrinsics, str]:
    """The focal a segment starts from: the given field of view, else the prior one."""
    if settings.known_hfov_deg:
        hfov, label = settings.known_hfov_deg, f"given hfov {settings.known_hfov_deg:g} deg"
    else:
        hfov, label = settings.prior_hfov_deg, f"hfov {settings.prior_hfov_deg:g} deg"
    return Intrinsics(hfov_to_focal(hfov, Ww), Ww / 2.0, Hw / 2.0), label


@dataclass
class _SegmentFit:
    K: Intrinsics
    source: str  # where the focal came from
    estimated: bool  # the focal was measured (motion or vanishing points), not a prior
    result: SfmResult | None = None  # None: a single-frame segment, nothing to solve
    note: str | None = None


def _solve_segment(seg: list[FrameTracks], K0: Intrinsics, prior_label: str, settings, cfg: SfmConfig, stride: int,
                   vp_cfg: VanishingConfig, vanishing: dict[int, list[float | None]]) -> _SegmentFit:
    """The segment's focal and poses; a translation only movers carry is dropped (tracked again as a rotation)."""
    samples = vanishing.get(seg[0].segment, [])
    K, source, estimated = K0, f"prior ({prior_label})", False
    if not settings.known_hfov_deg:
        K, source, estimated = _segment_focal(seg, stride, samples, vp_cfg, K0, prior_label, cfg)
    res = run_segment(seg, K, cfg, stride)
    if not settings.mover_test or all(res.odometry.rotation_only[1:]):
        return _SegmentFit(K, source, estimated, res)
    focal_trusted = estimated or bool(settings.known_hfov_deg)
    verdict = translation_from_movers([seg[p] for p in res.keyframes], K, cfg, res.odometry, focal_trusted)
    if not verdict.drop:
        return _SegmentFit(K, source, estimated, res)
    seg = [only(ft, verdict.mover_ids, keep=False) for ft in seg]
    if not settings.known_hfov_deg:  # the movers no longer bias the focal
        K, source, estimated = _segment_focal(seg, stride, samples, vp_cfg, K0, prior_label, cfg)
    res = run_segment(seg, K, replace(cfg, rotation_only=True), stride)
    return _SegmentFit(K, source, estimated, res, verdict.note())


def _chain_segments(result: CameraTrack, segments: list[list[FrameTracks]], solve, K0: Intrinsics,
                    working_size: tuple[int, int]) -> list[str]:
    """Solve each segment and chain it end to start into ``result``; the segments' failures."""
    Ww, Hw = working_size
    failures: list[str] = []
    base = np.eye(4)
    for seg in segments:
        a, b = seg[0].index, seg[-1].index + 1
        result.segments.append((a, b))
        if len(seg) < 2:
            fit = _SegmentFit(K0, "prior: single-frame segment", False)
            result.c2w[a:b] = base
        else:
            fit = solve(seg)
            if fit.result.failure:
                failures.append(fit.result.failure)
            T = base @ c2w_matrices(fit.result.R, fit.result.C)
            result.c2w[a:b] = T
            base = T[-1]
            result.inliers[a:b] = fit.result.inliers
            if fit.note:
                result.notes.append(f"frames {a}-{b}: {fit.note}")
        result.intrinsics[a:b] = (fit.K.f / Ww, fit.K.f / Hw, 0.5, 0.5)
        result.focal_estimated.append(fit.estimated)
        result.focal_source.append(fit.source)
        result.hfov_deg.append(focal_to_hfov(fit.K.f, Ww))
    return failures
