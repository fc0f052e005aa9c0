"""The published SpatialVID-HQ layout (what its users' loaders read), written from our native output.

Per clip ``{uuid}`` in ``group_XXXX``:
``annotations/group_XXXX/{uuid}/`` caption.json, dyn_masks.npz (CSR per frame), indexes.txt (two fields),
instructions.json, intrinsics.npy, poses.npy; ``depths/group_XXXX/{uuid}.zip`` (HALF ``Z`` disparity EXRs);
``videos/group_XXXX/{uuid}.mp4``; and the table ``data/train/SpatialVID_HQ_metadata.csv``.
"""

from __future__ import annotations

import pandas as pd

from services import artifacts as a
from services.dataset import formats as f
from services.depth.exr_zip import disparity_zip_bytes
from services.export.plan import Entry
from services.storage.base import ArtifactStore

METADATA_CSV = "data/train/SpatialVID_HQ_metadata.csv"
# The published table's columns (as its readers address them), filled from ours; None = our export's own.
REFERENCE_COLUMNS = {
    "id": None,  # the clip's UUID
    "group id": None,  # the group's number
    "video path": None,
    "annotation path": None,
    "num frames": "num_frames",
    "fps": "fps",
    "resolution": "resolution",
    "aesthetic score": "aesthetic",
    "luminance score": "luminance_mean",
    "motion score": "motion",
    "ocr score": "ocr",
    "moveDist": "moveDist",
    "distLevel": "distLevel",
    "rotAngle": "rotAngle",
    "trajTurns": "trajTurns",
    "dynamicRatio": "dynamicRatio",
}
# Our own clip id goes under this name (the published ``id`` is the UUID).
OUR_ID = "clip_id"
# Annotation files copied as they are.
COPIED = (a.POSES, a.INTRINSICS, a.INSTRUCTIONS, a.CAPTION)


def annotation_dir(e: Entry) -> str:
    return f"annotations/{e.place}/{e.uuid}"


def video_key(e: Entry) -> str:
    return f"videos/{e.place}/{e.uuid}.mp4"


def depth_key(e: Entry) -> str:
    return f"depths/{e.place}/{e.uuid}.zip"


def clip_keys(uuid: str, group: str) -> list[str]:
    """Every file a clip can have in the export."""
    names = [*COPIED, a.INDEXES, a.DYN_MASKS]
    return [f"videos/{group}/{uuid}.mp4", f"depths/{group}/{uuid}.zip"] + [
        f"annotations/{group}/{uuid}/{n}" for n in names]


def export_clip(source: ArtifactStore, dest: ArtifactStore, e: Entry) -> None:
    """Write one clip's files; files the clip no longer has (a stage not run) are removed."""
    clip = e.clip
    written = {video_key(e)}
    with source.local_path(clip.clip_key) as path:
        dest.put_file(video_key(e), path)

    def src(name: str) -> bytes | None:
        key = clip.annotation_key(name)
        return source.get_bytes(key) if source.exists(key) else None

    for name in COPIED:
        data = src(name)
        if data is not None:
            dest.put_bytes(f"{annotation_dir(e)}/{name}", data)
            written.add(f"{annotation_dir(e)}/{name}")
    indexes = src(a.INDEXES)
    if indexes is not None:  # normalised: folders written before the two-field form export correctly too
        dest.put_text(f"{annotation_dir(e)}/{a.INDEXES}", f.format_indexes(f.parse_indexes(indexes.decode())))
        written.add(f"{annotation_dir(e)}/{a.INDEXES}")
    masks = src(a.DYN_MASKS)
    if masks is not None:
        dest.put_bytes(f"{annotation_dir(e)}/{a.DYN_MASKS}", f.masks_to_csr_npz(f.load_npz(masks)["masks"]))
        written.add(f"{annotation_dir(e)}/{a.DYN_MASKS}")
    depth = src(a.DEPTH)
    if depth is not None:
        dest.put_bytes(depth_key(e), disparity_zip_bytes(f.load_npz(depth)["depth"]))
        written.add(depth_key(e))
    for key in set(clip_keys(e.uuid, e.place)) - written:
        dest.delete(key)


def is_complete(dest: ArtifactStore, e: Entry) -> bool:
    return dest.exists(video_key(e))


def metadata_table(entries: list[Entry], ours: pd.DataFrame) -> pd.DataFrame:
    """The published columns first, then ours (our ``id`` as ``clip_id``; names both share appear once)."""
    ours = ours.set_index("id", drop=False)
    rows = []
    for e in entries:
        mine = ours.loc[e.clip.id]
        row = {
            "id": e.uuid,
            "group id": int(e.place.split("_")[1]),
            "video path": video_key(e),
            "annotation path": annotation_dir(e),
        }
        for name, column in REFERENCE_COLUMNS.items():
            if column is not None:
                row[name] = mine.get(column)
        row[OUR_ID] = mine["id"]
        row.update({k: v for k, v in mine.items() if k != "id" and k not in row})
        rows.append(row)
    columns = list(REFERENCE_COLUMNS) + [OUR_ID] + [c for c in ours.columns if c != "id" and c not in REFERENCE_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def native_row(hq_row: dict) -> dict:
    """A row of the published table back under our column names (what the native metadata.csv holds)."""
    mapped = {k: v for k, v in hq_row.items() if k not in REFERENCE_COLUMNS or REFERENCE_COLUMNS[k] == k}
    mapped.pop(OUR_ID, None)
    return {"id": hq_row[OUR_ID], **mapped}
