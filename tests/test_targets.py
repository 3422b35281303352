"""Training targets (RPN, RoI head, FCOS): hand cases, properties, parity with torchvision."""
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet import AnchorGenerator, BalancedPositiveNegativeSampler, fcos_targets, roi_head_targets, rpn_targets
from edudet.matcher import _match_boxes
from edudet.targets import FCOS_INF, _fcos_assign, fcos_assign_numpy
from helpers import assert_child_ok, import_torchvision, random_boxes

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
FCOS_SHAPES = [(100, 152), (50, 76), (25, 38), (13, 19), (7, 10)]


# ---------------------------------------------------------------- RPN

def test_rpn_targets_by_hand():
    gt = np.array([[0, 0, 10, 10]], np.float32)
    anchors = np.array([[0, 0, 10, 10],    # IoU 1    -> 1
                        [0, 0, 10, 6],     # IoU .6   -> between .3 and .7: -1 (ignored)
                        [20, 20, 30, 30],  # IoU 0    -> 0 (background)
                        [0, 0, 10, 4]],    # IoU .4   -> -1
                       np.float32)
    out = rpn_targets(anchors, gt)
    np.testing.assert_array_equal(out.labels, [1, -1, 0, -1])
    assert out.labels.dtype == np.float32
    np.testing.assert_array_equal(out.matched_idxs, [0, -2, -1, -2])
    np.testing.assert_array_equal(out.matched_gt_boxes, np.repeat(gt, 4, axis=0))
    np.testing.assert_array_equal(out.regression_targets[0], [0, 0, 0, 0])
    # anchor 1 [0, 0, 10, 6] -> gt: centre y 3 -> 5 over height 6: dy = 2 / 6; dh = log(10 / 6)
    np.testing.assert_allclose(out.regression_targets[1], [0, 1 / 3, 0, np.log(10 / 6)], rtol=1e-6)


def test_rpn_low_quality_match_rescues_a_small_object():
    # the gt's best anchor has IoU 16 / 100 = .16 < .3 but it is the gt's best: it becomes positive
    gt = np.array([[0, 0, 4, 4]], np.float32)
    anchors = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    np.testing.assert_array_equal(rpn_targets(anchors, gt).labels, [1, 0])
    np.testing.assert_array_equal(rpn_targets(anchors, gt, allow_low_quality_matches=False).labels, [0, 0])


def test_rpn_background_image():
    anchors = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float64)
    out = rpn_targets(anchors, np.zeros((0, 4)))
    np.testing.assert_array_equal(out.labels, [0, 0])
    np.testing.assert_array_equal(out.matched_gt_boxes, np.zeros((2, 4)))
    np.testing.assert_array_equal(out.matched_idxs, [-1, -1])


