"""The quality verdict's settings section (``quality:``): the thresholds services/quality/verdict.py receives as is.

Light on purpose: services/settings.py imports it.
"""

from __future__ import annotations

from pydantic import Field

from services.section import Section


class QualitySettings(Section):
    """The quality verdict's thresholds (services/quality): each is where the evidence says the annotation is
    likely wrong, so a clip beyond it gets a flag and a quality of 0.5 or less. Pixel figures are on a
    640-pixel-wide image whatever the clip's size, so the verdict does not depend on the resolution."""

    # Frame pairs this many annotated frames apart are checked: enough baseline to see parallax at 24-30 fps.
    pair_offset: int = Field(4, ge=1)
    # Check a pair every this many annotated frames (cost: one optical flow per pair at 320 px).
    pair_every: int = Field(4, ge=1)
    # Distant pairs this many annotated frames apart: their depths are compared through the poses, where a drift
    # of the depth's scale that neighbouring frames hide has grown (about half a second at 24-30 fps).
    long_pair_offset: int = Field(16, ge=1)
    # Compare a distant pair every this many annotated frames (geometry only, no flow: cheap).
    long_pair_every: int = Field(4, ge=1)
    # Static pixels' flow should land where the poses put them (epipolar line, or the rotation's image when the
    # camera does not translate): 0.5 deg of rotation error moves points by about 4 px at a 60 deg lens.
    pose_residual_px: float = Field(1.5, gt=0)
    # Motion labels that flip on more than this share of frames when the labeller's thresholds move by
    # label_threshold_factor rest on motion at the threshold, where a pose error flips them too (the labels' target
    # is 90% agreement).
    label_sensitivity: float = Field(0.1, gt=0, le=1)
    # How far a motion rate may be off: 20% is what a few percent of focal error and the rotation/translation
    # coupling of tracked poses do to a pan or truck rate.
    label_threshold_factor: float = Field(1.2, gt=1)
    # The poses' direction of travel and a two-view estimate of it from the same tracks disagree by more than this
    # (deg, median over pairs half a second apart): the heading sits in a rotation-translation trade-off the
    # clip does not resolve, which tilts the path against the orientations and bends the depth (an offset in
    # inverse depth). Two sound estimates of a heading over half a second agree to about half of this (tracking
    # noise of 0.3 px on a truck past a scene 4-12 depth units away).
    heading_disagreement_deg: float = Field(5.0, gt=0)
    # Fewer inlier tracks than this on a tenth of the frames: too little evidence for a reliable pose.
    min_inlier_tracks: float = Field(40.0, gt=0)
    # A translation needs depth to be where the flow says: median transfer error of the depth into the
    # neighbouring view, in px; a depth 10% wrong moves a point by ~10% of its parallax.
    depth_transfer_px: float = Field(1.0, gt=0)
    # Depth carried by the poses from one frame to a distant one disagrees with that frame's own depth by more
    # than this (median |log ratio|, 80th percentile of the pairs): the depth's scale drifts along the clip, which
    # a 10% depth error target (AbsRel 0.10) cannot absorb.
    depth_consistency: float = Field(0.1, gt=0)
    # Photometric check: mean absolute grey difference (0-255) after warping the neighbour by the depth and poses,
    # beyond what warping by the measured flow leaves (noise and compression cancel out).
    depth_photometric_excess: float = Field(4.0, gt=0)
    # Masks that change this much between consecutive frames (1 - IoU) flicker rather than follow objects: a mask
    # overlapping its next frame's by under 70% would move by over a fifth of its size per frame, faster than
    # objects move at 24-30 fps.
    mask_instability: float = Field(0.3, gt=0, le=1)
    # Masks covering less than this share of the frames are too small to judge for flicker (half the 1% of false
    # positives that matters on a clip without movers).
    min_mask_share: float = Field(0.005, ge=0, le=1)
    # Forward-backward flow error of static pixels (px): compression and noise at this level drown the
    # residual of slow or small movers.
    flow_noise_px: float = Field(0.8, gt=0)
    # Grey-level spread (std, 0-255) of a frame below this: too little texture for flow to see movers.
    min_contrast: float = Field(20.0, gt=0)
    # Quality given to a clip whose focal length is only the prior (the motion could not determine it).
    unconstrained_focal_quality: float = Field(0.4, ge=0, le=1)
