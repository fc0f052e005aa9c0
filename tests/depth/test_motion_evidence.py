"""The motion evidence on synthetic flow (no video, fast): multi-view disagreement, carried-depth checks,
dark-frame photometric floors."""

import numpy as np

from services.depth.geometry import relative_pose, rigid_flow
from services.depth.motion import clean_mask, multiview_inconsistency
from services.depth.multiview import reject_contradicted
from services.depth.params import GeometricParams
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
    assert not clean_mask(score, params, None, photo, contrast=40.0).any()
    dark = clean_mask(score, params, None, photo, contrast=6.0)  # the same error in a dark, flat frame
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
    mask = clean_mask(score, params, None, photo, contrast=12.0, trusted=trusted)
    assert mask[OBJECT].mean() > 0.9
    assert not mask[sky].any()
    weaker = score.copy()
    weaker[OBJECT] = 3.0  # clear, but not overwhelming flow evidence: the usual photometric bar holds
    assert not clean_mask(weaker, params, None, photo, contrast=12.0, trusted=trusted)[OBJECT].any()
    assert not clean_mask(score, params, None, photo, contrast=12.0, trusted=~trusted)[OBJECT].any()


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
