"""Files written atomically beside their target, with the mode an ordinary file of this process gets."""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def process_umask() -> int:
    """The process umask, read without changing it where Linux reports it (/proc), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_beside(target: Path, suffix: str = "") -> Path:
    """An empty temporary file in ``target``'s folder (so the final rename is atomic), with the mode
    ``open()`` would give ``target`` (0644 under the usual umask): mkstemp's 0600 would hide a dataset from
    the team that shares it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{suffix}", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~process_umask())
    finally:
        os.close(fd)
    return Path(tmp)
