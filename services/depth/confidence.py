"""Per-pixel confidence of the geometric depth (``confidence`` in depth.npz): how each depth value came to be."""

from __future__ import annotations

import numpy as np

# Triangulated in this frame from its own neighbouring views (the parallax was seen and the point reprojects).
MEASURED = 1.0
# Carried from earlier frames' triangulated world points into a pixel without parallax now (pure rotation, hold).
CARRIED = 0.5
# Interpolated from valid neighbours (median cleaning, filling of small enclosed holes): not measured at all.
FILLED = 0.25
# No depth (depth 0).
NONE = 0.0


def confidence_map(depth: np.ndarray, measured: np.ndarray, carried: np.ndarray | None) -> np.ndarray:
    """(h, w) float16: MEASURED where ``measured``, CARRIED where ``carried``, FILLED elsewhere with depth."""
    out = np.where(depth > 0, FILLED, NONE)
    if carried is not None:
        out = np.where((depth > 0) & carried, CARRIED, out)
    out = np.where((depth > 0) & measured, MEASURED, out)
    return out.astype(np.float16)
