import numpy as np
import pytest

from services.depth.exr_zip import decode_exr, encode_exr, read_depth_zip, read_disparity_zip, write_disparity_zip


def test_exr_round_trip_float_and_half():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 5, (7, 13)).astype(np.float32)
    assert np.array_equal(decode_exr(encode_exr(img)), img)
    half = decode_exr(encode_exr(img, half=True))
    assert np.allclose(half, img.astype(np.float16).astype(np.float32))


def test_exr_header_is_openexr():
    data = encode_exr(np.zeros((2, 3), np.float32))
    assert data[:4] == bytes([0x76, 0x2F, 0x31, 0x01])
    with pytest.raises(ValueError):
        decode_exr(b"\0" * 16)


def test_zip_round_trip_keeps_invalid_as_zero(tmp_path):
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 40, (4, 9, 16)).astype(np.float32)
    depth[:, :2, :3] = 0
    path = tmp_path / "depth.zip"
    write_disparity_zip(path, depth)
    disp = read_disparity_zip(path)
    assert disp.shape == depth.shape
    assert np.allclose(disp[depth > 0], 1 / depth[depth > 0], rtol=1e-6)
    back = read_depth_zip(path)
    assert np.all(back[depth == 0] == 0)
    assert np.allclose(back, depth, rtol=1e-5)
