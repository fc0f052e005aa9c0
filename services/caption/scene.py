"""The scene as far as the clip's own measurements tell: lighting, movement, text.

Pure functions over numbers other stages measured. They know nothing of what
is in the picture (no model looks at it), so scene type, time of day and
weather stay "Unknown" here rather than being guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

# Rec.709 luma (0..255) below which a clip counts as dim. Well-exposed footage
# sits around 90-130; the shared dark street case measures 11 and the filter
# keeps 20..140, so 60 separates "dim but kept" from normal exposure.
DIM_LUMINANCE = 60.0
# Share of pixels on independently moving objects -> crowd density (a motion proxy).
CROWD_BANDS = ((0.01, "Deserted"), (0.05, "Sparse"), (0.15, "Moderate"))
# VMAF motion (the score stage's "motion" column) bands for words.
IMAGE_MOTION_BANDS = ((2.0, "very little"), (6.0, "moderate"), (14.0, "strong"))


@dataclass(frozen=True)
class SceneFacts:
    lighting: str  # "Bright" | "Dim/Dark" | "Unknown"
    crowd: str  # "Deserted" | "Sparse" | "Moderate" | "Crowded" | "Unknown"
    sentences: list[str]
    keywords: list[str]


def lighting_tag(luminance: float | None) -> str:
    if luminance is None:
        return "Unknown"
    return "Dim/Dark" if luminance < DIM_LUMINANCE else "Bright"


def crowd_tag(dynamic_ratio: float | None) -> str:
    if dynamic_ratio is None:
        return "Unknown"
    for upper, name in CROWD_BANDS:
        if dynamic_ratio < upper:
            return name
    return "Crowded"


def _band(value: float, bands: tuple[tuple[float, str], ...], top: str) -> str:
    for upper, name in bands:
        if value < upper:
            return name
    return top


def scene_facts(
    luminance: float | None,
    dynamic_ratio: float | None,
    image_motion: float | None,
    text_ratio: float | None,
    text: str,
) -> SceneFacts:
    lighting = lighting_tag(luminance)
    crowd = crowd_tag(dynamic_ratio)
    sentences: list[str] = []
    keywords: list[str] = []
    if luminance is not None:
        look = "dimly lit" if lighting == "Dim/Dark" else "well lit"
        sentences.append(f"The footage is {look} (mean luma {luminance:.0f} of 255).")
        keywords.append("low light" if lighting == "Dim/Dark" else "bright light")
    if dynamic_ratio is not None:
        share = f"{dynamic_ratio * 100:.1f}%"
        if crowd == "Deserted":
            sentences.append(f"Almost nothing in the scene moves on its own ({share} of the frame).")
            keywords.append("still scene")
        else:
            amount = {"Sparse": "a few", "Moderate": "several", "Crowded": "many"}[crowd]
            sentences.append(f"There are {amount} independently moving objects, covering {share} of the frame.")
            keywords.append("moving objects")
    if image_motion is not None:
        words = _band(image_motion, IMAGE_MOTION_BANDS, "very strong")
        sentences.append(f"The image changes with {words} motion from frame to frame.")
    if text:
        shown = text if len(text) <= 80 else text[:77].rstrip() + "..."
        sentences.append(f'On-screen text reads "{shown}".')
        keywords.append("on-screen text")
    elif text_ratio is not None and text_ratio > 0.005:
        sentences.append(f"Text covers about {text_ratio * 100:.1f}% of the frame.")
        keywords.append("on-screen text")
    return SceneFacts(lighting, crowd, sentences, keywords)
