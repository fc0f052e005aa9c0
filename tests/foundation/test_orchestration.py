"""The orchestration core's rules, on records alone (both executors ask these; their own tests run them)."""

from __future__ import annotations

from services.artifacts import C2W, CLIP_VIDEO, DEPTH, DYN_MASKS
from services.execution import run_clip_stage
from services.orchestration import accounting, ingest
from services.orchestration.contracts import missing_input, output_fault
from services.orchestration.plan import Plan
from services.records import ClipRecord, StageState, StageStatus, VideoRecord, VideoState
from services.settings import Settings
from services.stages.base import ClipOutcome, Files, PerClipStage, StageContext, VideoOutcome
from services.storage.local import LocalStore
from services.video.decode import FrameRequest


def clip(**stages: StageState) -> ClipRecord:
    return ClipRecord(id="v_0", source="v.mp4", source_id="v", num_frames=10, height=36, width=64, fps=10.0,
                      timestamp_start=0, timestamp_end=1, frame_start=0, frame_end=10,
                      stages={name: StageStatus(state=state, config="fp") for name, state in stages.items()})


class Writer(PerClipStage):
    """Declares a depth-like contract and writes what ``writes`` names."""

    name = "depth"

    def __init__(self, writes: tuple[str, ...]) -> None:
        self.writes = writes

    def inputs(self, settings) -> Files:
        return Files(required=(C2W, CLIP_VIDEO))

    def outputs(self, settings) -> Files:
        return Files(required=(DEPTH,), optional=(DYN_MASKS,))

    def run(self, clip, ctx):
        return ClipOutcome(artifacts=[clip.annotation_key(name) for name in self.writes])


def test_prerequisites_skip_the_clipping_stage_and_a_filtered_clip_goes_only_to_the_filter():
    plan = Plan(["clip", "score", "filter", "camera"])
    assert plan.clip_stages == ["score", "filter", "camera"] and plan.prerequisites("camera") == ["score", "filter"]
    done_scored = clip(score=StageState.done)
    camera = type("Camera", (Writer,), {"name": "camera"})(())
    assert not plan.needs_run(camera, done_scored, "fp")  # the filter has not run
    filtered = clip(score=StageState.done, filter=StageState.done).model_copy(update={"filtered_by": ["aesthetic"]})
    assert not plan.needs_run(camera, filtered, "fp")
    assert plan.needs_run(camera, filtered.model_copy(update={"filtered_by": []}), "fp")
    assert plan.next_stage(done_scored, "score") == "filter" and plan.next_stage(filtered, "filter") is None
    assert plan.next_stage(done_scored, None) == "score" and plan.next_stage(done_scored, "camera") is None


def test_a_done_stage_runs_again_only_when_forced_or_its_settings_changed():
    stage = type("Score", (Writer,), {"name": "score"})(())
    done = clip(score=StageState.done)
    assert not Plan(["score"]).needs_run(stage, done, "fp")
    assert Plan(["score"]).needs_run(stage, done, "other settings")
    assert Plan(["score"], force=True).needs_run(stage, done, "fp")


class Reader(Writer):
    """Reads the clip's frames at a size of its own."""

    reads_frames = True

    def __init__(self, name: str, size: tuple[int, int]) -> None:
        super().__init__(())
        self.name, self.size = name, size

    def frame_requests(self, clip, settings):
        return (FrameRequest(size=self.size),)


def test_one_decode_serves_only_the_stages_that_may_still_run_and_only_when_sharing():
    camera, depth = Reader("camera", (64, 36)), Reader("depth", (32, 18))
    shared = Settings().with_overrides({"video": {"share_decode": True}})
    plan = Plan(["camera", "depth"])
    fingerprints = {"camera": "fp", "depth": "fp"}
    assert plan.shared_frames([camera, depth], clip(), shared, fingerprints) == [FrameRequest(size=(64, 36)),
                                                                                   FrameRequest(size=(32, 18))]
    # camera done with these settings (a redelivery, a resumed run): only depth's frames are decoded
    assert plan.shared_frames([camera, depth], clip(camera=StageState.done), shared, fingerprints) == [
        FrameRequest(size=(32, 18))]
    filtered = clip().model_copy(update={"filtered_by": ["aesthetic"]})
    assert plan.shared_frames([camera, depth], filtered, shared, fingerprints) == []
    separate = Settings().with_overrides({"video": {"share_decode": False}})
    assert plan.shared_frames([camera, depth], clip(), separate, fingerprints) == []


def test_the_first_input_with_some_content_wins_and_later_ones_name_it():
    claims: dict[str, str] = {}
    assert ingest.duplicate_reason(claims.setdefault, "abc", "a.mp4") is None
    assert ingest.duplicate_reason(claims.setdefault, "abc", "a.mp4") is None  # a redelivery of the first
    assert ingest.duplicate_reason(claims.setdefault, "abc", "b.mp4", str.upper) == "same content as A.MP4"


def test_a_video_reused_on_resume_only_when_done_with_the_same_settings():
    done = VideoRecord(source="v.mp4", source_id="v", state=VideoState.done, config="fp", clip_ids=["v_0", "v_1"])
    assert ingest.reusable(done, "fp", force=False)
    assert not ingest.reusable(done, "fp", force=True) and not ingest.reusable(done, "new", force=False)
    again = VideoOutcome(video=done, clips=[clip()])
    assert ingest.stale_clip_ids(done, again) == {"v_1"} and ingest.stale_clip_ids(None, again) == set()


