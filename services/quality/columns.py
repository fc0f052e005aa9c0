"""The verdict's metadata columns (a contract: the camera and depth stages write them, the filter reads them)."""

from __future__ import annotations

POSE_QUALITY, DEPTH_QUALITY, MASK_QUALITY, QC_FLAGS = "pose_quality", "depth_quality", "mask_quality", "qc_flags"
VERDICT_COLUMNS = (POSE_QUALITY, DEPTH_QUALITY, MASK_QUALITY, QC_FLAGS)
# qc_flags is one string column: the flags joined by this separator ("" = no flag).
FLAG_SEPARATOR = ","


def parse_flags(text: object) -> list[str]:
    return [f for f in str(text or "").split(FLAG_SEPARATOR) if f]
