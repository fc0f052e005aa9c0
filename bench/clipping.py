"""Shot detection speed: decoding alone vs this project's detector vs PySceneDetect as the reference runs it.

For each file, best of ``--repeat`` runs (the minimum is the honest figure on a
shared machine), as wall time and as CPU time (this process and its ffmpeg
children, all threads):
  (a) decode alone: ffmpeg -> small BGR frames at the analysis size, discarded;
  (b) this project's detection (services.video.shots) on that same stream,
      with the default settings (every frame scored) and with frame_step=2
      (the reference's sampling);
  (c) PySceneDetect run the way the reference runs it: ContentDetector(21, 15)
      + AdaptiveDetector(3.0, luma only, 15), frame_skip=1, its own OpenCV
      decoding and automatic downscale to width 256.
Boundaries (first frame of each new shot) are printed for (b) and (c), plus
PySceneDetect on every frame (frame_skip=0) for reference.

    .venv/bin/python bench/clipping.py [--repeat 3] [--no-720p] [FILE...]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from samples import bigbuckbunny_path, bikes_path, megamind_path, vtest_path  # noqa: E402
from services.video.decode import read_frames  # noqa: E402
from services.video.probe import probe  # noqa: E402
from services.settings import ClipSettings  # noqa: E402
from services.video.shots import analysis_size, detect_shots  # noqa: E402
from services.video.tools import ffmpeg_path  # noqa: E402

OUTPUT = REPO / "bench" / "output"


def make_720p(path: Path) -> Path:
    """~57 s of real footage at 1280x720, 25 fps: Big Buck Bunny, bikes, Megamind, vtest, back to back."""
    if path.is_file():
        return path
    import subprocess

    parts = [(bigbuckbunny_path(), None), (bikes_path(), None), (megamind_path(), None), (vtest_path(), 30)]
    cmd = [ffmpeg_path(), "-nostdin", "-v", "error", "-y"]
    for source, seconds in parts:
        cmd += (["-t", str(seconds)] if seconds else []) + ["-i", str(source)]
    chains = "".join(
        f"[{i}:v]scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,"
        f"setsar=1,fps=25,format=yuv420p[v{i}];"
        for i in range(len(parts))
    )
    joined = "".join(f"[v{i}]" for i in range(len(parts)))
    cmd += ["-filter_complex", f"{chains}{joined}concat=n={len(parts)}:v=1:a=0[out]", "-map", "[out]",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "250", str(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(cmd, check=True)
    return path


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_best(fn, repeat: int):
    """(best wall seconds, best CPU seconds, result)."""
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        cpu_start, started = _cpu_seconds(), time.perf_counter()
        result = fn()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, _cpu_seconds() - cpu_start)
    return (wall, cpu), result


def decode_only(path: Path, size, fps) -> int:
    return sum(1 for _ in read_frames(path, size=size, pix_fmt="bgr24", fps=fps))


def ours(path: Path, size, fps, step: int):
    return detect_shots(read_frames(path, size=size, pix_fmt="bgr24", fps=fps), ClipSettings(frame_step=step))


def pyscenedetect(path: Path, frame_skip: int) -> list[int]:
    from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, open_video

    video = open_video(str(path))
    manager = SceneManager()
    manager.add_detector(ContentDetector(threshold=21, min_scene_len=15))
    manager.add_detector(AdaptiveDetector(adaptive_threshold=3.0, min_scene_len=15, luma_only=True))
    manager.detect_scenes(video=video, frame_skip=frame_skip)
    return [start.frame_num for start, _ in manager.get_scene_list()[1:]]


def max_offset(a: list[int], b: list[int]) -> int | None:
    """Largest distance between matched boundaries, None when the counts differ."""
    if len(a) != len(b):
        return None
    return max((abs(x - y) for x, y in zip(a, b)), default=0)


def bench_file(path: Path, repeat: int) -> dict:
    info = probe(path)
    size = analysis_size(info.width, info.height, 256)
    t_decode, frames = time_best(lambda: decode_only(path, size, info.fps), repeat)
    t_ours, detection = time_best(lambda: ours(path, size, info.fps, 1), repeat)
    t_ours2, detection2 = time_best(lambda: ours(path, size, info.fps, 2), repeat)
    t_ref, ref_cuts = time_best(lambda: pyscenedetect(path, 1), repeat)
    t_ref_all, ref_all_cuts = time_best(lambda: pyscenedetect(path, 0), 1)
    (t_decode, c_decode), (t_ours, c_ours), (t_ours2, c_ours2) = t_decode, t_ours, t_ours2
    (t_ref, c_ref), (t_ref_all, c_ref_all) = t_ref, t_ref_all
    return {
        "file": path.name,
        "size": f"{info.width}x{info.height}",
        "analysis": f"{size[0]}x{size[1]}",
        "frames": frames,
        "a_decode_s": round(t_decode, 3),
        "b_ours_s": round(t_ours, 3),
        "b_ours_step2_s": round(t_ours2, 3),
        "c_pyscenedetect_s": round(t_ref, 3),
        "pyscenedetect_every_frame_s": round(t_ref_all, 3),
        "a_decode_cpu_s": round(c_decode, 3),
        "b_ours_cpu_s": round(c_ours, 3),
        "b_ours_step2_cpu_s": round(c_ours2, 3),
        "c_pyscenedetect_cpu_s": round(c_ref, 3),
        "pyscenedetect_every_frame_cpu_s": round(c_ref_all, 3),
        "b_over_a": round(t_ours / t_decode, 2),
        "c_over_b": round(t_ref / t_ours, 2),
        "b_over_a_cpu": round(c_ours / c_decode, 2),
        "c_over_b_cpu": round(c_ref / c_ours, 2),
        "b_cuts": list(detection.cuts),
        "b_step2_cuts": list(detection2.cuts),
        "b_step2_sampled_cuts": list(detection2.sampled_cuts),
        "c_cuts": ref_cuts,
        "pyscenedetect_every_frame_cuts": ref_all_cuts,
        "step2_same_as_c": max_offset(list(detection2.sampled_cuts), ref_cuts) == 0,
        "b_vs_every_frame_max_offset": max_offset(list(detection.cuts), ref_all_cuts),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-720p", action="store_true", help="skip the generated 57 s 720p file")
    args = parser.parse_args()
    logging.getLogger("pyscenedetect").setLevel(logging.ERROR)
    files = args.files or [vtest_path(), bikes_path()]
    if not args.files and not args.no_720p:
        files.append(make_720p(OUTPUT / "clipping_720p.mp4"))
    rows = [bench_file(path, args.repeat) for path in files]
    for row in rows:
        print(f"\n{row['file']} ({row['size']}, {row['frames']} frames, analysed at {row['analysis']})")
        print("                              wall      CPU")
        for label, key in [
            ("(a) decode alone         ", "a_decode"),
            ("(b) ours, every frame    ", "b_ours"),
            ("    ours, every 2nd frame", "b_ours_step2"),
            ("(c) PySceneDetect, ref.  ", "c_pyscenedetect"),
            ("    PySceneDetect, all   ", "pyscenedetect_every_frame"),
        ]:
            print(f"  {label} {row[key + '_s']:7.3f} s {row[key + '_cpu_s']:7.3f} s")
        print(f"  b/a = {row['b_over_a']:.2f} wall, {row['b_over_a_cpu']:.2f} CPU;   "
              f"c/b = {row['c_over_b']:.2f} wall, {row['c_over_b_cpu']:.2f} CPU")
        print(f"  cuts (b) ours             {row['b_cuts']}")
        print(f"  cuts (c) PySceneDetect    {row['c_cuts']}")
        print(f"  cuts ours, every 2nd      {row['b_step2_sampled_cuts']} (same as (c): {row['step2_same_as_c']}),"
              f" exact frames {row['b_step2_cuts']}")
        print(f"  cuts PySceneDetect, all   {row['pyscenedetect_every_frame_cuts']} "
              f"(ours differ by at most {row['b_vs_every_frame_max_offset']} frame(s))")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "clipping.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