def test_the_job_state_follows_what_failed():
    failed = clip(score=StageState.failed)
    assert accounting.final_state(True, False, ["done"], [clip()]) == "cancelled"
    assert accounting.final_state(False, True, [], []) == "failed"  # the listing yielded nothing
    assert accounting.final_state(False, False, ["failed", "failed"], []) == "failed"
    assert accounting.final_state(False, False, ["done"], [failed]) == "failed"
    assert accounting.final_state(False, False, ["done", "failed"], [clip()]) == "partially_failed"
    assert accounting.final_state(False, False, ["done", "skipped"], [clip(), failed]) == "partially_failed"
    assert accounting.final_state(False, False, ["done"], [clip()]) == "succeeded"
    assert accounting.end_state(failed) == "failed:score" and accounting.end_state(clip()) == "done"


def test_missing_inputs_fail_the_clip_before_the_stage_runs_and_name_who_writes_them(tmp_path):
    store = LocalStore(tmp_path)
    ctx = StageContext(settings=Settings(), store=store, workdir=tmp_path)
    record = clip()
    assert missing_input(Writer(()), record, ctx) == f"{record.annotation_key(C2W)} is missing (run the camera stage first)"
    store.put_bytes(record.annotation_key(C2W), b"x")
    assert missing_input(Writer(()), record, ctx) == f"clip file {record.clip_key} is missing"
    store.put_bytes(record.clip_key, b"x")
    assert missing_input(Writer(()), record, ctx) is None


def test_outputs_must_match_the_declaration(tmp_path):
    store = LocalStore(tmp_path)
    ctx = StageContext(settings=Settings(), store=store, workdir=tmp_path)
    record = clip()
    assert output_fault(Writer((DEPTH, DYN_MASKS)), record, ctx, Writer((DEPTH, DYN_MASKS)).run(record, ctx)) is None
    assert output_fault(Writer((DEPTH,)), record, ctx, Writer((DEPTH,)).run(record, ctx)) is None  # optional
    assert "did not write depth.npz" in output_fault(Writer(()), record, ctx, Writer(()).run(record, ctx))
    undeclared = Writer((DEPTH, "extra.bin"))
    assert "extra.bin without declaring it" in output_fault(undeclared, record, ctx, undeclared.run(record, ctx))
    # through the runner: the broken contract is the clip's recorded failure, the run goes on
    store.put_bytes(record.annotation_key(C2W), b"x")
    store.put_bytes(record.clip_key, b"x")
    result = run_clip_stage(Writer(()), record, ctx, "fp")
    assert result.stages["depth"].state is StageState.failed and "did not write" in result.stages["depth"].error


def test_an_unreadable_input_fails_and_a_resumed_one_still_claims_its_content(tmp_path):
    claim = ingest.first_claims()
    summary = accounting.RunSummary(stages=["clip"])
    done = VideoRecord(source="v.mp4", source_id="v", sha256="abc", state=VideoState.done, clip_ids=["v_0"])
    assert ingest.resume(done, "v.mp4", claim, summary) == ["v_0"]
    assert ingest.duplicate_reason(claim, "abc", "w.mp4") == "same content as v.mp4"
    missing = VideoRecord(source=str(tmp_path / "gone.mp4"), source_id="gone")
    outcome = ingest.clip_input(None, missing, tmp_path / "gone.mp4", None, "fp", claim)
    assert outcome.video.state is VideoState.failed and outcome.video.error.startswith("cannot read")
    accounting.count_skipped(summary, "w.mp4", "same content as v.mp4")
    assert summary.videos_skipped == {"w.mp4": "same content as v.mp4"}


def test_a_redelivered_ingest_resends_only_the_clips_still_on_their_way():
    video = VideoRecord(source="v.mp4", source_id="v", clip_ids=["v_0", "v_1", "v_2"])
    assert ingest.clips_in_flight(video, {"v_1"}) == ["v_0", "v_2"] and ingest.clips_in_flight(None, set()) == []


def test_store_faults_and_lost_workers_are_told_apart_from_the_items_failures():
    error = OSError("bucket down")
    assert accounting.store_fault(True, [error]) is error
    assert accounting.store_fault(False, [error]) is None and accounting.store_fault(True, []) is None
    assert accounting.lost_worker("depth", 3, 3) is None
    assert accounting.lost_worker("depth", 4, 3) == "its worker was lost 3 times while running depth on this clip"


def test_stages_run_clip_by_clip_are_tallied_with_their_resume_notes():
    summary = accounting.RunSummary(stages=["camera", "depth"])
    done, todo = clip(camera=StageState.done), clip()
    tally = accounting.StageTally.of(["camera", "depth"])
    with tally.timed("camera", todo):
        pass
    tally.count(summary, [done, todo])
    assert summary.stage_items == {"camera": 1, "depth": 0} and set(summary.stage_seconds) == {"camera", "depth"}
    assert summary.notes == ["camera: 1 clip(s) already done, skipped (use --force to redo)"]
