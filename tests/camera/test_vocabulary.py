"""The camera-motion vocabulary (services/camera/vocabulary.py) is the one list of labels: the labeller emits only
its labels, and the captioners know every one of them."""

from __future__ import annotations

import numpy as np

from services.camera.labels import motion_instructions
from services.camera.vocabulary import Component, MotionLabel
from services.caption.context import parse_instructions
from services.caption.motion import motion_phrase, trends_from_segments


def test_the_reference_vocabulary_in_its_order():
    assert MotionLabel.texts() == (
        "Dolly In", "Dolly Out", "Truck Left", "Truck Right", "Pedestal Up", "Pedestal Down",
        "Pan Left", "Pan Right", "Tilt Up", "Tilt Down", "Roll CW", "Roll CCW", "Stay")


def test_every_component_has_one_label_per_direction_and_they_are_opposites():
    for component in Component:
        positive, negative = MotionLabel.of(component, True), MotionLabel.of(component, False)
        assert positive != negative
        assert positive.opposite == negative and negative.opposite == positive
    assert MotionLabel.STAY.opposite is None


def test_translations_are_the_first_six_labels():
    assert [label.is_translation for label in MotionLabel] == [True] * 6 + [False] * 7


def test_labeller_output_is_vocabulary_and_parses():
    # a pan left about the vertical: yaw turns positive (left) about camera -y
    n = 48
    c2w = np.tile(np.eye(4), (n, 1, 1))
    for i, angle in enumerate(np.radians(np.linspace(0, 20, n))):
        c, s = np.cos(angle), np.sin(angle)
        c2w[i, :3, :3] = [[c, 0, -s], [0, 1, 0], [s, 0, c]]
    instructions = motion_instructions(c2w, 24.0)
    labels = {label for labels in instructions.values() for label in labels}
    assert labels <= set(MotionLabel.texts()) and labels - {"Stay"}
    assert all(type(label) is str for label in labels)  # plain text in instructions.json
    segments = parse_instructions(instructions)
    assert motion_phrase(segments[0].labels) and trends_from_segments(segments)
