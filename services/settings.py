"""One typed settings object for the whole system.

Every knob lives here, in sections. Values come from (highest first):
environment variables ``SPATIALVID_<SECTION>__<FIELD>`` (e.g.
``SPATIALVID_CLIP__MIN_SECONDS=1``), then a YAML file with the same sections
and fields (``--config FILE``), then the defaults below. Unknown sections or
fields are errors, so a typo in a config file never passes silently.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from services.camera.params import CameraSettings
from services.depth.params import DepthSettings
from services.kernels import config as kernels_config
from services.kernels.config import KernelSettings
from services.models.params import ModelSettings, TritonSettings
from services.quality.params import QualitySettings
from services.section import Section

ENV_PREFIX = "SPATIALVID_"
ENV_DELIMITER = "__"


class StorageSettings(Section):
    """Where artifacts go. ``local`` is the embedded default; ``s3`` is MinIO."""

    backend: Literal["local", "s3"] = "local"
    root: Path = Path("output")


class S3Settings(Section):
    endpoint: str = "127.0.0.1:9000"
    access_key: str = "minioadmin"
    secret_key: SecretStr = SecretStr("minioadmin")
    bucket: str = "spatialvid"
    secure: bool = False
    region: str = "us-east-1"
    # Multipart part size for streamed uploads (S3 minimum is 5 MiB).
    part_size: int = 16 * 1024 * 1024
    presign_seconds: int = 900
    # Host:port clients reach for presigned URLs when it differs from ``endpoint`` (e.g. behind a proxy).
    public_endpoint: str = ""


class VideoSettings(Section):
    """External tools. Empty ffmpeg means imageio-ffmpeg's static build, else PATH."""

    ffmpeg: str = ""
    ffprobe: str = ""
    decode_threads: int = 2
    # Decode each clip once for all the stages of a process that read its frames (services/video/shared.py);
    # off, each stage decodes it on its own: the same frames for more CPU time.
    share_decode: bool = True
    # The shared decode holds a clip's frames in memory while its stages run (a 720p frame for depth plus a
    # 640-wide one for the camera: 3.5 MB; 15 s at 30 fps: 1.6 GB); a clip needing more is decoded by each stage.
    share_decode_max_mb: int = Field(2048, ge=0)


class ClipSettings(Section):
    """Shot detection and cutting (the reference's PySceneDetect settings by default)."""

    content_threshold: float = 21.0
    adaptive_threshold: float = 3.0
    adaptive_window: int = 2
    adaptive_min_content: float = 15.0
    min_scene_frames: int = 15
    # Score every frame_step-th frame. The reference used 2 (PySceneDetect frame_skip=1), which on
    # bikes.mp4 misses the cut at frame 76 and invents two; 1 finds the true cuts. Cuts are refined to the frame.
    frame_step: int = Field(default=1, ge=1)
    # Longer side of the frames shot detection looks at (PySceneDetect's default downscale target).
    analysis_width: int = 256
    trim_seconds: float = 0.3
    min_seconds: float = 3.0
    max_seconds: float = 15.0
    # Encoding of the cut clips: frame-accurate re-encode, same fps and size unless asked.
    crf: int = Field(18, ge=0, le=51)
    # x264's presets (placebo left out: many times slower for no visible gain).
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                    "veryslow"] = "veryfast"
    max_height: int | None = None

    @model_validator(mode="after")
    def _lengths_make_sense(self) -> "ClipSettings":
        if self.min_seconds <= 0 or self.max_seconds < self.min_seconds:
            raise ValueError("clip lengths need 0 < min_seconds <= max_seconds")
        return self


class ScoreSettings(Section):
    """Scoring: frames spread over 10%..90% of the clip, resized to width x height."""

    frames_per_clip: int = 3
    width: int = 640
    height: int = 360
    # Consecutive-frame pairs for the DIS optical-flow magnitude, and DIS's preset.
    flow_pairs: int = 4
    flow_preset: Literal["ultrafast", "fast", "medium"] = "fast"
    # "auto": the LAION aesthetic MLP when its weights are in models.weights_dir,
    # else BRISQUE (written to quality_brisque; the aesthetic rule is then skipped).
    quality_backend: Literal["auto", "aesthetic", "brisque"] = "auto"
    # OpenAI's ViT-L/14 (what the aesthetic MLP was trained on) uses QuickGELU.
    aesthetic_quick_gelu: bool = True
    ocr_threads: int = 1
    # Also recognise the text of the largest boxes into ocr_text (PP-OCRv4 rec). Off: it costs
    # about 40% of the detection time on clips with text.
    ocr_text: bool = False
    torch_threads: int = 2


