"""The camera stage's settings section (``camera:``), the one home of the tracker's tunable numbers.

``track_camera`` receives ``CameraSettings`` as is and hands it down: the solver's configuration objects
(``FrontEndConfig``, ``SfmConfig``) hold this section for the working size, the track budget and the windows, and
only their own fixed tuning besides, so each tunable is a field here and nowhere else.
Light on purpose: services/settings.py imports it, and the gateway must not import the tracker (torch, OpenCV).
"""

from __future__ import annotations

from pydantic import Field

from services.section import Section


class CameraSettings(Section):
    """Camera tracking (services/camera): KLT tracks, windowed bundle adjustment, focal self-calibration."""

    backend: str = "geometric"  # the only tracker there is: geometric (no weights)
    # keyframes per second: enough baseline between keyframes at 24-30 fps, few enough to solve fast
    keyframe_rate_hz: float = 8.0
    working_max_side: int = 640  # long side (px) frames are tracked at: corners stay sharp, KLT stays cheap
    # tracks kept alive at once: enough to survive movers and occlusion, few enough for the bundle adjustment
    max_tracks: int = 600
    window: int = 8  # keyframes per sliding-window bundle adjustment of the odometry
    # Second bundle-adjustment pass over overlapping windows of this many keyframes (0: off): sharper relative poses
    # for the depth stage, for 6-33% more tracking time. 128 holds a whole clip of the clip stage's 15 s at
    # 8 keyframes/s, which also keeps the direction of travel consistent along the clip (separate short windows each
    # settle the rotation/translation trade-off a little differently and bend the path;
    # bench/results/devset_clip_window.log). Long windows are solved in chunks with a sparse pose-point block, but
    # peak memory still grows until the window is full (about 40 MB more for a 60 s clip than a 10 s one).
    refine_window: int = Field(16, ge=0)
    # Drop a translation that only rigidly moving objects carry (services/camera/movers.py).
    mover_test: bool = True
    # Focal prior when the clip cannot determine it (pure translation, roll, tripod) and
    # vanishing points (man-made scenes) do not either.
    prior_hfov_deg: float = 60.0
    # Look for orthogonal vanishing points on every n-th frame (0: never).
    vanishing_every: int = Field(8, ge=0)
    # A known horizontal field of view skips the focal estimation.
    known_hfov_deg: float | None = None
