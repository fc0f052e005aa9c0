"""The seam between the depth stage and whatever produces depth and masks.

A backend streams over the annotated frames of one clip. The geometric
defaults here need no weights; the weight-based ones (Depth Anything V2 +
UniDepth, SAM2.1) live in ``services.models`` and implement the same protocols.
Every output records ``name`` (backend + version) as its provenance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from services.depth.multiview import iter_depth_and_masks
from services.depth.overlays import OverlayText
from services.depth.params import DepthSettings

GEOMETRIC_VERSION = "5"


@runtime_checkable
class DepthBackend(Protocol):
    name: str  # e.g. "geometric-flow-triangulation v1"
    metric: bool  # True when depth is in metres, False when in the poses' (up-to-scale) units

    def iter_depth(self, frames: Iterable[np.ndarray], c2w: np.ndarray, K: np.ndarray) -> Iterator[np.ndarray]:
        """Per frame (h, w) float32 z-depth, 0 = invalid; h, w at least half the frames' size."""
        ...


@runtime_checkable
class MaskBackend(Protocol):
    name: str

    def iter_masks(self, frames: Iterable[np.ndarray], c2w: np.ndarray, K: np.ndarray,
                   depth: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Per frame (H, W) bool at the frames' resolution, True on independently moving objects."""
        ...


class GeometricDepth:
    """Dense-flow triangulation against the tracked poses (see services.depth.multiview)."""

    name = f"geometric-flow-triangulation v{GEOMETRIC_VERSION}"
    metric = False

    def __init__(self, params: DepthSettings = DepthSettings()) -> None:
        self.params = params

    def iter_depth(self, frames, c2w, K):
        # masks are computed too: moving objects are then kept out of the depth carried to the next frame
        for depth, _ in iter_depth_and_masks(frames, c2w, K, self.params, want_masks=True):
            yield depth


class GeometricMasks:
    """Residual between observed flow and camera-motion flow, cleaned into regions."""

    name = f"geometric-flow-residual v{GEOMETRIC_VERSION}"

    def __init__(self, params: DepthSettings = DepthSettings()) -> None:
        self.params = params

    def iter_masks(self, frames, c2w, K, depth):
        for _, mask in iter_depth_and_masks(frames, c2w, K, self.params, depth=depth):
            yield mask


class GeometricDepthAndMasks:
    """Both geometric backends in one pass (they share the optical flow): what the stage uses by default."""

    def __init__(self, params: DepthSettings = DepthSettings(), overlay_text: OverlayText | None = None) -> None:
        self.params = params
        self.depth = GeometricDepth(params)
        self.masks = GeometricMasks(params)
        # burned-in text found by the text detector is kept out of the masks (services.depth.overlays)
        self.overlay_text = overlay_text
        if overlay_text is not None:
            self.masks.name = f"{GeometricMasks.name}, burned-in text excluded by {overlay_text.backend}"

    # Depth and masks on chosen frames only, the others serving as neighbour views (annotate.rate_hz).
    takes_refs = True

    def iter_both(self, frames, c2w, K, timings: dict[str, float] | None = None, refs=None,
                  confidence: list[np.ndarray] | None = None):
        """(depth, mask) per output frame; ``confidence`` (a list) gets each frame's per-pixel depth confidence."""
        if self.overlay_text is None:
            yield from iter_depth_and_masks(frames, c2w, K, self.params, timings=timings, refs=refs,
                                            confidence=confidence)
            return
        overlay = self.overlay_text
        yield from iter_depth_and_masks(overlay.tap(frames), c2w, K, self.params, timings=timings,
                                        exclude=overlay.exclusions(), refs=refs, confidence=confidence)


# Other backends register a factory here ((depth section, model clients, geometric pass) -> backend); the stage
# looks names up in these.
DEPTH_BACKENDS: dict[str, object] = {}
MASK_BACKENDS: dict[str, object] = {}