class FilterSettings(Section):
    """The reference's thresholds: a clip is kept when every rule holds."""

    aesthetic_min: float = 4.0
    luminance_min: float = 20.0
    luminance_max: float = 140.0
    motion_min: float = 2.0
    motion_max: float = 14.0
    ocr_max: float = 0.3
    # Optional rules on the quality verdict (services/quality), all off by default: dropping a clip whose
    # annotations flag themselves is the user's choice. A quality below 0.5 means the clip carries a flag.
    min_pose_quality: float | None = Field(None, ge=0, le=1)
    min_depth_quality: float | None = Field(None, ge=0, le=1)
    min_mask_quality: float | None = Field(None, ge=0, le=1)
    # Drop a clip carrying any of these qc_flags: a whole flag ("pose:focal-unconstrained") or a concern ("depth:").
    reject_qc_flags: list[str] = Field(default_factory=list)


class AnnotateSettings(Section):
    """Which frames the camera, depth and mask outputs cover (services/annotate.py)."""

    # Annotated frames per second of video; None = every frame. 5 is the reference's sampling: depth and
    # masks then cost about fps/5 times less, the camera tracking (its own keyframe rate) the same.
    rate_hz: float | None = Field(default=None, gt=0)


class CaptionSettings(Section):
    """Captions: ``annotations`` (default, no model) or ``openai`` (a VLM then an LLM
    behind any OpenAI-compatible chat-completions endpoint: vLLM, Ollama, Gemini, Qwen)."""

    backend: Literal["annotations", "openai"] = "annotations"
    vlm_url: str = "http://127.0.0.1:8001/v1"
    vlm_model: str = ""
    llm_url: str = "http://127.0.0.1:8002/v1"
    llm_model: str = ""
    # Bearer key for both endpoints; llm_api_key overrides it for the LLM. Never logged.
    api_key: SecretStr | None = None
    llm_api_key: SecretStr | None = None
    vlm_temperature: float = 0.2
    llm_temperature: float = 0.1
    max_tokens: int = 1024
    # Response format asked for: a JSON schema, plain JSON mode, or none (prompt only).
    json_mode: Literal["json_schema", "json_object", "none"] = "json_schema"
    # Answers that are not valid JSON for the schema are repaired, else asked again.
    json_attempts: int = Field(default=3, ge=1)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    timeout_s: float = Field(default=120.0, gt=0)
    # Retries on timeouts, connection errors, 429 and 5xx: exponential backoff with jitter.
    max_retries: int = Field(default=5, ge=0)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    # Requests in flight at once per endpoint, and requests per minute (0 = unlimited).
    max_concurrency: int = Field(default=4, ge=1)
    requests_per_minute: float = Field(default=60.0, ge=0)
    # Frames shown to the VLM: about one per second, scaled to fit 640x360.
    frames_per_second: float = Field(default=1.0, gt=0)
    max_frames: int = Field(default=16, ge=1)
    frame_width: int = 640
    frame_height: int = 360
    jpeg_quality: int = Field(default=85, ge=10, le=100)


class ExportSettings(Section):
    """Training-ready exports of an output folder (``spatialvid export``; services/export)."""

    # Formats a distributed job also writes to its bucket folder at finalize (``export/{format}/``);
    # empty = the native layout only. The embedded CLI takes ``--format`` instead.
    formats: list[Literal["spatialvid-hq", "webdataset"]] = Field(default_factory=list)
    # Clips per ``group_XXXX`` folder: the published dataset's groups hold a few thousand clips, which keeps
    # folders listable and lets users download a group at a time.
    group_size: int = Field(1000, ge=1)
    # Filtered-out (and failed) clips stay out of a training export unless asked for.
    include_filtered: bool = False
    # Clips per WebDataset tar shard: 100 clips of 3-15 s at 720p make shards of a few hundred MB,
    # the size streaming loaders read efficiently.
    shard_clips: int = Field(100, ge=1)


class RedisSettings(Section):
    url: str = "redis://127.0.0.1:6379/0"
    # A task not acked this long after delivery is given to another worker (kombu's
    # visibility timeout). Running tasks extend it every lease_renew_s, so it bounds
    # how long a crashed worker's task waits, not how long a stage may run.
    visibility_timeout_s: int = Field(default=60, ge=5)
    lease_renew_s: float = Field(default=10.0, gt=0)
    restore_interval_s: int = Field(default=5, ge=1)
    # Transient errors (Redis, the object store) are retried with exponential backoff.
    task_max_retries: int = Field(default=5, ge=0)
    retry_backoff_max_s: int = Field(default=120, ge=1)
    # A clip whose stage killed its worker this many times fails alone (a poison clip).
    max_deliveries: int = Field(default=3, ge=1)
    # The finalize workers look this often for active jobs with no task left anywhere (their work
    # vanished); such a job is failed after two looks in a row (workers/watchdog.py).
    watchdog_interval_s: float = Field(default=30.0, gt=0)
    # Job state stays in Redis this long after the job ends (then it is read from the bucket).
    job_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)


