"""edudet.testing: the strategies draw what they promise, the oracles explain what they promise, the plugin
parametrizes and configures as documented, and the worked examples in examples/ pass and catch their bugs.

Hand cases first (each message checked word for word where a person reads it), then properties (every
strategy's output is valid and accepted by edudet; the oracles accept edudet's and torchvision's own results),
then the plugin and the examples through pytest's `pytester`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edudet
from edudet import ops
from edudet.testing import (assert_boxes_close, assert_matches_equal, assert_nms_equal, assert_roi_align_close,
                            strategies as eds)
from edudet.testing.oracles import _greedy_nms
from helpers import import_torchvision

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------------------------------------------------
# Imports: edudet never imports hypothesis; the plugin (loaded in every pytest run) stays cheap
# ---------------------------------------------------------------------------------------------------------

def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_import_edudet_imports_neither_testing_nor_hypothesis():
    result = _run("import sys, edudet, edudet.ops\n"
                  "bad = [m for m in sys.modules if m.startswith(('hypothesis', 'edudet.testing', 'pytest'))]\n"
                  "assert not bad, bad")
    assert result.returncode == 0, result.stderr


def test_plugin_import_is_cheap():
    # the plugin module alone: no numpy, no hypothesis, no edudet kernels (pytest itself is already loaded)
    result = _run("import sys, pytest\nimport edudet.testing.plugin\n"
                  "bad = [m for m in sys.modules if m.split('.')[0] in ('numpy', 'hypothesis', 'numba')]\n"
                  "assert not bad, bad")
    assert result.returncode == 0, result.stderr


def test_oracles_and_plugin_work_without_hypothesis():
    # hypothesis made unimportable: the oracles still run, the strategies say what to install
    code = """
import sys
sys.modules["hypothesis"] = None
import numpy as np
import edudet.testing.plugin
from edudet.testing import assert_nms_equal
assert_nms_equal(np.array([0]), np.array([[0, 0, 1, 1], [0, 0, 1, 1]]), np.array([0.9, 0.8]), 0.5)
try:
    from edudet.testing import strategies
except ImportError as err:
    assert 'pip install "edudet[testing]"' in str(err), err
else:
    raise AssertionError("strategies imported without hypothesis")
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_pyproject_declares_the_plugin_and_the_testing_extra():
    text = (ROOT / "pyproject.toml").read_text()
    assert "[project.entry-points.pytest11]" in text
    assert 'edudet = "edudet.testing.plugin"' in text
    assert 'testing = ["hypothesis>=6", "pytest>=7"]' in text
    assert '"edudet.testing"' in (ROOT / "setup.py").read_text()


def test_the_installed_entry_point_is_the_plugin(pytestconfig):
    from importlib.metadata import distributions

    # every installed distribution, as pytest scans them (a stale edudet.egg-info in the checkout may shadow the
    # installed metadata for importlib.metadata.entry_points(), which keeps one distribution per name)
    found = [ep.value for dist in distributions() for ep in dist.entry_points
             if ep.group == "pytest11" and ep.name == "edudet"]
    assert found, "the pytest11 entry point 'edudet' is not installed: pip install -e . --no-deps --no-build-isolation"
    assert set(found) == {"edudet.testing.plugin"}
    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        assert pytestconfig.pluginmanager.get_plugin("edudet") is not None  # loaded in this very run


# ---------------------------------------------------------------------------------------------------------
# Strategies: hand-checked shrinking, arguments refused by name
# ---------------------------------------------------------------------------------------------------------

