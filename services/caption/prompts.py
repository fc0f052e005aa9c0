"""The two prompts: the VLM looks at frames, the LLM writes the structured fields."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from services.caption.schema import StructuredCaption, VisionCaption, inline_json_schema

VLM_SYSTEM = (
    "You describe video clips for a dataset of camera trajectories. You are shown frames "
    "sampled about once per second, in order. Answer with one JSON object and nothing else."
)

VLM_TASK = """Look at the frames in order and write two texts.

CamMotion: how the camera itself moves through the clip, 50 to 100 words. Use film terms
(dolly in/out, truck left/right, pedestal up/down, pan, tilt, roll, static) and say when the
motion changes. Describe the camera, not the objects in front of it.

SceneDesc: the scene, about 100 words: the place, main objects and people, their layout,
the lighting, the time of day and the weather if visible, and any text on screen.

Reply as JSON: {"CamMotion": "...", "SceneDesc": "..."}"""

LLM_SYSTEM = (
    "You turn a video's camera-motion caption, scene description and measured camera path "
    "into structured dataset fields. Answer with one JSON object that follows the schema, "
    "and nothing else."
)

LLM_TASK = """Inputs
Camera motion caption: {cam_motion}
Scene description: {scene_desc}
Camera path, relative to the first frame in the first camera's axes (x right, y down, z forward),
{n} evenly spaced samples, scaled so the largest coordinate is 100 (no units):
x: {x}
y: {y}
z: {z}
Motion intensity (distance level, 0 static, 1 slight, 2 normal, 3-4 large): {dist_level}
{labels}
Fields to write
- OptCamMotion: the camera's motion from its own point of view, 50 to 100 words. Take the
  direction and pacing from the camera path (x increasing = moves right, y decreasing =
  moves up, z increasing = moves forward); keep the scene context. Qualify by the intensity: at 0 describe a fixed
  viewpoint, at 1 a slight movement. Do not mention data or measurements.
- SceneSummary: one sentence of about 50 words: key elements, atmosphere, notable features.
- MotionTrends: 1 to 3 short phrases for the major sustained motions, e.g. "forward translate".
- SceneTags: up to 4 nouns or noun phrases (place, time, lighting, weather, scene type).
- ShotImmersion: 50 to 100 words, cinematic, blending camera motion and scene evenly.
- CategoryTag: sceneType.first one of Urban, Natural Landscape, Interior, Rural, Waterfront,
  Unknown; sceneType.second a free tag that narrows it (e.g. "Street Scene", "Library");
  lighting one of Bright, Dim/Dark, Unknown; timeOfDay one of Dawn/Morning, Daytime,
  Dusk/Evening, Night, Unknown; weather one of Sunny, Rainy, Foggy, Cloudy, Snowy, Unknown;
  crowdDensity one of Deserted, Sparse, Moderate, Crowded, Unknown. Use Unknown when the
  text gives no evidence.

JSON schema:
{schema}"""


def vlm_messages(image_urls: Sequence[str]) -> list[dict]:
    content: list[dict] = [{"type": "text", "text": VLM_TASK}]
    content += [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    return [{"role": "system", "content": VLM_SYSTEM}, {"role": "user", "content": content}]


def llm_messages(
    vision: VisionCaption,
    translations: np.ndarray | None,
    dist_level: int | None,
    labels: str = "",
) -> list[dict]:
    if translations is None or translations.size == 0:
        x = y = z = "unknown (the camera path was not measured)"
        n = 0
    else:
        x, y, z = (" ".join(str(int(v)) for v in row) for row in translations)
        n = translations.shape[1]
    text = LLM_TASK.format(
        cam_motion=vision.CamMotion,
        scene_desc=vision.SceneDesc,
        n=n, x=x, y=y, z=z,
        dist_level="unknown" if dist_level is None else dist_level,
        labels=f"Camera motion labels measured from the path, in order: {labels}\n" if labels else "",
        schema=json.dumps(inline_json_schema(StructuredCaption)),
    )
    return [{"role": "system", "content": LLM_SYSTEM}, {"role": "user", "content": text}]
