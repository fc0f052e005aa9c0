"""Which neighbours a reference frame is measured against (services/depth/views.py)."""

from services.depth.views import _sources


def test_clip_ends_take_two_neighbours_on_the_inside():
    """The mask evidence is a minimum over views; one view alone would mark what an object covers only there."""
    assert _sources(10, 4, 96) == [6, 14]
    assert _sources(0, 4, 96) == [4, 2]
    assert _sources(95, 4, 96) == [91, 93]
    assert _sources(0, 1, 96) == [1, 2]
    assert _sources(0, 1, 1) == []


def _textured(seed: int, shift: int = 0, blur: int = 5):
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 255, (90, 160), dtype=np.uint8), (blur, blur), 0)
    return np.roll(image, shift, axis=1)


def test_the_first_frames_of_a_shot_get_a_view_back_for_carrying():
    """After a cut the neighbour offset reaches across it; that view is refused, and what the masks remember
    could not be carried. with_view_back finds the nearest earlier frame of the same shot, and none at the
    shot's first frame."""
    import numpy as np

    from services.depth.params import DepthSettings as GeometricParams
    from services.depth.views import ViewSelector, prepare_frame
    from services.depth.window import FrameWindow

    frames = [_textured(1, i) for i in range(6)] + [_textured(2, i, blur=15) for i in range(6)]  # a cut before 6
    K = np.array([[100.0, 0, 79.5], [0, 100.0, 44.5], [0, 0, 1]])
    selector = ViewSelector(np.tile(np.eye(4), (12, 1, 1)), K, GeometricParams())
    selector.offset = 4
    window = FrameWindow(frames, 8, lambda f: prepare_frame(f, (160, 90)))
    window.advance_to(8)
    forward = [selector._view(window, 8, 10)]
    assert selector._view(window, 8, 4) is None  # across the cut
    carrying = selector.with_view_back(window, 8, forward)
    assert [v.source_index for v in carrying] == [10, 6]
    window.advance_to(6)
    assert [v.source_index for v in selector.with_view_back(window, 6, [])] == []  # the shot's first frame
