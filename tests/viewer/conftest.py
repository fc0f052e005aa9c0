"""Datasets made once per session by the real `spatialvid run`, and a running `spatialvid view` on each."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from samples import REPO_ROOT, bikes_path
from tests.data import CASES as CASE_DIRS

# The shared case's first 36 frames (1.5 s of its dolly) are enough for depth and masks, at a third of the time.
CASE = "street_dyn3"
CASE_FRAMES = 36
RESULTS = REPO_ROOT / "bench" / "results"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="session")
def bikes_dataset(tmp_path_factory) -> Path:
    """bikes.mp4 with the demo config; a motion floor of 3 filters out its calmest clip, so the table has one."""
    out = tmp_path_factory.mktemp("viewer") / "bikes"
    run_cli("run", str(bikes_path()), "--out", str(out), "--config", str(REPO_ROOT / "configs" / "demo.yaml"),
            env={"SPATIALVID_FILTER__MOTION_MIN": "3.0"})
    return out


@pytest.fixture(scope="session")
def case_dataset(tmp_path_factory) -> Path:
    """A shared ground-truth case (a street with moving cars), cut short, through scores, poses, depth and captions
    (no filter: the short piece's dolly moves too little for the reference's motion floor)."""
    from services.video.tools import ffmpeg_path

    folder = tmp_path_factory.mktemp("case")
    video = folder / f"{CASE}.mp4"
    subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(CASE_DIRS / CASE / "video.mp4"),
                    "-frames:v", str(CASE_FRAMES), "-c:v", "libx264", "-crf", "18", "-an", str(video)], check=True)
    out = folder / "out"
    run_cli("run", str(video), "--out", str(out), "--stages", "score,camera,depth,caption")
    return out


class Viewer:
    """`spatialvid view DIR` in its own process; ``url`` is what it printed."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "services.cli", "view", str(folder)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"(http://\S+/)", line)
        assert match, f"no URL in {line!r}: {self.process.stderr.read() if self.process.poll() is not None else ''}"
        self.url = match.group(1)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import time

        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "api/dataset", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"the viewer at {self.url} did not answer")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def bikes_viewer(bikes_dataset):
    viewer = Viewer(bikes_dataset)
    yield viewer
    viewer.stop()


@pytest.fixture(scope="session")
def case_viewer(case_dataset):
    viewer = Viewer(case_dataset)
    yield viewer
    viewer.stop()


@pytest.fixture(scope="session")
def browser():
    from services.viewer.headless import browser as launch

    with launch() as b:
        yield b


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    yield page
    context.close()


def screenshot_folder() -> Path:
    """Where the browser tests save what they saw: bench/results (the committed screenshots) when
    SPATIALVID_SAVE_SCREENSHOTS=1, else a temporary folder, so that `make test` leaves the checkout clean."""
    import tempfile

    if os.environ.get("SPATIALVID_SAVE_SCREENSHOTS") == "1":
        RESULTS.mkdir(parents=True, exist_ok=True)
        return RESULTS
    return Path(tempfile.gettempdir()) / "spatialvid-screenshots"


def screenshot(page, name: str, full_page: bool = False) -> None:
    folder = screenshot_folder()
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"viewer_{name}.png"), full_page=full_page)
