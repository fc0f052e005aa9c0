"""Footage for the clipping tests: the real sample videos plus small files made with ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import data
from tests.clipping.helpers import ffmpeg


@pytest.fixture(scope="session")
def bikes() -> Path:
    return data.bikes()


@pytest.fixture(scope="session")
def vtest() -> Path:
    return data.vtest()


@pytest.fixture(scope="session")
def media(tmp_path_factory, vtest) -> dict[str, Path]:
    """Small generated inputs, made once per test session."""
    root = tmp_path_factory.mktemp("clipping-media")
    out: dict[str, Path] = {}

    # One 34 s shot (test pattern, moving only a little): pieces of 15 s + the rest.
    out["long"] = root / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "34",
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", str(out["long"]))
    # Portrait by transposing the first 8 s of vtest.avi (576x768).
    out["portrait"] = root / "portrait.mp4"
    ffmpeg("-i", str(vtest), "-frames:v", "80", "-vf", "transpose=clock",
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", str(out["portrait"]))
    # Portrait by rotation metadata only: landscape pixels, "display rotated 90 degrees".
    landscape = root / "landscape.mp4"
    ffmpeg("-i", str(vtest), "-frames:v", "80", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20",
           str(landscape))
    out["landscape"] = landscape
    out["rotated"] = root / "rotated.mp4"
    # ffmpeg 6+ writes the display matrix from -display_rotation (the old "rotate" tag is ignored).
    ffmpeg("-display_rotation:v:0", "90", "-i", str(landscape), "-c", "copy", str(out["rotated"]))
    # Odd frame size, lossless codec in mkv (H.264 4:2:0 cannot hold odd sizes).
    out["odd"] = root / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=321x241:rate=25", "-t", "4", "-c:v", "ffv1", "-pix_fmt", "yuv444p",
           str(out["odd"]))

    # Variable frame rate: 4 s at 30 fps, then a different picture at 15 fps.
    out["vfr"] = root / "vfr.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=4",
           "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15:duration=4",
           "-filter_complex", "[0:v]settb=1/90000[a];[1:v]settb=1/90000[b];[a][b]concat=n=2:v=1[out]",
           "-map", "[out]", "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", str(out["vfr"]))

    # Bad inputs.
    good = root / "good6s.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "6",
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", str(good))
    good_faststart = root / "good6s_faststart.mp4"
    ffmpeg("-i", str(good), "-c", "copy", "-movflags", "+faststart", str(good_faststart))
    out["empty"] = root / "empty.mp4"
    out["empty"].write_bytes(b"")
    out["truncated"] = root / "truncated.mp4"  # mdat first, so the index (moov) is lost
    out["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["truncated_faststart"] = root / "truncated_faststart.mp4"  # index kept, half the frames gone
    out["truncated_faststart"].write_bytes(good_faststart.read_bytes()[: good_faststart.stat().st_size // 2])
    out["text"] = root / "notes.mp4"
    out["text"].write_text("these are meeting notes, not a video\n" * 5)
    out["audio"] = root / "audio.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=5", "-c:a", "aac", str(out["audio"]))
    out["short"] = root / "short.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
           "-c:v", "libx264", "-preset", "ultrafast", str(out["short"]))
    out["unreadable"] = root / "secret.mp4"
    out["unreadable"].write_bytes(good.read_bytes())
    out["unreadable"].chmod(0)
    out["good"] = good
    return out
