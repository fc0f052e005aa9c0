"""The caption.json schema: the reference's keys, its tag vocabularies, and provenance.

Keys follow the published SpatialVID captions: ``CamMotion`` and ``SceneDesc``
(the VLM's two texts), ``OptCamMotion``, ``SceneSummary``, ``MotionTrends``,
``SceneTags`` (keywords), ``ShotImmersion`` (the LLM's structured fields) and
``CategoryTag`` (scene type with a free second tag, lighting, time of day,
weather, crowd density). ``Backend`` is ours: which captioner wrote the file,
so that a caption built from annotations is never mistaken for a VLM caption.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

SceneTypeName = Literal["Urban", "Natural Landscape", "Interior", "Rural", "Waterfront", "Unknown"]
Lighting = Literal["Bright", "Dim/Dark", "Unknown"]
TimeOfDay = Literal["Dawn/Morning", "Daytime", "Dusk/Evening", "Night", "Unknown"]
Weather = Literal["Sunny", "Rainy", "Foggy", "Cloudy", "Snowy", "Unknown"]
CrowdDensity = Literal["Deserted", "Sparse", "Moderate", "Crowded", "Unknown"]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]

# Words a model may use for a vocabulary value (lower case) -> the value.
_SYNONYMS: dict[str, str] = {
    "dim": "Dim/Dark", "dark": "Dim/Dark", "low light": "Dim/Dark", "well lit": "Bright",
    "dawn": "Dawn/Morning", "morning": "Dawn/Morning", "sunrise": "Dawn/Morning",
    "day": "Daytime", "daylight": "Daytime", "midday": "Daytime", "afternoon": "Daytime",
    "dusk": "Dusk/Evening", "evening": "Dusk/Evening", "sunset": "Dusk/Evening", "twilight": "Dusk/Evening",
    "nighttime": "Night", "clear": "Sunny", "overcast": "Cloudy", "rain": "Rainy", "fog": "Foggy",
    "snow": "Snowy", "empty": "Deserted", "none": "Deserted", "busy": "Crowded", "dense": "Crowded",
    "indoor": "Interior", "indoors": "Interior", "nature": "Natural Landscape", "city": "Urban",
    "unclear": "Unknown", "n/a": "Unknown",
}


def _normalise(value: Any, allowed: tuple[str, ...]) -> Any:
    """Map a model's spelling of a vocabulary value onto the exact value, else leave it."""
    if not isinstance(value, str):
        return value
    text = value.strip().strip(".").strip()
    for option in allowed:
        if text.lower() == option.lower():
            return option
    mapped = _SYNONYMS.get(text.lower())
    return mapped if mapped in allowed else text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SceneType(_Strict):
    first: SceneTypeName
    # The free secondary tag (e.g. "Street Scene", "Library").
    second: Phrase

    @field_validator("first", mode="before")
    @classmethod
    def _first(cls, v: Any) -> Any:
        return _normalise(v, get_args(SceneTypeName))


class CategoryTag(_Strict):
    sceneType: SceneType
    lighting: Lighting
    timeOfDay: TimeOfDay
    weather: Weather
    crowdDensity: CrowdDensity

    @field_validator("lighting", mode="before")
    @classmethod
    def _lighting(cls, v: Any) -> Any:
        return _normalise(v, get_args(Lighting))

    @field_validator("timeOfDay", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Any:
        return _normalise(v, get_args(TimeOfDay))

    @field_validator("weather", mode="before")
    @classmethod
    def _weather(cls, v: Any) -> Any:
        return _normalise(v, get_args(Weather))

    @field_validator("crowdDensity", mode="before")
    @classmethod
    def _crowd(cls, v: Any) -> Any:
        return _normalise(v, get_args(CrowdDensity))


class VisionCaption(_Strict):
    """Step 1, the VLM's answer: how the camera moves, and what the scene is."""

    CamMotion: Text
    SceneDesc: Text


class StructuredCaption(_Strict):
    """Step 2, the LLM's answer: the structured fields and the tags."""

    OptCamMotion: Text
    SceneSummary: Text
    MotionTrends: list[Phrase] = Field(min_length=1, max_length=3)
    SceneTags: list[Phrase] = Field(min_length=1, max_length=4)
    ShotImmersion: Text
    CategoryTag: CategoryTag

    @field_validator("MotionTrends", "SceneTags", mode="before")
    @classmethod
    def _split_text_list(cls, v: Any) -> Any:
        # The reference's LLM wrote these as comma-separated text; accept that too.
        if isinstance(v, str):
            return [item.strip() for item in v.replace("，", ",").split(",") if item.strip()]
        return v


class CaptionProvenance(_Strict):
    backend: Literal["annotations", "openai"]
    version: str
    vlm_model: str | None = None
    llm_model: str | None = None
    # Which inputs the caption was built from (e.g. instructions.json, c2w.npy, columns).
    inputs: list[str] = Field(default_factory=list)


class Caption(StructuredCaption):
    """The whole caption.json."""

    CamMotion: Text
    SceneDesc: Text
    Backend: CaptionProvenance


CAPTION_KEY_ORDER = (
    "CamMotion", "SceneDesc", "OptCamMotion", "SceneSummary", "MotionTrends",
    "SceneTags", "ShotImmersion", "CategoryTag", "Backend",
)


def caption_document(caption: Caption) -> dict[str, Any]:
    """The JSON object written to caption.json, keys in the reference's order."""
    data = caption.model_dump(mode="json")
    return {key: data[key] for key in CAPTION_KEY_ORDER}


def inline_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with every ``$ref`` inlined (some servers reject ``$defs``)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
