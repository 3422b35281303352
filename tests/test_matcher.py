"""Matcher and its fused IoU + matching kernels: hand cases, properties, parity with torchvision's Matcher."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet import Matcher, rpn_background_matches
from edudet.matcher import _match_boxes, block_length, match_boxes_numpy, match_quality_numpy
from edudet.ops import box_iou
from helpers import assert_child_ok, import_torchvision, random_boxes

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


# ---------------------------------------------------------------- extreme input (issue 12, findings 2, 13, 14)

def test_overflowing_ground_truth_is_refused_on_every_backend():
    # issue 12 finding 2: a gt whose area overflows (float32 sides >= ~1.9e19, float64 1e200) made the Numba
    # kernel's "zero" NaN and its argmax scan ran off the array; now the public boundary refuses coordinates
    # beyond +-1e15 by name, on every backend and through every entry point (run in a child: it used to crash)
    assert_child_ok("""
        import numpy as np
        from edudet import Matcher, roi_head_targets, rpn_targets
        from edudet.matcher import _match_boxes
        anchors = np.array([[0, 0, 10, 10], [5, 5, 20, 20]])
        for dtype, side in [(np.float32, 2e19), (np.float32, 3e38), (np.float64, 1e200), (np.float64, 1e300)]:
            gt = np.array([[0, 0, side, side], [0, 0, 1, 1]], dtype=dtype)
            for backend in _match_boxes.backends:
                for name, call in [
                    ("match_boxes", lambda: Matcher(0.7, 0.3, True).match_boxes(gt, anchors.astype(dtype), backend)),
                    ("rpn_targets", lambda: rpn_targets(anchors.astype(dtype), gt, backend=backend)),
                    ("roi_head_targets", lambda: roi_head_targets(anchors.astype(dtype), gt, [1, 2], backend=backend)),
                ]:
                    print(name, dtype.__name__, side, backend, flush=True)
                    try:
                        call()
                    except ValueError as err:
                        assert "gt_boxes" in str(err) and "coordinate" in str(err), err
                    else:
                        raise AssertionError(f"{name} accepted a gt of side {side}")
        print("ok")
    """)


def test_kernels_called_directly_never_index_out_of_range():
    # a direct caller bypasses the checks: NaN coordinates, areas that overflow to inf (inf / inf IoUs are
    # NaN), no gt at all. Whatever the values, every match is -2, -1 or a valid gt index (the old Numba argmax
    # scan ran past the gts when the best IoU was NaN: garbage indices or a crash, hence the child)
    assert_child_ok("""
        import numpy as np
        from edudet.matcher import _match_boxes, match_quality_numpy
        nan, inf = float("nan"), float("inf")
        cases = {
            "area overflows": ([[0, 0, 2e19, 2e19], [0, 0, 10, 10]],
                               [[0, 0, 3e19, 3e19], [0, 0, 10, 10], [1, 1, 2, 2]]),
            "NaN gt": ([[nan, 0, 10, 10], [0, 0, 10, 10]], [[0, 0, 10, 10], [5, 5, 8, 8]]),
            "all NaN": ([[nan, nan, nan, nan]], [[nan, nan, nan, nan], [0, 0, 1, 1]]),
            "NaN boxes": ([[0, 0, 10, 10]], [[nan, 0, 10, 10], [0, 0, 10, 10]]),
            "inf": ([[-inf, -inf, inf, inf], [0, 0, 1, 1]], [[0, 0, 1, 1], [-inf, 0, inf, 1]]),
            "no gt": (np.zeros((0, 4)), [[0, 0, 1, 1]]),
        }
        for backend in _match_boxes.backends:
            kernel = _match_boxes.get(backend)
            for dtype in (np.float32, np.float64):
                for name, (gt, boxes) in cases.items():
                    gt, boxes = np.array(gt, dtype).reshape(-1, 4), np.array(boxes, dtype)
                    for allow_low_quality in (False, True):
                        print(backend, dtype.__name__, name, allow_low_quality, flush=True)
                        try:
                            out = kernel(gt, boxes, dtype(0.7), dtype(0.3), allow_low_quality)
                        except ValueError as err:  # issue 13: Numba entries refuse NaN/inf by name instead
                            assert backend == "numba" and "NaN or inf" in str(err), err
                            continue
                        assert out.shape == (boxes.shape[0],) and out.dtype == np.int64, out
                        assert np.all((out >= -2) & (out < max(gt.shape[0], 0))), out
                        if gt.shape[0] == 0:
                            assert np.all(out == -1), out
        print("reference with NaN quality", flush=True)
        quality = np.array([[nan, 0.2, nan], [0.9, nan, nan]], np.float32)
        for allow_low_quality in (False, True):
            out = match_quality_numpy(quality, np.float32(0.7), np.float32(0.3), allow_low_quality)
            assert np.all((out >= -2) & (out < 2)), out
        print("ok")
    """)


def test_quality_matrix_and_parameters_are_checked_by_name():
    # issue 12 finding 13: NaN, inf, huge ints and 0-d arrays name the argument
    for call, error, match in [
        (lambda: Matcher(float("nan"), 0.3), ValueError, "high_threshold must be finite"),
        (lambda: Matcher(0.7, float("inf")), ValueError, "low_threshold must be finite"),
        (lambda: Matcher(np.array([0.7]), 0.3), TypeError, "high_threshold"),
        (lambda: Matcher(0.7, 0.3)(np.array([[0.5, np.inf]])), ValueError, "match_quality_matrix contains NaN"),
        (lambda: Matcher(0.7, 0.3)(np.array(0.5)), ValueError, r"match_quality_matrix must have shape \(G, N\)"),
        (lambda: Matcher(0.7, 0.3)([["a", "b"]]), TypeError, "match_quality_matrix"),
        (lambda: rpn_background_matches(float("nan")), ValueError, "num_boxes must be finite"),
        (lambda: rpn_background_matches(2**64), ValueError, "num_boxes must fit in a 64-bit integer"),
        (lambda: rpn_background_matches(2.5), ValueError, "num_boxes must be an integer"),
        (lambda: rpn_background_matches(10**12), ValueError, r"num_boxes.* GiB"),  # 8 TB: refused, not allocated
        (lambda: Matcher(0.7, 0.3).match_boxes([[0, 0, 1, 1]], [[0, 0, 2e15, 1]]), ValueError,
         "boxes has a coordinate"),
    ]:
        with pytest.raises(error, match=match):
            call()
    # 0-d arrays are scalars; an int matrix computes in float32
    assert Matcher(np.array(0.7), np.float64(0.3)).high_threshold == 0.7
    np.testing.assert_array_equal(rpn_background_matches(np.array(2)), [-1, -1])
    np.testing.assert_array_equal(Matcher(1, 0)(np.array([[1, 0], [0, 2]])), [0, 1])


def test_reference_in_blocks_equals_one_block():
    # issue 12 finding 14: the references walk the (G, N) matrix a block of columns at a time; any block size
    # (here one column per block) gives the one-block result, ties and low-quality matches included
    rng = np.random.default_rng(3)
    gt = random_boxes(rng, 7, image_size=100, max_side=60)
    boxes = random_boxes(rng, 300, image_size=100, min_side=2, max_side=60)
    boxes[:40] = np.round(boxes[:40] / 10) * 10  # exact ties
    gt[0] = boxes[0]
    gt[-1] = [500, 500, 510, 510]  # overlaps nothing: every zero-IoU column ties its best
    quality = box_iou(gt, boxes, backend="numpy")
    for high, low, lq in [(0.7, 0.3, True), (0.5, 0.5, False), (0.5, 0.4, True)]:
        high, low = np.float32(high), np.float32(low)
        expected = match_quality_numpy(quality, high, low, lq, block_bytes=2**40)
        for block_bytes in (1, 7 * 4 * 13, None):
            np.testing.assert_array_equal(match_quality_numpy(quality, high, low, lq, block_bytes=block_bytes),
                                          expected)
            np.testing.assert_array_equal(match_boxes_numpy(gt, boxes, high, low, lq, block_bytes=block_bytes),
                                          expected)
    assert block_length(10, 100, block_bytes=35) == 3 and block_length(10**9, 100) == 1


_LARGE_MATCH = """
import numpy as np
rng = np.random.default_rng(5)
def boxes(n, side):
    xy = rng.uniform(0, 800, (n, 2)); wh = rng.uniform(4, side, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
gt, anchors = boxes(500, 300), boxes(80_000, 200)
"""


def test_reference_matches_a_large_workload_in_bounded_memory():
    # 500 gt x 80k anchors: the whole IoU matrix is 160 MB and its ties mask 40 MB more, which does not fit a
    # child capped at 320 MB of address space (numpy alone takes ~140 MB); the blocked reference peaks at
    # ~200 MB there and gives the Numba kernel's matches
    import hashlib

    scope = {}
    exec(_LARGE_MATCH, scope)
    backend = "numba" if "numba" in BACKENDS else "numpy"
    expected = Matcher(0.7, 0.3, True).match_boxes(scope["gt"], scope["anchors"], backend=backend)
    out = assert_child_ok(_LARGE_MATCH + """
import hashlib
from edudet.matcher import match_boxes_numpy  # the reference itself: resolving a backend would import numba
matches = match_boxes_numpy(gt, anchors, np.float32(0.7), np.float32(0.3), True)
print("sha", hashlib.sha256(matches.tobytes()).hexdigest())
""", memory_limit_mb=320)
    assert f"sha {hashlib.sha256(expected.tobytes()).hexdigest()}" in out


# extreme finite values: integer grids scaled from subnormal to beyond the 1e15 coordinate limit
SCALES = [1e-300, 1e-30, 1e-3, 1.0, 1e6, 1e12, 2e14, 1e15, 1e30]
grid_box = st.tuples(st.integers(-6, 6), st.integers(-6, 6), st.integers(0, 6), st.integers(0, 6)).map(
    lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])


def _outcome(call):
    """What a call gives: ("ok", result) or ("error", its type and message)."""
    try:
        return "ok", call()
    except (ValueError, TypeError) as err:
        return "error", (type(err), str(err))


@given(gt=st.lists(grid_box, min_size=1, max_size=5), boxes=st.lists(grid_box, min_size=1, max_size=12),
       scale=st.sampled_from(SCALES), float64=st.booleans(), allow_low_quality=st.booleans())
def test_extreme_values_every_backend_equals_the_reference(gt, boxes, scale, float64, allow_low_quality):
    dtype = np.float64 if float64 else np.float32
    gt, boxes = np.array(gt, np.float64) * scale, np.array(boxes, np.float64) * scale
    gt, boxes = gt.astype(dtype), boxes.astype(dtype)  # float32: 1e-300 underflows to 0, 1e30 stays finite
    matcher = Matcher(0.7, 0.3, allow_low_quality)
    kind, expected = _outcome(lambda: matcher.match_boxes(gt, boxes, backend="numpy"))
    if kind == "ok":  # the reference is Matcher(box_iou): never NaN, whatever the areas underflow to
        np.testing.assert_array_equal(expected, matcher(box_iou(gt, boxes, backend="numpy")))
    else:
        assert scale * 6 > 1e15 and "coordinate" in expected[1]
    for backend in BACKENDS:
        got_kind, got = _outcome(lambda: matcher.match_boxes(gt, boxes, backend=backend))
        assert got_kind == kind, (backend, got)
        if kind == "ok":
            np.testing.assert_array_equal(got, expected, err_msg=backend)
        else:
            assert got == expected, backend
