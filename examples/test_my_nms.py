"""Testing your own NMS with edudet.testing: hypothesis draws the boxes, edudet's oracle says what went wrong.

    pytest examples/test_my_nms.py              # 2 passed, 2 xfailed: the two wrong versions fail, as expected
    pytest examples/test_my_nms.py --runxfail   # shows the oracle's message for each wrong version

`my_nms` is a naive greedy NMS in 15 lines; it passes. `my_nms_ge` (`>=` instead of `>`) and
`my_nms_reversed_ties` (py-faster-rcnn's ``scores.argsort()[::-1]``: equal scores visited by decreasing
index) are each one line away from it and are caught; hypothesis shrinks the failing input to a couple of
boxes and `assert_nms_equal` explains the first box that comes out differently, and why.
"""
import numpy as np
import pytest
from hypothesis import Phase, given, settings

from edudet import ops
from edudet.testing import assert_nms_equal
from edudet.testing import strategies as eds

# derandomize: the same examples on every run (these files are run by edudet's own tests); drop it in your
# own tests to try new inputs on each run. No "explain" phase: it traces every line, slowly.
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, phases=set(Phase) - {Phase.explain})
# valid boxes with the cases that break NMS implementations: equal scores, exact duplicates, zero areas
NMS_INPUTS = eds.boxes_and_scores(n=(0, 12), ties=True, duplicates=True, degenerate=True)


def stable_order(scores):
    return np.argsort(-scores, kind="stable")  # best first; equal scores: lower index first


def greedy_nms(boxes, scores, iou_threshold, order_of=stable_order, suppresses=np.greater):
    """Naive greedy NMS: visit boxes best first; keep a box unless a kept box overlaps it too much."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in order_of(scores):
        if suppressed[i]:
            continue
        keep.append(i)
        inter = (np.clip(np.minimum(x2[i], x2) - np.maximum(x1[i], x1), 0, None)
                 * np.clip(np.minimum(y2[i], y2) - np.maximum(y1[i], y1), 0, None))
        union = areas[i] + areas - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        # compare in float64, as torchvision does (a float32 IoU against a double threshold)
        suppressed |= suppresses(iou, np.float64(iou_threshold))
    return np.array(keep, dtype=np.int64)


def my_nms(boxes, scores, iou_threshold):
    return greedy_nms(boxes, scores, iou_threshold)


def my_nms_ge(boxes, scores, iou_threshold):
    return greedy_nms(boxes, scores, iou_threshold, suppresses=np.greater_equal)  # the bug: >= instead of >


def my_nms_reversed_ties(boxes, scores, iou_threshold):
    return greedy_nms(boxes, scores, iou_threshold, order_of=lambda s: s.argsort()[::-1])  # the bug: tie order


@SETTINGS
@given(NMS_INPUTS, eds.iou_thresholds())
def test_my_nms(boxes_and_scores, iou_threshold):
    boxes, scores = boxes_and_scores
    assert_nms_equal(my_nms(boxes, scores, iou_threshold), boxes, scores, iou_threshold)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="deliberately wrong: >= instead of >")
@SETTINGS
@given(NMS_INPUTS, eds.iou_thresholds())
def test_my_nms_ge(boxes_and_scores, iou_threshold):
    boxes, scores = boxes_and_scores
    assert_nms_equal(my_nms_ge(boxes, scores, iou_threshold), boxes, scores, iou_threshold)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="deliberately wrong: equal scores in reversed order")
@SETTINGS
@given(NMS_INPUTS, eds.iou_thresholds())
def test_my_nms_reversed_ties(boxes_and_scores, iou_threshold):
    boxes, scores = boxes_and_scores
    assert_nms_equal(my_nms_reversed_ties(boxes, scores, iou_threshold), boxes, scores, iou_threshold)


# the plugin's marker: once per edudet backend usable here ("numpy", "numba", "cython", ...)
@pytest.mark.edudet_backends("nms")
@settings(max_examples=20, deadline=None, derandomize=True, phases=set(Phase) - {Phase.explain})
@given(eds.boxes_and_scores(n=(0, 8), duplicates=True))
def test_my_nms_agrees_with_every_edudet_backend(backend, boxes_and_scores):
    boxes, scores = boxes_and_scores
    assert np.array_equal(my_nms(boxes, scores, 0.5), ops.nms(boxes, scores, 0.5, backend=backend))