@pytest.mark.parametrize("seed", range(3))
def test_rpn_parity(seed):
    torch, _ = import_torchvision()
    from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

    rng = np.random.default_rng(seed)
    anchors = AnchorGenerator(((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3)((256, 320), [(64, 80), (32, 40), (16, 20)])
    gt = random_boxes(rng, int(rng.integers(0, 12)), image_size=256, min_side=4, max_side=200)
    rpn = RegionProposalNetwork(None, RPNHead(1, 3), 0.7, 0.3, 256, 0.5, dict(training=1, testing=1),
                                dict(training=1, testing=1), 0.7)
    labels, matched = rpn.assign_targets_to_anchors([torch.from_numpy(anchors)], [{"boxes": torch.from_numpy(gt)}])
    deltas = rpn.box_coder.encode(matched, [torch.from_numpy(anchors)])[0].numpy()
    for backend in _match_boxes.backends:
        if backend == "cuda" and SIMULATED:
            continue  # 23k anchors: far too slow for the simulator (the matcher tests cover cuda)
        out = rpn_targets(anchors, gt, backend=backend)
        np.testing.assert_array_equal(out.labels, labels[0].numpy(), err_msg=backend)
        np.testing.assert_array_equal(out.matched_gt_boxes, matched[0].numpy(), err_msg=backend)
        finite = np.isfinite(deltas)  # background images: log(0 / w) = -inf on both sides
        np.testing.assert_array_equal(np.isfinite(out.regression_targets), finite)
        # log is 1-ulp different between NumPy and torch on some inputs: dw, dh agree to float32 rounding
        np.testing.assert_allclose(out.regression_targets[finite], deltas[finite], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- RoI head

def test_roi_head_targets_by_hand():
    gt = np.array([[0, 0, 10, 8]], np.float32)
    proposals = np.array([[0, 0, 10, 10],   # IoU 80 / 100 = .8 -> class 7
                          [0, 0, 10, 3]],   # IoU 30 / 80 = .375 -> background 0
                         np.float32)
    out = roi_head_targets(proposals, gt, [7])
    np.testing.assert_array_equal(out.proposals, np.concatenate([proposals, gt]))  # the gt itself is appended
    np.testing.assert_array_equal(out.labels, [7, 0, 7])
    np.testing.assert_array_equal(out.matched_idxs, [0, 0, 0])
    # proposal 0 -> gt: centre y 5 -> 4 over height 10: dy = 10 * (-1 / 10) = -1; dh = 5 log(8 / 10)
    np.testing.assert_allclose(out.regression_targets[0], [0, -1, 0, 5 * np.log(0.8)], rtol=1e-6)
    np.testing.assert_array_equal(out.regression_targets[2], [0, 0, 0, 0])
    between = roi_head_targets(proposals, gt, [7], fg_iou_thresh=0.9, bg_iou_thresh=0.4, add_gt_as_proposals=False)
    np.testing.assert_array_equal(between.labels, [-1, 0])  # .8 in [.4, .9): ignored; .375 < .4: background


def test_roi_head_background_image_and_bad_labels():
    out = roi_head_targets(np.array([[0, 0, 5, 5]], np.float32), np.zeros((0, 4)), np.zeros(0, np.int64))
    np.testing.assert_array_equal(out.labels, [0])
    np.testing.assert_array_equal(out.matched_idxs, [0])
    with pytest.raises(ValueError, match="gt_labels must be >= 1"):
        roi_head_targets(np.zeros((1, 4)), [[0, 0, 1, 1]], [0])
    with pytest.raises(ValueError, match="gt_labels has 2 entries"):
        roi_head_targets(np.zeros((1, 4)), [[0, 0, 1, 1]], [1, 2])
    with pytest.raises(ValueError, match="x2 >= x1"):
        roi_head_targets(np.zeros((1, 4)), [[5, 0, 1, 1]], [1])


@pytest.mark.parametrize("seed", range(3))
def test_roi_head_parity(seed):
    torch, _ = import_torchvision()
    from torchvision.models.detection.roi_heads import RoIHeads

    rng = np.random.default_rng(seed)
    proposals = random_boxes(rng, 2000, image_size=400, min_side=2, max_side=300)
    gt = random_boxes(rng, int(rng.integers(1, 10)), image_size=400, max_side=300)
    labels = rng.integers(1, 91, gt.shape[0])
    heads = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, (10.0, 10.0, 5.0, 5.0), 0.05, 0.5, 100)
    all_props = torch.cat([torch.from_numpy(proposals), torch.from_numpy(gt)])
    matched, tv_labels = heads.assign_targets_to_proposals([all_props], [torch.from_numpy(gt)], [torch.from_numpy(labels)])
    deltas = heads.box_coder.encode([torch.from_numpy(gt)[matched[0]]], [all_props])[0].numpy()
    out = roi_head_targets(proposals, gt, labels)
    np.testing.assert_array_equal(out.matched_idxs, matched[0].numpy())
    np.testing.assert_array_equal(out.labels, tv_labels[0].numpy())
    np.testing.assert_allclose(out.regression_targets, deltas, rtol=1e-6, atol=1e-6)
    # sampled: the same counts as torchvision's select_training_samples (its draws come from torch's RNG)
    _, _, sampled_labels, _ = heads.select_training_samples(
        [torch.from_numpy(proposals)], [{"boxes": torch.from_numpy(gt), "labels": torch.from_numpy(labels)}])
    sampled = roi_head_targets(proposals, gt, labels, sampler=BalancedPositiveNegativeSampler(512, 0.25, seed=seed))
    assert (sampled.labels > 0).sum() == int((sampled_labels[0] > 0).sum())
    assert sampled.labels.shape[0] == sampled_labels[0].shape[0]


# ---------------------------------------------------------------- FCOS

def _one_level(gt, labels, **kwargs):
    # a 64 x 64 image, one 8 x 8 level (stride 8): points at 4, 12, ..., 60 on both axes
    kwargs.setdefault("regress_ranges", ((-1, FCOS_INF),))
    return fcos_targets(np.array(gt, np.float32), labels, (64, 64), [(8, 8)], 5, **kwargs)


def test_fcos_targets_by_hand():
    out = _one_level([[0, 0, 20, 20]], [3])
    # strictly inside [0, 20]: x, y in {4, 12} -> 4 points (indices 0, 1, 8, 9), label 3; the rest background 5
    positive = np.flatnonzero(out.labels != 5)
    np.testing.assert_array_equal(positive, [0, 1, 8, 9])
    np.testing.assert_array_equal(out.labels[positive], [3, 3, 3, 3])
    # point (12, 4): l = 12, t = 4, r = 8, b = 16; centerness sqrt(8/12 * 4/16) = sqrt(1/6)
    np.testing.assert_array_equal(out.bbox_targets[1], [12, 4, 8, 16])
    np.testing.assert_allclose(out.centerness[[0, 1, 9]], [0.25, np.sqrt(1 / 6), 8 / 12], rtol=1e-6)
    assert out.centerness[2] == 0 and out.gt_index[2] == -1
    np.testing.assert_array_equal(out.points[1], [12, 4])
    # norm_on_bbox divides by the stride 8
    np.testing.assert_array_equal(_one_level([[0, 0, 20, 20]], [3], norm_on_bbox=True).bbox_targets[1], [1.5, .5, 1, 2])


def test_fcos_center_sampling_by_hand():
    # gt [0, 0, 60, 60]: all 7 x 7 points at 4..52 are inside; with radius 1.5 x stride 8 = 12 around the
    # centre (30, 30) only x, y in {20, 28, 36} (20 - 18 = 2 > 0, 42 - 36 = 6 > 0): 9 points
    assert (_one_level([[0, 0, 60, 60]], [0]).labels == 0).sum() == 49
    out = _one_level([[0, 0, 60, 60]], [0], center_sampling=True)
    np.testing.assert_array_equal(np.flatnonzero(out.labels == 0), [18, 19, 20, 26, 27, 28, 34, 35, 36])


def test_fcos_regress_range_and_smallest_area():
    # range (-1, 50]: max(x, 60 - x) <= 50 -> x in {12, ..., 44}: 5 x 5 points
    assert (_one_level([[0, 0, 60, 60]], [0], regress_ranges=((-1, 50),)).labels == 0).sum() == 25
    # two boxes contain (12, 12): the smaller (area 256 < 3600) wins; (4, 4) is only in the big one
    out = _one_level([[0, 0, 60, 60], [8, 8, 24, 24]], [0, 1])
    assert out.labels[9] == 1 and out.labels[0] == 0
    np.testing.assert_array_equal(out.bbox_targets[9], [4, 4, 12, 12])


def test_fcos_empty_and_bad_input():
    out = fcos_targets(np.zeros((0, 4)), np.zeros(0, np.int64), (800, 1216), FCOS_SHAPES, 80)
    assert out.labels.shape == (20267,) and np.all(out.labels == 80) and out.bbox_targets.shape == (20267, 4)
    assert out.num_points_per_level == [15200, 3800, 950, 247, 70]
    with pytest.raises(ValueError, match=r"level 0: stride 16 was given .* imply stride 8"):
        fcos_targets([[0, 0, 10, 10]], [0], (800, 1216), FCOS_SHAPES, 80, strides=[16, 32, 64, 128, 256])
    with pytest.raises(ValueError, match="gt_labels must be < num_classes"):
        fcos_targets([[0, 0, 10, 10]], [80], (800, 1216), FCOS_SHAPES, 80)
    with pytest.raises(ValueError, match="regress_ranges"):
        fcos_targets([[0, 0, 10, 10]], [0], (800, 1216), FCOS_SHAPES, 80, regress_ranges=((-1, 64),))
    with pytest.raises(ValueError, match="x2 >= x1"):
        fcos_targets([[10, 0, 0, 10]], [0], (800, 1216), FCOS_SHAPES, 80)
    with pytest.raises(ValueError, match="not the image shape"):
        fcos_targets([[0, 0, 10, 10]], [0], (800, 1216), [(99, 152)], 80, regress_ranges=((-1, 64),))


box = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 60), st.integers(1, 60)).map(
    lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])