def _areas(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def test_boxes_shrink_to_minimal_boxes():
    # the smallest non-empty draw: one box at the origin with sides of 1
    found = eds.minimal_example(eds.boxes(), lambda b: len(b) >= 1)
    assert found.dtype == np.float32 and found.tolist() == [[0, 0, 1, 1]]
    # two boxes that overlap: both the unit box (duplicates are what shrinking converges to)
    pair = eds.minimal_example(eds.boxes(), lambda b: len(b) >= 2 and ops.box_iou(b, b)[0, 1] > 0)
    assert pair.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]
    # zero area needs degenerate=True, and shrinks to one zero side
    flat = eds.minimal_example(eds.boxes(degenerate=True), lambda b: len(b) >= 1 and (_areas(b) == 0).any())
    assert flat.tolist() in ([[0, 0, 1, 0]], [[0, 0, 0, 1]])
    # scores shrink to the tie 0.5
    _, scores = eds.minimal_example(eds.boxes_and_scores(), lambda bs: len(bs[0]) >= 2)
    assert scores.tolist() == [0.5, 0.5]


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=-1), "n"), (dict(n=(3, 2)), "n"), (dict(n=1.5), "n"), (dict(dtype=np.int32), "dtype"),
    (dict(dtype="float16"), "dtype"), (dict(image_size=(0, 10)), "image_size"), (dict(image_size=5), "image_size"),
    (dict(degenerate=1), "degenerate"), (dict(extreme="yes"), "extreme"),
])
def test_boxes_refuses_bad_arguments_by_name(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        eds.boxes(**kwargs)


def test_other_strategies_refuse_bad_arguments():
    with pytest.raises(ValueError, match="num_categories"):
        eds.category_ids(3, num_categories=0)
    with pytest.raises(ValueError, match="batch_size"):
        eds.rois(batch_size=0)
    with pytest.raises(ValueError, match="strides"):
        eds.image_sizes_and_feature_shapes(strides=(4, 12))
    with pytest.raises(ValueError, match="num_gt"):
        eds.gt_and_anchors(num_gt=0)


# ---------------------------------------------------------------------------------------------------------
# Strategies: properties
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=60)
@given(eds.boxes(dtype=(np.float32, np.float64), image_size=(30, 50), degenerate=True, duplicates=True))
def test_boxes_are_valid_and_inside_the_image(b):
    assert b.ndim == 2 and b.shape[1] == 4 and b.dtype in (np.float32, np.float64)
    assert np.all(b[:, 2] >= b[:, 0]) and np.all(b[:, 3] >= b[:, 1])
    assert np.all(b[:, [0, 2]] >= 0) and np.all(b[:, [0, 2]] <= 50)  # x along the width
    assert np.all(b[:, [1, 3]] >= 0) and np.all(b[:, [1, 3]] <= 30)
    ops.box_iou(b, b)  # accepted by edudet


@settings(max_examples=60)
@given(eds.boxes(dtype=(np.float32, np.float64), extreme=True, out_of_image=True))
def test_extreme_boxes_stay_within_edudets_coordinate_limit(b):
    assert np.all(np.isfinite(b)) and np.all(np.abs(b) <= 1e15)
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])  # not degenerate: positive sides, even tiny ones
    iou = ops.box_iou(b, b, backend="numpy")
    assert np.all(np.isfinite(iou)) and np.all((iou >= 0) & (iou <= 1))


def test_extreme_draws_huge_tiny_and_subnormal_values():
    for dtype in (np.float32, np.float64):
        drawn = np.concatenate(eds.draw_examples(eds.boxes(n=(1, 20), dtype=dtype, extreme=True), 100))
        magnitude = np.abs(drawn[drawn != 0])
        assert magnitude.max() > 1e13, dtype  # huge, up to the 1e15 limit
        assert (magnitude < np.finfo(dtype).smallest_normal).any(), dtype  # subnormal
        sides = (drawn[:, 2:] - drawn[:, :2]).ravel()
        assert (sides[sides > 0] < 1e-30).any(), dtype  # tiny sides, whose areas underflow


def test_extreme_follows_the_session_default():
    from edudet.testing import _config

    before = _config.extreme_default()
    try:
        _config.set_extreme_default(True)
        drawn = np.concatenate(eds.draw_examples(eds.boxes(n=(1, 10)), 60))
        assert np.abs(drawn).max() > 1e6  # extreme=None now means extreme
        _config.set_extreme_default(False)
        drawn = np.concatenate(eds.draw_examples(eds.boxes(n=(1, 10)), 60))
        assert np.abs(drawn).max() <= 100
    finally:
        _config.set_extreme_default(before)


def test_switches_draw_what_they_promise():
    boxes_drawn = eds.draw_examples(eds.boxes(n=(2, 10), degenerate=True, duplicates=True), 60)
    assert any((_areas(b) == 0).any() for b in boxes_drawn)
    assert any(len(np.unique(b, axis=0)) < len(b) for b in boxes_drawn)
    outside = np.concatenate(eds.draw_examples(eds.boxes(n=(1, 10), out_of_image=True), 60))
    assert (outside < 0).any() and (outside > 100).any()
    tied = eds.draw_examples(eds.boxes_and_scores(n=(2, 10), ties=True), 40)
    assert any(len(np.unique(s)) < len(s) for _, s in tied)
    distinct = eds.draw_examples(eds.boxes_and_scores(n=(2, 10), ties=False, dtype=np.float64), 40)
    assert all(len(np.unique(s)) == len(s) and s.dtype == np.float64 for _, s in distinct)


