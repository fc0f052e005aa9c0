"""The motion evidence on synthetic flow (no video, fast): multi-view disagreement, carried-depth checks,
dark-frame photometric floors."""

import numpy as np

from services.depth.geometry import relative_pose, rigid_flow
from services.depth.motion import MaskEvidence, clean_mask, multiview_inconsistency
from services.depth.multiview import reject_contradicted
from services.depth.params import DepthSettings as GeometricParams
from services.depth.triangulate import ViewFlow, triangulate_inverse_depth

H, W = 72, 128
K = np.array([[100.0, 0, 63.5], [0, 100.0, 35.5], [0, 0, 1]])
DEPTH = np.full((H, W), 4.0, np.float32)
OBJECT = (slice(25, 45), slice(50, 80))


def _pose(tx: float) -> np.ndarray:
    T = np.eye(4)
    T[0, 3] = tx
    return T


def _view(tx: float, inv_depth: np.ndarray) -> ViewFlow:
    R, t = relative_pose(_pose(0.0), _pose(tx))
    return ViewFlow(R=R, t=t, flow=rigid_flow(K, R, t, inv_depth), usable=np.ones((H, W), bool))


def test_a_point_that_moved_between_the_views_disagrees_while_static_ones_agree():
    # the object sits at depth 4 in the view before and looks like depth 1 in the view after (it moved
    # towards the next camera position): each flow alone is epipolar-consistent, together they are not
    inv_before = 1 / DEPTH
    inv_after = inv_before.copy()
    inv_after[OBJECT] = 1 / 1.0
    views = [_view(-0.2, inv_before), _view(0.2, inv_after)]
    score = multiview_inconsistency(triangulate_inverse_depth(K, views), GeometricParams())
    assert score[OBJECT].min() > 1.0
    background = np.ones((H, W), bool)
    background[25 - 2:45 + 2, 50 - 2:80 + 2] = False
    assert score[background].max() < 1e-3


def test_carried_depth_is_dropped_where_this_frames_flow_contradicts_it():
    views = [_view(0.3, 1 / DEPTH)]
    carried = DEPTH.copy()
    carried[OBJECT] = 1.5  # e.g. a moving object's wrong depth re-projected from the last frame
    kept = reject_contradicted(carried, K, views, GeometricParams())
    assert (kept[OBJECT] == 0).all()
    outside = np.ones((H, W), bool)
    outside[OBJECT] = False
    assert np.array_equal(kept[outside], carried[outside])
    untrusted = [ViewFlow(R=views[0].R, t=views[0].t, flow=views[0].flow, usable=np.zeros((H, W), bool))]
    assert np.array_equal(reject_contradicted(carried, K, untrusted, GeometricParams()), carried)  # no evidence


def test_dark_frames_lower_the_photometric_floor_only():
    params = GeometricParams()
    score = np.zeros((H, W), np.float32)
    score[OBJECT] = 3.0  # clear flow evidence
    photo = np.full((H, W), 0.5, np.float32)
    photo[OBJECT] = 3.0  # but only 3 grey levels of rigid-warp error: little for a normal frame
    assert not clean_mask(MaskEvidence(score, photo, contrast=40.0), params, None).any()
    dark = clean_mask(MaskEvidence(score, photo, contrast=6.0), params, None)  # the same error in a dark, flat frame
    assert dark[OBJECT].mean() > 0.9 and dark.sum() <= 1.2 * score[OBJECT].size


def test_pixels_no_source_sees_carry_no_motion_evidence():
    # the camera moves right, so the left border of this frame is out of the only source's view; its flow is junk
    from services.depth.motion import motion_score

    view = _view(0.3, 1 / DEPTH)  # 7.5 px to the left everywhere
    junk = view.flow.copy()
    junk[:, :7] = 0.0  # says "not moving" where the rigid flow says 7.5 px: would look independently moving
    views = [ViewFlow(R=view.R, t=view.t, flow=junk, usable=np.ones((H, W), bool))]
    score = motion_score(K, views, DEPTH, GeometricParams())
    assert (score[:, :7] == 0).all()
    assert score[:, 8:].max() < 1e-3
    seen = [ViewFlow(R=view.R, t=-view.t, flow=-junk, usable=np.ones((H, W), bool))]  # the source on the other side
    assert motion_score(K, seen, DEPTH, GeometricParams())[:, :7].min() > 1.0  # sees it: the junk is evidence


