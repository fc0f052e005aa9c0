"""Choosing source views for a reference frame and measuring dense flow to them.

The neighbour offset adapts to the clip: it grows until the translation
parallax (observed flow minus the flow that rotation alone explains) reaches
a target number of pixels, and shrinks again when the parallax gets large.
Poses may be up to scale: only pixel parallax is ever compared, never metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.depth.flow import DisFlow, forward_backward_error
from services.depth.geometry import relative_pose, rotation_flow
from services.depth.params import DepthSettings
from services.depth.triangulate import ViewFlow
from services.depth.window import FrameWindow


@dataclass
class PreparedFrame:
    grey: np.ndarray  # uint8 grey at the depth grid size
    colour: np.ndarray  # uint8 RGB at the depth grid size (the grey frame itself for grey input)


def prepare_frame(frame: np.ndarray, size: tuple[int, int]) -> PreparedFrame:
    """RGB (or grey) uint8 frame -> grey and colour at ``size`` = (w, h) with area averaging."""
    colour = frame
    if (frame.shape[1], frame.shape[0]) != size:
        colour = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    grey = colour if colour.ndim == 2 else cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)
    return PreparedFrame(grey=grey, colour=colour)


def _sources(ref: int, offset: int, count: int) -> list[int]:
    """One neighbour on each side; near the clip's ends, where one side is missing, two on the other.

    The motion masks take the minimum evidence over the views, so that a background pixel covered by an
    object in one neighbour is judged by the other. With a single neighbour that pixel would be marked
    (an object about to enter the frame left its future footprint as a mask on the first frames)."""
    inside = [s for s in (ref - offset, ref + offset) if 0 <= s < count]
    if len(inside) == 1:
        side = 1 if inside[0] > ref else -1
        other = ref + side * (offset // 2 if offset >= 2 else 2 * offset)
        if 0 <= other < count:
            inside.append(other)
    return inside


class ViewSelector:
    """Per reference frame: flows to one neighbour on each side at the current adaptive offset."""

    def __init__(self, c2w: np.ndarray, K: np.ndarray, params: DepthSettings) -> None:
        self.c2w = np.asarray(c2w, np.float64)
        self.K = K
        self.params = params
        self.offset = 1
        self.flow = DisFlow(params.flow_preset)

    def _view(self, window: FrameWindow, ref: int, src: int) -> ViewFlow | None:
        a, b = window.get(ref), window.get(src)
        if a is None or b is None or not np.isfinite(self.c2w[[ref, src]]).all():
            return None
        fwd = self.flow(a.grey, b.grey)
        bwd = self.flow(b.grey, a.grey)
        usable = forward_backward_error(fwd, bwd) < self.params.fb_max_px
        if usable.mean() < self.params.min_usable_share:
            return None  # a cut or a broken frame: this neighbour does not see the same scene
        R, t = relative_pose(self.c2w[ref], self.c2w[src])
        return ViewFlow(R=R, t=t, flow=fwd, usable=usable, source_index=src)

    def with_view_back(self, window: FrameWindow, ref: int, views: list[ViewFlow]) -> list[ViewFlow]:
        """``views``, plus, where none of them looks back (the first frames of a shot: the earlier neighbour
        lies across a cut), the nearest earlier frame that shares the scene, halving the offset. What the
        masks remember is carried from frame to frame along the flow back; depth uses ``views`` alone."""
        if any(v.source_index < ref for v in views):
            return views
        step = self.offset // 2
        while step >= 1:
            if (view := self._view(window, ref, ref - step)) is not None:
                return views + [view]
            step //= 2
        return views

    def _motion(self, views: list[ViewFlow]) -> tuple[float, float]:
        """(largest median translation parallax, largest median flow) over the views, in depth-grid pixels."""
        parallax, total = 0.0, 0.0
        for v in views:
            if not v.usable.any():
                continue
            h, w = v.flow.shape[:2]
            trans = np.linalg.norm(v.flow - rotation_flow(self.K, v.R, h, w), axis=2)
            parallax = max(parallax, float(np.median(trans[v.usable])))
            total = max(total, float(np.median(np.linalg.norm(v.flow, axis=2)[v.usable])))
        return parallax, total

    def views_for(self, window: FrameWindow, ref: int, count: int) -> list[ViewFlow]:
        p = self.params
        tried: set[int] = set()
        views: list[ViewFlow] = []
        for _ in range(4):
            offset = self.offset
            if offset in tried:
                break
            tried.add(offset)
            views = [v for s in _sources(ref, offset, count) if (v := self._view(window, ref, s))]
            parallax, total = self._motion(views)
            if total > p.max_flow_px and self.offset > 1:
                self.offset = max(1, self.offset // 2)  # rotation or fast motion: flow gets unreliable
                continue
            if parallax < p.target_parallax_px and total < p.max_flow_px / 2 and self.offset < p.max_offset:
                self.offset = min(2 * self.offset, p.max_offset)
                continue
            if parallax > 3 * p.target_parallax_px and self.offset > 1:
                self.offset = max(1, self.offset // 2)  # for the next frame; this one is fine
            break
        return views
