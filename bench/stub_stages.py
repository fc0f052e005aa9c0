"""Benchmark-only stand-ins for every stage: sleep a fixed time, write artifacts of the real sizes.

``bench/scale.py`` measures the queue machinery (gateway, Redis, Celery, the object store) with the
stages' own work taken out. The workers swap the real stages for these only when
``SVID_BENCH_STUB_STAGES`` names a stub plan file (``workers/runtime.py`` reads it, nowhere else), and
this module refuses to load unless Redis is on the loopback interface. The images never ship ``bench/``
(``deploy/Dockerfile.*`` copy ``services``, ``gateway`` and ``workers`` only), so in production the
variable fails the worker at its first task with an ImportError instead of faking any output.

Every stub writes the files its stage writes, with the same keys, each of ``size_scale`` times the
size the real stage writes for the reference clip (below), and the same metadata columns with values
of the same types, so records weigh in Redis and the bucket what real ones do. Provenance says
``bench-stub`` everywhere: nothing a stub writes can be mistaken for an annotation.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from services.records import ClipRecord, VideoRecord
from services.artifacts import C2W, CAPTION, DEPTH, DYN_MASKS, INDEXES, INSTRUCTIONS, INTRINSICS, POSES
from services.stages.base import ClipOutcome, Files, PerClipStage, Stage, StageContext, VideoOutcome, VideoStage

log = logging.getLogger(__name__)

STUB_ENV = "SVID_BENCH_STUB_STAGES"
STUB_BACKEND = "bench-stub"

# The reference clip the sizes describe: 5 s at 30 fps, 1280x720 (the devset's 720p cases).
REF_FRAMES, REF_W, REF_H, REF_FPS = 150, 1280, 720, 30.0
# H.264 as the clip stage writes it (libx264 defaults): bikes.mp4 carries 408 kbit/s at 640x272 25 fps,
# 0.094 bits per pixel per frame; the same density at 720p 30 fps.
_CLIP_BYTES = int(0.094 * REF_W * REF_H * REF_FPS * REF_FRAMES / REF_FPS / 8)
_NPY_HEADER = 128
# Bytes per artifact of the reference clip, as the real stages lay them out.
REAL_SIZES: dict[str, dict[str, int]] = {
    "clip": {"clip.mp4": _CLIP_BYTES},
    "score": {},
    "filter": {},
    "camera": {
        POSES: _NPY_HEADER + REF_FRAMES * 7 * 8,  # float64 tx,ty,tz,qx,qy,qz,qw
        C2W: _NPY_HEADER + REF_FRAMES * 16 * 8,  # float64 4x4
        INTRINSICS: _NPY_HEADER + REF_FRAMES * 4 * 8,
        INDEXES: REF_FRAMES * 4,  # "123\n"
        INSTRUCTIONS: 400,  # a few labelled segments
    },
    "depth": {
        # float16 at half resolution, savez_compressed: smooth maps with zeros compress to about 60%
        # of raw (an estimate: the stub's bytes are incompressible, so this is what is stored)
        DEPTH: int(0.6 * REF_FRAMES * (REF_H // 2) * (REF_W // 2) * 2),
        # bool at full resolution, mostly False: deflate leaves about 2% of raw
        DYN_MASKS: int(0.02 * REF_FRAMES * REF_H * REF_W),
    },
    "caption": {CAPTION: 2500},
}

# Metadata columns with values of the real stages' types and typical lengths.
_COLUMNS: dict[str, dict] = {
    "score": {"luminance_mean": 93.4127, "luminance_min": 12.0, "luminance_max": 241.0, "motion": 6.2731,
              "flow_magnitude": 3.2188, "ocr": 0.0213, "quality_brisque": 31.7744},
    "filter": {},
    "camera": {"success": True, "anomaly": False, "moveDist": 1.873412, "distLevel": 3, "rotAngle": 12.4418,
               "trajTurns": 1, "pose_backend": STUB_BACKEND},
    "depth": {"dynamicRatio": 0.083172, "depth_valid_ratio": 0.7314, "depth_backend": STUB_BACKEND,
              "mask_backend": STUB_BACKEND},
    "caption": {"caption_backend": STUB_BACKEND},
}
_PROVENANCE: dict[str, dict[str, str]] = {
    "score": {"luminance_mean,luminance_min,luminance_max": STUB_BACKEND, "motion": STUB_BACKEND,
              "flow_magnitude": STUB_BACKEND, "ocr": STUB_BACKEND, "quality_brisque": STUB_BACKEND},
    "camera": {"poses": STUB_BACKEND, "success,anomaly,moveDist,distLevel,rotAngle,trajTurns": STUB_BACKEND,
               "instructions": STUB_BACKEND},
    "depth": {"depth": STUB_BACKEND, "dynamicRatio": STUB_BACKEND},
    "caption": {"caption": STUB_BACKEND},
}


@dataclass
class StubPlan:
    """What bench/scale.py asks of the stubs (a JSON file named by ``SVID_BENCH_STUB_STAGES``)."""

    sleep_s: dict[str, float] = field(default_factory=dict)  # per stage; missing = 0
    size_scale: float = 1.0  # times REAL_SIZES: the whole run must fit the object store's memory
    clips_per_video: int = 10
    timings_dir: str = ""  # one JSON-lines file per worker process: task wall time and stub time
    profile: bool = False  # also keep a cProfile of the tasks per process (timings_dir/PID.prof)

    @classmethod
    def load(cls, path: str) -> "StubPlan":
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))


class _Timings:
    """Per task: when it started and ended, how long the stub held it and the CPU it took (the rest is
    orchestration)."""

    def __init__(self, folder: str, profile: bool) -> None:
        self.path = Path(folder) / f"{os.getpid()}.jsonl" if folder else None
        self.task_started = 0.0
        self.cpu_started = 0.0
        self.stub_s = 0.0
        self.stub_cpu_s = 0.0
        self._handle = None
        self._profile = None
        self._profiled = 0
        if profile:
            import cProfile

            self._profile = cProfile.Profile()

    def begin(self) -> None:
        self.task_started = time.time()
        self.cpu_started = time.process_time()
        self.stub_s = 0.0
        self.stub_cpu_s = 0.0
        if self._profile is not None:
            self._profile.enable()

    def end(self, task: str, args: list) -> None:
        if self.path is None or not self.task_started:  # the first task ran before the signals were connected
            return
        if self._handle is None or self.path.name != f"{os.getpid()}.jsonl":  # a forked pool child
            self.path = self.path.with_name(f"{os.getpid()}.jsonl")
            self._handle = open(self.path, "a", buffering=1)
        line = {"task": task, "start": self.task_started, "end": time.time(), "stub": self.stub_s,
                "cpu": time.process_time() - self.cpu_started, "stub_cpu": self.stub_cpu_s, "clip": args[1] if len(args) > 1 else None}
        if self._profile is not None:
            self._profile.disable()
            self._profiled += 1
            if self._profiled % 50 == 0:
                self._profile.dump_stats(str(self.path.with_suffix(".prof")))
        self._handle.write(json.dumps(line) + "\n")
        self.task_started = 0.0


_timings: _Timings | None = None


def _stub_work(plan: StubPlan, stage: str, ctx: StageContext, keys: dict[str, str]) -> None:
    started, cpu = time.perf_counter(), time.process_time()
    time.sleep(plan.sleep_s.get(stage, 0.0))
    for name, key in keys.items():
        ctx.store.put_bytes(key, os.urandom(max(1, int(REAL_SIZES[stage][name] * plan.size_scale))))
    if _timings is not None:
        _timings.stub_s += time.perf_counter() - started
        _timings.stub_cpu_s += time.process_time() - cpu


class _PlanFile:
    """The plan, read again when bench/scale.py rewrites it between scenarios (same workers, other sleeps)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._mtime = -1.0
        self._plan = StubPlan()

    def get(self) -> StubPlan:
        mtime = self.path.stat().st_mtime
        if mtime != self._mtime:
            self._plan, self._mtime = StubPlan.load(str(self.path)), mtime
        return self._plan