@settings(max_examples=30)
@given(eds.detections(n=(0, 10), num_categories=4))
def test_detections_are_batched_nms_inputs(det):
    b, s, ids = det
    assert len(b) == len(s) == len(ids) and ids.dtype == np.int64 and np.all((ids >= 0) & (ids < 4))
    ops.batched_nms(b, s, ids, 0.5)


@settings(max_examples=30)
@given(eds.rois(n=(0, 8), batch_size=3, dtype=np.float64))
def test_rois_carry_a_batch_index(r):
    assert r.shape[1] == 5 and r.dtype == np.float64
    assert np.all(r[:, 0] == np.round(r[:, 0])) and np.all((r[:, 0] >= 0) & (r[:, 0] < 3))
    ops.roi_align(np.zeros((3, 1, 4, 4)), r, 2)


@settings(max_examples=30)
@given(eds.image_sizes_and_feature_shapes())
def test_pyramids_are_consistent(pyramid):
    image_size, strides, shapes = pyramid
    assert all(s in (4, 8, 16, 32, 64) for s in strides)
    assert list(strides) == [strides[0] * 2 ** k for k in range(len(strides))]  # consecutive levels
    assert edudet.check_feature_shapes(shapes, image_size) == shapes
    assert edudet.check_strides(strides, shapes, image_size) == list(strides)
    assert [edudet.infer_stride(shape, image_size) for shape in shapes] == list(strides)


def test_pyramid_by_hand():
    # 800 x 1216 with P2..P6: 800 / 64 = 12.5 rounds up to 13 (stride-2 convolutions round up)
    found = eds.minimal_example(eds.image_sizes_and_feature_shapes(strides=(4, 8, 16, 32, 64), size_divisible=32),
                                lambda p: p.image_size == (800, 1216) or p.image_size[0] >= 800 and
                                p.image_size[1] >= 1216)
    assert found.image_size == (800, 1216)
    assert found.feature_shapes == [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]


@settings(max_examples=30)
@given(eds.gt_and_anchors(num_gt=(1, 3), num_anchors=(1, 12)))
def test_gt_and_anchors_feed_a_matcher(pair):
    gt, anchors = pair
    assert len(gt) >= 1 and gt.dtype == anchors.dtype
    matches = edudet.Matcher(0.7, 0.3, True).match_boxes(gt, anchors)
    assert matches.shape == (len(anchors),)


def test_gt_and_anchors_make_positives_and_ties_common():
    drawn = eds.draw_examples(eds.gt_and_anchors(num_gt=(1, 3), num_anchors=(4, 12)), 40)
    ious = [ops.box_iou(gt, anchors) for gt, anchors in drawn]
    assert any((q == 1).any() for q in ious)  # exact copies of a ground truth
    assert any(((q == q.max(axis=1, keepdims=True)) & (q > 0)).sum(axis=1).max() > 1 for q in ious)  # tied best


@settings(max_examples=20)
@given(eds.feature_maps(batch_size=2, channels=(1, 3), height=(2, 5), width=3, dtype=np.float64))
def test_feature_maps_have_the_asked_shape(fmap):
    assert fmap.dtype == np.float64 and fmap.shape[0] == 2 and fmap.shape[3] == 3
    assert 1 <= fmap.shape[1] <= 3 and 2 <= fmap.shape[2] <= 5 and np.all(np.abs(fmap) <= 1)


@settings(max_examples=20)
@given(eds.roi_align_cases(out_of_image=True))
def test_roi_align_cases_are_valid_calls(case):
    out = ops.roi_align(*case)
    assert out.shape == (len(case.boxes), case.input.shape[1], *case.output_size)


# ---------------------------------------------------------------------------------------------------------
# assert_nms_equal: hand cases (lesson 4's six boxes), messages word for word
# ---------------------------------------------------------------------------------------------------------

SIX = np.array([[10, 10, 50, 50], [20, 10, 60, 50], [10, 30, 50, 70],
                [100, 20, 140, 60], [105, 25, 145, 65], [130, 20, 170, 60]], dtype=np.float32)
SIX_SCORES = np.array([0.90, 0.80, 0.75, 0.85, 0.60, 0.45], dtype=np.float32)


