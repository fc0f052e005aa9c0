"""Every file name the pipeline writes, defined once: stages, exports, the viewer, the gateway and the
tests import them from here.

Per clip, under ``annotations/{clip_id}/`` (``ClipRecord.annotation_key``), with the stage writing each:
"""

from __future__ import annotations

# -- camera: one row per annotated frame (services/annotate.py picks the frames) ---------------
POSES = "poses.npy"  # world-to-camera quaternion and translation, (N, 7)
C2W = "c2w.npy"  # camera-to-world 4x4 matrices, (N, 4, 4)
INTRINSICS = "intrinsics.npy"  # fx, fy, cx, cy normalised by the frame's size, (N, 4)
INDEXES = "indexes.txt"  # ``k frame_idx`` per row: which clip frame each row describes
INSTRUCTIONS = "instructions.json"  # camera-motion labels by segment
# Every tracked frame's pose when an annotation rate leaves frames out (the depth stage's neighbour views).
DENSE_TRACK = "track_dense.npz"
# The quality verdict's evidence: the camera stage writes the tracker's part, the depth stage adds the views'.
QC_EVIDENCE = "qc_evidence.json"

# -- depth ---------------------------------------------------------------------------------------
DEPTH = "depth.npz"  # float16 depth per annotated frame, in the poses' units, with K_depth
DYN_MASKS = "dyn_masks.npz"  # dynamic-object masks per annotated frame, (N, H, W) bool
DEPTH_EXR_ZIP = "depth.zip"  # the published layout's disparity as one EXR per frame (depth.export_exr_zip)

# -- caption -------------------------------------------------------------------------------------
CAPTION = "caption.json"

# The stage that writes each per-clip file (a missing input names it).
WRITTEN_BY = {
    **dict.fromkeys((POSES, C2W, INTRINSICS, INDEXES, INSTRUCTIONS, DENSE_TRACK, QC_EVIDENCE), "camera"),
    **dict.fromkeys((DEPTH, DYN_MASKS, DEPTH_EXR_ZIP), "depth"),
    CAPTION: "caption",
}

# The clip's own video (``ClipRecord.clip_key``: clips/{clip_id}.mp4), as a stage input or output.
CLIP_VIDEO = "clip video"

# -- per output folder -------------------------------------------------------------------------
METADATA_TABLE = "metadata"  # metadata.csv and metadata.parquet: one row per clip
VIDEOS_TABLE = "videos"  # videos.csv and videos.parquet: one row per input video
PROVENANCE = "provenance.json"  # which backend produced each column
SUMMARY = "summary.json"  # the run's counts (services/orchestration/accounting.RunSummary)
JOB = "job.json"  # a distributed job's final status, owner included
LOG = "spatialvid.log"  # the run's log (the embedded run's logging, the distributed job's task log)

# -- exports -------------------------------------------------------------------------------------
SAMPLE_METADATA = "metadata.json"  # a WebDataset sample's metadata row (services/export/shards.py)
