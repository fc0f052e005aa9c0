"""The development-set benchmark: camera and depth stages on all 32 ground-truth cases, scored, with the quality verdict.

    nice -n 10 .venv/bin/python bench/devset.py [--cases a,b] [--reuse] [--json FILE]

Every case of ``../shared/bench/cases`` and ``../shared/bench/devset`` goes through
``spatialvid run CASE.mp4 --stages camera,depth --force`` (a subprocess each, so a crash costs one case), into
``bench/output/devset/CASE/`` (git-ignored): the depth stage sees the camera stage's own poses and intrinsics, as
in any run. ``--reuse`` scores what is there without running the stages again (after a change to the verdict or
to this script).

Scores come from the shared ``evaluate.py``; coverage (the share of ground-truth-valid pixels that have depth) is
computed here on the same grid. Printed: one row per case, the pass rate per target with mean and worst, and the
flag confusion matrix (clips that miss a target, flagged for it or not; clips that meet every target, flagged or
not). A case whose stages fail counts as a miss of every target it is scored on.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from samples import bench_cases_dir  # noqa: E402
from services.dataset.formats import parse_indexes  # noqa: E402
from tracking import label_frames  # noqa: E402  (bench/tracking.py: the labels read the same way in both benches)

OUT = REPO / "bench" / "output" / "devset"
SETS = (bench_cases_dir(), bench_cases_dir().parent / "devset")
# Ground-truth labels that move the camera centre: the clip "translates" (ATE and depth targets apply).
TRANSLATING = ("dolly", "truck", "pedestal", "orbit")

# The targets (issue 21): name -> (concern, which clips it applies to, description)
TARGETS = {
    "rot": ("pose", "all", "rotation error < 0.5 deg"),
    "ate": ("pose", "translating", "ATE < 1% of the path"),
    "labels": ("pose", "no orbit", "labels >= 90% exact"),
    "depth": ("depth", "translating", "AbsRel <= 0.10 and delta<1.25 >= 0.90"),
    "iou": ("masks", "movers", "mask IoU >= 0.6"),
    "fp": ("masks", "no movers", "<= 1% positive pixels"),
}
COVERAGE_GOAL = 0.85


def evaluator():
    spec = importlib.util.spec_from_file_location("shared_evaluate", bench_cases_dir().parent / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EV = evaluator()


def all_cases() -> list[Path]:
    return [p for s in SETS for p in sorted(s.iterdir()) if (p / "meta.json").exists()]


def claim(case: Path) -> bool:
    """Mark the case as being run (so parallel or later ``--pending`` runs skip it); False when already claimed."""
    (OUT / case.name).mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(OUT / case.name / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def snapshot() -> tuple[Path, str]:
    """The committed code (HEAD) exported to bench/output/: the stages run from it, so edits to the working tree
    while the bench runs change nothing mid-run, and every case is measured on one known commit."""
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    target = REPO / "bench" / "output" / f"code-{sha}"
    if not (target / "services").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", "HEAD", "services"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target, sha


CODE = REPO  # where the stages' code is imported from (main() points it at the snapshot)


def run_stages(case: Path) -> dict:
    """spatialvid run on the case's video (as CASE.mp4, so the clip id is the case name); returns timing and rc."""
    out = OUT / case.name
    inputs = out / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    link = inputs / f"{case.name}.mp4"
    if not link.exists():
        link.symlink_to(case / "video.mp4")
    env = dict(os.environ, PYTHONPATH=str(CODE))
    cmd = [sys.executable, "-m", "services.cli", "run", str(link), "--out", str(out / "run"),
           "--stages", "camera,depth", "--force"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=CODE)
    wall = time.perf_counter() - start
    (out / "run.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    info = dict(rc=proc.returncode, wall_s=wall, code=CODE.name)
    (out / "timing.json").write_text(json.dumps(info))
    return info


def verdict_from_saved_evidence(case: Path) -> dict | None:
    """The verdict judged again, with the current settings, from the evidence the last recompute saved."""
    from services.quality.evidence import TrackEvidence, label_sensitivity, views_from_summary
    from services.quality.verdict import clip_verdict
    from services.settings import Settings

    path = OUT / case.name / "verdict_recomputed.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    settings = Settings()
    track = TrackEvidence.from_json(data["track"])
    # the labels' sensitivity again from the cached poses, at the current threshold factor
    ann = OUT / case.name / "run" / "annotations" / case.name
    fids = parse_indexes((ann / "indexes.txt").read_text())
    fps = json.loads((case / "meta.json").read_text())["fps"]
    track.label_sensitivity = label_sensitivity(np.load(ann / "c2w.npy"), fps, fids, track.segments,
                                                settings.quality.label_threshold_factor)
    return clip_verdict(track, views_from_summary(data["views"]), settings.quality).columns()


def recompute_verdict(case: Path) -> dict | None:
    """The verdict columns from the cached outputs with the current services.quality code, as the depth stage
    computes them. A cache older than the verdict has no tracker evidence: the camera is tracked again for it
    (as the camera stage does) and must give the cached poses."""
    from services.camera.frontend import working_size
    from services.camera.track import track_camera
    from services.depth.geometry import intrinsics_from_normalised
    from services.quality.evidence import evidence_frames, label_sensitivity, track_evidence, view_evidence
    from services.artifacts import QC_EVIDENCE as EVIDENCE_FILE
    from services.quality.record import evidence_json, track_from_json
    from services.quality.verdict import clip_verdict
    from services.settings import Settings
    from services.threads import one_blas_thread
    from services.video.decode import read_frames
    from services.video.probe import probe

    ann = OUT / case.name / "run" / "annotations" / case.name
    if not (ann / "depth.npz").exists():
        return None
    settings = Settings()
    info = probe(case / "video.mp4")
    c2w = np.load(ann / "c2w.npy")
    evidence_path = ann / EVIDENCE_FILE
    track = track_from_json(evidence_path.read_bytes()) if evidence_path.exists() else None
    if track is None or track.heading_disagreement_deg is None:  # saved before the heading check: track again
        size = working_size(info.width, info.height, settings.camera.working_max_side)
        with one_blas_thread():
            tracked = track_camera(read_frames(case / "video.mp4", size=size), info.fps, settings.camera)
        if not np.allclose(tracked.c2w, c2w, atol=1e-6):
            raise RuntimeError(f"{case.name}: re-tracked poses differ from the cached ones; run the stages again")
        track = track_evidence(tracked, focal_given=bool(settings.camera.known_hfov_deg), fps=info.fps,
                               label_factor=settings.quality.label_threshold_factor)
    # from the cached poses with the current settings (evidence written before them may hold another factor)
    fids = parse_indexes((ann / "indexes.txt").read_text())
    track.label_sensitivity = label_sensitivity(c2w, info.fps, fids, track.segments,
                                                settings.quality.label_threshold_factor)
    K = np.stack([intrinsics_from_normalised(r, info.width, info.height) for r in np.load(ann / "intrinsics.npy")])
    depth = np.load(ann / "depth.npz")["depth"].astype(np.float32)
    masks = np.load(ann / "dyn_masks.npz")["masks"]
    small: list[np.ndarray] = []
    for _ in evidence_frames(read_frames(case / "video.mp4"), small):  # as the depth stage keeps them
        pass
    q = settings.quality
    cpu = time.process_time()
    saved = np.load(ann / "depth.npz")
    confidence = saved["confidence"] if "confidence" in saved.files else None
    views = view_evidence(small, c2w, K, depth, masks, track.segments, info.width, q.pair_offset, q.pair_every,
                          q.long_pair_offset, q.long_pair_every, confidence)
    verdict = clip_verdict(track, views, q)
    cpu = time.process_time() - cpu
    (OUT / case.name / "verdict_cpu_s.json").write_text(json.dumps(dict(cpu_s=cpu, frames=len(c2w))))
    (OUT / case.name / "verdict_recomputed.json").write_text(evidence_json(track, views, verdict).decode())
    return verdict.columns()


def finished(case: Path) -> bool:
    """The stages ran to the end on the case: depth done, or a stage failed (a run cut short is neither)."""
    record = OUT / case.name / "run" / "records" / "clips" / f"{case.name}.json"
    if not record.exists():
        return False
    stages = json.loads(record.read_text())["stages"]
    return stages.get("depth", {}).get("state") == "done" or any(st.get("state") == "failed" for st in stages.values())


def metadata_row(case: Path) -> dict:
    """The clip's metadata row (columns, failed_stage, error); from its record where the run did not get as far as
    writing metadata.csv (the record is saved after every stage)."""
    path = OUT / case.name / "run" / "metadata.csv"
    record = OUT / case.name / "run" / "records" / "clips" / f"{case.name}.json"
    if not path.exists() and record.exists():
        rec = json.loads(record.read_text())
        failed = [(name, st) for name, st in rec["stages"].items() if st.get("state") == "failed"]
        return dict(rec["columns"], failed_stage=failed[0][0] if failed else "",
                    error=failed[0][1].get("error") or "" if failed else "")
    if not path.exists():
        return {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row.get("id") == case.name:
                return row
    return {}


def coverage(gt_depth: np.ndarray, pred: np.ndarray, fids: np.ndarray, full_hw, ds: int) -> float | None:
    """Share of ground-truth-valid pixels that have a predicted depth (on the ground-truth grid)."""
    G = gt_depth[fids]
    P = np.stack([EV.resample_to(p, G.shape[1], G.shape[2], full_hw, ds, nearest=True) for p in pred])
    valid = G > 0
    return float(((P > 0) & valid).sum() / valid.sum()) if valid.any() else None


@dataclass
class CaseResult:
    case: str
    translates: bool
    orbit: bool
    movers: bool
    ok_run: bool
    figures: dict = field(default_factory=dict)
    verdict: dict = field(default_factory=dict)
    passed: dict = field(default_factory=dict)  # target -> True/False (absent: does not apply)
    note: str = ""


def score_case(case: Path, recompute: str = "") -> CaseResult:
    meta = json.loads((case / "meta.json").read_text())
    n, H, W = meta["num_frames"], meta["height"], meta["width"]
    labels = {lab for seg in meta["camera_motion_labels"] for lab in seg["labels"]}
    translates = any(lab.startswith(TRANSLATING) for lab in labels)
    orbit = any(lab.startswith("orbit") for lab in labels)
    gt_masks = np.load(case / "gt_dynamic_masks.npz")["masks"]
    movers = bool(gt_masks.any())
    row = metadata_row(case)
    ann = OUT / case.name / "run" / "annotations" / case.name
    res = CaseResult(case.name, translates, orbit, movers, ok_run=False)
    if recompute == "full" and (columns := recompute_verdict(case)) is not None:
        row = dict(row, **columns)
    if recompute == "saved" and (columns := verdict_from_saved_evidence(case)) is not None:
        row = dict(row, **columns)
    res.verdict = {k: row.get(k) for k in ("success", "pose_quality", "depth_quality", "mask_quality", "qc_flags",
                                           "failed_stage", "error") if row.get(k) not in (None, "")}
    timing = OUT / case.name / "timing.json"
    if timing.exists():
        res.figures["wall_s"] = json.loads(timing.read_text())["wall_s"]
    if not (ann / "c2w.npy").exists():
        res.note = f"no poses ({row.get('failed_stage') or 'not run'}: {(row.get('error') or '')[:80]})"
        for target, (_, applies, _) in TARGETS.items():
            if applies_to(applies, res):
                res.passed[target] = False
        return res
    res.ok_run = True
    c2w = np.load(ann / "c2w.npy")
    fids = parse_indexes((ann / "indexes.txt").read_text())
    gt = np.load(case / "gt_poses.npy")
    shots = [(s["start"], s["end"]) for s in meta["shots"]]
    pose, _ = EV.pose_metrics(gt, c2w, fids, shots)
    f = res.figures
    f["rot"] = pose["rot_err_after_alignment_deg"]["mean"] if pose["rot_err_after_alignment_deg"] else None
    f["ate"] = pose["ate"]["rmse_over_path_length"] if pose["ate"] else None
    instr = json.loads((ann / "instructions.json").read_text())
    gt_segs = meta["camera_motion_labels"]
    lab = EV.label_metrics(EV.segments_to_frames(gt_segs, n), label_frames(instr, n), gt_segs, 3)
    f["labels"] = lab["exact_match"]
    if (ann / "depth.npz").exists():
        z = np.load(ann / "depth.npz")
        depth = z["depth"].astype(np.float32)
        gz = np.load(case / "gt_depth.npz")
        dm = EV.depth_metrics(gz["depth"], depth, fids, (H, W), int(gz["downsample"]))
        f["absrel"], f["d125"] = dm.get("abs_rel"), dm.get("delta_1_25")
        f["coverage"] = coverage(gz["depth"], depth, fids, (H, W), int(gz["downsample"]))
        if "confidence" in z.files:
            conf = z["confidence"].astype(np.float32)
            has = depth > 0
            f["measured"] = float((conf[has] >= 1.0).mean()) if has.any() else None
        masks = np.load(ann / "dyn_masks.npz")["masks"]
        mm = EV.mask_metrics(gt_masks, masks, fids)
        f["iou"], f["pos"] = mm["iou"], mm["pred_positive_fraction"]
    else:
        res.note = f"no depth ({row.get('failed_stage')}: {(row.get('error') or '')[:80]})"
    checks = {
        "rot": lambda: f["rot"] is not None and f["rot"] < 0.5,
        "ate": lambda: f.get("ate") is not None and f["ate"] < 0.01,
        "labels": lambda: f["labels"] >= 0.9,
        "depth": lambda: f.get("absrel") is not None and f["absrel"] <= 0.10 and f["d125"] >= 0.90,
        "iou": lambda: f.get("iou") is not None and f["iou"] >= 0.6,
        "fp": lambda: f.get("pos") is not None and f["pos"] <= 0.01,
    }
    for target, (_, applies, _) in TARGETS.items():
        if applies_to(applies, res):
            res.passed[target] = bool(checks[target]())
    return res


def applies_to(applies: str, res: CaseResult) -> bool:
    return {"all": True, "translating": res.translates, "no orbit": not res.orbit, "movers": res.movers,
            "no movers": not res.movers}[applies]


def flags_of(res: CaseResult) -> list[str]:
    """The clip's own verdict: its qc_flags, plus tracking failure (success=False) or a failed stage."""
    flags = [x for x in (res.verdict.get("qc_flags") or "").split(",") if x]
    if not res.ok_run or str(res.verdict.get("success", "True")) == "False":
        flags.append("pose:failed")
    if res.verdict.get("failed_stage") == "depth":
        flags.append("depth:failed")
    return flags


def fmt(v, p=3) -> str:
    return "-" if v is None else f"{v:.{p}f}"


def print_table(results: list[CaseResult]) -> None:
    print(f"{'case':24s} {'tr':2s} {'mv':2s} | {'rot':>6s} {'ATE/p':>7s} {'labels':>6s} | {'AbsRel':>6s} {'d<1.25':>6s} "
          f"{'cover':>5s} {'meas':>5s} | {'IoU':>5s} {'pos%':>5s} | {'pq':>4s} {'dq':>4s} {'mq':>4s} | misses | flags")
    for r in results:
        f = r.figures
        misses = ",".join(t for t, ok in r.passed.items() if not ok) or "-"
        v = r.verdict
        q = lambda k: fmt(float(v[k]), 2) if v.get(k) not in (None, "") else "-"  # noqa: E731
        pos = fmt(100 * f["pos"], 2) if f.get("pos") is not None else "-"
        print(f"{r.case:24s} {'y' if r.translates else 'n':2s} {'y' if r.movers else 'n':2s} | {fmt(f.get('rot')):>6s} "
              f"{fmt(f.get('ate'), 4):>7s} {fmt(f.get('labels'), 2):>6s} | {fmt(f.get('absrel')):>6s} "
              f"{fmt(f.get('d125')):>6s} {fmt(f.get('coverage'), 2):>5s} {fmt(f.get('measured'), 2):>5s} | "
              f"{fmt(f.get('iou'), 2):>5s} {pos:>5s} | {q('pose_quality'):>4s} {q('depth_quality'):>4s} "
              f"{q('mask_quality'):>4s} | {misses} | {','.join(flags_of(r)) or '-'}{'  (' + r.note + ')' if r.note else ''}")


def print_rates(results: list[CaseResult]) -> None:
    print("\npass rate per target (mean and worst over the clips it applies to; a failed run counts as a miss):")
    figure = {"rot": ("rot", max), "ate": ("ate", max), "labels": ("labels", min), "depth": ("absrel", max),
              "iou": ("iou", min), "fp": ("pos", max)}
    for target, (_, applies, desc) in TARGETS.items():
        rel = [r for r in results if target in r.passed]
        ok = sum(r.passed[target] for r in rel)
        key, worst = figure[target]
        vals = [r.figures[key] for r in rel if r.figures.get(key) is not None]
        extra = ""
        if target == "depth":
            d1 = [r.figures["d125"] for r in rel if r.figures.get("d125") is not None]
            extra = f"; delta<1.25 mean {fmt(np.mean(d1) if d1 else None)} worst {fmt(min(d1) if d1 else None)}"
        print(f"  {desc:40s} ({applies:11s}) {ok:2d}/{len(rel):2d} = {ok / max(len(rel), 1):5.1%}   "
              f"{key} mean {fmt(np.mean(vals) if vals else None, 4)} worst {fmt(worst(vals) if vals else None, 4)}{extra}")
    cov = [r.figures["coverage"] for r in results if r.translates and r.figures.get("coverage") is not None]
    if cov:
        print(f"  coverage on translating clips (goal >= {COVERAGE_GOAL}): {sum(c >= COVERAGE_GOAL for c in cov)}/{len(cov)}"
              f" meet it, mean {np.mean(cov):.3f} worst {min(cov):.3f}")
    every = sum(all(r.passed.values()) for r in results)
    print(f"  clips meeting every target that applies: {every}/{len(results)}")


def print_confusion(results: list[CaseResult]) -> None:
    print("\nflag confusion matrix")
    caught = missed = 0
    lines = []
    for r in results:
        flags = flags_of(r)
        for target, ok in r.passed.items():
            if ok:
                continue
            concern = TARGETS[target][0]
            hit = any(x.startswith(concern + ":") for x in flags) or "pose:failed" in flags
            caught += hit
            missed += not hit
            if not hit:
                lines.append(f"    unflagged miss: {r.case} {target}")
    good = [r for r in results if all(r.passed.values())]
    good_flagged = [r for r in good if flags_of(r)]
    bad = [r for r in results if not all(r.passed.values())]
    bad_flagged = [r for r in bad if flags_of(r)]
    total = caught + missed
    print(f"  target misses (clip x target): {total}; flagged for their concern {caught} ({caught / max(total, 1):.0%}),"
          f" not flagged {missed}")
    print(f"  clips with a miss: {len(bad)}; flagged {len(bad_flagged)}, not flagged {len(bad) - len(bad_flagged)}")
    print(f"  clips meeting every target: {len(good)}; flagged {len(good_flagged)} "
          f"({len(good_flagged) / max(len(good), 1):.0%}), not flagged {len(good) - len(good_flagged)}")
    for r in good_flagged:
        lines.append(f"    good clip flagged: {r.case} {','.join(flags_of(r))}")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="", help="comma list of case names (default: all 32)")
    ap.add_argument("--reuse", action="store_true", help="score the cached outputs without running the stages")
    ap.add_argument("--pending", action="store_true",
                    help="run only the cases no earlier run claimed (bench/output/devset/CASE/claimed), then score all")
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (each a spatialvid process)")
    ap.add_argument("--recompute-verdict", action="store_true",
                    help="with --reuse: the verdict from the cached outputs with the current services.quality code")
    ap.add_argument("--saved-evidence", action="store_true",
                    help="with --reuse: the verdict judged again from the evidence the last --recompute-verdict saved "
                         "(to compare thresholds: SPATIALVID_QUALITY__<FIELD>=...)")
    ap.add_argument("--no-verdict", action="store_true",
                    help="with --reuse: ignore the verdict columns (the flag matrix as it was before the verdict: "
                         "only failed tracking or a failed stage marks a clip)")
    ap.add_argument("--json", default="", help="also write every figure here")
    a = ap.parse_args()
    cases = all_cases()
    if a.cases:
        cases = [c for c in cases if c.name in a.cases.split(",")]
    print(f"{len(cases)} cases, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}, "
          f"{'cached outputs' if a.reuse else 'stages run now'}", flush=True)
    if not a.reuse:
        global CODE
        CODE, sha = snapshot()
        print(f"stages run from commit {sha} ({CODE.relative_to(REPO)})", flush=True)
        if not a.pending:
            for case in cases:
                (OUT / case.name / "claimed").unlink(missing_ok=True)

        def run_one(case: Path) -> None:
            if claim(case):
                info = run_stages(case)
                print(f"  ran {case.name}: rc {info['rc']}, {info['wall_s']:.0f} s", flush=True)

        # the 720p cases (four times the pixels) last, so that a run cut short has scored the most cases
        order = sorted(cases, key=lambda c: json.loads((c / "meta.json").read_text())["width"] > 640)
        with ThreadPoolExecutor(max(1, a.jobs)) as pool:
            list(pool.map(run_one, order))
    if a.reuse:
        missing = [c.name for c in cases if not finished(c)]
        if missing:
            print(f"not run yet (left out of every figure): {', '.join(missing)}")
        cases = [c for c in cases if c.name not in missing]
    mode = "full" if a.recompute_verdict else "saved" if a.saved_evidence else ""
    results = [score_case(case, mode) for case in cases]
    if a.no_verdict:
        for r in results:
            r.verdict = {k: v for k, v in r.verdict.items() if k in ("success", "failed_stage", "error")}
    print()
    print_table(results)
    print_rates(results)
    print_confusion(results)
    if a.json:
        Path(a.json).write_text(json.dumps([r.__dict__ for r in results], indent=1, default=str))


if __name__ == "__main__":
    main()
