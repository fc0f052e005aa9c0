"""The model captioner: a VLM looks at the frames, then an LLM writes the structured fields.

Both sit behind OpenAI-compatible chat-completions endpoints (see client.py).
Step 1 gets about one frame per second and answers CamMotion and SceneDesc;
step 2 gets that text, the quantised camera path and the distance level and
answers the structured fields and tags, validated against the schema.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.caption.client import ChatClient, EndpointLimits
from services.caption.context import ClipContext
from services.caption.motion import quantised_translations, summarise_segments
from services.caption.prompts import llm_messages, vlm_messages
from services.caption.schema import Caption, CaptionProvenance, StructuredCaption, VisionCaption
from services.settings import CaptionSettings

VERSION = "openai-chat-1"


class ModelCaptioner:
    def __init__(self, vlm: ChatClient, llm: ChatClient, settings: CaptionSettings) -> None:
        self.vlm = vlm
        self.llm = llm
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: CaptionSettings) -> "ModelCaptioner":
        # One endpoint serving both models shares one set of limits.
        vlm_limits = EndpointLimits.from_settings(settings)
        same = settings.llm_url.rstrip("/") == settings.vlm_url.rstrip("/")
        llm_limits = vlm_limits if same else EndpointLimits.from_settings(settings)
        llm_key = settings.llm_api_key if settings.llm_api_key is not None else settings.api_key
        return cls(
            ChatClient(settings.vlm_url, settings.vlm_model, settings.api_key, settings, vlm_limits),
            ChatClient(settings.llm_url, settings.llm_model, llm_key, settings, llm_limits),
            settings,
        )

    def close(self) -> None:
        self.vlm.close()
        self.llm.close()

    def describe(self, image_urls: Sequence[str]) -> VisionCaption:
        if not image_urls:
            raise ValueError("no frames to show the VLM")
        return self.vlm.complete_json(vlm_messages(image_urls), VisionCaption, self.settings.vlm_temperature)

    def structure(self, vision: VisionCaption, ctx: ClipContext) -> StructuredCaption:
        translations = quantised_translations(ctx.c2w) if ctx.c2w is not None and len(ctx.c2w) >= 2 else None
        level = ctx.number("distLevel")
        labels = ""
        if ctx.segments:
            labels = "; ".join(" + ".join(seg.labels) for seg in summarise_segments(ctx.segments))
        messages = llm_messages(vision, translations, None if level is None else int(round(level)), labels)
        return self.llm.complete_json(messages, StructuredCaption, self.settings.llm_temperature)

    def caption(self, image_urls: Sequence[str], ctx: ClipContext) -> Caption:
        vision = self.describe(image_urls)
        structured = self.structure(vision, ctx)
        return Caption(
            CamMotion=vision.CamMotion,
            SceneDesc=vision.SceneDesc,
            **structured.model_dump(),
            Backend=CaptionProvenance(
                backend="openai",
                version=VERSION,
                vlm_model=self.vlm.model,
                llm_model=self.llm.model,
                inputs=["frames", *ctx.sources],
            ),
        )
