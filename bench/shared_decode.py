"""What decoding a clip once for all its frame-reading stages saves: CPU seconds of decoding per clip.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/shared_decode.py [--repeat 2]

For each clip (the 720p devset cases, and the same scaled to 360p), the frames the camera and depth stages read
(and, in the second set, the caption stage's VLM frames, as with caption.backend = openai) are decoded once per
stage (before: ``read_frames`` per stage) and once for all of them (after: ``services.video.shared.DecodedClips``).
Each reader drains its frames into Python, as a stage does. CPU seconds are user+sys of this process and its ffmpeg
children; the median of ``--repeat`` runs, with one ``DecodedClips`` for the whole bench (its buffer is allocated
once, as in a pipeline run or a worker). Writes bench/results/shared_decode.{log,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.records import ClipRecord  # noqa: E402
from services.settings import load_settings  # noqa: E402
from services.stages.registry import build_stage  # noqa: E402
from services.storage.local import LocalStore  # noqa: E402
from services.video.decode import read_frames  # noqa: E402
from services.video.probe import probe  # noqa: E402
from services.video.shared import DecodedClips  # noqa: E402
from services.video.tools import ffmpeg_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEVSET = Path("/work/shared/bench/devset")
CASES = ("d03_room_720p", "d10_street_720p", "d17_orbit_720p_cut", "d22_street_720p_static")


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def clip_of(store: LocalStore, video: Path) -> ClipRecord:
    info = probe(video)
    clip = ClipRecord(id=video.parent.name, source=str(video), source_id=video.parent.name, num_frames=info.num_frames,
                      width=info.width, height=info.height, fps=info.fps, timestamp_start=0,
                      timestamp_end=info.num_frames / info.fps, frame_start=0, frame_end=info.num_frames)
    store.put_file(clip.clip_key, video)
    return clip


def measure(store, clip, requests, settings, decoded: DecodedClips, repeat: int) -> tuple[float, float]:
    """Median CPU seconds of (separate decodes, one shared decode) of ``requests``. ``decoded`` lives as long as
    the bench, as in a pipeline run or a worker: its buffer is reused from clip to clip."""
    before, after = [], []
    with store.local_path(clip.clip_key) as path:
        for _ in range(repeat):
            cpu = cpu_seconds()
            for r in requests:
                for _frame in read_frames(path, size=r.size, pix_fmt=r.pix_fmt, step=r.step, count=r.count,
                                          settings=settings.video):
                    pass
            before.append(cpu_seconds() - cpu)
            cpu = cpu_seconds()
            passes = decoded.passes
            with decoded.open(store, clip, requests):
                for r in requests:
                    for _frame in decoded.frames(clip, r):
                        pass
            after.append(cpu_seconds() - cpu)
            assert decoded.passes == passes + 1
    return statistics.median(before), statistics.median(after)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/shared_decode")
    args = ap.parse_args()
    base = load_settings()
    readers = {"camera+depth": ["camera", "depth"], "camera+depth+caption(openai)": ["camera", "depth", "caption"]}
    settings = {"camera+depth": base, "camera+depth+caption(openai)": base.with_overrides({"caption": {"backend": "openai"}})}
    rows, lines = [], [f"# bench/shared_decode.py, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores shared with other "
                       f"jobs, load avg {os.getloadavg()[0]:.1f}; CPU s of decoding (user+sys, with ffmpeg), median of "
                       f"{args.repeat}",
                       f"{'clip':<26} {'size':>9} {'frames':>6} {'readers':<29} {'separate':>8} {'shared':>7} {'saved':>6}"]
    decoded = DecodedClips.for_settings(base.video)
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "store")
        for case in CASES:
            full = DEVSET / case / "video.mp4"
            small = Path(tmp) / case / "video.mp4"
            small.parent.mkdir()
            subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(full), "-vf", "scale=640:360:flags=area", "-c:v",
                            "libx264", "-crf", "18", str(small)], check=True)
            for video in (full, small):
                clip = clip_of(store, video)
                for label, names in readers.items():
                    requests = [r for n in names for r in build_stage(n).frame_requests(clip, settings[label])]
                    separate, shared = measure(store, clip, requests, settings[label], decoded, args.repeat)
                    rows.append({"clip": case, "size": f"{clip.width}x{clip.height}", "frames": clip.num_frames,
                                 "seconds": round(clip.num_frames / clip.fps, 2), "readers": label,
                                 "separate_cpu_s": round(separate, 3), "shared_cpu_s": round(shared, 3)})
                    lines.append(f"{case:<26} {rows[-1]['size']:>9} {clip.num_frames:>6} {label:<29} {separate:>8.2f} "
                                 f"{shared:>7.2f} {1 - shared / separate:>6.0%}")
                    print(lines[-1], flush=True)
    for size in ("1280x720", "640x360"):
        for label in readers:
            sel = [r for r in rows if r["size"] == size and r["readers"] == label]
            minutes = sum(r["seconds"] for r in sel) / 60
            sep, sha = sum(r["separate_cpu_s"] for r in sel) / minutes, sum(r["shared_cpu_s"] for r in sel) / minutes
            lines.append(f"per minute of {size} clips, {label}: separate {sep:.1f} CPU s, shared {sha:.1f} CPU s "
                         f"(saves {sep - sha:.1f}, {1 - sha / sep:.0%})")
    print("\n".join(lines[-4:]))
    args.out.with_suffix(".log").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"header": lines[0], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
