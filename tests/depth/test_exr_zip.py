import io

import numpy as np
import OpenEXR
import pytest

from services.depth.exr_zip import (
    decode_disparity_exr,
    disparity_zip_bytes,
    encode_disparity_exr,
    read_depth_zip,
    read_disparity_zip,
)


def test_exr_holds_one_half_channel_named_z():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 5, (7, 13)).astype(np.float32)
    data = encode_disparity_exr(img)
    with OpenEXR.File(io.BytesIO(data)) as exr:  # read by the format's own bindings, as users will
        channels = exr.channels()
        assert list(channels) == ["Z"]
        assert channels["Z"].pixels.dtype == np.float16
    assert np.array_equal(decode_disparity_exr(data), img.astype(np.float16).astype(np.float32))


def test_decode_refuses_a_file_without_z():
    buffer = io.BytesIO()
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"Y": np.zeros((2, 3), np.float16)}) as exr:
        exr.write(buffer)
    with pytest.raises(ValueError, match="no 'Z' channel"):
        decode_disparity_exr(buffer.getvalue())


def test_zip_round_trip_keeps_invalid_as_zero_and_is_reproducible():
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 40, (4, 9, 16)).astype(np.float32)
    depth[:, :2, :3] = 0
    data = disparity_zip_bytes(depth)
    assert data == disparity_zip_bytes(depth)  # fixed zip timestamps: a re-export writes the same bytes
    disp = read_disparity_zip(data)
    assert disp.shape == depth.shape
    valid = depth > 0
    assert np.array_equal(disp[valid], (1 / depth[valid]).astype(np.float16).astype(np.float32))
    back = read_depth_zip(data)
    assert np.all(back[~valid] == 0)
    assert np.allclose(back[valid], depth[valid], rtol=2 ** -10)  # float16 keeps 11 significant bits
    assert np.array_equal(read_depth_zip(data, rows=[2]), back[2:3])
