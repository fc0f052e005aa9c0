"""Small real clips for the scoring tests, made once per session from real footage."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests import data


def static_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return None


def has_libvmaf(ffmpeg: str | None) -> bool:
    if not ffmpeg:
        return False
    out = subprocess.run([ffmpeg, "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    return " libvmaf " in out


FFMPEG = static_ffmpeg() or "ffmpeg"


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *args], check=True)


def read_rgb_frame(path: Path, index: int, size=(640, 360)) -> np.ndarray:
    out = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index}),scale={size[0]}:{size[1]}",
         "-frames:v", "1", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(size[1], size[0], 3).copy()


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """pan: 2 s of bikes.mp4 (a panning shot); still: one bikes frame held 2 s;
    vtest: 3 s of vtest.avi (fixed camera, people walking); dark: a bench case
    in low light; text / plain: bench cases with and without burned-in text."""
    folder = tmp_path_factory.mktemp("scoring_clips")
    bikes = data.bikes()
    made = {
        "pan": folder / "pan.mp4",
        "still": folder / "still.mp4",
        "vtest": folder / "vtest.avi",
    }
    ffmpeg("-i", str(bikes), "-t", "2", "-an", "-c:v", "libx264", "-crf", "18", "-preset", "veryfast", str(made["pan"]))
    ffmpeg("-ss", "1", "-i", str(bikes), "-frames:v", "1", str(folder / "still.png"))
    ffmpeg("-loop", "1", "-framerate", "25", "-i", str(folder / "still.png"), "-t", "2", "-c:v", "libx264",
           "-crf", "18", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(made["still"]))
    ffmpeg("-i", str(data.vtest()), "-t", "3", "-c", "copy", str(made["vtest"]))
    for name, case in {"dark": "street_dark_dyn1", "text": "orbit_text_dyn2", "plain": "orbit_plain"}.items():
        made[name] = data.case_dir(case) / "video.mp4"
    return made