def test_nms_oracle_accepts_the_right_answer_in_any_array_type():
    torch, _ = import_torchvision()
    # IoU(0, 1) = 1200 / 2000 = 0.6 > 0.5 and IoU(3, 4) = 1225 / 1975 = 0.62 > 0.5: kept 0, 3, 2, 5
    assert_nms_equal(np.array([0, 3, 2, 5]), SIX, SIX_SCORES, 0.5)
    assert_nms_equal(torch.tensor([0, 3, 2, 5]), torch.from_numpy(SIX), torch.from_numpy(SIX_SCORES), 0.5)
    assert_nms_equal([0, 3, 2, 5], SIX.tolist(), SIX_SCORES.tolist(), np.float64(0.5))
    assert_nms_equal(np.array([0, 2, 3, 5], dtype=np.int32), SIX, SIX_SCORES, 0.5, check_order=False)


def test_nms_oracle_explains_a_box_that_should_be_suppressed():
    message = _message(assert_nms_equal, [0, 3, 2, 5, 4], SIX, SIX_SCORES, 0.5)
    assert "box 4 was kept but box 3 (higher score 0.85, kept) overlaps it with IoU 0.6203 > 0.5" in message
    assert "your keep:     [0, 3, 2, 5, 4] (5)" in message and "edudet's keep: [0, 3, 2, 5] (4)" in message


def test_nms_oracle_explains_a_box_that_should_be_kept():
    # box 2's largest IoU with a kept box is 800 / 2400 = 1/3 (box 0)
    message = _message(assert_nms_equal, [0, 3, 5], SIX, SIX_SCORES, 0.5)
    assert "box 2 (score 0.75) should be kept: no kept box with a higher score overlaps it with IoU > 0.5 " \
           "(the largest is IoU 0.3333 with box 0)" in message


def test_nms_oracle_names_greater_or_equal():
    # threshold 0: two disjoint boxes have IoU 0, which is not > 0, so both stay
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6]], dtype=np.float32)
    message = _message(assert_nms_equal, [0], boxes, [0.9, 0.5], 0.0)
    assert "box 1 was suppressed but its IoU with box 0 (higher score 0.9, kept) is exactly 0 = iou_threshold" in message
    assert "looks like `>=` instead of `>`" in message
    assert "hint: your keep equals greedy NMS with `iou >= iou_threshold`" in message
    # threshold 0.5 exactly: (0, 0, 2, 1) and (0, 0, 1, 1) have IoU 1 / 2
    boxes = np.array([[0, 0, 2, 1], [0, 0, 1, 1]], dtype=np.float32)
    assert "exactly 0.5 = iou_threshold" in _message(assert_nms_equal, [0], boxes, [0.9, 0.8], 0.5)


def test_nms_oracle_names_reversed_ties():
    # equal scores, IoU 90 / 110 = 0.818: the lower index is visited first and keeps its place
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], dtype=np.float32)
    message = _message(assert_nms_equal, [1], boxes, [0.7, 0.7], 0.5)
    assert "boxes 0 and 1 tie on score 0.7 and overlap with IoU 0.8182 > 0.5: edudet keeps the lower index first " \
           "(stable order)" in message
    assert "scores.argsort()[::-1]" in message
    # tie without overlap: the same boxes, listed in another order
    far = np.array([[0, 0, 1, 1], [5, 5, 6, 6]], dtype=np.float32)
    message = _message(assert_nms_equal, [1, 0], far, [0.7, 0.7], 0.5)
    assert "boxes 0 and 1 tie on score 0.7: edudet lists equal scores by increasing index (stable order)" in message


def test_nms_oracle_explains_order_and_zero_area_and_chained_suppression():
    assert "yours are sorted by index" in _message(assert_nms_equal, [0, 2, 3, 5], SIX, SIX_SCORES, 0.5)
    # a zero-area box overlapping nothing: never suppressed
    boxes = np.array([[0, 0, 10, 10], [2, 2, 2, 8]], dtype=np.float32)
    assert "box 1 has zero area" in _message(assert_nms_equal, [0], boxes, [0.9, 0.8], 0.5)
    # box 1 suppressed by box 0 (IoU 0.6) must not suppress box 2 (IoU(0, 2) = 1/3, IoU(1, 2) = 600/2600 ... use
    # a chain: 0 -> 1 (IoU 30/50 = 0.6), 1 -> 2 (IoU 0.6), IoU(0, 2) = 10/90
    chain = np.array([[0, 0, 40, 1], [10, 0, 50, 1], [20, 0, 60, 1]], dtype=np.float32)
    message = _message(assert_nms_equal, [0], chain, [0.9, 0.8, 0.7], 0.5)
    assert "apparently by box 1 (IoU 0.6), but box 1 was itself suppressed: only kept boxes suppress" in message
    assert "a suppressed box still suppresses later boxes" in message


