"""The default captioner: fluent sentences built from the clip's own annotations.

No model sees the picture. Camera-motion labels and trajectory statistics
become the motion captions; luminance, the dynamic ratio, image motion and
detected text become the scene description and tags. The result is marked
``backend: annotations`` so that nobody takes it for a VLM caption.
"""

from __future__ import annotations

from services.caption.context import ClipContext
from services.caption.motion import (
    describe_poses,
    describe_segments,
    distance_sentence,
    summarise_segments,
    trends_from_poses,
    trends_from_segments,
)
from services.caption.scene import scene_facts
from services.caption.schema import Caption, CaptionProvenance, CategoryTag, SceneType

VERSION = "annotations-1"


def _shot_keyword(trends: list[str]) -> str:
    if not trends or trends == ["static hold"]:
        return "static shot"
    if any("translate" in t for t in trends):
        return "tracking shot"
    return "panning shot"


def caption_from_annotations(ctx: ClipContext) -> Caption:
    dist_level = ctx.number("distLevel")
    moving = dist_level is None or dist_level >= 1
    if ctx.segments:
        cam_motion = describe_segments(ctx.segments, ctx.fps)
        trends = trends_from_segments(ctx.segments, slight=dist_level == 1)
    elif ctx.c2w is not None and len(ctx.c2w) >= 2:
        cam_motion = describe_poses(ctx.c2w, moving)
        trends = trends_from_poses(ctx.c2w, moving)
    else:
        cam_motion = "The camera motion of this clip was not measured (no camera annotation is available)."
        trends = []
    stats = distance_sentence(dist_level, ctx.number("moveDist"), ctx.number("rotAngle"), ctx.number("trajTurns"))
    opt_cam_motion = " ".join(s for s in (cam_motion, stats) if s)

    facts = scene_facts(
        luminance=ctx.number("luminance_mean"),
        dynamic_ratio=ctx.number("dynamicRatio"),
        image_motion=ctx.number("motion"),
        text_ratio=ctx.number("ocr"),
        text=ctx.text("ocr_text"),
    )
    basics = f"The clip lasts {ctx.duration:.1f} s at {ctx.fps:g} fps, {ctx.width}x{ctx.height}."
    scene_desc = " ".join([basics, *facts.sentences])

    shot = _shot_keyword(trends)
    light_word = {"Bright": "well-lit", "Dim/Dark": "dimly lit"}.get(facts.lighting, "")
    crowd_word = {"Deserted": "still", "Sparse": "sparsely animated", "Moderate": "busy",
                  "Crowded": "crowded"}.get(facts.crowd, "")
    adjectives = ", ".join(w for w in (light_word, crowd_word) if w)
    n_moves = len(summarise_segments(ctx.segments)) if ctx.segments else 0
    moves = f" through {n_moves} camera movement{'s' if n_moves != 1 else ''}" if n_moves > 1 else ""
    summary = f"A {ctx.duration:.1f}-second {adjectives + ' ' if adjectives else ''}{shot}{moves}."
    immersion = " ".join([cam_motion, *facts.sentences[:2]])
    tags = CategoryTag(
        sceneType=SceneType(first="Unknown", second="Unknown"),
        lighting=facts.lighting,
        timeOfDay="Unknown",
        weather="Unknown",
        crowdDensity=facts.crowd,
    )
    return Caption(
        CamMotion=cam_motion,
        SceneDesc=scene_desc,
        OptCamMotion=opt_cam_motion,
        SceneSummary=summary,
        MotionTrends=trends or ["unknown motion"],
        SceneTags=([shot] + facts.keywords)[:4],
        ShotImmersion=immersion,
        CategoryTag=tags,
        Backend=CaptionProvenance(backend="annotations", version=VERSION, inputs=list(ctx.sources)),
    )
