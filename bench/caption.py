"""Caption stage benchmark: the default backend's agreement and speed, the model client's throughput.

    python bench/caption.py [--latency 0.25] [--clips 12]

1. ``annotations`` backend on every shared case, instructions.json from the
   ground-truth labels: does the motion sentence name the same motions in the
   same order, and how long does a clip take (with the stage measuring
   luminance itself, and with the column given).
2. ``openai`` backend against a local chat-completions server that answers
   after ``--latency`` seconds: clips per second with 4 worker threads at
   max_concurrency 1 and 4, the most requests the server saw at once, and the
   request rate under a requests_per_minute limit. Latency is simulated, so
   these figures measure the client's limits, not a model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.settings import CaptionSettings, Settings  # noqa: E402
from services.stages.base import StageContext  # noqa: E402
from services.stages.caption import CaptionStage  # noqa: E402
from services.storage.local import LocalStore  # noqa: E402
from tests.caption.conftest import ChatServer, Reply  # noqa: E402
from tests.caption.samples import STRUCTURED, VISION  # noqa: E402
from tests.caption.test_stage import CASES, bench_clip, labels_in_sentence, read_caption, write_instructions  # noqa: E402


def bench_annotations() -> None:
    print("| case | motion sentence agrees | s/clip (luma measured) | s/clip (luma given) |")
    print("|---|---|---|---|")
    agree = 0
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = StageContext(Settings(), LocalStore(Path(tmp)), Path(tmp))
            clip, meta = bench_clip(ctx.store, case)
            expected = write_instructions(ctx.store, clip, meta)
            stage = CaptionStage()
            started = time.perf_counter()
            stage.run(clip, ctx)
            measured = time.perf_counter() - started
            ok = labels_in_sentence(read_caption(ctx.store, clip).CamMotion) == expected
            clip.columns["luminance_mean"] = 100.0
            started = time.perf_counter()
            for _ in range(20):
                stage.run(clip, ctx)
            given = (time.perf_counter() - started) / 20
        agree += ok
        print(f"| {case} | {'yes' if ok else 'NO'} | {measured:.3f} | {given:.4f} |")
    print(f"\nagreement: {agree}/{len(CASES)}\n")


def bench_model(latency: float, n_clips: int) -> None:
    server = ChatServer()

    def reply(body: dict) -> Reply:
        is_vlm = isinstance(body["messages"][1]["content"], list)
        return Reply(content=json.dumps(VISION if is_vlm else STRUCTURED), delay=latency)

    server.script = [reply]
    print("| max_concurrency | requests/min limit | clips | wall s | clips/s | max in flight | requests/s |")
    print("|---|---|---|---|---|---|---|")
    try:
        for concurrency, per_minute in ((1, 0), (4, 0), (4, 120)):
            caption = CaptionSettings(
                backend="openai", vlm_url=server.url, llm_url=server.url, vlm_model="v", llm_model="l",
                max_concurrency=concurrency, requests_per_minute=per_minute,
            )
            with tempfile.TemporaryDirectory() as tmp:
                ctx = StageContext(Settings(caption=caption), LocalStore(Path(tmp)), Path(tmp))
                clips = [bench_clip(ctx.store, "room_plain", f"clip_{i}")[0] for i in range(n_clips)]
                stage = CaptionStage()
                stage.setup(ctx)
                server.requests.clear()
                server.max_in_flight = 0
                started = time.perf_counter()
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(lambda c: stage.run(c, ctx), clips))
                wall = time.perf_counter() - started
            print(f"| {concurrency} | {per_minute or '-'} | {n_clips} | {wall:.2f} | {n_clips / wall:.2f} | "
                  f"{server.max_in_flight} | {len(server.requests) / wall:.2f} |")
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.25)
    parser.add_argument("--clips", type=int, default=12)
    args = parser.parse_args()
    bench_annotations()
    bench_model(args.latency, args.clips)


if __name__ == "__main__":
    main()
