"""Turn a model's answer into a validated object, repairing the usual slips.

Models in JSON mode still wrap answers in code fences, add a sentence before
the object, or leave a trailing comma. Those are repaired here; anything else
is reported with a short reason so the caller can ask again.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


class InvalidAnswer(ValueError):
    """The answer is not JSON for the schema, even after repair."""


def _first_object(text: str) -> str | None:
    """The first balanced ``{...}`` in the text (braces inside strings respected)."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


def extract_json(text: str) -> Any:
    """Parse JSON out of a model answer, trying a few repairs in turn."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    obj = _first_object(text)
    if obj:
        candidates.append(obj)
    for candidate in candidates:
        for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
            try:
                return json.loads(attempt)
            except json.JSONDecodeError:
                continue
    raise InvalidAnswer("the answer is not a JSON object")


def _unwrap(data: Any, model: type[BaseModel]) -> Any:
    # Some models nest the object one level down ({"caption": {...}}).
    if isinstance(data, dict) and len(data) == 1:
        (inner,) = data.values()
        if isinstance(inner, dict) and set(model.model_fields) & set(inner):
            return inner
    return data


def parse_answer(text: str, model: type[M]) -> M:
    """A validated ``model`` from the answer text, or InvalidAnswer saying what is wrong."""
    data = _unwrap(extract_json(text), model)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'object'}: {err['msg']}" for err in exc.errors()[:6]
        )
        raise InvalidAnswer(f"the JSON does not match the schema ({problems})") from None
