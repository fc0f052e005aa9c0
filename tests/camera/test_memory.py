"""Memory stays flat with clip length: peak RSS of a 60 s clip against a 10 s clip
(frames are streamed; only a few KB of tracks per frame are kept). No timing asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, resource, sys
import numpy as np, cv2
sys.path.insert(0, sys.argv[3])
from services.camera.track import track_camera
from services.settings import CameraSettings
seconds, fps = float(sys.argv[1]), float(sys.argv[2])
rng = np.random.default_rng(0)
texture = cv2.GaussianBlur(rng.integers(0, 255, (900, 1600, 3), dtype=np.uint8), (0, 0), 2.0)
def frames():
    n = int(seconds * fps)
    for i in range(n):
        x = int(400 + 300 * np.sin(2 * np.pi * i / (8 * fps)))  # a slow pan back and forth
        y = int(300 + 100 * np.sin(2 * np.pi * i / (11 * fps)))
        yield np.ascontiguousarray(cv2.resize(texture[y:y + 360, x:x + 640], (320, 180)))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
track = track_camera(frames(), fps, CameraSettings())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(n=len(track.c2w), base_kb=base, peak_kb=peak)))
"""


def _peak(seconds: float, fps: float) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(seconds), str(fps), str(REPO)], capture_output=True,
                         text=True, check=True, env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_clip_length():
    fps = 12.0
    short, long = _peak(10, fps), _peak(60, fps)
    assert long["n"] == 720 and short["n"] == 120
    growth_mb = (long["peak_kb"] - short["peak_kb"]) / 1024
    frames_mb = 600 * 320 * 180 * 3 / 2**20  # what keeping the extra 50 s of frames would cost
    print(f"peak RSS short {short['peak_kb'] / 1024:.0f} MiB, long {long['peak_kb'] / 1024:.0f} MiB, "
          f"growth {growth_mb:.1f} MiB (frames would be {frames_mb:.0f} MiB)")
    assert growth_mb < 25
