"""Colour segments and what the masks do with them (services/depth/segments.py)."""

import numpy as np

from services.depth.segments import colour_segments, held_segments, trim_to_segments

H, W = 180, 320


def test_held_segments_are_those_mostly_under_the_memory():
    labels = np.zeros((H, W), np.int32)
    labels[:, 100:200] = 1
    labels[:, 200:] = 2
    memory = np.zeros((H, W), np.float32)
    memory[:, 100:190] = 0.5  # 90% of segment 1 remembered
    memory[:, 200:230] = 0.9  # 25% of segment 2
    memory[:, :100] = 0.2  # all of segment 0, but faded below the level
    held = held_segments(labels, memory, level=0.3, share=0.8)
    assert held[:, 100:200].all()
    assert not held[:, :100].any() and not held[:, 200:].any()


def _floor_with_object(object_colour) -> tuple[np.ndarray, np.ndarray]:
    """RGB: a grey floor with a little noise (one big segment) and an 80x120 object; and the object's box."""
    rng = np.random.default_rng(0)
    obj = np.zeros((H, W), bool)
    obj[50:130, 100:220] = True
    image = np.where(obj[..., None], np.array(object_colour, float), 120.0) + rng.normal(0, 3, (H, W, 1))
    return np.clip(image, 0, 255).astype(np.uint8), obj


def test_the_halo_over_the_background_is_trimmed():
    image, obj = _floor_with_object((200, 40, 40))
    halo = np.zeros_like(obj)
    halo[46:134, 96:224] = True  # flow smeared 4 px onto the floor all round (15% of the mask)
    mask = obj | halo
    trimmed = trim_to_segments(mask, colour_segments(image), min_cover=0.3, max_component_share=0.25)
    assert trimmed[obj].mean() > 0.95
    # the object's blurred edge (2 px: a segment strip of its own at the segmentation's half size) stays with
    # it; the floor beyond goes
    edge = np.zeros_like(obj)
    edge[48:132, 98:222] = True
    assert trimmed[halo & ~edge].mean() < 0.05


def test_an_object_the_colour_of_the_background_keeps_its_mask():
    """A dark car on a dark road: the segmentation puts both in one segment, which the mask covers little of,
    but that segment holds most of the mask's region: nothing is trimmed."""
    image, obj = _floor_with_object((118, 118, 118))
    labels = colour_segments(image)
    assert len(np.unique(labels[obj])) == 1 and (labels == labels[obj][0]).sum() > 4 * obj.sum()
    assert trim_to_segments(obj, labels, min_cover=0.3, max_component_share=0.25)[obj].all()
