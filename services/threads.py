"""One BLAS thread for the pipeline's numeric work (numpy's and OpenCV's OpenBLAS; torch keeps its own).

The matrices the stages multiply are small, and idle BLAS threads spin. Beside one other busy process on
2 cores, tracking orbit_text_dyn2 burned 33 s of CPU instead of 6 s, and the depth pass ran at 0.7 instead
of 2.6 frames/s (bench/depth_masks.py, room_dyn2). Every stage runs inside this (services/execution.py);
benchmarks that call the maths directly use it too.
"""

from __future__ import annotations

import sys

from threadpoolctl import ThreadpoolController, threadpool_limits

# Finding the loaded BLAS libraries walks every shared object of the process (about 4 ms on a busy
# machine, per stage run): done once, and again only after new modules were imported (they may have
# loaded another library).
_controller: ThreadpoolController | None = None
_modules_seen = -1


def one_blas_thread() -> threadpool_limits:
    global _controller, _modules_seen
    if _controller is None or len(sys.modules) != _modules_seen:
        _controller, _modules_seen = ThreadpoolController(), len(sys.modules)
    return _controller.limit(limits=1, user_api="blas")
