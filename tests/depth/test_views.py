"""Which neighbours a reference frame is measured against (services/depth/views.py)."""

from services.depth.views import _sources


def test_clip_ends_take_two_neighbours_on_the_inside():
    """The mask evidence is a minimum over views; one view alone would mark what an object covers only there."""
    assert _sources(10, 4, 96) == [6, 14]
    assert _sources(0, 4, 96) == [4, 2]
    assert _sources(95, 4, 96) == [91, 93]
    assert _sources(0, 1, 96) == [1, 2]
    assert _sources(0, 1, 1) == []
