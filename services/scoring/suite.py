"""All scorers over one clip: decode once, run each scorer, collect columns and provenance."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.scoring.base import FrameSink, Scalar, Scorer, ScoringError
from services.scoring.frames import decode_for_scoring
from services.models.params import ModelSettings, TritonSettings
from services.settings import ScoreSettings, VideoSettings

DECODE = "decode"


@dataclass
class ScoreReport:
    columns: dict[str, Scalar]
    provenance: dict[str, str]
    # Seconds per scorer (and "decode"), for the benchmark's time split.
    seconds: dict[str, float] = field(default_factory=dict)


class _TimedSink:
    def __init__(self, sink: FrameSink, seconds: dict[str, float], name: str) -> None:
        self.sink, self.seconds, self.name = sink, seconds, name

    def push(self, luma: np.ndarray) -> None:
        started = time.perf_counter()
        self.sink.push(luma)
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.perf_counter() - started

    def finish(self) -> dict[str, Scalar]:
        return self.sink.finish()


def frame_points(count: int) -> list[float]:
    """``count`` positions spread from 10% to 90% of the clip (0.1, 0.5, 0.9 for three)."""
    return [0.5] if count == 1 else list(np.linspace(0.1, 0.9, count))


class ScoringSuite:
    def __init__(
        self,
        scorers: list[Scorer],
        *,
        size: tuple[int, int],
        frames_per_clip: int,
        flow_pairs: int,
        ffmpeg: str,
        decode_threads: int,
        notes: list[str] | None = None,
    ) -> None:
        self.scorers = scorers
        self.size = size
        self.points = frame_points(frames_per_clip)
        self.flow_pairs = flow_pairs if any(s.name == "flow" for s in scorers) else 0
        self.ffmpeg = ffmpeg
        self.decode_threads = decode_threads
        # Facts about this run's backends (e.g. "aesthetic skipped: no weights").
        self.notes = notes or []

    @property
    def columns(self) -> list[str]:
        return [c for s in self.scorers for c in s.columns]

    def provenance(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for scorer in self.scorers:
            merged.update(scorer.provenance())
        return merged

    def score_file(self, path: Path, frame_size: tuple[int, int], num_frames: int) -> ScoreReport:
        seconds: dict[str, float] = {}
        sinks = {}
        for scorer in self.scorers:
            sink = scorer.open_sink()
            if sink is not None:
                sinks[scorer.name] = _TimedSink(sink, seconds, scorer.name)
        started = time.perf_counter()
        frames = decode_for_scoring(
            Path(path), frame_size, num_frames, self.size, self.points, self.flow_pairs, sinks,
            ffmpeg=self.ffmpeg, threads=self.decode_threads,
        )
        seconds[DECODE] = time.perf_counter() - started - sum(seconds.values())
        columns: dict[str, Scalar] = {}
        for scorer in self.scorers:
            started = time.perf_counter()
            columns.update(scorer.score(frames))
            seconds[scorer.name] = seconds.get(scorer.name, 0.0) + time.perf_counter() - started
        return ScoreReport(columns=columns, provenance=self.provenance(), seconds=seconds)


def build_suite(cfg: ScoreSettings, models: ModelSettings, triton: TritonSettings,
                video: VideoSettings) -> ScoringSuite:
    """The scorers the score section asks for, with their models loaded once where the models section says
    (this process or the Triton server); the video section's ffmpeg decodes."""
    from services.scoring.aesthetic_files import find_aesthetic_weights
    from services.scoring.brisque import BrisqueScorer
    from services.scoring.flow import FlowScorer
    from services.scoring.luminance import LuminanceScorer
    from services.scoring.ocr import OcrScorer, PPOCRReader, build_text_detector
    from services.scoring.vmaf_motion import VmafMotionScorer
    notes: list[str] = []
    # Models set to "triton" in models.client run on the Triton server (same code there).
    remote = {name for name, mode in models.client.items() if mode == "triton"}
    if remote:
        from services.models.triton_client import TritonClient
    scorers: list[Scorer] = [LuminanceScorer(), VmafMotionScorer(), FlowScorer(cfg.flow_preset),
                             OcrScorer(build_text_detector(models, triton, cfg.ocr_threads),
                                       PPOCRReader(threads=cfg.ocr_threads) if cfg.ocr_text else None)]
    weights = find_aesthetic_weights(models.weights_dir)
    remote_aesthetic = "aesthetic" in remote and cfg.quality_backend != "brisque"
    if cfg.quality_backend == "aesthetic" and weights is None and not remote_aesthetic:
        raise ScoringError(
            f"quality_backend=aesthetic but the LAION aesthetic weights are not in "
            f"{models.weights_dir}/aesthetic (see services/scoring/aesthetic.py)"
        )
    if remote_aesthetic:  # the weights are the server's concern
        from services.scoring.aesthetic import RemoteAestheticScorer

        scorers.append(RemoteAestheticScorer(TritonClient("aesthetic", triton)))
    elif cfg.quality_backend != "brisque" and weights is not None:
        import torch

        from services.scoring.aesthetic import AestheticScorer

        torch.set_num_threads(cfg.torch_threads)
        scorers.append(AestheticScorer.from_dir(models.weights_dir, quick_gelu=cfg.aesthetic_quick_gelu))
    else:
        scorers.append(BrisqueScorer())
        why = "quality_backend=brisque" if cfg.quality_backend == "brisque" else (
            f"no LAION aesthetic weights in {models.weights_dir}/aesthetic")
        notes.append(f"aesthetic not computed ({why}); BRISQUE written to quality_brisque instead")
    return ScoringSuite(
        scorers,
        size=(cfg.width, cfg.height),
        frames_per_clip=cfg.frames_per_clip,
        flow_pairs=cfg.flow_pairs,
        ffmpeg=_fast_ffmpeg(video),
        decode_threads=video.decode_threads,
        notes=notes,
    )


def _fast_ffmpeg(video: VideoSettings) -> str:
    """A configured ffmpeg, else the static imageio-ffmpeg build (starts in ~20 ms
    where Debian's dynamically linked one takes ~150 ms), else whatever is on PATH."""
    from services.video.tools import ffmpeg_path

    if video.ffmpeg:
        return video.ffmpeg
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # package or binary absent
        return ffmpeg_path(video)