def test_overwhelming_trusted_flow_evidence_needs_only_a_little_image_error():
    """A dark object moving fast: its flow is far from anything camera motion explains, its rigid-warp error
    only ~2x the frame's noise (below the usual 3x). Masked where its flow is trusted; a flat area with the
    same flow residual but no image error at all (sky: the flow is guesswork) and untrusted flow stay out."""
    params = GeometricParams()
    score = np.zeros((H, W), np.float32)
    score[OBJECT] = 6.0
    photo = np.full((H, W), 1.0, np.float32)  # the frame's noise: 1 grey level
    photo[OBJECT] = 2.2
    sky = (slice(2, 20), slice(5, 40))
    score[sky] = 20.0
    photo[sky] = 0.0
    trusted = np.ones((H, W), bool)
    mask = clean_mask(MaskEvidence(score, photo, contrast=12.0, trusted=trusted), params, None)
    assert mask[OBJECT].mean() > 0.9
    assert not mask[sky].any()
    weaker = score.copy()
    weaker[OBJECT] = 3.0  # clear, but not overwhelming flow evidence: the usual photometric bar holds
    assert not clean_mask(MaskEvidence(weaker, photo, contrast=12.0, trusted=trusted), params, None)[OBJECT].any()
    assert not clean_mask(MaskEvidence(score, photo, contrast=12.0, trusted=~trusted), params, None)[OBJECT].any()


def test_nothing_is_carried_without_an_earlier_neighbour():
    """Across a cut the earlier view is dropped: a memory carried along the flow would land on the new shot."""
    from services.depth.motion import carry_along_flow
    from services.depth.triangulate import ViewFlow

    h, w = 20, 30
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = 3.0  # this frame's pixel p was at p + (3, 0) k=1 frame back
    values = np.zeros((h, w), np.float32)
    values[:, 10:13] = 1.0
    ahead = ViewFlow(source_index=6, R=np.eye(3), t=np.zeros(3), flow=flow, usable=np.ones((h, w), bool))
    assert carry_along_flow(values, [ahead], 5) is None
    behind = ViewFlow(source_index=4, R=np.eye(3), t=np.zeros(3), flow=flow, usable=np.ones((h, w), bool))
    carried = carry_along_flow(values, [behind], 5)
    assert carried[:, 7:10].min() == 1.0 and carried[:, 10:].max() == 0.0


def _moving_blob_frames(count: int, step: int, rng: np.random.Generator):
    """Per frame (score, photo, view back one frame): a 12x12 object moving ``step`` px a frame to the right
    whose flow residual (1.8) and rigid-warp error (2.3 grey levels against a noise of 1) stay below every
    per-frame bar, over noise that reaches the same values on random pixels."""
    for i in range(count):
        score = rng.exponential(0.3, (H, W)).astype(np.float32)
        photo = np.abs(rng.normal(0, 1.25, (H, W))).astype(np.float32)  # median ~0.85
        x0 = 20 + step * i
        score[30:42, x0:x0 + 12] = 1.8
        photo[30:42, x0:x0 + 12] = 2.3
        flow = np.zeros((H, W, 2), np.float32)
        flow[30:42, x0:x0 + 12, 0] = -step  # one frame back each object pixel was ``step`` px to the left
        view = ViewFlow(R=np.eye(3), t=np.zeros(3), flow=flow, usable=np.ones((H, W), bool), source_index=i - 1)
        yield score, photo, [view] if i > 0 else [], x0


