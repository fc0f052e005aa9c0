"""Find the ffmpeg and ffprobe binaries once, from settings or the machine."""

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
    configured = settings.ffmpeg if settings else ""
    found = configured or shutil.which("ffmpeg") or _static_ffmpeg()
    if not found:
        raise ToolMissing("ffmpeg not found: install it (apt-get install ffmpeg) or set SPATIALVID_VIDEO__FFMPEG")
    return found


def ffprobe_path(settings: VideoSettings | None = None) -> str:
    configured = settings.ffprobe if settings else ""
    found = configured or shutil.which("ffprobe")
    if not found:
        raise ToolMissing("ffprobe not found: install it (apt-get install ffmpeg) or set SPATIALVID_VIDEO__FFPROBE")
    return found
