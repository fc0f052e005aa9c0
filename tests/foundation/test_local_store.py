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