@given(gt=st.lists(box, min_size=1, max_size=6), center_sampling=st.booleans(), norm=st.booleans(),
       float64=st.booleans())
def test_fcos_backends_equal_reference_and_invariants(gt, center_sampling, norm, float64):
    gt = np.array(gt, np.float64 if float64 else np.float32)
    labels = np.arange(gt.shape[0]) % 3
    # 84 points: small enough for the CUDA simulator
    kwargs = dict(image_size=(64, 64), feature_shapes=[(8, 8), (4, 4), (2, 2)], num_classes=3,
                  regress_ranges=((-1, 16), (16, 32), (32, FCOS_INF)), center_sampling=center_sampling,
                  norm_on_bbox=norm)
    expected = fcos_targets(gt, labels, backend="numpy", **kwargs)
    for backend in _fcos_assign.backends:
        got = fcos_targets(gt, labels, backend=backend, **kwargs)
        for name in ("labels", "bbox_targets", "centerness", "gt_index"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=f"{backend} {name}")
    positive = expected.gt_index >= 0
    assert np.all((expected.labels == 3) == ~positive)
    assert np.all(expected.bbox_targets[positive] > 0)  # a positive point lies strictly inside its box
    assert np.all((expected.centerness[positive] > 0) & (expected.centerness[positive] <= 1))
    # the assigned box is the smallest of those that contain the point
    areas = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    for p in np.flatnonzero(positive)[:20]:
        x, y = expected.points[p]
        contains = (gt[:, 0] < x) & (gt[:, 2] > x) & (gt[:, 1] < y) & (gt[:, 3] > y)
        assert areas[expected.gt_index[p]] >= areas[contains].min()


def test_fcos_kernel_on_a_full_image():
    rng = np.random.default_rng(0)
    gt = random_boxes(rng, 30, image_size=800, max_side=600)
    labels = rng.integers(0, 80, 30)
    for cs in (False, True):
        expected = fcos_targets(gt, labels, (800, 1216), FCOS_SHAPES, 80, center_sampling=cs, backend="numpy")
        assert 0 < (expected.labels < 80).sum() < expected.labels.size
        for backend in _fcos_assign.backends:
            if backend == "cuda" and SIMULATED:
                continue  # 20k points: too slow for the simulator (the property test covers cuda)
            got = fcos_targets(gt, labels, (800, 1216), FCOS_SHAPES, 80, center_sampling=cs, backend=backend)
            np.testing.assert_array_equal(got.gt_index, expected.gt_index, err_msg=backend)


def test_fcos_assign_reference_matches_mmdetection_rule_written_in_torch():
    # mmdetection's _get_targets_single re-derived independently with torch ops (areas set to INF where a
    # point is not inside or out of range, then the argmin over ground truths)
    torch, _ = import_torchvision()
    rng = np.random.default_rng(1)
    gt = random_boxes(rng, 12, image_size=300, max_side=250)
    points = rng.uniform(0, 300, (500, 2)).astype(np.float32)
    radius = np.full(500, 12, np.float32)
    low, high = np.full(500, -1, np.float32), np.full(500, 128, np.float32)
    p, g = torch.from_numpy(points), torch.from_numpy(gt)
    xs, ys = p[:, None, 0], p[:, None, 1]
    ltrb = torch.stack([xs - g[:, 0], ys - g[:, 1], g[:, 2] - xs, g[:, 3] - ys], -1)
    areas = ((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]))[None].repeat(500, 1)
    areas[ltrb.min(-1).values <= 0] = FCOS_INF
    reach = ltrb.max(-1).values
    areas[(reach < -1) | (reach > 128)] = FCOS_INF
    best_area, best = areas.min(1)
    expected = torch.where(best_area == FCOS_INF, -1, best).numpy()
    np.testing.assert_array_equal(fcos_assign_numpy(points, gt, radius, low, high, False, np.float32(FCOS_INF)),
                                  expected)


# ---------------------------------------------------------------- FCOS: torchvision's rule (issue 15, item 3)

P3_TO_P7_256 = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]  # a 256 x 256 image, strides 8 .. 128
TORCHVISION_RANGES = ((0, 64), (64, 128), (128, 256), (256, 512), (512, FCOS_INF))


