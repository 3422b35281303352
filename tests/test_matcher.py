"""Matcher and its fused IoU + matching kernels: hand cases, properties, parity with torchvision's Matcher."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet import Matcher, rpn_background_matches
from edudet.matcher import _match_boxes, match_boxes_numpy
from edudet.ops import box_iou
from helpers import import_torchvision, random_boxes

BACKENDS = _match_boxes.backends


def _simulated():
    import os

    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


# ---------------------------------------------------------------- hand cases

def test_thresholds_and_first_gt_on_ties():
    quality = np.array([[0.8, 0.2, 0.5, 0.1, 0.7],
                        [0.8, 0.35, 0.1, 0.1, 0.0]], dtype=np.float32)
    # col 0: best .8 tied between gt 0 and 1 -> gt 0; col 1: .35 in [.3, .7) -> -2; col 2: .5 -> -2;
    # col 3: .1 < .3 -> -1; col 4: exactly float32(0.7) >= float32(0.7) -> gt 0 (the high side is inclusive)
    np.testing.assert_array_equal(Matcher(0.7, 0.3)(quality), [0, -2, -2, -1, 0])
    # exactly at the low threshold is "between" (low side inclusive), not background
    np.testing.assert_array_equal(Matcher(0.7, 0.35)(quality)[1], -2)


def test_low_quality_matches_return_the_predictions_own_argmax():
    # gt 0's best is .6 (col 0), gt 1's best is .4, also col 0: col 0 gets its argmax, gt 0, not gt 1
    quality = np.array([[0.6, 0.1, 0.2],
                        [0.4, 0.05, 0.25]])
    np.testing.assert_array_equal(Matcher(0.7, 0.3, False)(quality), [-2, -1, -1])
    np.testing.assert_array_equal(Matcher(0.7, 0.3, True)(quality), [0, -1, -1])


def test_low_quality_matches_include_ties():
    # gt 0's best .5 is reached by cols 0 and 1: both come back; col 2 stays between thresholds
    quality = np.array([[0.5, 0.5, 0.45]], dtype=np.float32)
    np.testing.assert_array_equal(Matcher(0.7, 0.3, True)(quality), [0, 0, -2])


def test_match_boxes_hand():
    gt = np.array([[0, 0, 10, 10]], dtype=np.float32)
    boxes = np.array([[0, 0, 10, 10],     # IoU 1
                      [0, 0, 10, 5],      # 50 / 100 = .5
                      [5, 5, 15, 15],     # 25 / (100 + 100 - 25) = .143
                      [20, 20, 30, 30]],  # 0
                     dtype=np.float32)
    for backend in BACKENDS:
        np.testing.assert_array_equal(Matcher(0.7, 0.3).match_boxes(gt, boxes, backend=backend), [0, -2, -1, -1])


def test_gt_that_overlaps_nothing_claims_every_zero_iou_prediction():
    # torchvision's quirk, kept: gt 1's best IoU is 0, so every prediction with IoU 0 to it "ties" and gets
    # its argmax back -- gt 0 for a prediction overlapping nothing
    gt = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], dtype=np.float32)
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], dtype=np.float32)
    for backend in BACKENDS:
        np.testing.assert_array_equal(Matcher(0.7, 0.3, True).match_boxes(gt, boxes, backend=backend), [0, 0])


def test_empty_and_background():
    with pytest.raises(ValueError, match="no ground-truth"):
        Matcher(0.7, 0.3)(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="gt_boxes is empty"):
        Matcher(0.7, 0.3).match_boxes(np.zeros((0, 4)), np.zeros((5, 4)))
    out = Matcher(0.7, 0.3)(np.zeros((2, 0)))
    assert out.shape == (0,) and out.dtype == np.int64
    out = Matcher(0.7, 0.3).match_boxes(np.ones((1, 4)), np.zeros((0, 4)))
    assert out.shape == (0,) and out.dtype == np.int64
    np.testing.assert_array_equal(rpn_background_matches(3), [-1, -1, -1])
    assert rpn_background_matches(0).dtype == np.int64


@pytest.mark.parametrize("call, error, match", [
    (lambda: Matcher(0.3, 0.7), ValueError, "low_threshold must be <= high_threshold"),
    (lambda: Matcher(0.7, -0.1), ValueError, "low_threshold"),
    (lambda: Matcher(0.7, 0.3, allow_low_quality_matches="yes"), TypeError, "allow_low_quality_matches"),
    (lambda: Matcher(0.7, 0.3)(np.zeros(5)), ValueError, r"shape \(G, N\)"),
    (lambda: Matcher(0.7, 0.3)(np.array([[0.5, np.nan]])), ValueError, "NaN"),
    (lambda: Matcher(0.7, 0.3).match_boxes([[0, 0, -1, 5]], [[0, 0, 1, 1]]), ValueError, "x2 >= x1"),
    (lambda: Matcher(0.7, 0.3).match_boxes([[0, 0, 1, np.nan]], [[0, 0, 1, 1]]), ValueError, "NaN"),
    (lambda: Matcher(0.7, 0.3).match_boxes([[0, 0, 1, 1]], [[0, 0, 1]]), ValueError, r"boxes must have shape"),
    (lambda: Matcher(0.7, 0.3).match_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], backend="gpu"), ValueError, "not usable"),
    (lambda: rpn_background_matches(-1), ValueError, "num_boxes"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- properties

# integer coordinates on a small grid: many exact ties, the cases that decide first-index and low-quality rules
coord = st.integers(0, 12)
box = st.tuples(coord, coord, st.integers(0, 6), st.integers(0, 6)).map(lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])


@given(gt=st.lists(box, min_size=1, max_size=6), boxes=st.lists(box, min_size=1, max_size=16),
       thresholds=st.tuples(st.sampled_from([0.0, 0.1, 0.3, 0.5]), st.sampled_from([0.5, 0.7, 1.0])),
       allow_low_quality=st.booleans(), float64=st.booleans())
def test_every_backend_equals_the_reference(gt, boxes, thresholds, allow_low_quality, float64):
    dtype = np.float64 if float64 else np.float32
    gt, boxes = np.array(gt, dtype=dtype), np.array(boxes, dtype=dtype)
    matcher = Matcher(thresholds[1], thresholds[0], allow_low_quality)
    expected = matcher(box_iou(gt, boxes, backend="numpy"))
    for backend in BACKENDS:
        np.testing.assert_array_equal(matcher.match_boxes(gt, boxes, backend=backend), expected, err_msg=backend)


@given(quality=st.lists(st.lists(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.9]), min_size=5, max_size=5),
                        min_size=1, max_size=4), allow_low_quality=st.booleans())
def test_matcher_invariants(quality, allow_low_quality):
    q = np.array(quality, dtype=np.float32)
    matches = Matcher(0.7, 0.3, allow_low_quality)(q)
    best, argbest = q.max(axis=0), q.argmax(axis=0)
    assert set(np.unique(matches)) <= {-2, -1, *range(q.shape[0])}
    positive = matches >= 0
    np.testing.assert_array_equal(matches[positive], argbest[positive])  # a match is always the argmax
    assert np.all(positive[best >= np.float32(0.7)])
    if allow_low_quality:
        # every gt keeps at least one prediction matched at its best quality
        for g in range(q.shape[0]):
            assert np.any(positive & (q[g] == q[g].max()))
        # and low-quality matching only ever adds matches
        plain = Matcher(0.7, 0.3, False)(q)
        assert np.all(matches[plain >= 0] == plain[plain >= 0])


# ---------------------------------------------------------------- parity with torchvision

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("allow_low_quality", [False, True])
def test_parity_quality_matrix(seed, allow_low_quality):
    torch, _ = import_torchvision()
    from torchvision.models.detection._utils import Matcher as TvMatcher

    rng = np.random.default_rng(seed)
    # values rounded to 2 decimals: ties within rows and columns, and values exactly at the thresholds
    q = rng.uniform(0, 1, (int(rng.integers(1, 8)), 200)).round(2).astype(np.float32 if seed % 2 else np.float64)
    expected = TvMatcher(0.7, 0.3, allow_low_quality)(torch.from_numpy(q)).numpy()
    np.testing.assert_array_equal(Matcher(0.7, 0.3, allow_low_quality)(q), expected)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parity_boxes(seed, dtype):
    torch, torchvision = import_torchvision()
    from torchvision.models.detection._utils import Matcher as TvMatcher

    rng = np.random.default_rng(seed)
    gt = random_boxes(rng, int(rng.integers(1, 30)), image_size=300, max_side=150, dtype=dtype)
    boxes = random_boxes(rng, 3000, image_size=300, min_side=4, max_side=150, dtype=dtype)
    boxes[:50] = np.round(boxes[:50] / 10) * 10  # grid-aligned rows: exact ties
    gt[0] = boxes[0]  # a prediction with IoU 1
    gt[-1] = [1000, 1000, 1010, 1010]  # outside every prediction: torchvision's all-zero tie
    iou = torchvision.ops.box_iou(torch.from_numpy(gt), torch.from_numpy(boxes))
    for high, low, lq in [(0.7, 0.3, True), (0.5, 0.5, False), (0.5, 0.4, True)]:
        expected = TvMatcher(high, low, lq)(iou).numpy()
        np.testing.assert_array_equal(Matcher(high, low, lq)(iou.numpy()), expected)
        for backend in BACKENDS:
            if backend == "cuda" and _simulated():
                continue  # the simulator runs one Python thread per box: covered by the small properties
            got = Matcher(high, low, lq).match_boxes(gt, boxes, backend=backend)
            np.testing.assert_array_equal(got, expected, err_msg=f"{backend} {high} {low} {lq}")


def test_reference_is_the_composition():
    rng = np.random.default_rng(0)
    gt, boxes = random_boxes(rng, 5), random_boxes(rng, 100)
    np.testing.assert_array_equal(match_boxes_numpy(gt, boxes, np.float32(0.7), np.float32(0.3), True),
                                  Matcher(0.7, 0.3, True)(box_iou(gt, boxes)))
