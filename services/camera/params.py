"""The camera stage's settings section (``camera:``), the one home of the tracker's tunable numbers.

``track_camera`` receives ``CameraSettings`` as is. The solver's own configuration objects (``FrontEndConfig``,
``SfmConfig``) take their tunable fields' defaults from the constants here, so each number is written once.
Light on purpose: services/settings.py imports it, and the gateway must not import the tracker (torch, OpenCV).
"""

from __future__ import annotations

from pydantic import Field

from services.section import Section

KEYFRAME_RATE_HZ = 8.0  # keyframes per second: enough baseline between keyframes at 24-30 fps, few enough to solve fast
WORKING_MAX_SIDE = 640  # long side (px) frames are tracked at: corners stay sharp, KLT stays cheap
MAX_TRACKS = 600  # tracks kept alive at once: enough to survive movers and occlusion, few enough for the BA
BA_WINDOW = 8  # keyframes per sliding-window bundle adjustment of the odometry
# Second bundle-adjustment pass over overlapping windows of this many keyframes (0: off). Long enough for one window
# to hold a whole clip (the clip stage's 15 s at 8 keyframes/s is 121 keyframes): points tracked across the clip
# then tie every heading to the same scene, where short windows let the rotation/translation trade-off of a slow
# or narrow-lens translation drift from window to window (a tilted path). Longer inputs get overlapping windows,
# so time and memory stay linear in their length.
REFINE_WINDOW = 128


class CameraSettings(Section):
    """Camera tracking (services/camera): KLT tracks, windowed bundle adjustment, focal self-calibration."""

    backend: str = "geometric"  # the only tracker there is: geometric (no weights)
    keyframe_rate_hz: float = KEYFRAME_RATE_HZ
    working_max_side: int = WORKING_MAX_SIDE
    max_tracks: int = MAX_TRACKS
    window: int = BA_WINDOW
    refine_window: int = Field(REFINE_WINDOW, ge=0)
    # Drop a translation that only rigidly moving objects carry (services/camera/movers.py).
    mover_test: bool = True
    # Focal prior when the clip cannot determine it (pure translation, roll, tripod) and
    # vanishing points (man-made scenes) do not either.
    prior_hfov_deg: float = 60.0
    # Look for orthogonal vanishing points on every n-th frame (0: never).
    vanishing_every: int = Field(8, ge=0)
    # A known horizontal field of view skips the focal estimation.
    known_hfov_deg: float | None = None