def test_nms_oracle_rejects_malformed_results():
    assert "boolean mask" in _message(assert_nms_equal, np.ones(6, dtype=bool), SIX, SIX_SCORES, 0.5)
    assert "outside [0, 6)" in _message(assert_nms_equal, [0, 6], SIX, SIX_SCORES, 0.5)
    assert "more than once" in _message(assert_nms_equal, [0, 0, 3], SIX, SIX_SCORES, 0.5)
    assert "integer indices" in _message(assert_nms_equal, np.array([0.0, 3.0]), SIX, SIX_SCORES, 0.5)
    assert "1-D" in _message(assert_nms_equal, np.array([[0, 3]]), SIX, SIX_SCORES, 0.5)
    # bad inputs are the test's own mistake: edudet's usual named errors
    with pytest.raises(ValueError, match="scores"):
        assert_nms_equal([0], SIX, SIX_SCORES[:3], 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        assert_nms_equal([0], SIX, SIX_SCORES, -0.1)


@settings(max_examples=60)
@given(eds.boxes_and_scores(n=(0, 14), duplicates=True, degenerate=True, dtype=(np.float32, np.float64)),
       eds.iou_thresholds())
def test_nms_oracle_accepts_edudet_and_its_own_greedy_loop(bs, threshold):
    boxes, scores = bs
    keep = ops.nms(boxes, scores, threshold)
    assert_nms_equal(keep, boxes, scores, threshold)
    # the oracle's switchable loop, with its defaults, is the rule itself
    assert np.array_equal(_greedy_nms(boxes, scores, threshold), keep)


@pytest.mark.parity
@settings(max_examples=40)
@given(eds.boxes_and_scores(n=(0, 14), duplicates=True, degenerate=True), eds.iou_thresholds())
def test_nms_oracle_accepts_torchvision(bs, threshold):
    torch, torchvision = import_torchvision()
    boxes, scores = bs
    keep = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
    assert_nms_equal(keep, torch.from_numpy(boxes), torch.from_numpy(scores), threshold)


# ---------------------------------------------------------------------------------------------------------
# assert_roi_align_close
# ---------------------------------------------------------------------------------------------------------

RAMP = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8)  # value = 8 * row + column
RAMP_ROIS = np.array([[0, 1, 1, 5, 5], [0, 2, 0, 6, 4]], dtype=np.float32)


def test_roi_align_oracle_accepts_the_right_answer():
    torch, torchvision = import_torchvision()
    expected = ops.roi_align(RAMP, RAMP_ROIS, 2, 1.0, 2, True)
    assert_roi_align_close(expected, RAMP, RAMP_ROIS, 2, 1.0, 2, True)
    theirs = torchvision.ops.roi_align(torch.from_numpy(RAMP), torch.from_numpy(RAMP_ROIS), 2, 1.0, 2, True)
    assert_roi_align_close(theirs, torch.from_numpy(RAMP), torch.from_numpy(RAMP_ROIS), 2, 1.0, 2, True)
    assert_roi_align_close(expected, RAMP, [RAMP_ROIS[:, 1:]], 2, 1.0, 2, True)  # the list-of-boxes format


def test_roi_align_oracle_detects_the_half_pixel_shift():
    # on a ramp the mean of bilinear samples is the ramp at the mean sample position: aligned=False reads
    # 0.5 px further right and down, i.e. 8 * 0.5 + 0.5 = 4.5 more in every bin
    unaligned = ops.roi_align(RAMP, RAMP_ROIS, 2, 1.0, 2, False)
    aligned = ops.roi_align(RAMP, RAMP_ROIS, 2, 1.0, 2, True)
    assert np.allclose(unaligned - aligned, 4.5)
    message = _message(assert_roi_align_close, unaligned, RAMP, RAMP_ROIS, 2, 1.0, 2, True)
    assert "looks like aligned=False vs aligned=True: a half-pixel shift" in message
    assert "(this explains 2 of the 2 RoIs that differ)" in message
    assert "8 of 8 values, in 2 of 2 RoIs" in message


