import os
import stat
from pathlib import Path

import numpy as np
import pytest

from services.storage import ArtifactNotFound, LocalStore


def test_round_trips(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put_text("a/b.txt", "hello")
    store.put_json("a/c.json", {"x": 1})
    store.put_npy("annotations/x/poses.npy", np.arange(7.0))
    store.put_npz("annotations/x/masks.npz", masks=np.ones((2, 3, 4), bool))
    assert store.get_text("a/b.txt") == "hello"
    assert store.get_json("a/c.json") == {"x": 1}
    assert np.array_equal(store.get_npy("annotations/x/poses.npy"), np.arange(7.0))
    assert store.get_npz("annotations/x/masks.npz")["masks"].shape == (2, 3, 4)
    assert store.list("a/") == ["a/b.txt", "a/c.json"]
    assert store.exists("a/b.txt") and not store.exists("a/zzz")
    with pytest.raises(ArtifactNotFound):
        store.get_bytes("a/zzz")


def test_failed_write_leaves_nothing(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put_text("keep.txt", "old")
    with pytest.raises(RuntimeError):
        with store.writer("keep.txt") as path:
            path.write_text("half")
            raise RuntimeError("crash in the middle")
    assert store.get_text("keep.txt") == "old"
    with pytest.raises(RuntimeError):
        with store.writer("new.txt") as path:
            path.write_text("half")
            raise RuntimeError("crash")
    assert not store.exists("new.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "", "dir/"])
def test_keys_cannot_escape(tmp_path: Path, key: str):
    with pytest.raises(ValueError):
        LocalStore(tmp_path).put_text(key, "x")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_artifacts_get_the_mode_the_umask_gives(tmp_path: Path, umask: int, mode: int):
    """Artifacts are shared by a team: written with the mode open() would give, not mkstemp's 0600."""
    from services.storage import files

    old = os.umask(umask)
    files.process_umask.cache_clear()
    try:
        store = LocalStore(tmp_path)
        store.put_text("annotations/x/caption.json", "{}")
        store.put_npy("annotations/x/poses.npy", np.zeros(7))
        for key in ("annotations/x/caption.json", "annotations/x/poses.npy"):
            assert stat.S_IMODE(store.path(key).stat().st_mode) == mode, key
    finally:
        os.umask(old)
        files.process_umask.cache_clear()
