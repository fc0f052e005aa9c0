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