def test_fcos_boundary_example_under_both_rules():
    # box (0, 0, 128, 128), centre (64, 64). torchvision: points at j * stride, centre radius 1.5 x stride,
    # ranges (0, 64), (64, 128), (128, 256), ... strict.
    #   P3 (stride 8, radius 12): |x - 64| < 12 -> x, y in {56, 64, 72}; (64, 64) reaches exactly 64, not < 64;
    #      (56, 56) reaches 128 - 56 = 72 > 64: no P3 point.
    #   P4 (stride 16, radius 24): x, y in {48, 64, 80}; (64, 64) reaches 64, not > 64; the 8 others reach 80,
    #      in (64, 128): 8 positives, the ring around the centre.
    #   P5 (stride 32, radius 48): x, y in {32, 64, 96}, reaches 64 .. 96, not > 128: none.
    gt = np.array([[0, 0, 128, 128]], np.float32)
    tv = fcos_targets(gt, [0], (256, 256), P3_TO_P7_256, 3, rule="torchvision")
    p3_centre = 8 * 32 + 8  # (64, 64) on P3: row 8, column 8
    np.testing.assert_array_equal(tv.points[p3_centre], [64, 64])
    assert tv.gt_index[p3_centre] == -1
    positive = np.flatnonzero(tv.gt_index == 0)
    p4 = 32 * 32
    ring = [p4 + 16 * r + c for r in (3, 4, 5) for c in (3, 4, 5) if (r, c) != (4, 4)]
    np.testing.assert_array_equal(positive, ring)
    # mmdetection's rule on the same points and ranges (inclusive): P3 takes (64, 64) (reach 64 <= 64), and P4
    # takes its centre too (64 >= 64): 1 + 9 positives
    mm = fcos_targets(gt, [0], (256, 256), P3_TO_P7_256, 3, rule="mmdet", offset=0, center_sampling=True,
                      regress_ranges=TORCHVISION_RANGES)
    assert mm.gt_index[p3_centre] == 0
    np.testing.assert_array_equal(np.flatnonzero(mm.gt_index == 0), sorted([p3_centre, p4 + 16 * 4 + 4] + ring))


def test_fcos_torchvision_rule_defaults_and_scaling():
    # torchvision's ranges from its anchor sizes: lower 4 x size (0 on the first level), upper 8 x size (none on
    # the last): given explicitly they must give the same targets
    rng = np.random.default_rng(3)
    gt = random_boxes(rng, 12, image_size=256, min_side=4, max_side=250)
    labels = np.arange(12) % 3
    default = fcos_targets(gt, labels, (256, 256), P3_TO_P7_256, 3, rule="torchvision")
    given_ranges = fcos_targets(gt, labels, (256, 256), P3_TO_P7_256, 3, rule="torchvision",
                                regress_ranges=TORCHVISION_RANGES, anchor_sizes=((8,), (16,), (32,), (64,), (128,)))
    np.testing.assert_array_equal(default.gt_index, given_ranges.gt_index)
    assert 0 < (default.gt_index >= 0).sum()
    np.testing.assert_array_equal(default.points[:2], [[0, 0], [8, 0]])  # anchor centres j * stride
    # anchor sizes twice the strides double every range and centre radius: (0, 128), (128, 256), ...
    doubled = fcos_targets(gt, labels, (256, 256), P3_TO_P7_256, 3, rule="torchvision",
                           anchor_sizes=[16, 32, 64, 128, 256])
    ranges = ((0, 128), (128, 256), (256, 512), (512, 1024), (1024, FCOS_INF))
    explicit = fcos_targets(gt, labels, (256, 256), P3_TO_P7_256, 3, rule="torchvision",
                            center_sample_radius=3.0, regress_ranges=ranges)
    np.testing.assert_array_equal(doubled.gt_index, explicit.gt_index)
    # norm_on_bbox divides by the anchor size (torchvision's BoxLinearCoder(normalize_by_size=True))
    normed = fcos_targets(gt, labels, (256, 256), P3_TO_P7_256, 3, rule="torchvision",
                          anchor_sizes=[16, 32, 64, 128, 256], norm_on_bbox=True)
    sizes = np.repeat([16, 32, 64, 128, 256], normed.num_points_per_level).astype(np.float32)
    np.testing.assert_allclose(normed.bbox_targets, doubled.bbox_targets / sizes[:, None], rtol=1e-6)


def test_fcos_torchvision_rule_ranks_areas_as_float32_1e8_minus_area():
    # torchvision takes the highest 1e8 - area in float32, where floats near 1e8 are 8 apart:
    # 1e8 - 102 = 99999898 and 1e8 - 101 = 99999899 both round to 99999896, a tie the first box wins although it
    # is larger; float64 keeps them apart (the smaller wins); mmdetection's exact areas pick the smaller too.
    # Boxes (0, 0, 10.2, 10) and (0, 0, 10.1, 10): areas ~102 and ~101, both containing the point (8, 8).
    for dtype, winner in ((np.float32, 0), (np.float64, 1)):
        gt = np.array([[0, 0, 10.2, 10], [0, 0, 10.1, 10]], dtype)
        areas = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
        assert dtype(1e8) - areas[0] == dtype(1e8) - areas[1] if dtype == np.float32 else areas[0] > areas[1]
        kwargs = dict(image_size=(16, 16), feature_shapes=[(2, 2)], num_classes=2, strides=[8])
        out = fcos_targets(gt, [0, 1], rule="torchvision", **kwargs)  # one level: range (0, inf)
        assert out.gt_index[3] == winner  # point (8, 8): inside both, within 12 of both centres
        mmdet = fcos_targets(gt, [0, 1], rule="mmdet", offset=0, regress_ranges=((-1, FCOS_INF),), **kwargs)
        assert mmdet.gt_index[3] == 1
    # an area of 1e8 or more scores <= 0: never matched under torchvision's rule (mmdetection's rule takes it)
    huge = np.array([[-5000, -5000, 5016, 5016]], np.float32)  # 10016^2 > 1e8, centre (8, 8)
    kwargs = dict(image_size=(16, 16), feature_shapes=[(2, 2)], num_classes=2, strides=[8])
    assert (fcos_targets(huge, [0], rule="torchvision", **kwargs).gt_index == -1).all()
    assert (fcos_targets(huge, [0], rule="mmdet", regress_ranges=((-1, FCOS_INF),), **kwargs).gt_index == 0).all()


