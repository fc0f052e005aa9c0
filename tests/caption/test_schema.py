"""caption.json schema, tag vocabularies and the JSON repair."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.caption.jsonfix import InvalidAnswer, extract_json, parse_answer
from services.caption.schema import (
    CAPTION_KEY_ORDER,
    Caption,
    CategoryTag,
    StructuredCaption,
    VisionCaption,
    caption_document,
)
from tests.caption.samples import STRUCTURED, VISION


def full_caption(**changes) -> dict:
    data = {**VISION, **STRUCTURED, "Backend": {"backend": "openai", "version": "x", "vlm_model": "v"}}
    data.update(changes)
    return data


def test_document_has_the_reference_keys_in_order():
    document = caption_document(Caption.model_validate(full_caption()))
    assert tuple(document) == CAPTION_KEY_ORDER
    assert CAPTION_KEY_ORDER[:8] == ("CamMotion", "SceneDesc", "OptCamMotion", "SceneSummary",
                                     "MotionTrends", "SceneTags", "ShotImmersion", "CategoryTag")
    assert set(document["CategoryTag"]) == {"sceneType", "lighting", "timeOfDay", "weather", "crowdDensity"}


def test_tag_values_are_normalised_or_rejected():
    tag = CategoryTag.model_validate({
        "sceneType": {"first": "natural landscape", "second": "Mountain Lake"},
        "lighting": "dim", "timeOfDay": "sunset", "weather": "overcast", "crowdDensity": "empty",
    })
    assert (tag.sceneType.first, tag.lighting, tag.timeOfDay, tag.weather, tag.crowdDensity) == (
        "Natural Landscape", "Dim/Dark", "Dusk/Evening", "Cloudy", "Deserted")
    with pytest.raises(ValidationError):
        CategoryTag.model_validate({**tag.model_dump(), "sceneType": {"first": "Spaceship", "second": "x"}})
    with pytest.raises(ValidationError):
        CategoryTag.model_validate({**tag.model_dump(), "weather": "Hailstorm"})


@pytest.mark.parametrize("change", [
    {"SceneTags": ["a", "b", "c", "d", "e"]},  # at most 4 keywords
    {"MotionTrends": []},
    {"ShotImmersion": "   "},
    {"Extra": "field"},
])
def test_invalid_captions_are_rejected(change):
    with pytest.raises(ValidationError):
        Caption.model_validate(full_caption(**change))


def test_comma_separated_lists_are_accepted():
    parsed = StructuredCaption.model_validate({**STRUCTURED, "SceneTags": "corridor, office，daylight"})
    assert parsed.SceneTags == ["corridor", "office", "daylight"]


def test_json_extraction():
    assert extract_json('Here you go: {"a": {"b": "}"}} thanks') == {"a": {"b": "}"}}
    assert extract_json('```json\n{"a": [1, 2,],}\n```') == {"a": [1, 2]}
    with pytest.raises(InvalidAnswer):
        extract_json("{not json")
    nested = parse_answer(json.dumps({"caption": VISION}), VisionCaption)  # one level down
    assert nested.CamMotion == VISION["CamMotion"]
