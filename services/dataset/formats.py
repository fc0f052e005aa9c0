"""Per-clip file formats that both layouts share, defined once for every writer and reader.

- ``indexes.txt``: one line per annotated frame, ``k frame_idx`` (row number, clip frame number),
  the published layout's form; its readers keep only two-field lines.
- ``dyn_masks.npz`` in the published layout: per frame a SciPy CSR matrix as ``f_{i}_data``,
  ``f_{i}_indices``, ``f_{i}_indptr``, plus one ``shape`` (H, W). Our native layout keeps one dense
  ``masks`` (N, H, W) bool array.
"""

from __future__ import annotations

import io

import numpy as np

def format_indexes(frame_indices) -> str:
    """``indexes.txt`` text: ``k frame_idx`` per annotated frame."""
    return "".join(f"{k} {int(frame)}\n" for k, frame in enumerate(frame_indices))


def parse_indexes(text: str) -> np.ndarray:
    """Clip frame numbers from ``indexes.txt``.

    Two-field lines give their second field, as the published readers take it. Files written before the
    two-field form (one integer per line) are still read, so older output folders stay usable; a file
    mixing both forms is refused rather than guessed at.
    """
    rows = [line.split() for line in text.splitlines() if line.strip()]
    widths = {len(r) for r in rows}
    if widths - {1, 2} or len(widths) > 1:
        raise ValueError(f"indexes.txt lines must all be 'k frame_idx' (found lines of {sorted(widths)} fields)")
    return np.array([int(r[-1]) for r in rows], dtype=np.int64)


def masks_to_csr_npz(masks: np.ndarray) -> bytes:
    """(N, H, W) bool masks -> the published per-frame CSR ``.npz`` (compressed)."""
    masks = np.asarray(masks, bool)
    arrays: dict[str, np.ndarray] = {}
    for i, mask in enumerate(masks):
        rows, cols = np.nonzero(mask)  # row-major order: exactly CSR's ordering
        arrays[f"f_{i}_data"] = np.ones(len(cols), bool)
        arrays[f"f_{i}_indices"] = cols.astype(np.int32)
        per_row = np.bincount(rows, minlength=mask.shape[0])
        arrays[f"f_{i}_indptr"] = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int32)
    arrays["shape"] = np.array(masks.shape[1:], np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def csr_npz_to_masks(arrays, rows=None) -> np.ndarray:
    """The published per-frame CSR arrays (a mapping of name -> array) -> (N, H, W) bool; ``rows`` picks frames."""
    h, w = (int(v) for v in arrays["shape"])
    frames = range((len(arrays) - 1) // 3) if rows is None else [int(r) for r in rows]
    out = np.zeros((len(frames), h, w), bool)
    for k, i in enumerate(frames):
        indptr, indices = arrays[f"f_{i}_indptr"], arrays[f"f_{i}_indices"]
        data = np.asarray(arrays[f"f_{i}_data"], bool)
        out[k, np.repeat(np.arange(h), np.diff(indptr)), indices] = data
    return out


def load_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}
