"""The quality verdict: pose, depth and mask quality (0..1) and ``qc_flags`` from a clip's own evidence.

Every check compares one figure of evidence with its threshold in ``QualitySettings``. A figure at its threshold
scores 0.5 and raises a flag; each quality is the lowest score of its checks, so a quality below 0.5 always
comes with a flag that says why. Scores fall smoothly: ``2 ** -(x / threshold) ** 2`` where more is worse (0.84 at
half the threshold, 0.06 at twice), ``2 ** -(threshold / x) ** 2`` where less is worse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from services.quality.columns import DEPTH_QUALITY, FLAG_SEPARATOR, MASK_QUALITY, POSE_QUALITY, QC_FLAGS
from services.quality.params import QualitySettings

if TYPE_CHECKING:
    from services.quality.evidence import TrackEvidence, ViewEvidence


def worse_above(x: float, threshold: float) -> float:
    return float(2.0 ** -((x / threshold) ** 2))


def worse_below(x: float, threshold: float) -> float:
    return 0.0 if x <= 0 else float(2.0 ** -((threshold / x) ** 2))


@dataclass
class Verdict:
    pose_quality: float | None = None
    depth_quality: float | None = None
    mask_quality: float | None = None
    flags: list[str] = field(default_factory=list)

    def columns(self) -> dict:
        out = {QC_FLAGS: FLAG_SEPARATOR.join(self.flags)}
        for name, value in ((POSE_QUALITY, self.pose_quality), (DEPTH_QUALITY, self.depth_quality),
                            (MASK_QUALITY, self.mask_quality)):
            if value is not None:
                out[name] = round(value, 3)
        return out


class _Concern:
    """The checks of one concern (pose, depth or masks): its quality is the lowest score."""

    def __init__(self, prefix: str, flags: list[str]) -> None:
        self.prefix, self.flags, self.scores, self.reasons = prefix, flags, [1.0], []

    def check(self, reason: str, score: float) -> None:
        self.scores.append(score)
        self.reasons.append(reason)
        if score <= 0.5:
            self.flags.append(f"{self.prefix}:{reason}")

    @property
    def quality(self) -> float:
        return min(self.scores)


# Pose checks about the geometry (what depth and masks are built on), as opposed to the labels read from it.
GEOMETRY = ("tracking-failed", "focal-unconstrained", "few-inliers", "high-reprojection-error",
            "heading-uncertain")


def clip_verdict(track: TrackEvidence | None, views: ViewEvidence | None, cfg: QualitySettings) -> Verdict:
    """The verdict from the tracker's evidence and, once depth and masks exist, the views' evidence."""
    flags: list[str] = []
    pose = _Concern("pose", flags)
    if track is not None:
        if not track.success:
            pose.check("tracking-failed", 0.0)
        if track.focal_from_prior and track.camera_moves:
            pose.check("focal-unconstrained", cfg.unconstrained_focal_quality)
        if track.label_sensitivity is not None:
            pose.check("labels-ambiguous", worse_above(track.label_sensitivity, cfg.label_sensitivity))
        if track.heading_disagreement_deg is not None:
            pose.check("heading-uncertain", worse_above(track.heading_disagreement_deg, cfg.heading_disagreement_deg))
        if track.inlier_tracks_p10 is not None and track.camera_moves:
            pose.check("few-inliers", worse_below(track.inlier_tracks_p10, cfg.min_inlier_tracks))
    verdict = Verdict(flags=flags)
    if views is None:
        verdict.pose_quality = pose.quality if track is not None else None
        return verdict
    s = views.summary()
    if s["pose_residual_px"] is not None:
        pose.check("high-reprojection-error", worse_above(s["pose_residual_px"], cfg.pose_residual_px))
    # depth is triangulated against the poses and masks are the flow the poses do not explain: neither can be
    # trusted further than the poses' geometry (the labels' ambiguity does not reach them)
    geometry = min([pose.scores[0], *[q for q, reason in zip(pose.scores[1:], pose.reasons) if reason in GEOMETRY]])
    depth = _Concern("depth", flags)
    if geometry <= 0.5:
        depth.check("pose-unreliable", geometry)
    if s["depth_transfer_px"] is not None:
        depth.check("high-transfer-error", worse_above(s["depth_transfer_px"], cfg.depth_transfer_px))
    if s["depth_photometric_excess"] is not None:
        depth.check("photometric-error", worse_above(max(s["depth_photometric_excess"], 0.0),
                                                     cfg.depth_photometric_excess))
    if s.get("depth_consistency") is not None:
        depth.check("inconsistent", worse_above(s["depth_consistency"], cfg.depth_consistency))
    if views.shots_with_depth > 1:  # each shot's depth has its own unit (its near depth): no scale across the cut
        depth.check("scale-drift", 0.5)
    masks = _Concern("masks", flags)
    if geometry <= 0.5:
        masks.check("pose-unreliable", geometry)
    if s["flow_noise_px"] is not None:
        masks.check("noisy-flow", worse_above(s["flow_noise_px"], cfg.flow_noise_px))
    if s["contrast"] is not None:
        masks.check("low-contrast", worse_below(s["contrast"], cfg.min_contrast))
    if views.mask_share >= cfg.min_mask_share:
        masks.check("unstable", worse_above(views.mask_instability, cfg.mask_instability))
    verdict.pose_quality = pose.quality
    verdict.depth_quality = depth.quality if views.shots_with_depth else None
    verdict.mask_quality = masks.quality
    return verdict
