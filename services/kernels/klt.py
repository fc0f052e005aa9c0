"""Pyramidal Lucas-Kanade point tracking in plain vectorised torch, on any device.

The algorithm is OpenCV's ``calcOpticalFlowPyrLK`` (Bouguet's pyramidal LK as OpenCV implements it),
in floating point instead of OpenCV's 14-bit fixed-point bilinear weights, so that the GPU tracks
the points the CPU path (OpenCV) tracks:
- pyramid levels by ``pyrDown`` (5x5 binomial kernel, reflect-101 border), rounded to 8 bits as
  OpenCV stores them;
- Scharr derivatives of each level (reflect-101 inside the image, zero beyond it);
- per point and level, the window's gradient matrix, OpenCV's minimum-eigenvalue test, then
  Gauss-Newton steps until the step is below ``eps`` or ``iterations`` are used, with OpenCV's
  half-step when two steps cancel (oscillation);
- a point is lost when its window leaves the padded image, or fails the eigenvalue test, at level 0.

All points and window pixels of a level are one batch (N points x win^2 samples); iterations run
until every point has converged. No Python loop over points or pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# OpenCV's pyrDown kernel: the 5-tap binomial [1 4 6 4 1] / 16 in each direction.
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)
# OpenCV's LK smallest-eigenvalue threshold (its default minEigThreshold), on its gradient scale.
MIN_EIG_THRESHOLD = 1e-4
# OpenCV scales its Scharr derivatives by 32 against the image (Scharr weights 3,10,3 over 2 px) and
# sums products with a 1/2^20 factor: its minimum eigenvalue is ours (in grey levels per pixel) / 1024.
_EIG_SCALE = 1.0 / 1024.0
# Two consecutive steps that cancel to below this (px) mean oscillation: OpenCV halves the last one.
_OSCILLATION_PX = 0.01


@dataclass
class Pyramid:
    """Per level: the image padded by the window (reflect-101) and its Scharr derivatives padded with zeros."""

    images: list[torch.Tensor]  # (h+2p, w+2p) float32
    grads: list[torch.Tensor]  # (2, h+2p, w+2p) float32: d/dx, d/dy in grey levels per pixel
    sizes: list[tuple[int, int]]  # (h, w) of each level
    pad: int


def _taps(x: torch.Tensor, weights: tuple[float, ...], dim: int) -> torch.Tensor:
    """Correlate along ``dim`` with a short kernel as a sum of shifted slices (``x`` already padded)."""
    n = x.shape[dim] - len(weights) + 1
    out = None
    for k, wk in enumerate(weights):
        if wk:
            term = x.narrow(dim, k, n) * wk
            out = term if out is None else out + term
    return out


def _pyr_down(img: torch.Tensor) -> torch.Tensor:
    """OpenCV's pyrDown of an 8-bit image held as float: blur, keep every second pixel, round."""
    h, w = img.shape
    x = F.pad(img[None, None], (2, 2, 2, 2), mode="reflect")[0, 0]
    k = tuple(v / 16.0 for v in _BINOMIAL)
    x = _taps(_taps(x[::1, :], k, 1)[:, ::2], k, 0)[::2]  # only the kept columns go through the second pass
    return torch.floor(x[: (h + 1) // 2, : (w + 1) // 2] + 0.5).clamp_(0, 255)


def _scharr(img: torch.Tensor) -> torch.Tensor:
    """(2,h,w) Scharr derivatives / 32, i.e. grey levels per pixel (reflect-101 border, as OpenCV's LK)."""
    x = F.pad(img[None, None], (1, 1, 1, 1), mode="reflect")[0, 0]
    smooth, diff = (3 / 16, 10 / 16, 3 / 16), (-0.5, 0.0, 0.5)
    dx = _taps(_taps(x, diff, 1), smooth, 0)
    dy = _taps(_taps(x, smooth, 1), diff, 0)
    return torch.stack([dx, dy])


def pyramid_levels(h: int, w: int, window: int, max_level: int) -> int:
    """OpenCV's level count: stop before a level would be no larger than the window."""
    levels = 0
    for _ in range(max_level):
        h, w = (h + 1) // 2, (w + 1) // 2
        if w <= window or h <= window:
            break
        levels += 1
    return levels


def build_pyramid(gray: torch.Tensor, window: int, max_level: int) -> Pyramid:
    """``gray``: (h,w) 8-bit grey levels as any float/uint8 tensor."""
    img = gray.to(torch.float32)
    pad = window + 1
    levels = pyramid_levels(*img.shape, window, max_level)
    images, grads, sizes = [], [], []
    for level in range(levels + 1):
        if level:
            img = _pyr_down(img)
        sizes.append(tuple(img.shape))
        # reflect-101 needs a level larger than the pad; tiny levels (never reached at the window) use replicate
        mode = "reflect" if min(img.shape) > pad else "replicate"
        images.append(F.pad(img[None, None], (pad, pad, pad, pad), mode=mode)[0, 0])
        grads.append(F.pad(_scharr(img), (pad, pad, pad, pad)))
    return Pyramid(images, grads, sizes, pad)


def _sample(planes: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor,
            pad: int) -> torch.Tensor:
    """Bilinear samples of (C,H,W) ``planes`` at (x0+ox, y0+oy) for every point (N) and window pixel (K):
    (C,N,K). ``x0, y0`` are window corners in level coordinates; all pixels of a window share one
    fraction, as in OpenCV."""
    C, H, W = planes.shape
    fx, fy = torch.floor(x0), torch.floor(y0)
    ax, ay = (x0 - fx)[:, None], (y0 - fy)[:, None]
    ix = (fx.long()[:, None] + pad + ox[None]).clamp_(0, W - 2)
    iy = (fy.long()[:, None] + pad + oy[None]).clamp_(0, H - 2)
    base = (iy * W + ix).reshape(-1)
    flat = planes.reshape(C, -1)

    def at(offset: int) -> torch.Tensor:
        return torch.index_select(flat, 1, base + offset).view(C, *ix.shape)

    return (1 - ay) * ((1 - ax) * at(0) + ax * at(1)) + ay * ((1 - ax) * at(W) + ax * at(W + 1))


def _inside(corner: torch.Tensor, size: tuple[int, int], window: int) -> torch.Tensor:
    """OpenCV's test that a window corner lies where the padded level can serve it."""
    f = torch.floor(corner)
    h, w = size
    return (f[:, 0] >= -window) & (f[:, 0] < w) & (f[:, 1] >= -window) & (f[:, 1] < h)


def track(prev: Pyramid, nxt: Pyramid, points: torch.Tensor, window: int, iterations: int,
          eps: float, guess: torch.Tensor | None = None, compact: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Track (N,2) float32 ``points`` of ``prev`` into ``nxt``: (N,2) positions and (N,) bool status.

    ``guess``: OpenCV's OPTFLOW_USE_INITIAL_FLOW (initial positions in ``nxt``), else the points.
    ``compact`` (default: on the CPU): each iteration works on the points still moving only (most
    converge in a few), which costs a device sync per iteration; otherwise (default on a GPU) every
    point goes through each iteration with the converged ones frozen, checking for the end every
    few iterations. Both give the same positions."""
    device = points.device
    points = points.to(torch.float32)
    n = points.shape[0]
    levels = len(prev.images) - 1
    half = (window - 1) * 0.5
    r = torch.arange(window, device=device)
    oy, ox = (t.reshape(-1) for t in torch.meshgrid(r, r, indexing="ij"))
    status = torch.ones(n, dtype=torch.bool, device=device)
    area = float(window * window)
    flt_eps = torch.finfo(torch.float32).eps
    centre = (guess if guess is not None else points).to(torch.float32) / (1 << levels)
    for level in range(levels, -1, -1):
        if level < levels:
            centre = centre * 2.0
        corner = centre - half  # window corners in the next image
        prev_corner = points / (1 << level) - half
        ok = _inside(prev_corner, prev.sizes[level], window)
        patch = _sample(torch.cat([prev.images[level][None], prev.grads[level]]), prev_corner[:, 0],
                        prev_corner[:, 1], ox, oy, prev.pad)
        I, Ix, Iy = patch[0], patch[1], patch[2]
        A11, A12, A22 = (Ix * Ix).sum(1), (Ix * Iy).sum(1), (Iy * Iy).sum(1)
        det = A11 * A22 - A12 * A12
        min_eig = (A22 + A11 - torch.sqrt((A11 - A22) ** 2 + 4.0 * A12 * A12)) / (2.0 * area) * _EIG_SCALE
        ok &= (min_eig >= MIN_EIG_THRESHOLD) & (det * (_EIG_SCALE * _EIG_SCALE) >= flt_eps)
        if level == 0:
            status &= ok
        iterate = _iterate_compacted if (compact if compact is not None else device.type == "cpu") else _iterate_masked
        corner = iterate(nxt, level, corner, ok, (I, Ix, Iy, A11, A12, A22, det), status, ox, oy, window,
                         iterations, eps)
        centre = corner + half
    return centre, status


def _iterate_compacted(nxt: Pyramid, level: int, corner: torch.Tensor, ok: torch.Tensor, terms: tuple,
                       status: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor, window: int, iterations: int,
                       eps: float) -> torch.Tensor:
    """Gauss-Newton steps of one level on the moving points only; returns the window corners."""
    I, Ix, Iy, A11, A12, A22, det = terms
    idx = ok.nonzero().squeeze(1)
    I, Ix, Iy, A11, A12, A22 = I[idx], Ix[idx], Iy[idx], A11[idx], A12[idx], A22[idx]
    inv_det = 1.0 / det[idx]
    corner = corner.clone()
    pt = corner[idx]
    prev_delta = torch.zeros_like(pt)
    for j in range(iterations):
        if idx.numel() == 0:
            break
        inside = _inside(pt, nxt.sizes[level], window)
        if level == 0:
            status[idx[~inside]] = False
        if not bool(inside.all()):
            keep = inside.nonzero().squeeze(1)
            idx, pt, prev_delta = idx[keep], pt[keep], prev_delta[keep]
            I, Ix, Iy, A11, A12, A22, inv_det = (t[keep] for t in (I, Ix, Iy, A11, A12, A22, inv_det))
            if idx.numel() == 0:
                break
        J = _sample(nxt.images[level][None], pt[:, 0], pt[:, 1], ox, oy, nxt.pad)[0]
        diff = J - I
        b1, b2 = (diff * Ix).sum(1), (diff * Iy).sum(1)
        delta = torch.stack([(A12 * b2 - A22 * b1) * inv_det, (A12 * b1 - A11 * b2) * inv_det], 1)
        pt = pt + delta
        converged = (delta * delta).sum(1) <= eps * eps
        oscillating = ((delta + prev_delta).abs() < _OSCILLATION_PX).all(1) & ~converged
        if j > 0:
            pt = torch.where(oscillating[:, None], pt - 0.5 * delta, pt)
        else:
            oscillating = torch.zeros_like(oscillating)
        corner[idx] = pt
        moving = ~(converged | oscillating)
        if not bool(moving.all()):
            keep = moving.nonzero().squeeze(1)
            idx, pt, delta = idx[keep], pt[keep], delta[keep]
            I, Ix, Iy, A11, A12, A22, inv_det = (t[keep] for t in (I, Ix, Iy, A11, A12, A22, inv_det))
        prev_delta = delta
    return corner


_SYNC_EVERY = 4  # masked iterations between checks whether any point still moves (each check syncs a GPU)


def _iterate_masked(nxt: Pyramid, level: int, corner: torch.Tensor, ok: torch.Tensor, terms: tuple,
                    status: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor, window: int, iterations: int,
                    eps: float) -> torch.Tensor:
    """The same steps on every point at once, the converged and lost ones frozen (no compaction)."""
    I, Ix, Iy, A11, A12, A22, det = terms
    inv_det = torch.where(ok, 1.0 / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))
    active = ok.clone()
    pt = corner.clone()
    prev_delta = torch.zeros_like(pt)
    for j in range(iterations):
        if j % _SYNC_EVERY == 0 and not bool(active.any()):
            break
        inside = _inside(pt, nxt.sizes[level], window)
        if level == 0:
            status &= ~(active & ~inside)
        active = active & inside
        J = _sample(nxt.images[level][None], pt[:, 0], pt[:, 1], ox, oy, nxt.pad)[0]
        diff = J - I
        b1, b2 = (diff * Ix).sum(1), (diff * Iy).sum(1)
        delta = torch.stack([(A12 * b2 - A22 * b1) * inv_det, (A12 * b1 - A11 * b2) * inv_det], 1)
        delta = torch.where(active[:, None], delta, torch.zeros_like(delta))
        moved = pt + delta
        converged = (delta * delta).sum(1) <= eps * eps
        oscillating = ((delta + prev_delta).abs() < _OSCILLATION_PX).all(1) & ~converged & active & (j > 0)
        moved = torch.where(oscillating[:, None], moved - 0.5 * delta, moved)
        pt = torch.where(active[:, None], moved, pt)
        active = active & ~converged & ~oscillating
        prev_delta = delta
    return pt