class WorkerSettings(Section):
    """How the Celery workers split a clip's stages into tasks (workers/routing.py)."""

    # Camera and depth of a clip as one task on the ``annotate`` queue, so that one decode of the clip serves both;
    # off: a task each on annotate_camera and annotate_depth, whose workers scale apart (depth on GPU nodes, say).
    # The deployment must run workers for the queues it uses.
    annotate_together: bool = False


class TenantSettings(Section):
    """What the operator grants one API key's owner beyond its own jobs."""

    # Object prefixes its jobs may name as sources: "s3://bucket/folder/" (a folder and everything below).
    s3_prefixes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _prefixes_are_s3(self) -> "TenantSettings":
        for prefix in self.s3_prefixes:
            if not prefix.startswith("s3://") or len(prefix) <= len("s3://") or prefix[5] == "/":
                raise ValueError(f"{prefix!r} is not s3://bucket/prefix")
        return self


class GatewaySettings(Section):
    host: str = "127.0.0.1"
    port: int = 8080
    # uvicorn worker processes.
    workers: int = Field(default=1, ge=1)
    max_upload_bytes: int = 4 * 1024**3
    # Uploads stream to the bucket in parts of this size, this many at once: the gateway's
    # memory per upload is about (parallel + 2) parts, whatever the file's size.
    upload_part_size: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    upload_parallel: int = Field(default=2, ge=1)
    # API keys, hashed: owner name -> "sha256:<hex of the key>" (make one with
    # ``python -m gateway.auth``). A key sees only the jobs it created.
    api_keys: dict[str, str] = Field(default_factory=dict)
    max_page_size: int = Field(default=500, ge=1)
    # Owner name -> what its key may read beyond its own uploads and jobs (s3 source prefixes).
    tenants: dict[str, TenantSettings] = Field(default_factory=dict)
    # http(s) sources may resolve to private or loopback addresses (off: SSRF guard).
    allow_private_sources: bool = False
    # A job over an S3 prefix or manifest lists its inputs this many at a time (one task per page).
    source_page_size: int = Field(default=1000, ge=1, le=10_000)
    # At most this many inputs per listed job: a mistyped prefix should not queue a whole bucket.
    max_listed_sources: int = Field(default=100_000, ge=1)
    # Statuses of ended jobs Redis has forgotten, kept in memory: job.json no longer changes then, and
    # reading it from the bucket on every poll costs a bucket request each (entries, LRU; a few KB each).
    ended_status_cache: int = Field(default=4096, ge=0)
    # Redis connections per gateway process, and how long a request waits for one when all are busy (a burst
    # of requests beyond the pool queues rather than failing; past the wait it is a 503 with Retry-After).
    redis_connections: int = Field(default=256, ge=1)
    redis_connection_wait_s: float = Field(default=20.0, gt=0)


def _env_or(name: str, default: str = "") -> str:
    import os

    return os.environ.get(name, default)


class ClientSettings(Section):
    """What the client commands talk to. Empty means: the local stack (``.stack/stack.json``).
    ``SPATIALVID_API_URL`` / ``SPATIALVID_API_KEY`` are read as the defaults."""

    api_url: str = Field(default_factory=lambda: _env_or("SPATIALVID_API_URL"))
    api_key: SecretStr | None = Field(
        default_factory=lambda: SecretStr(k) if (k := _env_or("SPATIALVID_API_KEY")) else None
    )
    timeout_s: float = Field(default=60.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)