class StubClipStage(PerClipStage):
    def __init__(self, name: str, plan: _PlanFile) -> None:
        self.name = name  # type: ignore[misc]
        self._plan = plan

    @property
    def plan(self) -> StubPlan:
        return self._plan.get()

    def outputs(self, settings) -> Files:
        return Files(required=tuple(REAL_SIZES[self.name]))

    def run(self, clip: ClipRecord, ctx: StageContext) -> ClipOutcome:
        keys = {name: clip.annotation_key(name) for name in REAL_SIZES[self.name]}
        _stub_work(self.plan, self.name, ctx, keys)
        return ClipOutcome(columns=dict(_COLUMNS[self.name]), artifacts=list(keys.values()),
                           provenance=dict(_PROVENANCE.get(self.name, {})),
                           filtered_by=[] if self.name == "filter" else None)


class StubVideoStage(VideoStage):
    """Clipping: ``clips_per_video`` clips of the reference size from any input, without decoding it."""

    name = "clip"

    def __init__(self, plan: _PlanFile) -> None:
        self._plan = plan

    @property
    def plan(self) -> StubPlan:
        return self._plan.get()

    def run(self, video: VideoRecord, local_path: Path, ctx: StageContext) -> VideoOutcome:
        clips = []
        seconds = REF_FRAMES / REF_FPS
        for index in range(self.plan.clips_per_video):
            clips.append(ClipRecord(
                id=f"{video.source_id}_{index}", source=video.source, source_id=video.source_id,
                num_frames=REF_FRAMES, height=REF_H, width=REF_W, fps=REF_FPS,
                timestamp_start=index * seconds, timestamp_end=(index + 1) * seconds,
                frame_start=index * REF_FRAMES, frame_end=(index + 1) * REF_FRAMES))
        started, cpu = time.perf_counter(), time.process_time()
        time.sleep(self.plan.sleep_s.get("clip", 0.0))
        for clip in clips:
            ctx.store.put_bytes(clip.clip_key, os.urandom(max(1, int(_CLIP_BYTES * self.plan.size_scale))))
        if _timings is not None:
            _timings.stub_s += time.perf_counter() - started
            _timings.stub_cpu_s += time.process_time() - cpu
        described = video.model_copy(update={"fps": REF_FPS, "width": REF_W, "height": REF_H,
                                             "num_frames": REF_FRAMES * len(clips),
                                             "duration": seconds * len(clips), "num_shots": len(clips)})
        return VideoOutcome(video=described, clips=clips)


def _require_loopback(redis_url: str) -> None:
    host = urlparse(redis_url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(f"{STUB_ENV} is set but Redis is at {host!r}: the bench stubs run on a loopback "
                           "stack only (bench/scale.py), never against a real deployment")


def stub_factory(plan_path: str, redis_url: str):
    """``build_stage`` for a benchmark worker: every stage a stub. Refuses anything but a loopback stack."""
    global _timings
    _require_loopback(redis_url)
    plan = _PlanFile(plan_path)
    log.warning("BENCHMARK STUBS: every stage is replaced by bench/stub_stages.py (%s); outputs are fake",
                plan_path)
    _timings = _Timings(plan.get().timings_dir, plan.get().profile)
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(lambda **_: _timings.begin(), weak=False)
    task_postrun.connect(lambda task=None, args=None, **_: _timings.end(task.name, list(args or [])), weak=False)

    def build(name: str) -> Stage:
        return StubVideoStage(plan) if name == "clip" else StubClipStage(name, plan)

    return build
