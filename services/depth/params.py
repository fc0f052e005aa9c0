"""Tuning of the geometric depth and motion-mask backends (pure data; services.settings.DepthSettings mirrors it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GeometricParams:
    depth_scale: float = 0.5  # depth map size relative to the frames (0.5: 320x180 for 640x360)
    flow_preset: str = "medium"  # OpenCV DIS preset
    max_offset: int = 8  # farthest neighbour (in annotated frames) on each side; the window is 2 * max_offset + 1
    target_parallax_px: float = 6.0  # grow the neighbour offset until the median translation parallax reaches this
    max_flow_px: float = 16.0  # but shrink it while the median flow (rotation included) exceeds this
    min_parallax_px: float = 3.0  # a pixel's depth is kept only if the views move it at least this much (depth-grid px)
    max_residual_px: float = 1.0  # and the triangulated point reprojects within this of every used flow
    # ... and, to be published as measured depth, within this (pixels reprojecting 0.5-1 px off had AbsRel
    # 0.23-0.40 on the street cases against 0.07 below 0.25 px: mostly moving objects and smeared flow);
    # max_residual_px stays the tolerance for telling flow inconsistent with a static point (carrying, masks)
    depth_max_residual_px: float = 0.6
    fb_max_px: float = 1.0  # forward-backward flow disagreement above which a flow pixel is not used
    min_usable_share: float = 0.3  # a source view with less consistent flow than this (e.g. across a cut) is dropped
    hole_max_share: float = 0.002  # enclosed invalid regions up to this share of the image are filled
    # a view whose translation moves no pixel of the last depth map by this much (99th percentile) is taken
    # as a pure rotation: a tracker's residual drift during a pan, tilt or hold would otherwise let a moving
    # object's own motion triangulate as a static point implausibly near the camera
    min_translation_parallax_px: float = 0.5
    propagate: bool = True  # carry depth forward into pixels with no parallax (the last map's world points)
    # motion masks
    mask_noise_px: float = 0.6  # flow noise floor (depth-grid px) in the residual normalisation
    mask_parallax_tolerance: float = 0.25  # residual allowed as a share of the parallax flow (depth errors)
    mask_threshold: float = 1.0  # normalised residual above which a pixel is moving (seed: 2x this)
    mask_photo_min: float = 6.0  # grey levels: rigid-warp photometric error a moving pixel must show ...
    mask_photo_noise_factor: float = 3.0  # ... and at least this times the frame's median error (noise)
    mask_photo_contrast: float = 32.0  # grey-level std of a normally exposed frame: darker frames scale the floors down
    mask_photo_blob_px: int = 5  # photometric evidence averaged over this box: dense on objects, thin on depth-edge errors
    mask_photo_blob_factor: float = 8.0  # a box-averaged rigid-warp error this many times the noise is motion evidence ...
    mask_photo_seed_factor: float = 12.0  # ... and this many times the noise seeds a region (with some flow support)
    mask_photo_flow_support: float = 0.5  # flow residual (normalised) the photometric evidence must be backed by
    mask_flow_alone_factor: float = 5.0  # a flow residual this many times the threshold ...
    mask_flow_alone_photo: float = 1.5  # ... needs a rigid-warp error of only this times the noise (and half the floor)
    # Off by default: it also drops objects the camera follows (they stay put on the screen too), which real
    # footage has far more often than burned-in text; the text stage's masks are the better filter for overlays.
    mask_drop_screen_fixed: bool = False  # drop pixels that stay put on the screen while the camera moves
    # gravity prior (services/depth/support.py): a colour segment whose apparent depth hangs it far in front of
    # the ground seen below it, or sinks it far behind the ground right under it, is an object moving along its
    # epipolar lines (needs visible ground)
    mask_gravity_prior: bool = True
    # the segments' depth: a rougher triangulation than published depth (a hovering test needs only a ratio,
    # and an oncoming object near the focus of expansion shows little parallax)
    mask_gravity_min_parallax_px: float = 1.0
    mask_gravity_max_residual_px: float = 1.5
    # what the prior marked is remembered along the objects' flow, fading by this factor a frame; a segment
    # mostly (hold_share) under a memory of at least hold_level stays marked (0.9 / 0.3: about 11 frames)
    mask_gravity_memory_decay: float = 0.9
    mask_gravity_hold_level: float = 0.3
    mask_gravity_hold_share: float = 0.8
    # the halo (flow smeared onto the background around an object) is trimmed: mask pixels in a colour segment
    # the mask covers less than trim_cover of, that are also less than trim_region_share of their mask region
    mask_segment_trim: bool = True
    mask_trim_cover: float = 0.3
    mask_trim_region_share: float = 0.25
    # weak evidence that persists: a dark, low-contrast object shows a flow residual and a rigid-warp error of
    # only 1-3x what a static pixel does, every frame, where noise does so here and there; summed along the
    # objects' flow (fading by persistence_decay a frame), a pixel whose sum passes persistence_level and that
    # shows some evidence now is marked. A static pixel's warp error may reach persistence_grad_px times the
    # local image gradient (sub-pixel flow errors on edges) before it counts
    mask_persistence: bool = True
    mask_persistence_decay: float = 0.8
    mask_persistence_level: float = 3.0
    mask_persistence_grad_px: float = 0.5
    mask_min_share: float = 0.0015  # connected regions smaller than this share of the frame are dropped
    mask_max_share: float = 0.5  # a frame whose mask covers more than this is unreliable and left empty

    @property
    def publish_residual_px(self) -> float:
        """The reprojection residual measured depth must stay within to be published (the stricter of the two)."""
        return min(self.max_residual_px, self.depth_max_residual_px)
