"""Camera tracking benchmark: accuracy on every shared ground-truth case and speed,
side by side with pycolmap incremental mapping (sequential matching) on the same frames.

    .venv/bin/python bench/tracking.py [--cases a,b] [--no-colmap] [--no-mover-test] [--out results.json]

Accuracy uses the shared evaluate.py (ATE after Sim(3) per shot, rotation error, labels).
Focal error is computed here from gt_intrinsics (the tracker never reads it).
Speed: wall time of track_camera on decoded 640x360 frames (decode excluded and reported
separately), single process; note the machine's load when reading the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from services.camera.labels import motion_instructions, trajectory_stats  # noqa: E402
from services.camera.track import track_camera  # noqa: E402
from samples import bench_cases_dir  # noqa: E402
from services.camera.vocabulary import MotionLabel  # noqa: E402
from services.settings import CameraSettings  # noqa: E402
from services.threads import one_blas_thread  # noqa: E402
from services.video.decode import read_frames  # noqa: E402

sys.path.insert(0, str(bench_cases_dir().parent))
import evaluate  # noqa: E402  (the shared scorer)

ORBIT_CASES = ("orbit_plain", "orbit_text_dyn2")


def to_gt_label(label: str) -> str:
    return "static" if label == MotionLabel.STAY else label.lower().replace(" ", "_")


def label_frames(instructions: dict[str, list[str]], n: int) -> list[set[str]]:
    frames = [{"static"} for _ in range(n)]
    for key, labels in instructions.items():
        a, b = map(int, key.split("->"))
        for f in range(a, min(b, n)):
            frames[f] = {to_gt_label(x) for x in labels}
    return frames


def score_case(case: Path, c2w: np.ndarray, track, fps: float) -> dict:
    meta = json.loads((case / "meta.json").read_text())
    gt = np.load(case / "gt_poses.npy")
    shots = [(s["start"], s["end"]) for s in meta["shots"]]
    pose, aligned = evaluate.pose_metrics(gt, c2w, np.arange(len(c2w)), shots)
    n = meta["num_frames"]
    gt_segs = meta["camera_motion_labels"]
    instr = motion_instructions(c2w, fps, track.frame_indices, track.segments)
    lab = evaluate.label_metrics(evaluate.segments_to_frames(gt_segs, n), label_frames(instr, n), gt_segs, 3)
    K = np.load(case / "gt_intrinsics.npy")
    fx_pred = track.intrinsics[:, 0] * meta["width"]
    focal_err = float(np.median(np.abs(fx_pred / K[0, 0] - 1)))
    # invented translation where the ground truth does not translate (aligned, metres)
    step_gt = np.r_[np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1), 0.0]
    step_pr = np.r_[np.linalg.norm(np.diff(aligned[:, :3, 3], axis=0), axis=1), 0.0]
    cut_steps = {a - 1 for a, _ in shots[1:]}
    still = np.array([step_gt[i] < 1e-6 and i not in cut_steps for i in range(n)])
    ate = pose["ate"]
    return dict(
        case=case.name,
        ate_rmse_m=ate["rmse"] if ate else None,
        ate_over_path=ate["rmse_over_path_length"] if ate else None,
        rot_err_deg=pose["rot_err_after_alignment_deg"]["mean"],
        rpe_rot_deg=pose["rpe_rot_deg"]["mean"] if pose["rpe_rot_deg"] else None,
        invented_translation_m=float(np.nansum(step_pr[still])) if still.any() else None,
        gt_path_m=float(step_gt.sum()),
        focal_err=focal_err,
        focal_estimated=all(track.focal_estimated),
        focal_source="; ".join(track.focal_source),
        label_exact=lab["exact_match"],
        success=track.success,
        reason=track.reason,
        segments=track.segments,
        stats=trajectory_stats(c2w, fps),
    )


def run_colmap(frames: list[np.ndarray], workdir: Path) -> tuple[np.ndarray | None, float, str]:
    try:
        import pycolmap
    except ImportError as exc:
        return None, 0.0, f"pycolmap not installed ({exc})"
    import cv2

    images = workdir / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(images / f"{i:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    db = workdir / "database.db"
    t0 = time.perf_counter()
    reader = pycolmap.ImageReaderOptions()
    pycolmap.extract_features(db, images, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader)
    pycolmap.match_sequential(db)
    maps = pycolmap.incremental_mapping(db, images, workdir / "sparse")
    elapsed = time.perf_counter() - t0
    if not maps:
        return None, elapsed, "pycolmap: no reconstruction"
    rec = max(maps.values(), key=lambda r: r.num_reg_images())
    c2w = np.full((len(frames), 4, 4), np.nan)
    for img in rec.images.values():
        i = int(Path(img.name).stem)
        w2c = np.eye(4)
        pose = img.cam_from_world() if callable(img.cam_from_world) else img.cam_from_world
        w2c[:3, :4] = pose.matrix()
        c2w[i] = np.linalg.inv(w2c)
    return c2w, elapsed, f"pycolmap {pycolmap.__version__}: {rec.num_reg_images()}/{len(frames)} registered"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="")
    ap.add_argument("--no-colmap", action="store_true")
    ap.add_argument("--out", default="")
    ap.add_argument("--no-mover-test", action="store_true", help="camera.mover_test off (to time what it costs)")
    a = ap.parse_args()
    cases = sorted(p for p in bench_cases_dir().iterdir() if (p / "meta.json").exists())
    if a.cases:
        cases = [c for c in cases if c.name in a.cases.split(",")]
    settings = CameraSettings(mover_test=not a.no_mover_test)
    rows = []
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()}")
    for case in cases:
        meta = json.loads((case / "meta.json").read_text())
        t0 = time.perf_counter()
        frames = list(read_frames(case / "video.mp4"))
        t_decode = time.perf_counter() - t0
        c0 = time.process_time()
        t0 = time.perf_counter()
        with one_blas_thread():  # as every stage runs (services/execution.py)
            track = track_camera(iter(frames), meta["fps"], settings)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        row = score_case(case, track.c2w, track, meta["fps"])
        row.update(fps_wall=len(frames) / wall, cpu_s_per_frame=cpu / len(frames), decode_s=t_decode)
        if not a.no_colmap:
            with tempfile.TemporaryDirectory() as tmp:
                c2w_c, t_c, note = run_colmap(frames, Path(tmp))
            row["colmap_note"] = note
            row["colmap_fps"] = len(frames) / t_c if t_c else None
            if c2w_c is not None:
                gt = np.load(case / "gt_poses.npy")
                shots = [(s["start"], s["end"]) for s in meta["shots"]]
                pm, _ = evaluate.pose_metrics(gt, c2w_c, np.arange(len(c2w_c)), shots)
                row["colmap_ate_over_path"] = pm["ate"]["rmse_over_path_length"] if pm["ate"] else None
                row["colmap_rot_err_deg"] = pm["rot_err_after_alignment_deg"]["mean"] if pm["rot_err_after_alignment_deg"] else None
                row["colmap_valid"] = pm["num_valid_pred"]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "stats"}, default=str))
    print()
    hdr = f"{'case':24s} {'ATE/path':>9s} {'rot deg':>8s} {'still m':>8s} {'focal%':>7s} {'est':>4s} {'labels':>7s} {'fps':>6s}"
    if not a.no_colmap:
        hdr += f" | {'colmap ATE/path':>15s} {'rot deg':>8s} {'fps':>6s}"
    print(hdr)
    fmt = lambda v, p=4: "-" if v is None else (f"{v:.{p}f}" if isinstance(v, float) else str(v))  # noqa: E731
    for r in rows:
        line = (f"{r['case']:24s} {fmt(r['ate_over_path']):>9s} {fmt(r['rot_err_deg'], 3):>8s} "
                f"{fmt(r['invented_translation_m']):>8s} {100 * r['focal_err']:7.2f} {'y' if r['focal_estimated'] else 'n':>4s} "
                f"{('(orbit) ' if r['case'] in ORBIT_CASES else '') + fmt(r['label_exact'], 3):>7s} {r['fps_wall']:6.1f}")
        if not a.no_colmap:
            line += (f" | {fmt(r.get('colmap_ate_over_path')):>15s} {fmt(r.get('colmap_rot_err_deg'), 3):>8s} "
                     f"{fmt(r.get('colmap_fps'), 1):>6s}")
        print(line)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
