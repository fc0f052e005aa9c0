"""The depth stage's settings section, which is also the parameter object its maths receives.

``DepthSettings`` is the ``depth:`` section of the settings (``--config``, ``SPATIALVID_DEPTH__*``, a job's
``settings`` for the fields ``JOB_SETTABLE_FIELDS`` lists); the stage hands it as is to the geometric depth and
motion-mask backends. Its fields are what an operator or a job may tune; the class constants below them are the
fixed tuning of the maths (not settings: changing one changes what the published figures mean).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from services.section import Section


class DepthSettings(Section):
    """Depth maps and dynamic masks. ``geometric`` needs no weights (services.depth); other backends
    (services.models) plug in through services.depth.backends.DepthBackend / MaskBackend."""

    backend: str = "geometric"
    mask_backend: str = "geometric"
    depth_scale: float = Field(0.5, gt=0, le=1)  # depth grid relative to the clip (>= 0.5 keeps 320x180 for 640x360)
    flow_preset: Literal["ultrafast", "fast", "medium"] = "medium"  # OpenCV DIS preset of the depth flow
    # farthest neighbour (in annotated frames) on each side; the window is 2 * max_offset + 1
    max_offset: int = Field(8, ge=1)
    # grow the neighbour offset until the median translation parallax reaches this (px on the depth grid)
    target_parallax_px: float = 6.0
    min_parallax_px: float = 3.0  # a pixel's depth is kept only if the views move it at least this much (depth-grid px)
    max_residual_px: float = 1.0  # and the triangulated point reprojects within this of every used flow
    # ... and, to be published as measured depth, within this: points reprojecting 0.5-1 px off are mostly moving
    # objects and smeared flow, several times less accurate than those within 0.25 px; max_residual_px stays the
    # tolerance for telling flow inconsistent with a static point (carrying, masks)
    depth_max_residual_px: float = 0.6
    propagate: bool = True  # carry depth into pixels without parallax (the last map's world points)
    # a view whose translation moves no pixel of the last depth map by this much (99th percentile) is taken as a
    # pure rotation: a tracker's residual drift during a pan, tilt or hold would otherwise let a moving object's own
    # motion triangulate as a static point implausibly near the camera
    min_translation_parallax_px: float = Field(0.5, ge=0)
    mask_threshold: float = 1.0  # normalised residual above which a pixel is moving (seed: 2x this)
    # mark colour segments whose apparent depth hangs them far over the visible ground or sinks them below it
    # (objects moving along their epipolar lines, e.g. cars under a dolly; services/depth/support.py)
    mask_gravity_prior: bool = True
    # mark weak motion evidence that persists along the objects' flow over recent frames (dark, low-contrast
    # objects; services/depth/motion.py accumulate_evidence)
    mask_persistence: bool = True
    # trim the masks' halo (flow smeared onto the background) with the frame's colour segments (services/depth/segments.py)
    mask_segment_trim: bool = True
    # keep burned-in text (subtitles, timecodes, logos: PP-OCR boxes that stay put on screen) out of the masks,
    # detecting text on every n-th annotated frame (services/depth/overlays.py)
    mask_exclude_overlay_text: bool = True
    overlay_text_every: int = Field(4, ge=1)
    # never mask what stays put on screen while the camera moves. Off by default: it also drops objects the camera
    # follows, which real footage has far more often than burned-in text (the text masks filter overlays better)
    mask_drop_screen_fixed: bool = False
    export_exr_zip: bool = False  # also write depth.zip (per-frame disparity EXRs, the reference's layout)
    # Frames are decoded for depth and masks at most this long on their long side (larger clips are scaled
    # down, so the cost per frame stops growing with the input's pixels); masks are written at that size,
    # depth at depth_scale of it (720p and smaller: the clip's own size).
    working_max_side: int = Field(1280, ge=64)
    # Weight-based backends (services.depth.learned): backend "depth_anything_v2", mask_backend "sam2".
    # Depth Anything's per-frame scale/shift reference: "auto" = UniDepth V2 (metric) when it loads, else the
    # geometric depth (pose units); "unidepth" / "geometric" insist on one.
    align_to: Literal["auto", "unidepth", "geometric"] = "auto"
    model_batch_frames: int = Field(4, ge=1)  # frames per depth-model request
    sam2_motion_blur_px: float = Field(2.0, ge=0)  # smoothing of the geometric motion evidence (depth-grid px)
    sam2_skip_sky: bool = True  # the reference's rule: no prompts for regions touching sky

    # -- fixed tuning of the geometric depth (services/depth/multiview.py, views.py) --------------------------
    max_flow_px: ClassVar[float] = 16.0  # shrink the neighbour offset while the median flow (rotation included) exceeds this
    fb_max_px: ClassVar[float] = 1.0  # forward-backward flow disagreement above which a flow pixel is not used
    min_usable_share: ClassVar[float] = 0.3  # a source view with less consistent flow than this (e.g. across a cut) is dropped
    hole_max_share: ClassVar[float] = 0.002  # enclosed invalid regions up to this share of the image are filled

    # -- fixed tuning of the motion masks (services/depth/motion.py) ------------------------------------------
    mask_noise_px: ClassVar[float] = 0.6  # flow noise floor (depth-grid px) in the residual normalisation
    mask_parallax_tolerance: ClassVar[float] = 0.25  # residual allowed as a share of the parallax flow (depth errors)
    mask_photo_min: ClassVar[float] = 6.0  # grey levels: rigid-warp photometric error a moving pixel must show ...
    mask_photo_noise_factor: ClassVar[float] = 3.0  # ... and at least this times the frame's median error (noise)
    # grey-level std of a normally exposed frame: darker frames scale the floors down
    mask_photo_contrast: ClassVar[float] = 32.0
    # photometric evidence averaged over this box: dense on objects, thin on depth-edge errors
    mask_photo_blob_px: ClassVar[int] = 5
    # a box-averaged rigid-warp error this many times the noise is motion evidence ...
    mask_photo_blob_factor: ClassVar[float] = 8.0
    # ... and this many times the noise seeds a region (with some flow support)
    mask_photo_seed_factor: ClassVar[float] = 12.0
    mask_photo_flow_support: ClassVar[float] = 0.5  # flow residual (normalised) the photometric evidence must be backed by
    mask_flow_alone_factor: ClassVar[float] = 5.0  # a flow residual this many times the threshold ...
    # ... needs a rigid-warp error of only this times the noise (and half the floor)
    mask_flow_alone_photo: ClassVar[float] = 1.5
    # gravity prior: the segments' depth is a rougher triangulation than published depth (a hovering test needs only
    # a ratio, and an oncoming object near the focus of expansion shows little parallax)
    mask_gravity_min_parallax_px: ClassVar[float] = 1.0
    mask_gravity_max_residual_px: ClassVar[float] = 1.5
    # what the prior marked is remembered along the objects' flow, fading by this factor a frame; a segment
    # mostly (hold_share) under a memory of at least hold_level stays marked (0.9 / 0.3: about 11 frames)
    mask_gravity_memory_decay: ClassVar[float] = 0.9
    mask_gravity_hold_level: ClassVar[float] = 0.3
    mask_gravity_hold_share: ClassVar[float] = 0.8
    # the halo is trimmed: mask pixels in a colour segment the mask covers less than trim_cover of, that are also
    # less than trim_region_share of their mask region
    mask_trim_cover: ClassVar[float] = 0.3
    mask_trim_region_share: ClassVar[float] = 0.25
    # weak evidence that persists: a dark, low-contrast object shows a flow residual and a rigid-warp error of
    # only 1-3x what a static pixel does, every frame, where noise does so here and there; summed along the
    # objects' flow (fading by persistence_decay a frame), a pixel whose sum passes persistence_level and that
    # shows some evidence now is marked. A static pixel's warp error may reach persistence_grad_px times the
    # local image gradient (sub-pixel flow errors on edges) before it counts
    mask_persistence_decay: ClassVar[float] = 0.8
    mask_persistence_level: ClassVar[float] = 3.0
    mask_persistence_grad_px: ClassVar[float] = 0.5
    mask_min_share: ClassVar[float] = 0.0015  # connected regions smaller than this share of the frame are dropped
    mask_max_share: ClassVar[float] = 0.5  # a frame whose mask covers more than this is unreliable and left empty

    @property
    def publish_residual_px(self) -> float:
        """The reprojection residual measured depth must stay within to be published (the stricter of the two)."""
        return min(self.max_residual_px, self.depth_max_residual_px)
