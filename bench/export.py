"""Export speed, loader throughput and size per clip-minute of each layout.

On native outputs (by default: bikes.mp4 through every stage with configs/demo.yaml, and the shared cases
as whole clips through camera, depth and caption; or ``--native DIR...``), measures:

- export speed (clips/s) of ``spatialvid-hq`` and ``webdataset``: a fresh export, then a repeat (nothing to do);
- loader throughput (samples/s) from each layout with a DataLoader of 2 workers (``--frames`` frames at
  stride 1, ``--size`` HxW), after one warm-up pass;
- bytes per clip-minute of the native layout (clips + annotations), the HQ export and the shards.

    nice -n 10 .venv/bin/python bench/export.py [--native DIR...] [--out bench/results/export.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.dataset.loader import SpatialVIDDataset, SpatialVIDShards, collate  # noqa: E402
from services.export.run import export  # noqa: E402
from services.pipeline import EmbeddedPipeline  # noqa: E402
from samples import REPO_ROOT, bench_cases_dir, bikes_path  # noqa: E402
from services.settings import ExportSettings, load_settings  # noqa: E402
from services.storage.local import LocalStore  # noqa: E402


def make_natives(work: Path) -> list[Path]:
    bikes = work / "bikes"
    EmbeddedPipeline(load_settings(REPO_ROOT / "configs" / "demo.yaml"), bikes,
                     ["clip", "score", "filter", "camera", "depth", "caption"]).run([bikes_path()])
    cases = work / "cases"
    inputs = work / "case-inputs"
    inputs.mkdir()
    for case in sorted(p for p in bench_cases_dir().iterdir() if (p / "video.mp4").is_file()):
        os.link(case / "video.mp4", inputs / f"{case.name}.mp4")
    EmbeddedPipeline(load_settings(), cases, ["camera", "depth", "caption"]).run([inputs])
    return [bikes, cases]


def tree_bytes(paths) -> int:
    """Bytes of the files and folders (recursively) given."""
    total = 0
    for root in map(Path, paths):
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total


def loader_rate(make, rounds: int = 2) -> tuple[float, int]:
    """samples/s over the whole dataset with 2 workers, best of ``rounds`` after a warm-up."""
    best, count = 0.0, 0
    for i in range(rounds + 1):
        loader = DataLoader(make(), batch_size=1, num_workers=2, collate_fn=collate)
        started = time.perf_counter()
        count = sum(len(b["key"]) for b in loader)
        rate = count / (time.perf_counter() - started)
        if i > 0:
            best = max(best, rate)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--native", nargs="*", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", default="256x448", help="HxW of the loader's samples")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "export.json")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    results = {"load_average_start": os.getloadavg(), "runs": []}
    try:
        natives = args.native or make_natives(work)
        for native in natives:
            table = pd.read_csv(native / "metadata.csv")
            kept = table[table["filtered_by"].isna() & table["failed_stage"].isna()]
            minutes = float((kept["num_frames"] / kept["fps"]).sum() / 60)
            entry = {"native": str(native), "clips": len(kept), "clip_minutes": round(minutes, 4)}
            native_files = [native / "clips" / f"{c}.mp4" for c in kept["id"]] + [
                native / "annotations" / c for c in kept["id"]]
            entry["bytes_per_clip_minute"] = {"native": round(tree_bytes(native_files) / minutes)}
            outs = {}
            for fmt in ("spatialvid-hq", "webdataset"):
                out = work / f"{native.name}-{fmt}"
                options = ExportSettings(shard_clips=4)
                fresh = export(LocalStore(native), LocalStore(out), fmt, options)
                repeat = export(LocalStore(native), LocalStore(out), fmt, options)
                entry[f"{fmt}_clips_per_s"] = round(fresh.clips / fresh.seconds, 2)
                entry[f"{fmt}_repeat_s"] = repeat.seconds
                entry["bytes_per_clip_minute"][fmt] = round(tree_bytes([out]) / minutes)
                outs[fmt] = out
            frames = min(args.frames, int(kept["num_frames"].min()))
            options = dict(num_frames=frames, stride=1, size=(height, width))
            entry["loader"] = {"frames": frames, "size": [height, width]}
            for name, make in (
                ("native", lambda: SpatialVIDDataset(native, **options)),
                ("spatialvid-hq", lambda: SpatialVIDDataset(outs["spatialvid-hq"], **options)),
                ("webdataset", lambda: SpatialVIDShards(sorted(str(p) for p in outs["webdataset"].glob("*.tar")),
                                                        **options)),
            ):
                rate, count = loader_rate(make)
                entry["loader"][f"{name}_samples_per_s_2_workers"] = round(rate, 2)
                entry["loader"]["samples"] = count
            results["runs"].append(entry)
            print(json.dumps(entry, indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"load average {results['load_average_start']} -> {results['load_average_end']}; wrote {args.out}")


if __name__ == "__main__":
    main()