def _torchvision_fcos_matched_idxs(torch, gt, image_size):
    """matched_idxs of torchvision's FCOS.compute_loss for one image, by its own code: an FCOS model with a
    stand-in backbone, its default AnchorGenerator on feature maps of strides 8 .. 128, and a head whose
    compute_loss only records what the matching step hands it."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.image_list import ImageList

    backbone = torch.nn.Identity()
    backbone.out_channels = 32  # the head's GroupNorm(32) needs 32 channels; the features are never used
    model = FCOS(backbone, num_classes=3)  # default: anchor sizes 8 .. 128, centre radius 1.5
    h, w = image_size
    features = [torch.zeros(1, 1, -(-h // s), -(-w // s)) for s in (8, 16, 32, 64, 128)]
    anchors = model.anchor_generator(ImageList(torch.zeros(1, 3, h, w), [(h, w)]), features)
    captured = []
    model.head.compute_loss = lambda targets, outputs, anchors, matched_idxs: captured.extend(matched_idxs) or {}
    targets = [{"boxes": torch.from_numpy(gt), "labels": torch.zeros(len(gt), dtype=torch.int64)}]
    model.compute_loss(targets, {}, anchors, [f.shape[2] * f.shape[3] for f in features])
    return captured[0].numpy(), [tuple(f.shape[2:]) for f in features]


def _boxes_at_level_boundaries(rng, n, image_size):
    """(n, 4) float32 boxes with corners and sides on multiples of 8: grid points land exactly on their edges
    and centres, and side distances exactly on the range ends 4 s and 8 s; box 1 repeats box 0 (a tie)."""
    h, w = image_size
    x1 = rng.integers(0, w // 8, n) * 8
    y1 = rng.integers(0, h // 8, n) * 8
    width = rng.choice([8, 16, 32, 64, 128, 256], n)
    height = width * rng.choice([1, 1, 2], n)
    gt = np.stack([x1, y1, x1 + width, y1 + height], axis=1).astype(np.float32)
    gt[1] = gt[0]
    return gt


@pytest.mark.parametrize("image_size", [(128, 256), (256, 384), (512, 384), (384, 640)])
def test_fcos_torchvision_rule_matches_torchvision_fcos(image_size):
    torch, _ = import_torchvision()
    rng = np.random.default_rng(list(image_size))
    h, w = image_size
    random_gt = random_boxes(rng, 20, image_size=min(h, w), min_side=2, max_side=min(h, w) - 1)
    boundary_example = np.concatenate([random_gt[:8], [[0, 0, 128, 128]]]).astype(np.float32)
    cases = [random_gt, _boxes_at_level_boundaries(rng, 20, image_size), boundary_example]
    for gt in cases:
        expected, shapes = _torchvision_fcos_matched_idxs(torch, gt, image_size)
        assert 0 < (expected >= 0).sum() < expected.size
        for backend in _fcos_assign.backends:
            if backend == "cuda" and SIMULATED and h * w > 128 * 256:
                continue  # thousands of points: slow in the simulator (the smallest image covers cuda)
            out = fcos_targets(gt, np.zeros(len(gt), np.int64), image_size, shapes, 3, rule="torchvision",
                               backend=backend)
            np.testing.assert_array_equal(out.gt_index, expected, err_msg=f"{backend} {image_size}")


@given(gt=st.lists(box, min_size=1, max_size=6), float64=st.booleans(), center_sampling=st.booleans(),
       sizes=st.sampled_from([None, (8, 16, 32), (5, 12, 40), (16, 16, 16)]), duplicate=st.booleans())
def test_fcos_torchvision_rule_backends_equal_reference(gt, float64, center_sampling, sizes, duplicate):
    gt = np.array(gt + gt[:1] if duplicate else gt, np.float64 if float64 else np.float32)
    labels = np.arange(gt.shape[0]) % 3
    kwargs = dict(image_size=(64, 64), feature_shapes=[(8, 8), (4, 4), (2, 2)], num_classes=3, rule="torchvision",
                  center_sampling=center_sampling, anchor_sizes=sizes)
    expected = fcos_targets(gt, labels, backend="numpy", **kwargs)
    for backend in _fcos_assign.backends:
        got = fcos_targets(gt, labels, backend=backend, **kwargs)
        for name in ("labels", "bbox_targets", "centerness", "gt_index"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=f"{backend} {name}")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(rule="detectron2"), ValueError, "rule must be one of"),
    (dict(anchor_sizes=[8]), ValueError, "anchor_sizes belongs to rule='torchvision'"),
    (dict(rule="torchvision", anchor_sizes=[8, 16]), ValueError, "one size per level"),
    (dict(rule="torchvision", anchor_sizes=[(8, 16)]), ValueError, r"anchor_sizes\[0\] must be one size"),
    (dict(rule="torchvision", anchor_sizes=[0]), ValueError, r"anchor_sizes\[0\] must be > 0"),
    (dict(rule="torchvision", anchor_sizes=[float("nan")]), ValueError, r"anchor_sizes\[0\] must be finite"),
    (dict(rule="torchvision", anchor_sizes=8), TypeError, "anchor_sizes must be a list"),
])
def test_fcos_rule_arguments_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        fcos_targets([[0, 0, 20, 20]], [0], (64, 64), [(8, 8)], 3, **kwargs)


# ---------------------------------------------------------------- extreme input (issue 12, findings 8, 13, 14)

def _fcos_backends_agree(gt, labels, **kwargs):
    """fcos_targets on every backend: the reference's outputs, or the reference's error (type and message)."""
    outcomes = {}
    for backend in _fcos_assign.backends:
        try:
            out = fcos_targets(gt, labels, backend=backend, **kwargs)
            outcomes[backend] = ("ok", out)
        except (ValueError, TypeError) as err:
            outcomes[backend] = ("error", (type(err), str(err)))
    kind, expected = outcomes["numpy"]
    for backend, (got_kind, got) in outcomes.items():
        assert got_kind == kind, (backend, got)
        if kind == "ok":
            for name in ("labels", "bbox_targets", "centerness", "gt_index"):
                np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=f"{backend} {name}")
        else:
            assert got == expected, backend
    return kind, expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fcos_gt_beyond_the_old_1e8_sentinel_is_assigned_on_every_backend(dtype):
    # issue 12 finding 8: a 20000 x 20000 gt has area 4e8 >= mmdetection's 1e8 "infinite" area: the kernels
    # left every point background, and with a second gt the reference did too (argmin picked the 1e8 filler
    # of the second gt over the 4e8 candidate). The sentinel is now infinity, so it is a candidate like any box.
    gt = np.array([[0, 0, 20000, 20000], [500, 500, 510, 510]], dtype)
    kind, out = _fcos_backends_agree(gt, [2, 1], image_size=(64, 64), feature_shapes=[(8, 8)], num_classes=5,
                                     regress_ranges=((-1, FCOS_INF),))
    assert kind == "ok"
    # every one of the 8 x 8 points (4, 12, ..., 60) lies strictly inside gt 0, none in gt 1
    np.testing.assert_array_equal(out.gt_index, np.zeros(64))
    np.testing.assert_array_equal(out.labels, np.full(64, 2))
    # point (12, 4): l = 12, t = 4, r = 19988, b = 19996
    np.testing.assert_array_equal(out.bbox_targets[1], [12, 4, 19988, 19996])


def test_fcos_kernels_equal_the_reference_up_to_the_coordinate_limit():
    # areas up to (2e15)**2 = 4e30: finite in float32, so the infinite sentinel never collides with one
    from edudet.anchors import grid_points

    for dtype in (np.float32, np.float64):
        points = np.concatenate(grid_points((64, 64), [(8, 8), (4, 4), (2, 2)], dtype=dtype))
        n = points.shape[0]
        radius, low, high = np.full(n, 12, dtype), np.full(n, -1, dtype), np.full(n, np.inf, dtype)
        for gt in ([[-1e15, -1e15, 1e15, 1e15], [0, 0, 30, 30]], [[0, 0, 1e15, 1e15]], [[20, 20, 20000, 20000]],
                   [[1e-30, 1e-30, 50, 50], [0, 0, 1e-30, 1e-30]]):
            gt = np.array(gt, dtype)
            for center_sampling in (False, True):
                expected = fcos_assign_numpy(points, gt, radius, low, high, center_sampling, dtype(FCOS_INF))
                for backend in _fcos_assign.backends:
                    got = _fcos_assign.get(backend)(points, gt, radius, low, high, center_sampling, dtype(FCOS_INF))
                    np.testing.assert_array_equal(got, expected, err_msg=f"{backend} {gt.tolist()} {center_sampling}")
                if gt[0, 0] == -1e15 and not center_sampling:
                    # every point is inside gt 0; the 4 points of level 0 inside gt 1 (x, y in {4, 12, 20, 28}: 16)
                    # take the smaller gt 1 if their reach (<= 30) is in range: all levels here allow it
                    assert np.all(expected >= 0)


def test_fcos_sentinel_is_defined_once():
    # one meaning, one place: the kernels take the sentinel as an argument instead of redefining 1e8, and take
    # torchvision's 1e8 area offset (issue 15) from edudet.targets: no number 1e8 in their code
    import io
    import pathlib
    import tokenize

    kernels = pathlib.Path(__file__).resolve().parent.parent / "kernels"
    for name in ("fcos_targets_numba.py", "fcos_targets_cython.pyx", "fcos_targets_cuda.py"):
        source = (kernels / name).read_text()
        numbers = [float(t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline)
                   if t.type == tokenize.NUMBER]
        assert 1e8 not in numbers and "no_candidate_area" in source, name
        assert "from edudet.targets import TORCHVISION_AREA_OFFSET" in source, name
    assert FCOS_INF == float("inf")


def test_fcos_reference_in_blocks_equals_one_block():
    rng = np.random.default_rng(2)
    gt = random_boxes(rng, 9, image_size=128, max_side=100)
    gt[1] = gt[0]  # equal areas: the first index wins in every block
    points = rng.uniform(0, 128, (300, 2)).astype(np.float32)
    radius = np.full(300, 12, np.float32)
    low, high = np.full(300, -1, np.float32), np.full(300, 64, np.float32)
    for center_sampling in (False, True):
        args = (points, gt, radius, low, high, center_sampling, np.float32(FCOS_INF))
        expected = fcos_assign_numpy(*args, block_bytes=2**40)
        assert 0 < (expected >= 0).sum() < 300
        for block_bytes in (1, 9 * 24 * 4 * 7, None):  # 1 point, 7 points, the default per block
            np.testing.assert_array_equal(fcos_assign_numpy(*args, block_bytes=block_bytes), expected)


_LARGE_FCOS = """
import numpy as np
rng = np.random.default_rng(4)
xy = rng.uniform(0, 800, (1000, 2)); wh = rng.uniform(8, 600, (1000, 2))
gt = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
labels = rng.integers(0, 80, 1000)
shapes = [(100, 152), (50, 76), (25, 38), (13, 19), (7, 10)]
"""


def test_fcos_reference_handles_a_large_workload_in_bounded_memory():
    # issue 12 finding 14: 1000 gt x 20,267 points with center sampling took 1.6 GB of address space unblocked;
    # the blocked reference peaks at ~0.4 GB (numpy alone ~0.15 GB), so it runs in a child capped at 700 MB,
    # and gives the fast kernel's assignment
    import hashlib

    scope = {}
    exec(_LARGE_FCOS, scope)
    backend = "numba" if "numba" in _fcos_assign.backends else "numpy"
    expected = fcos_targets(scope["gt"], scope["labels"], (800, 1216), scope["shapes"], 80, center_sampling=True,
                            backend=backend).gt_index
    out = assert_child_ok(_LARGE_FCOS + """
