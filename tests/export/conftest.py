"""Native outputs made once per session and shared by the export and loader tests:

- real footage: bikes.mp4 through every stage with the demo config (its six shots give four clips; pans,
  so the geometric depth is invalid everywhere: the exports must carry that faithfully);
- the shared ground-truth cases: the first 24 frames of two translating cases (valid depth, moving objects),
  each taken as one whole clip through camera, depth and caption.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from services.pipeline import EmbeddedPipeline
from samples import REPO_ROOT, bikes_path
from tests.data import CASES as CASE_DIRS
from services.settings import load_settings
from services.stages.registry import available_stages
from services.video.tools import ffmpeg_path

CASES = ("room_dyn2", "street_dyn3")
CASE_FRAMES = 24


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"test footage missing: {path} (make setup installs the footage; tests/data/cases holds the cases)")
    return path


@pytest.fixture(scope="session")
def bikes_native(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bikes-native")
    settings = load_settings(REPO_ROOT / "configs" / "demo.yaml")
    EmbeddedPipeline(settings, out, available_stages()).run([_require(bikes_path())])
    return out


@pytest.fixture(scope="session")
def cases_native(tmp_path_factory) -> Path:
    inputs = tmp_path_factory.mktemp("case-inputs")
    for name in CASES:
        src = _require(CASE_DIRS / name / "video.mp4")
        subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(src), "-frames:v", str(CASE_FRAMES), "-c", "copy",
                        str(inputs / f"{name}.mp4")], check=True)
    out = tmp_path_factory.mktemp("cases-native")
    stages = [s for s in ("camera", "depth", "caption") if s in available_stages()]
    EmbeddedPipeline(load_settings(), out, stages).run([inputs])
    return out


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
