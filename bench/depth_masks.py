"""Depth + dynamic-mask benchmark of the default geometric backends.

    python bench/depth_masks.py [--cases a,b] [--vtest-frames 120] [--no-memory] [--poses gt|tracked]

For every shared ground-truth case (GT poses and intrinsics as input, or with --poses tracked those the camera
stage estimates, as `spatialvid run` uses them): depth AbsRel / delta<1.25 after one median scale per clip and
the share of valid pixels, mask IoU / precision / recall / predicted share (the false positives on static
scenes), all scored by the shared evaluate.py; frames per second with the time split by step (tracking not
included); peak traced memory of the streaming loop against clip length; and mask overlays on real footage
(vtest.avi, fixed camera) written to bench/output/.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.annotate import chosen_frames  # noqa: E402
from services.depth.backends import GeometricDepthAndMasks  # noqa: E402
from services.depth.multiview import iter_depth_and_masks  # noqa: E402
from services.depth.overlays import OverlayText  # noqa: E402
from services.depth.params import DepthSettings  # noqa: E402
from samples import bench_cases_dir, vtest_path  # noqa: E402
from services.scoring.ocr import PPOCRDetector  # noqa: E402
from services.threads import one_blas_thread  # noqa: E402
from services.video.decode import read_frames  # noqa: E402

CASES = ["room_plain", "room_dyn2", "street_dyn3", "orbit_plain", "room_static_dyn3", "street_dark_dyn1",
         "orbit_text_dyn2", "cut_room_street_dyn1"]
OUT = REPO / "bench" / "output"


def evaluator():
    spec = importlib.util.spec_from_file_location("shared_evaluate", bench_cases_dir().parent / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tracked_poses(video: Path) -> tuple[np.ndarray, np.ndarray]:
    """(c2w, per-frame K) as the camera stage gives them (services.camera.track, default settings)."""
    from services.camera.track import track_camera
    from services.depth.geometry import intrinsics_from_normalised
    from services.settings import CameraSettings
    from services.video.probe import probe

    info = probe(video)
    with one_blas_thread():
        track = track_camera(read_frames(video), info.fps, CameraSettings())
    K = np.stack([intrinsics_from_normalised(row, info.width, info.height) for row in track.intrinsics])
    return track.c2w, K


def run_case(name: str, params: DepthSettings, ev, overlay: OverlayText | None, poses: str = "gt",
             rate_hz: float | None = None) -> dict:
    d = bench_cases_dir() / name
    if poses == "tracked":
        c2w, K = tracked_poses(d / "video.mp4")
    else:
        c2w, K = np.load(d / "gt_poses.npy"), np.load(d / "gt_intrinsics.npy")
    timings: dict[str, float] = {}
    both = GeometricDepthAndMasks(params, overlay)  # as the depth stage runs it by default
    from services.video.probe import probe

    refs = chosen_frames(len(c2w), probe(d / "video.mp4").fps, rate_hz)  # annotate.rate_hz
    start = time.perf_counter()
    with one_blas_thread():  # as every stage runs (services/execution.py)
        out = list(both.iter_both(read_frames(d / "video.mp4"), c2w, K, timings=timings,
                                  refs=None if rate_hz is None else refs))
    elapsed = time.perf_counter() - start
    if overlay is not None:  # the detector runs as frames are read: split it out of decode_prepare
        timings["decode_prepare"] = max(0.0, timings["decode_prepare"] - overlay.seconds)  # frame 0 is read before the clock starts
        timings["text"] = overlay.seconds
    depth = np.stack([x[0] for x in out]).astype(np.float16).astype(np.float32)  # as saved
    masks = np.stack([x[1] for x in out])
    gt = np.load(d / "gt_depth.npz")
    dm = ev.depth_metrics(gt["depth"], depth, refs, (360, 640), int(gt["downsample"]))
    mm = ev.mask_metrics(np.load(d / "gt_dynamic_masks.npz")["masks"], masks, refs)
    n = len(depth)
    return dict(case=name, frames=n, fps=n / elapsed, valid=float((depth > 0).mean()), depth=dm, masks=mm,
                ms={k: 1000 * v / n for k, v in timings.items()})


def peak_memory(params: DepthSettings, lengths: list[int]) -> list[tuple[int, float]]:
    """Peak traced (numpy/Python) memory of the streaming loop, outputs consumed and dropped as they come."""
    d = bench_cases_dir() / "room_dyn2"
    c2w, K = np.load(d / "gt_poses.npy"), np.load(d / "gt_intrinsics.npy")
    rows = []
    for n in lengths:
        # longer clips by playing the case forwards then backwards (poses follow the frames)
        order = np.concatenate([np.arange(96), np.arange(95, -1, -1)] * (n // 192 + 1))[:n]
        frames = list(read_frames(d / "video.mp4"))
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for _ in iter_depth_and_masks((frames[i] for i in order), c2w[order], K, params):
            pass
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        del frames
        rows.append((n, peak / 2**20))
    return rows


def vtest_overlays(params: DepthSettings, count: int) -> list[Path]:
    """Fixed camera: identity poses; K from a nominal 60 deg field of view (irrelevant without translation)."""
    path = vtest_path()
    frames = list(read_frames(path, count=count))
    H, W = frames[0].shape[:2]
    f = 0.5 * W / np.tan(np.radians(30))
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]])
    c2w = np.tile(np.eye(4), (len(frames), 1, 1))
    OUT.mkdir(parents=True, exist_ok=True)
    written, shares = [], []
    for i, (_, mask) in enumerate(iter_depth_and_masks(frames, c2w, K, params)):
        shares.append(mask.mean())
        if i in (10, count // 2, count - 10):
            bgr = cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR)
            tint = bgr.copy()
            tint[mask] = (0, 0, 255)
            over = cv2.addWeighted(bgr, 0.55, tint, 0.45, 0)
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(over, contours, -1, (0, 255, 255), 1)
            target = OUT / f"vtest_mask_{i:03d}.png"
            cv2.imwrite(str(target), over)
            written.append(target)
    print(f"vtest.avi: {len(frames)} frames {W}x{H}, mean masked share {np.mean(shares):.3f}")
    return written


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--vtest-frames", type=int, default=120)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-overlay-text", action="store_true", help="do not keep burned-in text out of the masks")
    ap.add_argument("--text-every", type=int, default=4, help="run the text detector on every n-th frame")
    ap.add_argument("--poses", choices=["gt", "tracked"], default="gt",
                    help="ground-truth poses and intrinsics, or those the camera stage tracks (not timed)")
    ap.add_argument("--rate-hz", type=float, default=None,
                    help="annotate this many frames per second (annotate.rate_hz); scored on those frames")
    args = ap.parse_args()
    cv2.setNumThreads(2)
    params = DepthSettings()
    ev = evaluator()
    overlay = None if args.no_overlay_text else OverlayText(PPOCRDetector(threads=1), args.text_every)
    load = os.getloadavg()
    print(f"conditions: {os.cpu_count()} cores, cv2 threads {cv2.getNumThreads()}, load avg {load[0]:.1f} "
          f"(other processes share the cores), depth grid {params.depth_scale}x, DIS {params.flow_preset}, "
          f"{args.poses} poses, rate {args.rate_hz or 'every frame'}")
    head = (f"{'case':22s} {'AbsRel':>7s} {'d<1.25':>7s} {'scale':>6s} {'valid':>6s} | {'IoU':>5s} {'prec':>5s} "
            f"{'rec':>5s} {'pred%':>6s} | {'fps':>5s} | ms/frame by step")
    print(head)
    for name in args.cases.split(","):
        r = run_case(name, params, ev, overlay, args.poses, args.rate_hz)
        dm, mm = r["depth"], r["masks"]
        fmt = lambda x, p=3: "   -  " if x is None else f"{x:.{p}f}"  # noqa: E731
        print(f"{name:22s} {fmt(dm.get('abs_rel')):>7s} {fmt(dm.get('delta_1_25')):>7s} {fmt(dm.get('scale'), 2):>6s} "
              f"{r['valid']:6.3f} | {fmt(mm['iou'], 2):>5s} {fmt(mm['precision'], 2):>5s} {fmt(mm['recall'], 2):>5s} "
              f"{100 * mm['pred_positive_fraction']:6.2f} | {r['fps']:5.1f} | "
              + " ".join(f"{k} {v:.1f}" for k, v in r["ms"].items()))
    if not args.no_memory:
        for n, mib in peak_memory(params, [48, 192, 384]):
            print(f"peak traced memory, {n:4d}-frame clip: {mib:.1f} MiB")
    if args.vtest_frames:
        for p in vtest_overlays(params, args.vtest_frames):
            print("overlay:", p.relative_to(REPO))


if __name__ == "__main__":
    main()