def test_roi_align_oracle_names_other_mistakes():
    rois = np.array([[0, 4, 4, 20, 20]], dtype=np.float32)
    fmap = np.random.default_rng(0).standard_normal((1, 2, 8, 8)).astype(np.float32)
    unscaled = ops.roi_align(fmap, rois, 2, 1.0, 2, True)
    assert "spatial_scale was not applied" in _message(assert_roi_align_close, unscaled, fmap, rois, 2, 0.25, 2, True)
    adaptive = ops.roi_align(fmap, rois, 2, 0.25, -1, True)
    assert "sampling_ratio=-1" in _message(assert_roi_align_close, adaptive, fmap, rois, 2, 0.25, 3, True)
    maxed = ops.roi_align(fmap, rois, 2, 0.25, 2, True, pool_mode="max")
    assert "max pooling" in _message(assert_roi_align_close, maxed, fmap, rois, 2, 0.25, 2, True)
    assert "expected (1, 2, 2, 2)" in _message(assert_roi_align_close, np.zeros((1, 2, 3, 3)), fmap, rois, 2, 0.25)
    noise = unscaled + 1.0  # nothing known: the worst bin is named
    assert "worst: RoI 0 (image 0, box (4, 4, 20, 20)), channel" in _message(
        assert_roi_align_close, noise, fmap, rois, 2, 1.0, 2, True)


# ---------------------------------------------------------------------------------------------------------
# assert_boxes_close and assert_matches_equal
# ---------------------------------------------------------------------------------------------------------

def test_boxes_oracle():
    torch, _ = import_torchvision()
    expected = np.array([[10, 20, 30, 60], [0, 0, 5, 5]], dtype=np.float32)
    assert_boxes_close(torch.from_numpy(expected) + 1e-6, expected)
    message = _message(assert_boxes_close, np.array([[10, 20, 20, 40], [0, 0, 5, 5]]), expected)
    assert "first: box 0, x2: yours 20, expected 30" in message and "(x, y, w, h)" in message
    assert "(cx, cy, w, h)" in _message(assert_boxes_close, [[20, 40, 20, 40], [2.5, 2.5, 5, 5]], expected)
    assert "(y1, x1, y2, x2)" in _message(assert_boxes_close, expected[:, [1, 0, 3, 2]], expected)
    assert "legacy `+ 1`" in _message(assert_boxes_close, expected + [0, 0, 1, 1], expected)
    assert "another order" in _message(assert_boxes_close, expected[::-1], expected)
    assert "shape (3, 4), expected (2, 4)" in _message(assert_boxes_close, np.zeros((3, 4)), expected)


GT = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=np.float32)


def test_matches_oracle_hand_cases():
    # anchor 0 = gt 0 (IoU 1); anchor 1: IoU with gt 0 = 50 / 150 = 1/3 (between 0.3 and 0.7);
    # anchor 2: IoU with gt 1 = 20 / 100 ... (20, 0, 22, 10): 20 / 100 = 0.2 < 0.3 but it is gt 1's best: low quality
    anchors = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 0, 22, 10]], dtype=np.float32)
    assert_matches_equal([0, -2, -1], GT, anchors, 0.7, 0.3)
    assert_matches_equal(np.array([0, -2, 1]), GT, anchors, 0.7, 0.3, allow_low_quality_matches=True)
    message = _message(assert_matches_equal, [0, -1, -1], GT, anchors, 0.7, 0.3)
    assert "first: box 1 (5, 0, 15, 10): yours -1, edudet -2" in message
    assert "-1 is background (below low_threshold) and -2 is ignored" in message
    message = _message(assert_matches_equal, [0, -2, -1], GT, anchors, 0.7, 0.3, True)
    assert "a low-quality match" in message and "its own best gt, 1" in message
    assert "shape (2,), expected (3,)" in _message(assert_matches_equal, [0, 1], GT, anchors, 0.7, 0.3)
    # IoU exactly 0.5 = high_threshold is a match: (0, 0, 10, 10) vs (0, 0, 10, 20): 100 / 200
    tall = np.array([[0, 0, 10, 20]], dtype=np.float32)
    assert "equal to high_threshold is a match" in _message(assert_matches_equal, [-2], GT, tall, 0.5, 0.3)


@settings(max_examples=40)
@given(eds.gt_and_anchors(num_gt=(1, 4), num_anchors=(0, 16), duplicates=True), st.booleans())
def test_matches_oracle_accepts_edudet(pair, low_quality):
    gt, anchors = pair
    matches = edudet.Matcher(0.7, 0.3, low_quality).match_boxes(gt, anchors)
    assert_matches_equal(matches, gt, anchors, 0.7, 0.3, low_quality)


