"""The shared file formats and the loader's sampling maths, on small arrays."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.spatial.transform import Rotation

from services.dataset import formats as f
from services.dataset import sampling as s


def test_indexes_are_two_fields_and_older_files_still_read():
    text = f.format_indexes([0, 2, 4])
    assert text == "0 0\n1 2\n2 4\n"
    assert f.parse_indexes(text).tolist() == [0, 2, 4]
    assert f.parse_indexes("0\n2\n4\n").tolist() == [0, 2, 4]  # written before the two-field form
    with pytest.raises(ValueError, match="k frame_idx"):
        f.parse_indexes("0 0\n2\n")
    with pytest.raises(ValueError):
        f.parse_indexes("0 0 0\n")


def test_csr_masks_rebuild_with_scipy_exactly():
    rng = np.random.default_rng(3)
    masks = rng.random((4, 7, 11)) > 0.7
    masks[1] = False  # an empty frame
    masks[2] = True  # a full one
    data = f.masks_to_csr_npz(masks)
    loaded = np.load(io.BytesIO(data))
    assert len(loaded.files) == 3 * len(masks) + 1
    for i, mask in enumerate(masks):
        rebuilt = csr_matrix((loaded[f"f_{i}_data"], loaded[f"f_{i}_indices"], loaded[f"f_{i}_indptr"]),
                             shape=loaded["shape"]).toarray()
        assert np.array_equal(rebuilt, mask)
    assert np.array_equal(f.csr_npz_to_masks(f.load_npz(data)), masks)


def test_poses_intrinsics_and_rows():
    rng = np.random.default_rng(4)
    rot = Rotation.random(5, random_state=5)
    t = rng.normal(size=(5, 3))
    w2c = s.w2c_matrices(np.hstack([t, rot.as_quat()]))
    assert np.allclose(w2c[:, :3, :3], rot.as_matrix()) and np.allclose(w2c[:, :3, 3], t)
    assert np.allclose(s.invert_rigid(w2c), np.linalg.inv(w2c))
    K = s.pixel_intrinsics(np.array([[0.8, 1.6, 0.5, 0.5]]), 320, 180)
    assert np.allclose(K[0], [[256, 0, 160], [0, 288, 90], [0, 0, 1]])
    assert s.pick_rows(10, 4, 3, 0).tolist() == [0, 3, 6, 9]
    assert s.pick_rows(10, None, 4, 1).tolist() == [1, 5, 9]
    with pytest.raises(ValueError, match="fewer than 10"):
        s.pick_rows(9, 4, 3, 0)
    depth = np.array([[[0.0, 2.0], [3.0, 4.0]]], np.float32)
    assert s.resize_nearest(depth, 4, 4)[0].tolist() == np.repeat(np.repeat(depth[0], 2, 0), 2, 1).tolist()


def test_row_filters():
    row = {"distLevel": 2, "aesthetic": float("nan"), "id": "a_0", "filtered_by": float("nan")}
    assert s.row_matches(row, {"distLevel": (2, None)}) and not s.row_matches(row, {"distLevel": (None, 1)})
    assert not s.row_matches(row, {"aesthetic": (4, None)})  # a missing score passes no threshold
    assert s.row_matches(row, {"id": ["a_0", "b_0"], "distLevel": lambda v: v % 2 == 0})
    assert s.row_matches(row, lambda r: r["id"].startswith("a"))
    assert s.is_kept(row) and not s.is_kept({**row, "filtered_by": "motion"})
    with pytest.raises(KeyError):
        s.row_matches(row, {"nope": 1})
