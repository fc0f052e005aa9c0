"""Which stages exist, in pipeline order, and how to build them by name."""

from __future__ import annotations

import importlib
import importlib.util

from services.stages.base import Stage

# Pipeline order. Each name maps to "module:Class"; a stage whose module does
# not exist yet is simply not available (later issues add them).
STAGES: dict[str, str] = {
    "clip": "services.stages.clip:ShotClippingStage",
    "score": "services.stages.score:ScoreStage",
    "filter": "services.stages.filter:FilterStage",
    "camera": "services.stages.camera:CameraStage",
    "depth": "services.stages.depth:DepthStage",
    "caption": "services.stages.caption:CaptionStage",
}
ALIASES = {"annotate": ("camera", "depth")}


class UnknownStage(ValueError):
    pass


def available_stages() -> list[str]:
    return [name for name, target in STAGES.items() if importlib.util.find_spec(target.split(":")[0])]


def parse_stage_list(text: str | None) -> list[str]:
    """``"clip,annotate"`` -> ``["clip", "camera", "depth"]`` in pipeline order."""
    if not text:
        return available_stages()
    wanted: set[str] = set()
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name in ALIASES:
            wanted.update(ALIASES[name])
        elif name in STAGES:
            wanted.add(name)
        else:
            known = ", ".join([*STAGES, *ALIASES])
            raise UnknownStage(f"unknown stage {name!r} (known: {known})")
    if not wanted:
        raise UnknownStage(f"no stage named in {text!r} (known: {', '.join([*STAGES, *ALIASES])})")
    missing = wanted - set(available_stages())
    if missing:
        raise UnknownStage(f"stage(s) not implemented yet: {', '.join(sorted(missing))}")
    return [name for name in STAGES if name in wanted]


def build_stage(name: str) -> Stage:
    module_name, class_name = STAGES[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls()
