"""What annotate.rate_hz saves in the depth and mask pass: CPU seconds at every frame and at a rate.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/annotate_rate.py [--rate-hz 5] [CASE ...]

Ground-truth poses of the shared cases (96 frames, 24 fps); the process's CPU time is reported beside the wall
time, which a shared machine inflates.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.annotate import chosen_frames  # noqa: E402
from services.depth.backends import GeometricDepthAndMasks  # noqa: E402
from services.depth.params import DepthSettings  # noqa: E402
from services.threads import one_blas_thread  # noqa: E402
from tests.depth.conftest import load_case  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*", default=["room_dyn2", "street_dyn3"])
    ap.add_argument("--rate-hz", type=float, default=5.0)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    print(f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; geometric depth and masks, GT poses")
    for name in args.cases:
        case = load_case(name, 96)
        fps = case["meta"].get("fps", 24.0)
        for rate in (None, args.rate_hz):
            refs = chosen_frames(len(case["c2w"]), fps, rate)
            both = GeometricDepthAndMasks(DepthSettings())
            cpu, wall = time.process_time(), time.perf_counter()
            with one_blas_thread():
                out = list(both.iter_both(iter(case["frames"]), case["c2w"], case["K"],
                                          refs=None if rate is None else refs))
            print(f"{name} {'every frame' if rate is None else f'{rate:g} Hz'}: {len(out)} frames, "
                  f"CPU {time.process_time() - cpu:.1f} s, wall {time.perf_counter() - wall:.1f} s", flush=True)


if __name__ == "__main__":
    main()
