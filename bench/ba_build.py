"""CPU time of the bundle-adjustment pose-system build (``reference.ba_normal_equations``) by window size:
one dense-Jacobian matrix product against per-observation blocks scattered into H. Chooses
``reference.PRODUCT_MAX_POSE_COLUMNS``. Random blocks shaped like the tracker's (observing + anchor camera).

    PYTHONPATH=. .venv/bin/python bench/ba_build.py > bench/results/ba_build.log
"""

from __future__ import annotations

import time

import torch

from services.kernels import reference
from tests.kernels.conftest import random_ba

OBSERVATIONS, POINTS = 20000, 2000


def per_call_ms(args) -> float:
    start, calls = time.process_time(), 0
    while time.process_time() - start < 1.0:
        reference.ba_normal_equations(*args)
        calls += 1
    return (time.process_time() - start) / calls * 1e3


def main() -> None:
    torch.set_num_threads(1)
    print(f"CPU ms per build, {OBSERVATIONS} observations, {POINTS} points, one thread")
    print(f"{'poses':>6} {'product':>9} {'scatter':>9}")
    for poses in (8, 12, 16, 20, 24, 32, 64, 128):
        args = random_ba(0, M=OBSERVATIONS, P=poses, N=POINTS).tensors()
        times = {}
        for name, limit in (("product", 10**9), ("scatter", 0)):
            reference.PRODUCT_MAX_POSE_COLUMNS = limit
            times[name] = per_call_ms(args)
        print(f"{poses:>6} {times['product']:>9.1f} {times['scatter']:>9.1f}")


if __name__ == "__main__":
    main()
