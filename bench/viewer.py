"""The viewer's speed in headless Chromium: how long the dataset page takes to open for a big table, and how long a
clip page takes to become interactive.

Makes (or reuses) a dataset with `spatialvid run` on bikes.mp4 (demo config), then copies its clip records into
1,000- and 10,000-clip datasets (metadata rows, records, hard-linked clips and annotation folders), starts
`spatialvid view` on each and measures, in milliseconds from navigation start (the page's own clock):

- dataset page: first page of rows rendered, cold (the server builds its index) and warm; the thumbnails on
  screen loaded (the rest load lazily as the table scrolls); a sort on a score column and a numeric filter, click to re-rendered rows;
- clip page (a fresh load of ``#/clip/ID``): video ready to play (interactive), first mask overlay drawn, 3D view
  drawn with its point cloud.

    .venv/bin/python bench/viewer.py [--source DIR] [--workdir /tmp/bench_viewer] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samples import REPO_ROOT, bikes_path  # noqa: E402
from services.viewer.headless import browser  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results"
WAIT_MS = 120_000


def make_source(workdir: Path) -> Path:
    out = workdir / "bikes"
    if not (out / "metadata.parquet").exists():
        subprocess.run([sys.executable, "-m", "services.cli", "run", str(bikes_path()), "--out", str(out),
                        "--config", str(REPO_ROOT / "configs" / "demo.yaml")], check=True)
    return out


def copy_dataset(source: Path, out: Path, count: int) -> Path:
    """A ``count``-clip dataset from the source's clips, copied round robin under new ids."""
    if (out / "metadata.parquet").exists() and len(pd.read_parquet(out / "metadata.parquet")) == count:
        return out
    shutil.rmtree(out, ignore_errors=True)
    for sub in ("clips", "annotations", "records/clips", "records/videos"):
        (out / sub).mkdir(parents=True)
    table = pd.read_parquet(source / "metadata.parquet")
    rows = []
    for i in range(count):
        row = table.iloc[i % len(table)].copy()
        original = row["id"]
        row["id"] = new_id = f"{original}_copy{i:05d}"
        rows.append(row)
        os.link(source / "clips" / f"{original}.mp4", out / "clips" / f"{new_id}.mp4")
        (out / "annotations" / new_id).mkdir()
        for file in (source / "annotations" / original).iterdir():
            os.link(file, out / "annotations" / new_id / file.name)
        record = json.loads((source / "records" / "clips" / f"{original}.json").read_text())
        record["id"] = new_id
        (out / "records" / "clips" / f"{new_id}.json").write_text(json.dumps(record))
    pd.DataFrame(rows).to_parquet(out / "metadata.parquet", index=False)
    for video in (source / "records" / "videos").iterdir():
        shutil.copy(video, out / "records" / "videos" / video.name)
    return out


class Viewer:
    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "services.cli", "view", str(folder)],
                                        stdout=subprocess.PIPE, text=True)
        self.url = re.search(r"(http://\S+/)", self.process.stdout.readline()).group(1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def table_times(b, url: str) -> dict[str, float]:
    page = b.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_function("window.viewerState && window.viewerState.tableLoadedAt !== null", timeout=WAIT_MS)
    rendered = page.evaluate("window.viewerState.tableLoadedAt")
    # Thumbnails load lazily: the ones on screen.
    page.wait_for_function("""[...document.querySelectorAll('img.thumb')]
        .filter(i => i.getBoundingClientRect().top < innerHeight).every(i => i.complete && i.naturalWidth > 0)""",
                           timeout=WAIT_MS)
    thumbs = page.evaluate("performance.now()")
    before = page.evaluate("performance.now()")
    page.click('#clips thead th[data-column="motion"]')
    page.wait_for_function(f"window.viewerState.tableLoadedAt > {before}", timeout=WAIT_MS)
    sort = page.evaluate("window.viewerState.tableLoadedAt") - before
    before = page.evaluate("performance.now()")
    page.fill('input[data-filter="motion"]', ">5")
    page.wait_for_function(f"window.viewerState.tableLoadedAt > {before}", timeout=WAIT_MS)
    # The filter waits 250 ms for typing to pause before it asks the server.
    filtered = page.evaluate("window.viewerState.tableLoadedAt") - before
    rows = page.evaluate("window.viewerState.total")
    page.close()
    return {"table_rendered_ms": rendered, "thumbnails_on_screen_loaded_ms": thumbs, "sort_ms": sort,
            "filter_ms_incl_250ms_debounce": filtered, "matching_rows": rows}


def clip_times(b, url: str, clip_id: str) -> dict[str, float]:
    page = b.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}#/clip/{clip_id}")
    page.wait_for_function("window.viewerState.clip && window.viewerState.interactiveAt", timeout=WAIT_MS)
    interactive = page.evaluate("window.viewerState.interactiveAt")
    page.wait_for_function("""() => { const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }""", timeout=WAIT_MS)
    overlay = page.evaluate("performance.now()")
    page.wait_for_function("window.viewerState.scene && window.viewerState.scene.frames > 0", timeout=WAIT_MS)
    scene = page.evaluate("performance.now()")
    page.close()
    return {"video_ready_ms": interactive, "mask_overlay_ms": overlay, "scene_drawn_ms": scene}


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.median([r[k] for r in runs])), 1) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="a finished bikes dataset to copy from")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_viewer"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.source or make_source(args.workdir)
    results: dict[str, object] = {"load_average_start": os.getloadavg()}
    with browser() as b:
        for count in (1_000, 10_000):
            folder = copy_dataset(source, args.workdir / f"copies_{count}", count)
            viewer = Viewer(folder)
            try:
                cold = table_times(b, viewer.url)
                warm = median([table_times(b, viewer.url) for _ in range(args.repeats)])
                clip_id = pd.read_parquet(folder / "metadata.parquet")["id"].iloc[0]
                clip = median([clip_times(b, viewer.url, clip_id) for _ in range(args.repeats)])
            finally:
                viewer.stop()
            results[f"{count}_clips"] = {"dataset_page_cold": cold, "dataset_page_warm_median": warm,
                                         "clip_page_median": clip, "clip": clip_id}
            print(count, json.dumps(results[f"{count}_clips"], indent=1), flush=True)
    results["load_average_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "viewer.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