def test_weak_evidence_that_follows_an_object_is_marked_and_noise_is_not():
    """Track before detect: summed along the flow, the object's weak evidence passes the level after a few
    frames; noise, on other pixels each frame, does not, and where the object was is not left marked."""
    from services.depth.motion import accumulate_evidence, weak_evidence

    params = GeometricParams()
    rng = np.random.default_rng(3)
    ref = np.full((H, W), 20, np.uint8)  # a dark, flat frame
    memory = None
    for i, (score, photo, views, x0) in enumerate(_moving_blob_frames(8, 2, rng)):
        evidence = weak_evidence(score, photo, ref, params)
        persistent, memory = accumulate_evidence(evidence, memory, views, i, params)
    obj = (slice(30, 42), slice(x0, x0 + 12))
    assert persistent[obj].mean() > 0.9
    elsewhere = np.ones((H, W), bool)
    elsewhere[obj] = False
    assert persistent[elsewhere].mean() < 0.01
    # on its own, frame by frame, the object is below every bar
    assert not clean_mask(MaskEvidence(score, photo, contrast=8.0, trusted=np.ones((H, W), bool)), params,
                          None)[obj].any()
    mask = clean_mask(MaskEvidence(score, photo, contrast=8.0, persistent=persistent), params, None)
    assert mask[obj].mean() > 0.9
    assert not mask[30:42, 20:x0 - 2].any()  # the object's trail (a fading memory, noise on a few pixels)
    assert mask[elsewhere].mean() < 0.001


def test_the_memory_starts_again_without_an_earlier_view():
    from services.depth.motion import accumulate_evidence

    params = GeometricParams()
    evidence = np.full((H, W), 1.0, np.float32)
    memory = np.full((H, W), 10.0, np.float32)
    persistent, fresh = accumulate_evidence(evidence, memory, [], 5, params)  # a cut: no view back
    assert (fresh == evidence).all() and not persistent.any()


def test_an_edge_misaligned_by_a_fraction_of_a_pixel_is_no_weak_evidence():
    """A bright edge in a dark frame shows a large warp error from flow a fraction of a pixel off; the same
    error on a flat area counts."""
    from services.depth.motion import weak_evidence

    params = GeometricParams()
    ref = np.full((H, W), 10, np.float32)  # dark, with a bright line (a kerb): soft edges of 20 grey levels a pixel
    ref[:, 60:64] = np.linspace(10, 90, 6)[1:-1]
    ref[:, 64:70] = 90
    ref[:, 70:74] = np.linspace(90, 10, 6)[1:-1]
    ref = ref.astype(np.uint8)
    score = np.full((H, W), 1.5, np.float32)
    photo = np.full((H, W), 1.0, np.float32)
    photo[:, 60:64] = 6.0  # 0.3 px off across the edge
    photo[10:20, 20:30] = 6.0  # as much on the flat dark part
    evidence = weak_evidence(score, photo, ref, params)
    assert not evidence[:, 60:64].any()
    assert (evidence[10:20, 20:30] > 0).all()


def test_a_translation_below_flow_noise_is_taken_as_none():
    """A tracker leaves a little translation in a pan or hold (1% of the shot's speed on street_dark_dyn1).
    Kept, it lets an object's own motion triangulate as a static point right in front of the camera and the
    object goes unmasked; it moves no pixel of the scene by half a pixel, so it is dropped."""
    from services.depth.multiview import without_negligible_translation

    params = GeometricParams()
    drift = _view(0.002, 1 / DEPTH)  # 2 mm against a scene 4 m away: 0.05 px
    moving = _view(0.2, 1 / DEPTH)  # 20 cm: 5 px
    kept = without_negligible_translation([drift, moving], K, DEPTH, params)
    assert not kept[0].t.any() and np.allclose(kept[1].t, moving.t)
    assert kept[0].flow is drift.flow  # only the pose changes
    assert without_negligible_translation([drift], K, None, params)[0].t.any()  # no depth yet: nothing to judge by
