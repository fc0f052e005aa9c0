"""Scoring throughput: one decode per clip (this project) vs one decode per score (the reference's way).

Makes 5 s 640x360 clips from real footage (bikes.mp4, vtest.avi, Megamind.avi,
the shared bench cases), then, in one run on the same clips:

- ``one-pass``: ``ScoringSuite`` (luminance, VMAF motion, DIS flow, OCR text
  area, BRISQUE or aesthetic) from a single ffmpeg decode per clip;
- ``separate``: the reference's way, one pass per score, each decoding the
  clip: luminance, quality and OCR each decode the clip for their 3 frames
  (ffmpeg select + scale to 640x360), and motion runs ffmpeg's libvmaf filter
  with the clip as both reference and distorted input (default model, motion
  feature), reading ``integer_motion2``'s pooled mean.

Prints clips/minute for both, the speed-up, the per-score time split, and how
far the two ways' scores are apart.

    .venv/bin/python bench/scoring.py [--clips 12] [--workdir /tmp/bench_scoring]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samples import bench_cases_dir, bikes_path, megamind_path, vtest_path  # noqa: E402
from services.scoring.luminance import frame_luminance  # noqa: E402
from services.scoring.suite import build_suite, frame_points  # noqa: E402
from services.scoring.frames import sample_indices  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.video.probe import probe  # noqa: E402

SIZE = (640, 360)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (ffmpeg): load-independent work."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def static_ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_clips(workdir: Path, count: int, ffmpeg: str) -> list[Path]:
    sources: list[tuple[Path, float]] = []
    for src, length in [(bikes_path(), 10.0), (vtest_path(), 79.0), (megamind_path(), 30.0)]:
        if src.exists():
            sources += [(src, start) for start in np.arange(0.0, length - 5.0, 5.0)]
    cases = sorted(bench_cases_dir().glob("*/video.mp4")) if bench_cases_dir().exists() else []
    sources += [(case, 0.0) for case in cases]
    order = sorted(range(len(sources)), key=lambda i: i % 3)  # mix the sources
    clips = []
    workdir.mkdir(parents=True, exist_ok=True)
    for n, i in enumerate(order[:count]):
        src, start = sources[i]
        out = workdir / f"clip{n:02d}_{src.stem}_{int(start)}.mp4"
        if not out.exists():
            # Loop short sources (the 4 s bench cases) so every clip is 5 s.
            subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-stream_loop", "1", "-ss", str(start),
                            "-i", str(src), "-t", "5", "-an", "-vf", f"scale={SIZE[0]}:{SIZE[1]}", "-c:v", "libx264",
                            "-crf", "20", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out)], check=True)
        clips.append(out)
    return clips


# -- the reference's way: one decode per score ----------------------------------------------------
def decode_samples(path: Path, num_frames: int, points: list[float], ffmpeg: str) -> np.ndarray:
    idx = sample_indices(num_frames, points)
    select = "+".join(f"eq(n\\,{i})" for i in sorted(set(idx)))
    out = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-vf",
                          f"select={select},scale={SIZE[0]}:{SIZE[1]}:flags=area", "-fps_mode", "passthrough",
                          "-pix_fmt", "rgb24", "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(out, np.uint8).reshape(-1, SIZE[1], SIZE[0], 3)
    order = {i: k for k, i in enumerate(sorted(set(idx)))}
    return frames[[order[i] for i in idx]]


def libvmaf_motion(path: Path, ffmpeg: str, log: Path) -> float:
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-i", str(path), "-lavfi",
                    f"[0:v][1:v]libvmaf=feature=name=motion:log_fmt=json:log_path={log}", "-f", "null", "-"],
                   check=True)
    return json.loads(log.read_text())["pooled_metrics"]["integer_motion2"]["mean"]


def separate_passes(
    path: Path, num_frames: int, suite, ffmpeg: str, workdir: Path, own_motion: bool = False
) -> tuple[dict, dict]:
    from services.scoring.base import SampledFrames

    points = frame_points(3)
    by_name = {s.name: s for s in suite.scorers}
    quality = by_name.get("aesthetic") or by_name["brisque"]
    seconds: dict[str, float] = {}
    columns: dict[str, float] = {}

    def frames_for(rgb):
        return SampledFrames(rgb=rgb, indices=[], flow_pairs=np.zeros((0, 2, 1, 1), np.uint8), flow_indices=[],
                             num_frames=num_frames, source_size=SIZE)

    t = time.perf_counter()
    columns["luminance_mean"] = float(frame_luminance(decode_samples(path, num_frames, points, ffmpeg)).mean())
    seconds["luminance"] = time.perf_counter() - t
    t = time.perf_counter()
    columns.update(quality.score(frames_for(decode_samples(path, num_frames, points, ffmpeg))))
    seconds[quality.name] = time.perf_counter() - t
    t = time.perf_counter()
    columns.update(by_name["ocr"].score(frames_for(decode_samples(path, num_frames, points, ffmpeg))))
    seconds["ocr"] = time.perf_counter() - t
    t = time.perf_counter()
    if own_motion:
        # The same exact motion code, but in a decode pass of its own.
        from services.scoring.frames import decode_for_scoring
        from services.scoring.vmaf_motion import MotionAccumulator

        info = probe(path)
        frames = decode_for_scoring(path, (info.width, info.height), num_frames, SIZE, [], 0,
                                    {"motion": MotionAccumulator()}, ffmpeg=ffmpeg)
        columns["motion"] = frames.sink_results["motion"]["motion"]
    else:
        columns["motion"] = libvmaf_motion(path, ffmpeg, workdir / "vmaf.json")
    seconds["motion"] = time.perf_counter() - t
    return columns, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_scoring"))
    parser.add_argument("--ocr-threads", type=int, default=None)
    args = parser.parse_args()
    ffmpeg = static_ffmpeg()
    clips = make_clips(args.workdir, args.clips, ffmpeg)
    infos = {c: probe(c) for c in clips}
    settings = Settings()
    if args.ocr_threads:
        settings.score.ocr_threads = args.ocr_threads
    suite = build_suite(settings.score, settings.models, settings.triton, settings.video)
    print(f"{len(clips)} clips of 5 s at {SIZE[0]}x{SIZE[1]}; scorers: {', '.join(s.name for s in suite.scorers)}")
    for note in suite.notes:
        print(f"  note: {note}")
    # Warm up both ways once (model sessions, page cache) on the first clip.
    first = clips[0]
    suite.score_file(first, (infos[first].width, infos[first].height), infos[first].num_frames)
    separate_passes(first, infos[first].num_frames, suite, ffmpeg, args.workdir)

    # The three ways run clip by clip, interleaved, so that load from other
    # processes on this shared machine falls on all of them alike.
    one_split: dict[str, float] = {}
    sep_split: dict[str, float] = {}
    same_split: dict[str, float] = {}
    ours, theirs = {}, {}
    one_pass = separate = same_code = 0.0
    cpu = {"one": 0.0, "separate": 0.0, "same": 0.0}
    for clip in clips:
        info = infos[clip]
        started, cpu0 = time.perf_counter(), cpu_seconds()
        report = suite.score_file(clip, (info.width, info.height), info.num_frames)
        one_pass += time.perf_counter() - started
        cpu["one"] += cpu_seconds() - cpu0
        ours[clip] = report.columns
        for name, s in report.seconds.items():
            one_split[name] = one_split.get(name, 0.0) + s
        started, cpu0 = time.perf_counter(), cpu_seconds()
        theirs[clip], split = separate_passes(clip, info.num_frames, suite, ffmpeg, args.workdir)
        separate += time.perf_counter() - started
        cpu["separate"] += cpu_seconds() - cpu0
        for name, s in split.items():
            sep_split[name] = sep_split.get(name, 0.0) + s
        started, cpu0 = time.perf_counter(), cpu_seconds()
        _, split = separate_passes(clip, info.num_frames, suite, ffmpeg, args.workdir, own_motion=True)
        same_code += time.perf_counter() - started
        cpu["same"] += cpu_seconds() - cpu0
        for name, s in split.items():
            same_split[name] = same_split.get(name, 0.0) + s

    n = len(clips)
    print(f"\none pass : {n / one_pass * 60:7.1f} clips/min  ({one_pass / n * 1000:6.0f} ms/clip)")
    print(f"separate : {n / separate * 60:7.1f} clips/min  ({separate / n * 1000:6.0f} ms/clip)  "
          "reference's way: a decode per score, motion by ffmpeg libvmaf")
    print(f"speed-up : {separate / one_pass:7.2f}x")
    print(f"separate, this project's motion code instead of libvmaf: {n / same_code * 60:7.1f} clips/min "
          f"({same_code / n * 1000:6.0f} ms/clip), speed-up {same_code / one_pass:.2f}x "
          f"(motion {same_split['motion'] / n * 1000:.0f} ms/clip)")
    print(f"CPU time per clip (this process + ffmpeg children; independent of other load): one pass "
          f"{cpu['one'] / n * 1000:.0f} ms, separate {cpu['separate'] / n * 1000:.0f} ms "
          f"({cpu['separate'] / cpu['one']:.2f}x), separate with this project's motion {cpu['same'] / n * 1000:.0f} ms "
          f"({cpu['same'] / cpu['one']:.2f}x)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")
    print("\nper-score time split, ms/clip (one pass: decode is the shared pass; motion runs while it streams)")
    for name in sorted(set(one_split) | set(sep_split)):
        a = f"{one_split[name] / n * 1000:8.1f}" if name in one_split else "       -"
        b = f"{sep_split[name] / n * 1000:8.1f}" if name in sep_split else "       -"
        print(f"  {name:<10} one-pass {a}   separate {b}")
    print("\nagreement between the two ways (max abs difference over clips)")
    for column in ("motion", "luminance_mean", "ocr", "quality_brisque", "aesthetic"):
        pairs = [(ours[c].get(column), theirs[c].get(column)) for c in clips]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if pairs:
            print(f"  {column:<15} {max(abs(a - b) for a, b in pairs):.6f}  (values {min(a for a, _ in pairs):.3f}"
                  f"..{max(a for a, _ in pairs):.3f})")


if __name__ == "__main__":
    main()