import hashlib
from edudet import fcos_targets
gt_index = fcos_targets(gt, labels, (800, 1216), shapes, 80, center_sampling=True, backend="numpy").gt_index
print("sha", hashlib.sha256(gt_index.tobytes()).hexdigest())
""", memory_limit_mb=700)
    assert f"sha {hashlib.sha256(expected.tobytes()).hexdigest()}" in out


def test_absurd_sizes_are_refused_before_allocating():
    # a 2**40-px image: 2**74 points or anchors. Refused by name with the sizes, in a child under a memory
    # cap (an attempted allocation would be a MemoryError there, not the named ValueError)
    assert_child_ok("""
        import numpy as np
        from edudet import AnchorGenerator, fcos_targets, grid_points
        side = 2**40
        for name, call, what in [
            ("fcos_targets", lambda: fcos_targets([[0, 0, 10, 10]], [0], (side, side), [(side // 8, side // 8)], 3,
                                                  regress_ranges=((-1, float("inf")),)), "bbox_targets"),
            ("grid_points", lambda: grid_points((side, side), [(side // 8, side // 8)]), "grid_points"),
            ("AnchorGenerator", lambda: AnchorGenerator(((32,),), ((1.0,),))((side, side), [(side // 8, side // 8)]),
             "anchors"),
            ("num_images", lambda: AnchorGenerator(((32,),), ((1.0,),))((64, 64), [(8, 8)], num_images=2**40),
             "num_images"),
        ]:
            print(name, flush=True)
            try:
                call()
            except ValueError as err:
                assert what in str(err) and "GiB" in str(err), err
            else:
                raise AssertionError(name)
        print("ok")
    """, memory_limit_mb=1024)


@pytest.mark.parametrize("call, error, match", [
    (lambda: rpn_targets(np.zeros((1, 4)), np.zeros((0, 4)), high_threshold=float("nan")), ValueError,
     "high_threshold must be finite"),
    (lambda: rpn_targets(np.zeros((1, 4)), np.zeros((0, 4)), allow_low_quality_matches=1), TypeError,
     "allow_low_quality_matches"),
    (lambda: roi_head_targets(np.zeros((1, 4)), np.zeros((0, 4)), [], fg_iou_thresh=float("inf")), ValueError,
     "fg_iou_thresh must be finite"),
    (lambda: roi_head_targets(np.zeros((1, 4)), [[0, 0, 1, 1]], [1], add_gt_as_proposals="no"), TypeError,
     "add_gt_as_proposals"),
    (lambda: roi_head_targets(np.zeros((1, 4)), [[0, 0, 1, 1]], [1], sampler=512), TypeError, "sampler"),
    (lambda: fcos_targets([[0, 0, 9, 9]], [0], (64, 64), [(8, 8)], float("nan")), ValueError, "num_classes"),
    (lambda: fcos_targets([[0, 0, 9, 9]], [0], (64, 64), [(8, 8)], 2**64), ValueError, "num_classes"),
    (lambda: fcos_targets([[0, 0, 9, 9]], [0], np.array(64), [(8, 8)], 3), ValueError, "image_size"),
    (lambda: fcos_targets([[0, 0, 9, 9]], [0], (64, float("inf")), [(8, 8)], 3), ValueError, r"image_size\[1\]"),
    (lambda: fcos_targets([[0, 0, 9, 9]], [0], (64, 64), [(8, 8)], 3, strides=np.array(8)), TypeError, "strides"),
    (lambda: _one_level([[0, 0, 20, 20]], [0], center_sample_radius=float("inf")), ValueError,
     "center_sample_radius"),
    (lambda: _one_level([[0, 0, 20, 20]], [0], center_sampling="yes"), TypeError, "center_sampling"),
    (lambda: _one_level([[0, 0, 20, 20]], [0], norm_on_bbox=None), TypeError, "norm_on_bbox"),
    (lambda: _one_level([[0, 0, 20, 20]], [0], regress_ranges=((float("nan"), 64),)), ValueError,
     r"regress_ranges\[0\]\[0\] must be finite"),
    (lambda: _one_level([[0, 0, 20, 20]], [0], regress_ranges=(64,)), ValueError, r"regress_ranges\[0\] must be a"),
    (lambda: _one_level([[0, 0, 20, 20]], [0], regress_ranges=((64, 2),)), ValueError, "low <= high"),
    (lambda: _one_level([[0, 0, 20, 20]], [0], regress_ranges=np.array(5)), TypeError, "regress_ranges"),
    (lambda: _one_level([[0, 0, 20, 20]], [0], offset=float("nan")), ValueError, "offset"),
])
def test_parameters_are_checked_by_name(call, error, match):
    # issue 12 finding 13: NaN, inf, ints beyond int64 and 0-d arrays raise a named error
    with pytest.raises(error, match=match):
        call()


def test_parameter_forms_that_are_accepted():
    # 0-d arrays are scalars; regression ranges may be open-ended (-inf, inf) or an (L, 2) array
    out = _one_level([[0, 0, 20, 20]], np.array([3]), regress_ranges=np.array([[-np.inf, np.inf]]))
    np.testing.assert_array_equal(np.flatnonzero(out.labels != 5), [0, 1, 8, 9])
    out = fcos_targets(np.array([[0, 0, 20, 20]], np.float32), [3], (np.int64(64), np.array(64)), [(8, 8)],
                       np.array(5), strides=np.array([8]), regress_ranges=((-1, 1e9),))
    np.testing.assert_array_equal(np.flatnonzero(out.labels != 5), [0, 1, 8, 9])
    assert rpn_targets([[0, 0, 10, 10]], [[0, 0, 10, 10]], high_threshold=np.array(0.7)).labels.tolist() == [1]


# extreme finite values: gt boxes on an integer grid scaled from subnormal to beyond the 1e15 limit
extreme_box = st.tuples(st.integers(-4, 8), st.integers(-4, 8), st.integers(0, 8), st.integers(0, 8)).map(
    lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])


@given(gt=st.lists(extreme_box, min_size=1, max_size=4),
       scale=st.sampled_from([1e-300, 1e-30, 1.0, 8.0, 3e3, 1e6, 1e12, 1.25e14, 1e15, 1e30]),
       center_sampling=st.booleans(), float64=st.booleans())
def test_fcos_extreme_values_every_backend_equals_the_reference(gt, scale, center_sampling, float64):
    gt = (np.array(gt, np.float64) * scale).astype(np.float64 if float64 else np.float32)
    kind, expected = _fcos_backends_agree(
        gt, np.zeros(gt.shape[0], np.int64), image_size=(64, 64), feature_shapes=[(8, 8), (4, 4), (2, 2)],
        num_classes=2, regress_ranges=((-1, 16), (16, 32), (32, FCOS_INF)), center_sampling=center_sampling)
    if kind == "error":  # beyond the coordinate limit (or distances beyond it, see centerness_target)
        assert "coordinate" in expected[1], expected


@given(gt=st.lists(extreme_box, min_size=1, max_size=4), anchors=st.lists(extreme_box, min_size=1, max_size=10),
       scale=st.sampled_from([1e-300, 1e-30, 1.0, 1e6, 1e15, 1e30]), float64=st.booleans())
def test_rpn_and_roi_head_extreme_values_every_backend_equals_the_reference(gt, anchors, scale, float64):
    dtype = np.float64 if float64 else np.float32
    gt, anchors = (np.array(b, np.float64) * scale for b in (gt, anchors))
    gt, anchors = gt.astype(dtype), anchors.astype(dtype)
    labels = np.arange(1, gt.shape[0] + 1)
    for name, call in [("rpn", lambda backend: rpn_targets(anchors, gt, backend=backend)),
                       ("roi", lambda backend: roi_head_targets(anchors, gt, labels, backend=backend))]:
        outcomes = {}
        for backend in _match_boxes.backends:
            try:
                outcomes[backend] = ("ok", call(backend))
            except (ValueError, TypeError) as err:
                outcomes[backend] = ("error", (type(err), str(err)))
        kind, expected = outcomes["numpy"]
        for backend, (got_kind, got) in outcomes.items():
            assert got_kind == kind, (name, backend, got)
            if kind == "ok":
                for field, value in zip(expected._fields, expected):
                    # deltas of degenerate boxes can be inf / NaN (log 0): compared as they are, NaN equal
                    np.testing.assert_array_equal(getattr(got, field), value, err_msg=f"{name} {backend} {field}")
            else:
                assert got == expected, (name, backend)


def test_roi_head_thresholds_are_named_as_given():
    import edudet

    empty = np.zeros((0, 4), np.float32)
    with pytest.raises(ValueError, match="bg_iou_thresh must be finite"):
        edudet.roi_head_targets(empty, empty, np.zeros(0, np.int64), 0.5, float("nan"))
    with pytest.raises(ValueError, match="fg_iou_thresh must be >= 0"):
        edudet.roi_head_targets(empty, empty, np.zeros(0, np.int64), -0.5, 0.1)
    with pytest.raises(ValueError, match="bg_iou_thresh must be <= fg_iou_thresh"):
        edudet.roi_head_targets(empty, empty, np.zeros(0, np.int64), 0.3, 0.6)


def test_huge_center_sample_radius_is_the_whole_box_on_every_backend():
    # radius 1e300 * stride 8 overflows float32; a centre square wider than any box is the box itself, so every
    # backend assigns exactly as with radius 1e6 (already wider than the 16-px box)
    import edudet
    from edudet.targets import _fcos_assign

    gt = np.array([[0.0, 0.0, 16.0, 16.0]], np.float32)
    for backend in _fcos_assign.backends:
        huge = edudet.fcos_targets(gt, np.array([0]), (16, 16), [(2, 2)], 3, None, [(-1.0, 1e8)], True, 1e300,
                                   backend=backend)
        wide = edudet.fcos_targets(gt, np.array([0]), (16, 16), [(2, 2)], 3, None, [(-1.0, 1e8)], True, 1e6,
                                   backend=backend)
        assert huge.gt_index.tolist() == wide.gt_index.tolist() == [0, 0, 0, 0], backend
