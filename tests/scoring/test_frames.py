"""The one-pass decoder: where samples fall, odd frame sizes, clips shorter than their record says."""

from __future__ import annotations

import numpy as np

from services.scoring.frames import decode_for_scoring, flow_pair_starts, sample_indices, yuv420_to_rgb
from services.scoring.vmaf_motion import MotionAccumulator
from services.video.probe import probe

from .conftest import FFMPEG, ffmpeg


def test_sample_positions():
    assert sample_indices(100, [0.1, 0.5, 0.9]) == [10, 50, 90]
    assert sample_indices(1, [0.1, 0.5, 0.9]) == [0, 0, 0]
    assert flow_pair_starts(101, 4) == [12, 37, 62, 87]
    assert flow_pair_starts(1, 4) == []


def test_yuv_conversion_of_grey_levels_is_bt601_limited_range():
    y = np.full((4, 6), 235, np.uint8)
    chroma = np.full((2, 3), 128, np.uint8)
    assert (yuv420_to_rgb(y, chroma, chroma) >= 254).all()  # video white
    assert (yuv420_to_rgb(np.full((4, 6), 16, np.uint8), chroma, chroma) <= 1).all()  # video black


def test_odd_sized_clip_and_overstated_frame_count(clips, tmp_path):
    odd = tmp_path / "odd.mkv"
    ffmpeg("-i", str(clips["pan"]), "-t", "1", "-vf", "scale=321:181", "-c:v", "ffv1", "-pix_fmt", "yuv420p", str(odd))
    info = probe(odd)
    assert (info.width, info.height) == (321, 181)
    acc = MotionAccumulator()
    frames = decode_for_scoring(odd, (321, 181), info.num_frames * 2, (64, 36), [0.1, 0.5, 0.9], 2, {"motion": acc},
                                ffmpeg=FFMPEG)
    assert frames.num_frames == info.num_frames
    assert frames.rgb.shape == (3, 36, 64, 3)
    assert max(frames.indices) < frames.num_frames  # samples past the real end come from its last frame
    assert frames.sink_results["motion"]["motion"] > 1.0
