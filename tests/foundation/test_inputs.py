from pathlib import Path

from services.inputs import assign_ids, discover


def test_folders_give_videos_files_are_taken_as_given(tmp_path: Path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ["d/a.mp4", "d/sub/b.MOV", "d/notes.txt", "x.txt"]:
        (tmp_path / name).write_bytes(b"x")
    found = discover([tmp_path / "d", tmp_path / "x.txt", tmp_path / "d" / "a.mp4"])
    names = [p.name for p in found]
    assert names == ["a.mp4", "b.MOV", "x.txt"]  # the repeated file counts once


def test_ids_are_unique_and_safe(tmp_path: Path):
    paths = [tmp_path / "a" / "my clip.mp4", tmp_path / "b" / "my clip.mp4", tmp_path / "c.mp4"]
    ids = [v.source_id for v in assign_ids(paths)]
    assert ids == ["my-clip", "my-clip-2", "c"]


def test_long_names_give_short_distinct_ids():
    from services.inputs import MAX_STEM_CHARS

    long_a, long_b = "a" * 300 + "x", "a" * 300 + "y"
    ids = [v.source_id for v in assign_ids([Path(f"{long_a}.mp4"), Path(f"{long_b}.mp4"), Path("short.mp4")])]
    assert all(len(i) <= MAX_STEM_CHARS for i in ids)
    assert len(set(ids)) == 3 and ids[2] == "short"