class StackSettings(Section):
    """``spatialvid stack up``: local processes with their logs and PIDs in ``dir``."""

    dir: Path = Path(".stack")
    # 0 = pick a free loopback port.
    redis_port: int = 0
    s3_port: int = 0
    gateway_port: int = 0
    # Also start the Triton server (when services/triton_server.py exists).
    triton: bool = False
    start_timeout_s: float = Field(default=120.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        validate_assignment=True,
    )

    storage: StorageSettings = Field(default_factory=StorageSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    clip: ClipSettings = Field(default_factory=ClipSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)
    filter: FilterSettings = Field(default_factory=FilterSettings)
    camera: CameraSettings = Field(default_factory=CameraSettings)
    annotate: AnnotateSettings = Field(default_factory=AnnotateSettings)
    depth: DepthSettings = Field(default_factory=DepthSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    caption: CaptionSettings = Field(default_factory=CaptionSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    kernels: KernelSettings = Field(default_factory=KernelSettings)
    triton: TritonSettings = Field(default_factory=TritonSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    client: ClientSettings = Field(default_factory=ClientSettings)
    stack: StackSettings = Field(default_factory=StackSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def with_overrides(self, overrides: dict[str, Any]) -> "Settings":
        """A copy with some sections/fields replaced (validated like a config file)."""
        # model_dump keeps SecretStr objects, which validate back unchanged.
        merged = _deep_merge(self.model_dump(mode="python"), overrides)
        return Settings.model_validate(merged)


# What a job may set: an allow-list of fields, section by section. Anything else (caption
# endpoints, keys and models, storage, weights, infrastructure, resources such as threads) is the
# operator's: where clip frames are sent, with which key and at whose cost is never the submitter's
# decision. A field added to the settings stays operator-only until it is listed here.
JOB_SETTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "clip": (
        "content_threshold", "adaptive_threshold", "adaptive_window", "adaptive_min_content", "min_scene_frames",
        "frame_step", "analysis_width", "trim_seconds", "min_seconds", "max_seconds", "crf", "preset", "max_height",
    ),
    "score": ("frames_per_clip", "width", "height", "flow_pairs", "flow_preset", "quality_backend",
              "aesthetic_quick_gelu", "ocr_text"),
    "filter": ("aesthetic_min", "luminance_min", "luminance_max", "motion_min", "motion_max", "ocr_max",
               "min_pose_quality", "min_depth_quality", "min_mask_quality", "reject_qc_flags"),
    # Which frames the annotations cover.
    "annotate": ("rate_hz",),
    "camera": ("keyframe_rate_hz", "working_max_side", "max_tracks", "window", "refine_window", "mover_test",
               "prior_hfov_deg", "vanishing_every", "known_hfov_deg"),
    "depth": (
        "depth_scale", "flow_preset", "max_offset", "target_parallax_px", "min_parallax_px", "max_residual_px",
        "depth_max_residual_px", "propagate", "min_translation_parallax_px", "mask_threshold", "mask_gravity_prior",
        "mask_persistence", "mask_segment_trim", "mask_exclude_overlay_text", "overlay_text_every",
        "mask_drop_screen_fixed", "export_exr_zip", "working_max_side",
    ),
    # The quality verdict's thresholds: how strict the job wants its flags.
    "quality": ("pair_offset", "pair_every", "pose_residual_px", "label_sensitivity", "label_threshold_factor",
                "min_inlier_tracks", "depth_transfer_px", "depth_photometric_excess", "mask_instability",
                "min_mask_share", "flow_noise_px", "min_contrast", "unconstrained_focal_quality"),
    # Only how the operator's models are asked, never which model, where or with which key.
    "caption": ("vlm_temperature", "llm_temperature", "frames_per_second"),
    # Which training exports the job also writes to its bucket folder, and how they are cut.
    "export": ("formats", "group_size", "include_filtered", "shard_clips"),
}
JOB_OVERRIDABLE_SECTIONS = tuple(JOB_SETTABLE_FIELDS)


class JobOverrideRefused(ValueError):
    """A job's config names a section or field that only the operator may set."""


def check_job_overrides(overrides: dict[str, Any]) -> None:
    """Raise JobOverrideRefused naming every section.field a job may not set."""
    refused: list[str] = []
    for section, values in overrides.items():
        allowed = JOB_SETTABLE_FIELDS.get(section)
        if allowed is None:
            refused.append(str(section))
        elif isinstance(values, dict):
            refused += [f"{section}.{name}" for name in values if name not in allowed]
    if refused:
        raise JobOverrideRefused(
            f"a job may not set {', '.join(sorted(refused))}: operator settings "
            f"(a job may set fields of {', '.join(JOB_SETTABLE_FIELDS)}; see JOB_SETTABLE_FIELDS in services/settings.py)"
        )


_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "spatialvid_config_file", default=None
)


class ConfigError(ValueError):
    """A config file that cannot be read or does not match the settings."""


class _YamlSource(PydanticBaseSettingsSource):
    """The ``--config`` YAML file, below the environment in precedence."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        return read_config_file(path) if path else {}


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of sections")
    return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, an optional YAML file and the environment."""
    token = _config_file.set(Path(config_file) if config_file else None)
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)


# Kernel operators called outside any stage (benchmarks, tests) use the process's own kernels section.
kernels_config.process_section(lambda: load_settings().kernels)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out

