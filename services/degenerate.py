"""Geometric routines on degenerate input: "no estimate from this pair or window", never a failed clip.

OpenCV's solvers and NumPy's and SciPy's linear algebra raise on input they cannot solve: identical or
near-identical points (a tripod shot: OpenCV 5.1's five-point solver fails an assertion in ``solvePoly``
where 4.x returned no matrix), collinear or too few points, an all-black frame that gives no points,
NaNs. How they fail changes between library versions, so every call site does the same two things:
it checks its input first (``finite_rows``, ``spread_px``), and it calls the routine through ``attempt``,
which turns the solver's error into None, the caller's "no estimate". Programming errors (TypeError,
ValueError from wrong shapes) are not caught: they still fail loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import cv2
import numpy as np

T = TypeVar("T")

# what a numerical routine raises when its input has no solution (not when it is called wrongly)
SOLVER_ERRORS: tuple[type[BaseException], ...] = (cv2.error, np.linalg.LinAlgError)


def attempt(routine: Callable[..., T], *args, **kwargs) -> T | None:
    """``routine(*args, **kwargs)``, or None when it raises on degenerate input."""
    try:
        return routine(*args, **kwargs)
    except SOLVER_ERRORS:
        return None


def finite_rows(*arrays: np.ndarray) -> np.ndarray:
    """(n,) bool: rows that are finite in every one of ``arrays`` (each (n, ...))."""
    keep = np.ones(len(arrays[0]), bool)
    for a in arrays:
        a = np.asarray(a, float)
        keep &= np.isfinite(a.reshape(len(a), int(np.prod(a.shape[1:])))).all(axis=1)
    return keep


def spread_px(points: np.ndarray) -> float:
    """The standard deviation of 2-D points along their narrowest direction (closed form: the smaller
    eigenvalue of their 2x2 covariance). Near zero when the points are (nearly) one point or one line,
    where a homography, an essential matrix or a pose from them is not determined."""
    p = np.asarray(points, float)
    if len(p) < 2:
        return 0.0
    c = p - p.mean(axis=0)
    a, b, d = (c[:, 0] ** 2).mean(), (c[:, 0] * c[:, 1]).mean(), (c[:, 1] ** 2).mean()
    smaller = 0.5 * (a + d) - np.sqrt(0.25 * (a - d) ** 2 + b * b)
    return float(np.sqrt(max(smaller, 0.0)))
