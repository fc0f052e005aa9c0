"""OCR text detection throughput: in process vs through a real Triton server.

Frames are real footage (OpenCV's vtest.avi at 640x360, some with burned-in
text). Every figure is the full ``PPOCRDetector.detect`` (preprocessing, the
PP-OCRv4 det network, DB post-processing), i.e. what the scoring stage pays:

- ``in-process``: the ONNX session in this process (``--threads`` intra-op threads);
- ``triton``: the same ONNX in the server's ``ocr_det`` model (CPU config:
  two instances of one thread each), pre/post here; the client splits a batch
  into requests of ``--request-size`` frames with ``--inflight`` in flight;

each at batch 1 and batch 8 from one caller, then with 4 concurrent callers at
batch 1 (in process: 4 threads sharing the session; Triton: 4 clients, the
server's dynamic batcher merging their requests). The two alternate over
several rounds (this machine is shared) and the medians are compared. Prints
frames/s and the ratios the issue asks for.

    .venv/bin/python bench/triton_serving.py [--frames 48] [--threads 2] [--rounds 3] [--protocol http]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.models.triton_client import TritonModelClient  # noqa: E402
from samples import vtest_path  # noqa: E402
from services.scoring.ocr import PPOCRDetector  # noqa: E402
from services.settings import load_settings  # noqa: E402
from services.triton_server import TritonServer, free_port  # noqa: E402
from services.video.decode import read_frames  # noqa: E402


def bench_frames(count: int) -> np.ndarray:
    import cv2

    frames = np.stack(list(read_frames(vtest_path(), size=(640, 360), count=count, step=5)))
    for i in range(0, len(frames), 2):
        cv2.putText(frames[i], f"Frame {i}: burned-in caption", (30, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.0,
                    (255, 255, 255), 2, cv2.LINE_AA)
    return frames


def frames_per_second(detect, frames: np.ndarray, batch: int, callers: int = 1) -> float:
    """Detect all ``frames`` in batches of ``batch``, spread over ``callers`` threads."""
    batches = [frames[i : i + batch] for i in range(0, len(frames), batch)]
    detect(batches[0])  # warm-up (first-call allocations, connections)
    started = time.perf_counter()
    if callers == 1:
        for b in batches:
            detect(b)
    else:
        with ThreadPoolExecutor(callers) as pool:
            list(pool.map(detect, batches))
    return len(frames) / (time.perf_counter() - started)


CASES = [("b1", 1, 1), ("b8", 8, 1), ("4callers_b1", 1, 4)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--threads", type=int, default=load_settings().score.ocr_threads,
                        help="in-process intra-op threads (default: the pipeline's score.ocr_threads); the server "
                             "runs configs/cpu.pbtxt (2 instances x 1 thread)")
    parser.add_argument("--rounds", type=int, default=3, help="in-process and Triton alternate; medians reported")
    parser.add_argument("--protocol", choices=["http", "grpc"], default="http")
    parser.add_argument("--request-size", type=int, default=4, help="client: frames per request (triton.max_batch_size)")
    parser.add_argument("--inflight", type=int, default=2, help="client: requests in flight per call (triton.max_inflight)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    frames = bench_frames(args.frames)
    workdir = Path(tempfile.mkdtemp(prefix="bench-triton-"))
    settings = load_settings().with_overrides(
        {
            "models": {"weights_dir": str(workdir / "weights")},
            "triton": {
                "url": f"127.0.0.1:{free_port()}",
                "grpc_url": f"127.0.0.1:{free_port()}",
                "metrics_port": free_port(),
                "protocol": args.protocol,
                "config_name": "cpu",
                "models": ["ocr_det"],
                "max_batch_size": args.request_size,
                "max_inflight": args.inflight,
            },
        }
    )
    samples: dict[str, list[float]] = {}
    with TritonServer(settings, log_path=workdir / "tritonserver.log") as server:
        local = PPOCRDetector(threads=args.threads)
        # Each caller its own client, as separate workers would have.
        clients = [TritonModelClient("ocr_det", settings.triton) for _ in range(4)]
        remotes = [PPOCRDetector(remote=c) for c in clients]
        turn = iter(range(10**9))

        def remote_detect(batch: np.ndarray):
            return remotes[next(turn) % len(remotes)].detect(batch)

        # In-process and Triton alternate, so that load from elsewhere on the machine hits both alike.
        for _ in range(args.rounds):
            for name, batch, callers in CASES:
                samples.setdefault(f"inprocess_{name}", []).append(
                    frames_per_second(local.detect, frames, batch, callers))
                samples.setdefault(f"triton_{name}", []).append(
                    frames_per_second(remote_detect, frames, batch, callers))
        for c in clients:
            c.close()
        log = server.log_path

    results = {name: float(np.median(values)) for name, values in samples.items()}
    ratios = {
        "triton_b8_over_inprocess_b8": results["triton_b8"] / results["inprocess_b8"],
        "triton_4callers_over_inprocess_4callers": results["triton_4callers_b1"] / results["inprocess_4callers_b1"],
    }
    print(f"OCR detection (PP-OCRv4 det, 640x360 frames -> 640x352 network input), {args.frames} frames, "
          f"{args.threads} thread(s) in process, Triton over {args.protocol} ({args.request_size} frames/request, "
          f"{args.inflight} in flight), median of {args.rounds} alternating rounds")
    for name in sorted(results):
        spread = ", ".join(f"{v:.2f}" for v in samples[name])
        print(f"  {name:<24} {results[name]:7.2f} frames/s   ({spread})")
    for name, ratio in ratios.items():
        print(f"  {name:<40} {ratio:5.2f}x")
    print(f"  goals: triton b8 >= 0.8x in-process b8: {ratios['triton_b8_over_inprocess_b8'] >= 0.8}; "
          f"triton 4 callers > in-process 4 callers: {ratios['triton_4callers_over_inprocess_4callers'] > 1.0}")
    print(f"  server log: {log}")
    if args.json:
        args.json.write_text(json.dumps({"medians": results, "samples": samples, **ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
