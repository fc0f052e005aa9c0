"""The camera-motion label vocabulary: the reference's thirteen labels, defined once.

Each label names the motion component it reads (``Component``, the columns of
``services.camera.labels.motion_components``) and the sign of that component it stands for, plus the words the
captioners use for it. ``instructions.json`` holds the labels' text (``MotionLabel.value``); the order of the members
is the vocabulary order that captions list labels in.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Component(IntEnum):
    """The six motion components, in the order ``motion_components`` returns them (camera i's level axes)."""

    DOLLY = 0  # translation along the level forward
    TRUCK = 1  # translation along the level right
    PEDESTAL = 2  # translation along world up
    PAN = 3  # turn about world up, left positive
    TILT = 4  # pitch, up positive
    ROLL = 5  # roll, clockwise positive


TRANSLATION_COMPONENTS = frozenset({Component.DOLLY, Component.TRUCK, Component.PEDESTAL})


class MotionLabel(str, Enum):
    """A camera-motion label; compares equal to its text (``MotionLabel.PAN_LEFT == "Pan Left"``)."""

    # text, component (None: no motion), sign of the component, verb phrase, its -ing form, trend phrase
    DOLLY_IN = "Dolly In", Component.DOLLY, +1, "moves forward", "moving forward", "forward translate"
    DOLLY_OUT = "Dolly Out", Component.DOLLY, -1, "moves backward", "moving backward", "backward translate"
    TRUCK_LEFT = "Truck Left", Component.TRUCK, -1, "slides to the left", "sliding to the left", "left translate"
    TRUCK_RIGHT = "Truck Right", Component.TRUCK, +1, "slides to the right", "sliding to the right", "right translate"
    PEDESTAL_UP = "Pedestal Up", Component.PEDESTAL, +1, "rises", "rising", "upward translate"
    PEDESTAL_DOWN = "Pedestal Down", Component.PEDESTAL, -1, "descends", "descending", "downward translate"
    PAN_LEFT = "Pan Left", Component.PAN, +1, "pans left", "panning left", "left pan"
    PAN_RIGHT = "Pan Right", Component.PAN, -1, "pans right", "panning right", "right pan"
    TILT_UP = "Tilt Up", Component.TILT, +1, "tilts up", "tilting up", "upward tilt"
    TILT_DOWN = "Tilt Down", Component.TILT, -1, "tilts down", "tilting down", "downward tilt"
    ROLL_CW = "Roll CW", Component.ROLL, +1, "rolls clockwise", "rolling clockwise", "clockwise roll"
    ROLL_CCW = "Roll CCW", Component.ROLL, -1, "rolls counter-clockwise", "rolling counter-clockwise", \
        "counter-clockwise roll"
    STAY = "Stay", None, 0, "holds still", "holding still", "static hold"

    def __new__(cls, text: str, component: Component | None, sign: int, verb: str, verb_ing: str, trend: str):
        member = str.__new__(cls, text)
        member._value_ = text
        member.component = component
        member.sign = sign
        member.verb = verb
        member.verb_ing = verb_ing
        member.trend = trend
        return member

    def __str__(self) -> str:
        return self.value

    @property
    def is_translation(self) -> bool:
        return self.component in TRANSLATION_COMPONENTS

    @property
    def opposite(self) -> MotionLabel | None:
        """The label of the same component with the other sign (None for ``STAY``)."""
        if self.component is None:
            return None
        return next(m for m in MotionLabel if m.component == self.component and m.sign == -self.sign)

    @classmethod
    def of(cls, component: Component, positive: bool) -> MotionLabel:
        """The label for a component moving in the positive (or negative) direction."""
        sign = +1 if positive else -1
        return next(m for m in cls if m.component == component and m.sign == sign)

    @classmethod
    def texts(cls) -> tuple[str, ...]:
        """Every label's text, in vocabulary order."""
        return tuple(m.value for m in cls)
