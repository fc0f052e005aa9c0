"""The caption stage on real clips: the default backend, the model backend, failures."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.caption.schema import Caption
from services.execution import run_clip_stage
from services.records import ClipRecord, StageState
from tests import data
from services.settings import Settings
from services.stages.base import ClipFailed, StageContext
from services.stages.caption import CaptionStage
from services.storage.local import LocalStore
from tests.caption.conftest import API_KEY, Reply, answer
from tests.caption.samples import STRUCTURED, VISION

# The shared cases' labels in the reference's vocabulary. An orbit is a truck
# with a pan the other way (orbit_right: moves right while yawing left).
BENCH_TO_REFERENCE = {
    "static": ("Stay",), "orbit_left": ("Truck Left", "Pan Right"), "orbit_right": ("Truck Right", "Pan Left"),
    "dolly_in": ("Dolly In",), "dolly_out": ("Dolly Out",), "truck_left": ("Truck Left",),
    "truck_right": ("Truck Right",), "pedestal_up": ("Pedestal Up",), "pedestal_down": ("Pedestal Down",),
    "pan_left": ("Pan Left",), "pan_right": ("Pan Right",), "tilt_up": ("Tilt Up",), "tilt_down": ("Tilt Down",),
    "roll_cw": ("Roll CW",), "roll_ccw": ("Roll CCW",),
}

# How a reader recognises each motion in the caption (written out here, not imported,
# so that the test reads the sentence the way a person would).
PHRASES = {
    "Dolly In": r"mov(es|ing) forward", "Dolly Out": r"mov(es|ing) backward",
    "Truck Left": r"slid(es|ing) to the left", "Truck Right": r"slid(es|ing) to the right",
    "Pedestal Up": r"ris(es|ing)", "Pedestal Down": r"descend(s|ing)",
    "Pan Left": r"pan(s|ning) left", "Pan Right": r"pan(s|ning) right",
    "Tilt Up": r"tilt(s|ing) up", "Tilt Down": r"tilt(s|ing) down",
    "Roll CW": r"roll(s|ing) clockwise", "Roll CCW": r"roll(s|ing) counter-clockwise",
    "Stay": r"hold(s|ing) still",
}


def labels_in_sentence(sentence: str) -> list[set[str]]:
    """The motion sentence read back as a sequence of label sets, one per clause."""
    clauses = re.split(r", then |, and finally ", sentence)
    return [{label for label, pattern in PHRASES.items() if re.search(rf"\b{pattern}\b", clause)}
            for clause in clauses]


def bench_clip(store: LocalStore, case: str, clip_id: str | None = None) -> tuple[ClipRecord, dict]:
    meta = json.loads((data.CASES / case / "meta.json").read_text())
    clip = ClipRecord(
        id=clip_id or case, source=str(data.CASES / case / "video.mp4"), source_id=case,
        num_frames=meta["num_frames"], height=meta["height"], width=meta["width"], fps=meta["fps"],
        timestamp_start=0.0, timestamp_end=meta["num_frames"] / meta["fps"], frame_start=0,
        frame_end=meta["num_frames"],
    )
    store.put_file(clip.clip_key, data.CASES / case / "video.mp4")
    return clip, meta


def write_instructions(store: LocalStore, clip: ClipRecord, meta: dict) -> list[set[str]]:
    """instructions.json from the ground-truth labels; returns the expected label sequence."""
    instructions = {}
    for seg in meta["camera_motion_labels"]:
        labels = sorted({ref for label in seg["labels"] for ref in BENCH_TO_REFERENCE[label]})
        instructions[f"{seg['start']}->{seg['end']}"] = labels
    store.put_json(clip.annotation_key("instructions.json"), instructions)
    return [set(labels) for labels in instructions.values()]


def context(tmp_path: Path, settings: Settings | None = None) -> StageContext:
    return StageContext(settings=settings or Settings(), store=LocalStore(tmp_path / "out"), workdir=tmp_path)


def read_caption(store: LocalStore, clip: ClipRecord) -> Caption:
    return Caption.model_validate(store.get_json(clip.annotation_key("caption.json")))


CASES = ["room_plain", "room_dyn2", "street_dyn3", "orbit_plain", "room_static_dyn3",
         "street_dark_dyn1", "orbit_text_dyn2", "cut_room_street_dyn1"]


@pytest.mark.parametrize("case", CASES)
def test_default_caption_agrees_with_instructions(tmp_path, case):
    ctx = context(tmp_path)
    clip, meta = bench_clip(ctx.store, case)
    expected = write_instructions(ctx.store, clip, meta)
    outcome = CaptionStage().run(clip, ctx)
    assert outcome.columns == {"caption_backend": "annotations"}
    assert outcome.artifacts == [f"annotations/{case}/caption.json"]
    caption = read_caption(ctx.store, clip)
    assert caption.Backend.backend == "annotations" and caption.Backend.vlm_model is None
    assert labels_in_sentence(caption.CamMotion) == expected
    assert caption.OptCamMotion.startswith(caption.CamMotion)
    # No column from the score stage: the stage measured luminance itself.
    assert caption.CategoryTag.lighting == ("Dim/Dark" if meta["dark"] else "Bright")
    assert "luminance (measured by the caption stage)" in caption.Backend.inputs


def test_default_caption_uses_columns_and_poses_without_labels(tmp_path):
    ctx = context(tmp_path)
    clip, _ = bench_clip(ctx.store, "street_dyn3")
    ctx.store.put_npy(clip.annotation_key("c2w.npy"), np.load(data.CASES / "street_dyn3" / "gt_poses.npy"))
    clip.columns.update(luminance_mean=35.0, dynamicRatio=0.2, distLevel=3, moveDist=3.9, rotAngle=31.0,
                        trajTurns=1, ocr=0.02, ocr_text="EXIT 12")
    CaptionStage().run(clip, ctx)
    caption = read_caption(ctx.store, clip)
    assert "moves forward" in caption.CamMotion and "turns right" in caption.CamMotion
    assert set(caption.MotionTrends) == {"forward translate", "right pan"}
    assert caption.CategoryTag.lighting == "Dim/Dark" and caption.CategoryTag.crowdDensity == "Crowded"
    assert "EXIT 12" in caption.SceneDesc and "distance level 3 of 4" in caption.OptCamMotion
    assert caption.CategoryTag.timeOfDay == "Unknown"  # nothing looked at the picture
    assert {"c2w.npy", "luminance_mean", "dynamicRatio"} <= set(caption.Backend.inputs)


def test_default_caption_without_any_annotation(tmp_path):
    ctx = context(tmp_path)
    clip, _ = bench_clip(ctx.store, "room_plain")
    ctx.store.delete(clip.clip_key)  # not even the video
    CaptionStage().run(clip, ctx)
    caption = read_caption(ctx.store, clip)
    assert "not measured" in caption.CamMotion
    assert caption.CategoryTag.lighting == "Unknown" and caption.Backend.inputs == []


def test_broken_instructions_fail_the_clip(tmp_path):
    ctx = context(tmp_path)
    clip, _ = bench_clip(ctx.store, "room_plain")
    ctx.store.put_json(clip.annotation_key("instructions.json"), {"0->10": ["Warp Speed"]})
    with pytest.raises(ClipFailed, match="unknown label"):
        CaptionStage().run(clip, ctx)


def test_model_backend_on_a_real_clip(tmp_path, chat_server, fast_settings):
    chat_server.script = [answer(VISION), answer(STRUCTURED)]
    settings = Settings(caption=fast_settings(chat_server.url, llm_model="qwen-test"))
    ctx = context(tmp_path, settings)
    clip, meta = bench_clip(ctx.store, "room_plain")
    write_instructions(ctx.store, clip, meta)
    ctx.store.put_npy(clip.annotation_key("c2w.npy"), np.load(data.CASES / "room_plain" / "gt_poses.npy"))
    clip.columns["distLevel"] = 2
    stage = CaptionStage()
    stage.setup(ctx)
    outcome = stage.run(clip, ctx)
    assert outcome.columns == {"caption_backend": "openai"}
    assert "qwen-test" in outcome.provenance["caption"]

    vlm_request, llm_request = (r["body"] for r in chat_server.requests)
    images = [part["image_url"]["url"] for part in vlm_request["messages"][1]["content"]
              if part["type"] == "image_url"]
    assert len(images) == 4  # a 4-second clip at one frame per second
    frame = cv2.imdecode(np.frombuffer(base64.b64decode(images[0].split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (360, 640, 3)
    assert vlm_request["model"] == "test-vlm" and llm_request["model"] == "qwen-test"
    prompt = llm_request["messages"][1]["content"]
    assert VISION["CamMotion"] in prompt and "Motion intensity" in prompt and ": 2" in prompt
    assert "z: 0 " in prompt and "Dolly In; Pan Left; Tilt Up" in prompt

    caption = read_caption(ctx.store, clip)
    assert caption.CamMotion == VISION["CamMotion"] and caption.CategoryTag.sceneType.second == "Office Corridor"
    assert caption.Backend.backend == "openai" and caption.Backend.llm_model == "qwen-test"
    written = (ctx.store.root / clip.annotation_key("caption.json")).read_text()
    assert API_KEY not in written


def test_500_forever_fails_that_clip_and_the_run_goes_on(tmp_path, chat_server, fast_settings):
    failing = Reply(status=500, body='{"error": "overloaded"}')
    chat_server.script = [failing]
    settings = Settings(caption=fast_settings(chat_server.url, max_retries=2))
    ctx = context(tmp_path, settings)
    stage = CaptionStage()
    stage.setup(ctx)
    first, _ = bench_clip(ctx.store, "room_plain", "clip_a")
    second, _ = bench_clip(ctx.store, "street_dyn3", "clip_b")
    fingerprint = stage.fingerprint(settings)

    failed = run_clip_stage(stage, first, ctx, fingerprint)
    status = failed.stages["caption"]
    assert status.state is StageState.failed and failed.failed_stage == "caption"
    assert "HTTP 500" in status.error and "after 3 attempts" in status.error and API_KEY not in status.error
    assert len(chat_server.requests) == 3 and not ctx.store.exists(first.annotation_key("caption.json"))

    chat_server.script = [failing] * 3 + [answer(VISION), answer(STRUCTURED)]  # the server recovers
    done = run_clip_stage(stage, second, ctx, fingerprint)
    assert done.is_done("caption") and done.columns["caption_backend"] == "openai"
    assert ctx.store.exists(second.annotation_key("caption.json"))


def test_unconfigured_model_backend_fails_each_clip_clearly(tmp_path):
    ctx = context(tmp_path, Settings(caption={"backend": "openai"}))
    clip, _ = bench_clip(ctx.store, "room_plain")
    with pytest.raises(ClipFailed, match="no model name configured"):
        CaptionStage().run(clip, ctx)


def test_fingerprint_ignores_patience_and_secrets():
    stage = CaptionStage()
    base = Settings(caption={"backend": "openai", "vlm_model": "a", "llm_model": "b"})
    patient = base.with_overrides({"caption": {"max_retries": 9, "timeout_s": 5, "api_key": "other"}})
    other_model = base.with_overrides({"caption": {"llm_model": "c"}})
    assert stage.fingerprint(base) == stage.fingerprint(patient)
    assert stage.fingerprint(base) != stage.fingerprint(other_model)
    assert stage.fingerprint(Settings()) != stage.fingerprint(base)


def test_camera_then_caption_on_a_real_clip(tmp_path):
    """Once the camera stage exists: its instructions.json and columns feed the caption."""
    camera_module = pytest.importorskip("services.stages.camera")
    from services.caption.context import parse_instructions
    from services.caption.motion import summarise_segments

    ctx = context(tmp_path)
    clip, _ = bench_clip(ctx.store, "room_plain")
    camera = camera_module.CameraStage()
    camera.setup(ctx)
    clip.columns.update(camera.run(clip, ctx).columns)
    key = clip.annotation_key("instructions.json")
    assert ctx.store.exists(key)
    expected = [set(seg.labels) for seg in summarise_segments(parse_instructions(ctx.store.get_json(key)))]
    CaptionStage().run(clip, ctx)
    caption = read_caption(ctx.store, clip)
    assert labels_in_sentence(caption.CamMotion) == expected
    assert "instructions.json" in caption.Backend.inputs
    if clip.columns.get("distLevel") is not None:
        assert "distance level" in caption.OptCamMotion
