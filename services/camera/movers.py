"""Whose motion is a segment's translation: the camera's, or independently moving objects'?

The static-world model explains any track it can by camera translation and depth. When sharp
foreground movers carry most tracks (a telephoto shot following a cyclist, a taxi filling half
the frame) the translation it finds is the movers' motion, not the camera's. Two frames cannot
tell the two apart, but the tracks can:

* "carriers" are the tracks that need the translation: the full model explains them, the
  camera's pure rotation clearly does not (off by twice the tolerance or more);
* a translating camera in a static world shows parallax graded by depth, so its carriers move
  differently from one another and no rotation of their own explains them (few carriers fit up
  to three such rotations);
* a rigid object moving in front of the camera moves as one: a rotation of its own explains most of
  its tracks (the measurements behind both figures: bench/results/README.md, "Numbers in production code").

When most carriers are rigid like that, the translation came from movers; when hardly any track
needs it (under 5%), the static scene shows none. Either way the segment is a pure rotation,
tracked without the movers' tracks. Where the focal is only a prior, the rotations are also tried
at narrower fields of view: at a wide prior a telephoto pan, or a mover's slide, leaves a
perspective misfit that only translation absorbs. (A camera trucking past one flat wall in front
of a far background is the case this cannot tell from a moving wall; it is reported as a
rotation, with a note saying why.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from services.camera.frontend import FrameTracks
from services.camera.intrinsics import hfov_to_focal
from services.camera.sfm import Intrinsics, KeyframeOdometry, SfmConfig

# The rotation hypothesis is fitted with a lighter window than the odometry's: enough to tell 1.5 px apart.
ROTATION_BA_ITERATIONS = 3
ROTATION_BA_POINTS = 150
MIN_NARROWER_FOCAL = 1.2  # a narrower field of view is tried only if its focal is 20% longer (else: the same fit)


@dataclass
class MoverTestConfig:
    tolerance_px: float = 1.5  # a model explains a track when its median reprojection error is below this
    min_carriers: int = 12  # fewer carriers than this (or than ``min_carrier_share``): no parallax to speak of
    min_carrier_share: float = 0.05  # of the judged tracks (a translating camera makes most tracks carriers)
    rigid_fraction: float = 0.5  # carriers rotations of their own explain, above which they are movers
    max_groups: int = 3  # movers seen at once (each is fitted by its own rotation, in turn, largest first)
    need_factor: float = 2.0  # a carrier's rotation error is at least this many tolerances: it clearly needs translation
    min_judged: int = 50  # fewer tracks seen twice: too little to judge, the translation stays
    # Rotations are also tried at these fields of view: at a wrong (wide) prior focal a telephoto pan, or a
    # mover's sideways slide, leaves a perspective misfit that only translation absorbs.
    rotation_hfov_deg: tuple[float, ...] = (30.0, 15.0)


@dataclass
class MoverVerdict:
    drop: bool  # the static scene shows no translation: track the segment as a pure rotation
    mover_ids: np.ndarray  # tracks to leave out of the pure rotation: the movers' (empty unless ``drop``)
    judged: int  # tracks seen by two keyframes or more
    carriers: int  # tracks that need the translation
    rigid: int  # carriers that rotations of their own explain
    why: str = ""

    def note(self) -> str:
        return f"translation dropped: {self.why}; tracked as a pure rotation without those {len(self.mover_ids)} tracks"


def only(ft: FrameTracks, ids: np.ndarray, keep: bool = True) -> FrameTracks:
    """The frame's tracks restricted to ``ids`` (or, with ``keep=False``, without them)."""
    sel = np.isin(ft.ids, ids) == keep
    return FrameTracks(ft.index, ft.segment, ft.ids[sel], ft.xy[sel])


def _rotation_errors(keyframes: list[FrameTracks], K: Intrinsics, cfg: SfmConfig) -> tuple[np.ndarray, np.ndarray]:
    vo = KeyframeOdometry(K, replace(cfg, camera=cfg.camera.model_copy(update={"refine_window": 0}), rotation_only=True,
                                     ba_iterations=ROTATION_BA_ITERATIONS,
                                     max_ba_points=ROTATION_BA_POINTS))
    for ft in keyframes:
        vo.add_keyframe(ft)
    return vo.track_errors()


def translation_from_movers(keyframes: list[FrameTracks], K: Intrinsics, cfg: SfmConfig, full: KeyframeOdometry,
                            focal_trusted: bool, test: MoverTestConfig = MoverTestConfig()) -> MoverVerdict:
    """``full``: the segment's finished odometry over ``keyframes`` (translation allowed). ``focal_trusted``:
    K was given or measured; otherwise (a prior, or the widest bound) narrower fields of view are tried too."""
    none = np.zeros(0, np.int64)
    ids_full, err_full = full.track_errors()
    # the rotation hypothesis at the focal (the segment's, or a narrower one) where it explains the most tracks
    narrower = [] if focal_trusted else [hfov_to_focal(h, 2 * K.cx) for h in test.rotation_hfov_deg]
    candidates = [K] + [Intrinsics(f, K.cx, K.cy) for f in narrower if f > MIN_NARROWER_FOCAL * K.f]
    fits = [(K_rot, *_rotation_errors(keyframes, K_rot, cfg)) for K_rot in candidates]
    K, ids_rot, err_rot = max(fits, key=lambda c: int((c[2] < test.tolerance_px).sum()))
    ids, i_full, i_rot = np.intersect1d(ids_full, ids_rot, return_indices=True)
    # carriers: the full model explains them and a rotation clearly does not (tracks in between are noise-level)
    carriers = ids[(err_full[i_full] < test.tolerance_px) & (err_rot[i_rot] >= test.need_factor * test.tolerance_px)]
    if len(ids) < test.min_judged:
        return MoverVerdict(False, none, len(ids), len(carriers), 0)  # too little to judge: the translation stays
    if len(carriers) < max(test.min_carriers, test.min_carrier_share * len(ids)):
        why = (f"only {len(carriers)} of {len(ids)} tracks need it (a camera that moves shows parallax "
               f"across the static scene)")
        return MoverVerdict(True, carriers, len(ids), len(carriers), 0, why)
    rest = carriers
    groups = []
    for left in range(test.max_groups - 1, -1, -1):
        if len(rest) < test.min_carriers:
            break
        own_ids, own_err = _rotation_errors([only(ft, rest) for ft in keyframes], K, cfg)
        group = np.intersect1d(rest, own_ids[own_err < test.tolerance_px])
        rest = np.setdiff1d(rest, group)
        groups.append(group)
        if len(carriers) - len(rest) + left * len(group) <= test.rigid_fraction * len(carriers):
            break  # the later groups are no larger (robust fits take the largest first): they cannot add up
    rigid = len(carriers) - len(rest)
    if rigid <= test.rigid_fraction * len(carriers):
        return MoverVerdict(False, none, len(ids), len(carriers), rigid)
    why = (f"the {len(carriers)} of {len(ids)} tracks that need it move rigidly ({100 * rigid / len(carriers):.0f}% "
           f"fit rotations of their own), as independently moving objects do, not with the parallax of a static scene")
    return MoverVerdict(True, np.concatenate(groups), len(ids), len(carriers), rigid, why)
