"""Turn the user's INPUT arguments into a list of videos with unique ids."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".flv", ".wmv", ".3gp",
}


@dataclass
class InputVideo:
    path: Path
    source_id: str


def discover(inputs: list[Path]) -> list[Path]:
    """Files as given (whatever their name: a bad one gets a per-file error later),
    and the video files inside folders (recursively, sorted)."""
    found: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        else:
            found.append(item)
    # The same file named twice is one input.
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path.absolute(), None)
    return list(unique)


# Longest stem kept in ids: a clip's file name is ``{stem}_{index}.mp4`` and temporary names add a
# few characters more; file systems stop at 255 bytes per name.
MAX_STEM_CHARS = 80


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def is_safe_name(text: str) -> bool:
    """True for a name safe_stem could have made (ids built from it: source and clip ids)."""
    return 0 < len(text) <= 255 and text not in (".", "..") and not _UNSAFE.search(text)


def safe_stem(path: Path) -> str:
    """The file's stem in characters safe in file names and object keys, at most MAX_STEM_CHARS long
    (a longer one keeps its start and gains a digest of the whole, so two long names stay apart)."""
    stem = _UNSAFE.sub("-", path.stem).strip("-.") or "video"
    if len(stem) > MAX_STEM_CHARS:
        digest = hashlib.sha256(stem.encode()).hexdigest()[:8]
        stem = f"{stem[:MAX_STEM_CHARS - 9].rstrip('-.')}-{digest}"
    return stem


def assign_ids(paths: list[Path]) -> list[InputVideo]:
    """``clip_id = {source_id}_{index}``, so two inputs with one stem get ``stem``, ``stem-2``."""
    seen: dict[str, int] = {}
    videos = []
    for path in paths:
        stem = safe_stem(path)
        seen[stem] = seen.get(stem, 0) + 1
        source_id = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
        videos.append(InputVideo(path=path, source_id=source_id))
    return videos


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's content, to spot the same video given twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
