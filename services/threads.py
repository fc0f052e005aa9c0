"""One BLAS thread for the pipeline's numeric work (numpy's and OpenCV's OpenBLAS; torch keeps its own).

The matrices the stages multiply are small, and idle BLAS threads spin. Beside one other busy process on
2 cores, tracking orbit_text_dyn2 burned 33 s of CPU instead of 6 s, and the depth pass ran at 0.7 instead
of 2.6 frames/s (bench/depth_masks.py, room_dyn2). Every stage runs inside this (services/execution.py);
benchmarks that call the maths directly use it too.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    return threadpool_limits(limits=1, user_api="blas")
