"""Find the ffmpeg and ffprobe binaries, from settings or the machine."""

from __future__ import annotations

import functools
import shutil

from services.settings import VideoSettings


class ToolMissing(RuntimeError):
    pass


@functools.cache
def _static_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # the package or its binary is absent
        return None


def ffmpeg_path(settings: VideoSettings | None = None) -> str:
    """Settings first, then imageio-ffmpeg's static build, then the system's.

    The static build comes first because it starts about 4x faster than
    Debian's shared-library ffmpeg (0.09 s against 0.37 s measured here), which
    dominates on short clips, and because it is the same build everywhere
    (libx264 and libvmaf included)."""
    configured = settings.ffmpeg if settings else ""
    found = configured or _static_ffmpeg() or shutil.which("ffmpeg")
    if not found:
        raise ToolMissing("ffmpeg not found: install it (apt-get install ffmpeg) or set SPATIALVID_VIDEO__FFMPEG")
    return found


def ffprobe_path(settings: VideoSettings | None = None) -> str:
    configured = settings.ffprobe if settings else ""
    found = configured or shutil.which("ffprobe")
    if not found:
        raise ToolMissing("ffprobe not found: install it (apt-get install ffmpeg) or set SPATIALVID_VIDEO__FFPROBE")
    return found