# ---------------------------------------------------------------------------------------------------------
# The plugin, run through pytester (autoload off and the plugin named: the same whether or not installed)
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def run_with_plugin(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def run(source: str, *args):
        pytester.makepyfile(test_user=source)
        return pytester.runpytest("-p", "edudet.testing.plugin", "-p", "no:cacheprovider", "-q", *args)

    return run


MARKED = """
import pytest

@pytest.mark.edudet_backends("nms")
def test_backend(backend):
    print("BACKEND", backend)

def test_plain():
    pass
"""


def test_marker_runs_every_backend_of_the_op(run_with_plugin):
    result = run_with_plugin(MARKED, "-s")
    backends = edudet.backends_for("nms")
    result.assert_outcomes(passed=len(backends) + 1)
    for name in backends:
        result.stdout.fnmatch_lines([f"*BACKEND {name}*"])


def test_backends_option_restricts_the_marker(run_with_plugin):
    result = run_with_plugin(MARKED, "-s", "--edudet-backends=numpy")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*BACKEND numpy*"])


def test_marker_refuses_unknown_ops_and_a_missing_argument(run_with_plugin):
    result = run_with_plugin("import pytest\n@pytest.mark.edudet_backends('nope')\ndef test_x(backend):\n    pass\n")
    assert result.ret != 0
    assert "unknown op 'nope'" in result.stdout.str() + result.stderr.str()
    result = run_with_plugin("import pytest\n@pytest.mark.edudet_backends('nms')\ndef test_x():\n    pass\n")
    assert result.ret != 0
    assert "parametrizes an argument named `backend`" in result.stdout.str() + result.stderr.str()


EXTREME = """
import numpy as np
from hypothesis import given, settings
from edudet.testing import strategies as eds

def test_flag(edudet_extreme):
    print("EXTREME", edudet_extreme)

@settings(max_examples=30, database=None)
@given(eds.boxes(n=(1, 5)))
def test_drawn(boxes):
    assert np.abs(boxes).max() <= 100  # an ordinary draw stays in the 100 x 100 image
"""


def test_extreme_option_turns_on_extreme_values(run_with_plugin):
    from edudet.testing import _config

    before = _config.extreme_default()
    try:
        plain = run_with_plugin(EXTREME, "-s")
        plain.assert_outcomes(passed=2)
        plain.stdout.fnmatch_lines(["*EXTREME False*"])
        extreme = run_with_plugin(EXTREME, "-s", "--edudet-extreme")
        extreme.assert_outcomes(passed=1, failed=1)  # the draw now reaches far outside the image
        extreme.stdout.fnmatch_lines(["*EXTREME True*"])
        assert _config.extreme_default() == before  # the plugin puts the default back when pytest ends
    finally:
        _config.set_extreme_default(before)


def test_fixtures_give_the_strategies_and_backends(run_with_plugin):
    source = ("import edudet\n"
              "def test_x(edudet_strategies, edudet_backend_names):\n"
              "    assert hasattr(edudet_strategies, 'boxes')\n"
              "    assert edudet_backend_names == edudet.available_backends()\n")
    run_with_plugin(source).assert_outcomes(passed=1)


# ---------------------------------------------------------------------------------------------------------
# The worked examples: the right versions pass, the wrong ones fail with the oracle's message
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_examples_pass_and_catch_the_wrong_versions(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("test_my_nms.py", "test_my_roi_align.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)
    # --runxfail: the deliberately wrong versions (xfail(strict=True) for a user) report their failures
    result = pytester.runpytest("-p", "edudet.testing.plugin", "-p", "no:cacheprovider", "--runxfail",
                                "--edudet-backends=numpy,numba,cython", "-q")
    result.assert_outcomes(passed=2 + len(set(edudet.backends_for("nms")) - {"cuda"}), failed=3)
    out = result.stdout.str()
    assert "FAILED test_my_nms.py::test_my_nms_ge" in out
    assert "FAILED test_my_nms.py::test_my_nms_reversed_ties" in out
    assert "FAILED test_my_roi_align.py::test_my_roi_align_no_half_pixel" in out
    assert "looks like `>=` instead of `>`" in out
    # hypothesis may shrink the reversed-ties bug to a pair NMS suppresses (the wrong box kept) or to a pair it
    # keeps (the right boxes, listed in the wrong order): the oracle names the stable-order rule either way
    assert ("edudet keeps the lower index first (stable order)" in out
            or "edudet lists equal scores by increasing index (stable order)" in out)
    assert "looks like aligned=False vs aligned=True: a half-pixel shift" in out


# ---------------------------------------------------------------------------------------------------------
# rotated_boxes (issue 16)
# ---------------------------------------------------------------------------------------------------------

def test_rotated_boxes_shrink_to_the_unit_box_at_angle_zero():
    # centre (1, 1), sides 1, angle 0: the axis-aligned box [0.5, 0.5, 1.5, 1.5]
    found = eds.minimal_example(eds.rotated_boxes(), lambda b: len(b) >= 1)
    assert found.dtype == np.float32 and found.tolist() == [[1, 1, 1, 1, 0]]
    # the first angle that is not 0 is the quarter turn
    turned = eds.minimal_example(eds.rotated_boxes(), lambda b: len(b) >= 1 and b[0, 4] != 0)
    assert turned.tolist() == [[1, 1, 1, 1, 90]]


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=-1), "n"), (dict(dtype=np.int32), "dtype"), (dict(image_size=(0, 10)), "image_size"),
    (dict(degenerate=1), "degenerate"), (dict(out_of_image="no"), "out_of_image"), (dict(extreme="yes"), "extreme"),
    (dict(duplicates=None), "duplicates"),
])
def test_rotated_boxes_refuses_bad_arguments_by_name(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        eds.rotated_boxes(**kwargs)


@settings(max_examples=60)
@given(eds.rotated_boxes(dtype=(np.float32, np.float64), image_size=(30, 50), degenerate=True, duplicates=True))
def test_rotated_boxes_are_valid_with_the_unrotated_box_inside_the_image(b):
    assert b.ndim == 2 and b.shape[1] == 5 and b.dtype in (np.float32, np.float64)
    cx, cy, w, h, angle = b.T.astype(np.float64)
    assert np.all(w >= 0) and np.all(h >= 0) and np.all(np.abs(angle) <= 180)
    # rounding of the centre to float32 may move an edge by an ulp of 50
    slack = 1e-5
    assert np.all(cx - w / 2 >= -slack) and np.all(cx + w / 2 <= 50 + slack)  # x along the width
    assert np.all(cy - h / 2 >= -slack) and np.all(cy + h / 2 <= 30 + slack)
    iou = ops.box_iou_rotated(b, b, backend="numpy")  # accepted by edudet's rotated ops
    assert np.all((iou >= 0) & (iou <= 1))
    positive = (w > 0) & (h > 0)
    assert np.allclose(np.diag(iou)[positive], 1, atol=1e-5)  # a box covers itself exactly


@settings(max_examples=40)
@given(eds.rotated_boxes(dtype=(np.float32, np.float64), extreme=True, out_of_image=True))
def test_extreme_rotated_boxes_stay_within_edudets_limit(b):
    assert np.all(np.isfinite(b)) and np.all(np.abs(b) <= 1e15)
    assert np.all(b[:, 2] > 0) and np.all(b[:, 3] > 0)  # not degenerate: positive sides, even tiny ones
    ops.rotated_box_corners(b)  # accepted: no ValueError


def test_rotated_boxes_switches_draw_what_they_promise():
    drawn = eds.draw_examples(eds.rotated_boxes(n=(2, 10), degenerate=True, duplicates=True), 60)
    assert any(((b[:, 2] == 0) | (b[:, 3] == 0)).any() for b in drawn)
    assert any(len(np.unique(b, axis=0)) < len(b) for b in drawn)
    angles = np.concatenate([b[:, 4] for b in drawn])
    assert {0.0, 90.0, 45.0}.issubset(set(angles.tolist()))  # the nice angles come often
    assert (~np.isin(angles, [0, 90, 45, -45, -90, 180, 30])).any()  # and any other angle too
    outside = np.concatenate(eds.draw_examples(eds.rotated_boxes(n=(1, 10), out_of_image=True), 60))
    assert (outside[:, 0] < 0).any() and (outside[:, 0] > 100).any()
    for dtype in (np.float32, np.float64):
        extreme = np.concatenate(eds.draw_examples(eds.rotated_boxes(n=(1, 20), dtype=dtype, extreme=True), 100))
        assert extreme.dtype == dtype
        sides = extreme[:, 2:4].ravel()
        assert sides.max() > 1e13 and (sides[sides > 0] < np.finfo(dtype).smallest_normal).any(), dtype
        assert np.abs(extreme[:, 4]).max() > 1e6, dtype  # huge angles: rotations modulo 360
