"""edudet.box_coder: hand-computed cases, then properties, then parity with torchvision's BoxCoder."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet import BoxCoder, bbox2distance, centerness_target, distance2bbox, ops
from helpers import import_torchvision, random_boxes

CLIP = math.log(1000 / 16)


# ---------------------------------------------------------------------------------------------------------
# hand-computed cases
# ---------------------------------------------------------------------------------------------------------

def test_encode_by_hand():
    coder = BoxCoder((10, 10, 5, 5))
    # proposal [0, 0, 10, 10]: w = h = 10, centre (5, 5); target [1, 1, 11, 11]: w = h = 10, centre (6, 6)
    # dx = 10 * (6 - 5) / 10 = 1, dy = 1, dw = 5 * log(10 / 10) = 0, dh = 0
    codes = coder.encode(np.array([[1, 1, 11, 11]], np.float32), np.array([[0, 0, 10, 10]], np.float32))
    assert codes.dtype == np.float32
    np.testing.assert_array_equal(codes, [[1, 1, 0, 0]])
    # weights 1: target [0, 0, 20, 10] (centre (10, 5), w 20) against [0, 0, 10, 10] (centre (5, 5), w 10)
    # dx = (10 - 5) / 10 = 0.5, dy = 0, dw = log(20 / 10) = log 2, dh = log 1 = 0
    codes = BoxCoder((1, 1, 1, 1)).encode([[0, 0, 20, 10.0]], [[0, 0, 10, 10.0]])
    np.testing.assert_allclose(codes, [[0.5, 0, math.log(2), 0]], rtol=1e-15)


def test_decode_by_hand():
    coder = BoxCoder((10, 10, 5, 5))
    anchors = np.array([[0, 0, 10, 10]], np.float64)
    # codes (1, 1, 0, 0): centre (5 + 10 * 1/10, 5 + 1) = (6, 6), size 10 * exp(0) = 10: [1, 1, 11, 11]
    np.testing.assert_array_equal(coder.decode([[1, 1, 0, 0]], anchors), [[1, 1, 11, 11]])
    # dw = 100 / 5 = 20 is clamped to log(1000/16): width 10 * 62.5 = 625 around centre 5: x from -307.5 to 317.5
    out = coder.decode(np.array([[0, 0, 100, 0]], np.float64), anchors)
    np.testing.assert_allclose(out, [[5 - 312.5, 0, 5 + 312.5, 10]], rtol=1e-12)
    # (N, 4k) codes give (N, k, 4): class 0 stays put, class 1 shifts right by one width
    two = coder.decode(np.array([[0, 0, 0, 0, 100, 0, 0, 0]], np.float32), anchors)
    assert two.shape == (1, 2, 4) and two.dtype == np.float32  # computed in the codes' dtype
    np.testing.assert_array_equal(two[0], [[0, 0, 10, 10], [100, 0, 110, 10]])


def test_distance2bbox_and_back_by_hand():
    points = np.array([[5, 5]], np.float32)
    # (left, top, right, bottom) = (1, 2, 3, 4): [5 - 1, 5 - 2, 5 + 3, 5 + 4] = [4, 3, 8, 9]
    np.testing.assert_array_equal(distance2bbox(points, [[1, 2, 3, 4]]), [[4, 3, 8, 9]])
    # max_shape (height 8, width 6): x2 8 -> 6, y2 9 -> 8
    np.testing.assert_array_equal(distance2bbox(points, [[1, 2, 3, 4]], max_shape=(8, 6)), [[4, 3, 6, 8]])
    np.testing.assert_array_equal(distance2bbox(points, [[1, 2, 3, 4]], max_shape=(8, 6, 3)), [[4, 3, 6, 8]])
    # back: (5 - 4, 5 - 3, 8 - 5, 9 - 5) = (1, 2, 3, 4); max_dis 3, eps 0.1 clamps to [0, 2.9]
    np.testing.assert_array_equal(bbox2distance(points, [[4, 3, 8, 9]]), [[1, 2, 3, 4]])
    np.testing.assert_allclose(bbox2distance(points, [[4, 3, 8, 9]], max_dis=3), [[1, 2, 2.9, 2.9]], rtol=1e-7)


def test_centerness_by_hand():
    targets = np.array(
        [
            [2, 2, 2, 2],  # the centre: sqrt(1 * 1) = 1
            [1, 3, 3, 1],  # sqrt(1/3 * 1/3) = 1/3
            [1, 1, 4, 1],  # sqrt(1/4 * 1) = 1/2
            [0, 2, 4, 2],  # on the left edge: 0
            [-1, 2, 5, 2],  # outside the box: 0 (the formula would give NaN)
            [-1, -1, 5, 5],  # outside twice: 0 (the formula would give sqrt(1/25) = 0.2)
            [0, 0, 0, 0],  # degenerate: 0, not 0/0
        ],
        np.float64,
    )
    np.testing.assert_allclose(centerness_target(targets), [1, 1 / 3, 1 / 2, 0, 0, 0, 0], rtol=1e-15)
    assert centerness_target(targets.astype(np.float32)).dtype == np.float32
    assert centerness_target(targets.astype(np.int32)).dtype == np.float32


# ---------------------------------------------------------------------------------------------------------
# lists, empty input, dtypes
# ---------------------------------------------------------------------------------------------------------

def test_lists_of_per_image_arrays():
    coder = BoxCoder((1, 1, 1, 1))
    rng = np.random.default_rng(0)
    gts = [random_boxes(rng, 3), random_boxes(rng, 0), random_boxes(rng, 2)]
    anchors = [random_boxes(rng, 3), random_boxes(rng, 0), random_boxes(rng, 2)]
    codes = coder.encode(gts, anchors)
    assert isinstance(codes, list) and [c.shape for c in codes] == [(3, 4), (0, 4), (2, 4)]
    np.testing.assert_array_equal(codes[2], coder.encode(gts[2], anchors[2]))
    np.testing.assert_array_equal(coder.encode_single(gts[0], anchors[0]), codes[0])
    decoded = coder.decode(np.concatenate(codes), anchors)
    np.testing.assert_array_equal(decoded, coder.decode(np.concatenate(codes), np.concatenate(anchors)))


def test_empty_inputs():
    coder = BoxCoder((10, 10, 5, 5))
    empty = np.zeros((0, 4), np.float64)
    codes = coder.encode(empty, empty)
    assert codes.shape == (0, 4) and codes.dtype == np.float64
    assert coder.decode(np.zeros((0, 4), np.float32), empty).shape == (0, 4)
    assert coder.decode(np.zeros((0, 8), np.float32), empty).shape == (0, 2, 4)
    assert coder.decode(np.zeros((0, 4), np.float32), []).shape == (0, 4)
    assert distance2bbox(np.zeros((0, 2)), empty).shape == (0, 4)
    assert bbox2distance(np.zeros((0, 2)), empty, max_dis=4).shape == (0, 4)
    assert centerness_target(empty).shape == (0,)


def test_dtypes():
    coder = BoxCoder((1, 1, 1, 1))
    f32 = np.array([[0, 0, 10, 10]], np.float32)
    ints = np.array([[0, 0, 10, 10]], np.int64)
    assert coder.encode(f32, f32).dtype == np.float32
    assert coder.encode(ints, ints).dtype == np.float32
    assert coder.encode(f32, f32.astype(np.float64)).dtype == np.float64
    assert coder.decode(np.zeros((1, 4), np.float64), f32).dtype == np.float64
    assert coder.decode(np.zeros((1, 4), np.int32), f32).dtype == np.float32
    assert distance2bbox(np.zeros((1, 2), np.float32), f32).dtype == np.float32
    assert bbox2distance(np.zeros((1, 2), np.float64), f32).dtype == np.float64


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------

def test_bad_input_is_rejected_with_clear_messages():
    with pytest.raises(ValueError, match=r"weights must be 4 numbers"):
        BoxCoder((1, 1, 1))
    with pytest.raises(ValueError, match=r"weights\[2\] must be > 0"):
        BoxCoder((1, 1, 0, 1))
    with pytest.raises(TypeError, match=r"weights\[0\] must be a real number"):
        BoxCoder(("a", 1, 1, 1))
    with pytest.raises(ValueError, match="bbox_xform_clip must be finite"):
        BoxCoder((1, 1, 1, 1), bbox_xform_clip=float("inf"))
    coder = BoxCoder((1, 1, 1, 1))
    box = np.zeros((1, 4))
    with pytest.raises(ValueError, match=r"reference_boxes must have shape \(N, 4\), got \(1, 5\)"):
        coder.encode(np.zeros((1, 5)), box)
    with pytest.raises(ValueError, match=r"reference_boxes has 2 boxes but proposals has 1"):
        coder.encode(np.zeros((2, 4)), box)
    with pytest.raises(ValueError, match="proposals contains NaN or inf"):
        coder.encode(box, [[0, 0, np.nan, 1]])
    with pytest.raises(ValueError, match="must both be lists of the same length"):
        coder.encode([box], [box, box])
    with pytest.raises(TypeError, match="encode_single takes"):
        coder.encode_single([box], [box])
    with pytest.raises(ValueError, match=r"rel_codes must have shape \(N, 4k\), got \(1, 6\)"):
        coder.decode(np.zeros((1, 6)), box)
    with pytest.raises(ValueError, match=r"rel_codes must have shape \(N, 4k\)"):
        coder.decode(np.zeros(4), box)
    with pytest.raises(ValueError, match="rel_codes contains NaN or inf"):
        coder.decode([[0, 0, np.inf, 0]], box)
    with pytest.raises(ValueError, match="rel_codes has 2 rows but boxes has 1"):
        coder.decode(np.zeros((2, 4)), box)
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\)"):
        distance2bbox(np.zeros((1, 3)), box)
    with pytest.raises(ValueError, match="points has 2 rows but distance has 1"):
        distance2bbox(np.zeros((2, 2)), box)
    with pytest.raises(ValueError, match=r"max_shape must be \(height, width\)"):
        distance2bbox(np.zeros((1, 2)), box, max_shape=5)
    with pytest.raises(ValueError, match=r"max_shape\[1\] must be > 0"):
        distance2bbox(np.zeros((1, 2)), box, max_shape=(5, -1))
    with pytest.raises(ValueError, match="points has 1 rows but bbox has 2"):
        bbox2distance(np.zeros((1, 2)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="max_dis must be >= 0"):
        bbox2distance(np.zeros((1, 2)), box, max_dis=-1)
    with pytest.raises(ValueError, match=r"eps must be <= 2.0"):
        bbox2distance(np.zeros((1, 2)), box, max_dis=2, eps=3)
    with pytest.raises(ValueError, match=r"bbox_targets must have shape \(N, 4\)"):
        centerness_target(np.zeros((3,)))


# ---------------------------------------------------------------------------------------------------------
# extreme values (issue 12): deltas are not coordinates, boxes are; no silent inf or NaN
# ---------------------------------------------------------------------------------------------------------

def test_huge_deltas_are_accepted_and_clipped_to_finite_boxes():
    # deltas are not coordinates: 1e30 is a valid (if wild) prediction. dw = dh = 1e30 is clamped at
    # log(1000/16): the 10 x 10 anchor grows to 625 x 625 around (5, 5); dw = -1e30 shrinks it to a point
    coder = BoxCoder((1, 1, 1, 1))
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    out = coder.decode(np.array([[0, 0, 1e30, 1e30], [0, 0, -1e30, -1e30]], np.float32), anchors)
    np.testing.assert_allclose(out, [[5 - 312.5, 5 - 312.5, 5 + 312.5, 5 + 312.5], [5, 5, 5, 5]], rtol=1e-6)


def test_overflowing_decodes_and_encodes_warn_instead_of_returning_inf_silently():
    coder = BoxCoder((1, 1, 1, 1))
    # float32: dx = 1e30 times a width of 1e15 is 1e45 > 3.4e38: inf as torchvision, but with a warning
    # naming the row (every edudet op then refuses the inf box by name)
    with pytest.warns(RuntimeWarning, match=r"decoding rel_codes\[1\] \(largest \|delta\| 1e\+30\) against "
                                            r"boxes\[1\] .* overflows float32 to inf/NaN \(1 row\(s\)"):
        out = coder.decode(np.array([[0, 0, 0, 0], [1e30, 0, 0, 0]], np.float32),
                           np.array([[0, 0, 1, 1], [0, 0, 1e15, 1]], np.float32))
    np.testing.assert_array_equal(out[0], [0, 0, 1, 1])
    assert np.isinf(out[1, 0]) and np.isinf(out[1, 2])
    with pytest.raises(ValueError, match="boxes contains NaN or inf"):
        ops.nms(out, np.ones(2), 0.5)
    # a clip so large that exp overflows: exp(1000) = inf in float64 too (a user's choice, flagged on use)
    with pytest.warns(RuntimeWarning, match=r"overflows float64 to inf/NaN \(1 row\(s\), bbox_xform_clip = 1000\)"):
        BoxCoder((1, 1, 1, 1), bbox_xform_clip=1000).decode([[0, 0, 1000.0, 0]], np.array([[0, 0, 1, 1.0]]))
    # the same clip with a moderate delta is fine, without a warning: exp(3) * 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = BoxCoder((1, 1, 1, 1), bbox_xform_clip=1000).decode([[0, 0, 3.0, 0]], np.array([[0, 0, 1, 1.0]]))
        np.testing.assert_allclose(ok, [[0.5 - math.exp(3) / 2, 0, 0.5 + math.exp(3) / 2, 1]], rtol=1e-12)
        # zero-size boxes keep torchvision's inf deltas silently (the RPN's targets of an image without ground
        # truth are encoded against zero boxes): documented, not an overflow
        codes = coder.encode(np.zeros((1, 4)), np.array([[0, 0, 2, 4.0]]))
        np.testing.assert_array_equal(codes, [[-0.5, -0.5, -np.inf, -np.inf]])
    # encode: a proposal of side 1e-310 (subnormal) against a 1e15 box: dx = 5e14 / 1e-310 overflows
    with pytest.warns(RuntimeWarning, match=r"encoding reference_boxes\[0\] = .* against proposals\[0\] = .* "
                                            r"overflows float64 to inf/NaN deltas"):
        codes = coder.encode(np.array([[0, 0, 1e15, 1e15]]), np.array([[0, 0, 1e-310, 1e-310]]))
    assert np.isinf(codes).all()


def test_box_inputs_use_the_coordinate_bound_and_deltas_do_not():
    coder = BoxCoder((1, 1, 1, 1))
    fine = np.array([[0, 0, 1e15, 1e15]])
    with pytest.raises(ValueError, match=r"boxes has a coordinate of magnitude 2e\+15"):
        coder.decode(np.zeros((1, 4)), fine * 2)
    with pytest.raises(ValueError, match=r"proposals has a coordinate of magnitude 2e\+15"):
        coder.encode(fine, fine * 2)
    with pytest.raises(ValueError, match=r"reference_boxes has a coordinate of magnitude 2e\+15"):
        coder.encode(fine * 2, fine)
    with pytest.raises(ValueError, match=r"boxes has a coordinate of magnitude"):
        coder.decode(np.zeros((1, 4)), [fine * 2])  # a list of per-image arrays
    np.testing.assert_array_equal(coder.decode(np.zeros((1, 4)), fine), fine)  # 1e15 itself is fine
    np.testing.assert_array_equal(coder.encode(fine, fine), np.zeros((1, 4)))
    # a delta of -1e300 is no coordinate: dw = dh = -1e300 shrink the box to its centre (5e14, 5e14)
    np.testing.assert_array_equal(coder.decode([[0, 0, -1e300, -1e300]], fine), [[5e14] * 4])


@pytest.mark.filterwarnings("error")  # and without a warning
@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e-30), (np.float64, 1e-300), (np.float64, 1e-320)])
def test_tiny_boxes_encode_and_decode_finitely(dtype, scale):
    # sides of 1e-30 (float32) or 1e-300 / 1e-320 (float64, the last subnormal): the ratios are ordinary,
    # target [1, 1, 3, 3] * s against [0, 0, 2, 2] * s: dx = (2s - 1s) / 2s = 0.5, dy = 0.5, dw = dh = 0
    coder = BoxCoder((1, 1, 1, 1))
    target = np.array([[1, 1, 3, 3]], dtype) * dtype(scale)
    proposal = np.array([[0, 0, 2, 2]], dtype) * dtype(scale)
    codes = coder.encode(target, proposal)
    np.testing.assert_allclose(codes, [[0.5, 0.5, 0, 0]], atol=1e-6)
    np.testing.assert_allclose(coder.decode(codes, proposal) / dtype(scale), target / dtype(scale), rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------------

weights_strategy = st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 0.5, 7.0)])


@given(st.integers(0, 2**32 - 1), st.integers(1, 30), weights_strategy, st.sampled_from([np.float32, np.float64]))
def test_encode_decode_round_trip(seed, n, weights, dtype):
    rng = np.random.default_rng(seed)
    gt = random_boxes(rng, n, dtype=dtype, min_side=1)
    anchors = random_boxes(rng, n, dtype=dtype, min_side=1)
    coder = BoxCoder(weights)
    codes = coder.encode(gt, anchors)
    # a 200/1 size ratio needs |dw| / ww = log 200 < log(62.5)? not always: the clamp may bite, so compare sizes
    # only where it did not
    unclamped = np.all(np.abs(codes[:, 2:] / np.array(weights[2:], dtype)) < CLIP, axis=1)
    back = coder.decode(codes, anchors)
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(back[unclamped], gt[unclamped], **tol)
    # zero codes give the anchors back
    np.testing.assert_allclose(coder.decode(np.zeros_like(anchors), anchors), anchors, **tol)


@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(1, 4))
def test_decoding_k_classes_is_k_separate_decodes(seed, n, k):
    rng = np.random.default_rng(seed)
    coder = BoxCoder((10, 10, 5, 5))
    anchors = random_boxes(rng, n)
    codes = rng.normal(0, 2, size=(n, 4 * k)).astype(np.float32)
    out = coder.decode(codes, anchors)
    assert out.shape == ((n, 4) if k == 1 else (n, k, 4))
    out = out.reshape(n, k, 4)
    for c in range(k):
        np.testing.assert_array_equal(out[:, c], coder.decode(codes[:, 4 * c:4 * c + 4], anchors))


@given(st.integers(0, 2**32 - 1), st.integers(1, 20))
def test_distance_round_trip_and_centerness_bounds(seed, n):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, dtype=np.float64)
    # points strictly inside each box
    t = rng.uniform(0.05, 0.95, size=(n, 2))
    points = boxes[:, :2] + t * (boxes[:, 2:] - boxes[:, :2])
    dist = bbox2distance(points, boxes)
    assert np.all(dist > 0)
    np.testing.assert_allclose(distance2bbox(points, dist), boxes, rtol=1e-12, atol=1e-9)
    centerness = centerness_target(dist)
    assert np.all((centerness > 0) & (centerness <= 1))
    # symmetric in left/right and in top/bottom
    np.testing.assert_array_equal(centerness, centerness_target(dist[:, [2, 3, 0, 1]]))
    clamped = bbox2distance(points, boxes, max_dis=16, eps=0.5)
    assert np.all((clamped >= 0) & (clamped <= 15.5))


# ---------------------------------------------------------------------------------------------------------
# parity with torchvision.models.detection._utils.BoxCoder
# ---------------------------------------------------------------------------------------------------------

def _tv_coder(weights, clip=CLIP):
    torch, _ = import_torchvision()
    from torchvision.models.detection._utils import BoxCoder as TorchvisionBoxCoder

    return torch, TorchvisionBoxCoder(weights, bbox_xform_clip=clip)


def _log_close(got, expected, weight_scale):
    """dw, dh = weight * log(ratio): NumPy's and torch's log may differ in the last bit or two of log(ratio)."""
    eps = np.finfo(expected.dtype).eps
    np.testing.assert_allclose(got, expected, rtol=4 * eps, atol=4 * eps * weight_scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (0.3, 3.0, 7.0, 1 / 3)])
def test_encode_matches_torchvision(dtype, weights):
    torch, tv = _tv_coder(weights)
    rng = np.random.default_rng(0)
    gt = random_boxes(rng, 4000, dtype=dtype, min_side=0.5)
    anchors = random_boxes(rng, 4000, dtype=dtype, min_side=0.5)
    gt[::100] -= 300  # boxes partly outside the image
    expected = tv.encode_single(torch.from_numpy(gt), torch.from_numpy(anchors)).numpy()
    got = BoxCoder(weights).encode(gt, anchors)
    assert got.dtype == expected.dtype
    # dx, dy: the same operations in the same order, so bitwise equal; dw, dh go through log
    np.testing.assert_array_equal(got[:, :2], expected[:, :2])
    _log_close(got[:, 2:], expected[:, 2:], max(weights))
    # torchvision's list form
    split = tv.encode([torch.from_numpy(gt[:10]), torch.from_numpy(gt[10:30])],
                      [torch.from_numpy(anchors[:10]), torch.from_numpy(anchors[10:30])])
    ours = BoxCoder(weights).encode([gt[:10], gt[10:30]], [anchors[:10], anchors[10:30]])
    for a, b in zip(ours, split):
        np.testing.assert_array_equal(a[:, :2], b.numpy()[:, :2])


def test_encode_mixed_dtypes_matches_torchvision():
    torch, tv = _tv_coder((10.0, 10.0, 5.0, 5.0))
    rng = np.random.default_rng(1)
    gt = random_boxes(rng, 2000, dtype=np.float32)
    anchors = random_boxes(rng, 2000, dtype=np.float64)
    for a, b in ((gt, anchors), (anchors, gt)):
        expected = tv.encode_single(torch.from_numpy(a), torch.from_numpy(b)).numpy()
        got = BoxCoder((10, 10, 5, 5)).encode(a, b)
        assert got.dtype == expected.dtype == np.float64
        np.testing.assert_array_equal(got[:, :2], expected[:, :2])
        _log_close(got[:, 2:], expected[:, 2:], 5.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3])
def test_decode_matches_torchvision(dtype, k):
    weights = (10.0, 10.0, 5.0, 5.0)
    torch, tv = _tv_coder(weights)
    rng = np.random.default_rng(2)
    anchors = random_boxes(rng, 3000, dtype=dtype)
    codes = rng.normal(0, 1, size=(3000, 4 * k)).astype(dtype)
    codes[::37, 2::4] = 40.0  # wild widths: the clamp at log(1000/16) must bite exactly as in torchvision
    codes[::41, 3::4] = -60.0  # tiny heights: no lower clamp
    expected = tv.decode(torch.from_numpy(codes), [torch.from_numpy(anchors[:1000]), torch.from_numpy(anchors[1000:])])
    got = BoxCoder(weights).decode(codes, [anchors[:1000], anchors[1000:]])
    expected = expected.numpy().reshape(got.shape)  # torchvision keeps a (N, 1, 4) axis for one class
    assert got.dtype == expected.dtype
    # exp differs by at most an ulp between libms; the centres and the clamp are exact
    np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps * 800)


def test_decode_with_float64_boxes_and_float32_codes_matches_torchvision():
    torch, tv = _tv_coder((1.0, 1.0, 1.0, 1.0))
    rng = np.random.default_rng(3)
    anchors = random_boxes(rng, 500, dtype=np.float64)
    codes = rng.normal(0, 1, size=(500, 4)).astype(np.float32)
    expected = tv.decode_single(torch.from_numpy(codes), torch.from_numpy(anchors)).numpy()
    got = BoxCoder((1, 1, 1, 1)).decode(codes, anchors)
    assert got.dtype == expected.dtype == np.float32  # computed in the codes' dtype, as torchvision
    np.testing.assert_allclose(got, expected, rtol=4e-7, atol=4e-7 * 800)


# ---------------------------------------------------------------------------------------------------------
# the legacy +1 pixel convention (maskrcnn-benchmark's TO_REMOVE = 1), docs/conventions.md
# ---------------------------------------------------------------------------------------------------------

def test_offset_1_encode_and_decode_by_hand():
    gt = np.array([[0, 0, 9, 19]], np.float64)
    proposal = np.array([[0, 0, 9, 9]], np.float64)
    # offset 1: proposal w = h = 10, centre (0 + 5, 0 + 5); gt w = 10, h = 20, centre (5, 10)
    # dx = 0, dy = (10 - 5) / 10 = 0.5, dw = log(10 / 10) = 0, dh = log(20 / 10) = log 2
    legacy = BoxCoder((1, 1, 1, 1), offset=1)
    codes = legacy.encode(gt, proposal)
    np.testing.assert_allclose(codes, [[0, 0.5, 0, math.log(2)]], rtol=1e-15)
    # offset 0: proposal 9 x 9, centre (4.5, 4.5); gt 9 x 19, centre (4.5, 9.5): dy = 5 / 9, dh = log(19 / 9)
    np.testing.assert_allclose(BoxCoder((1, 1, 1, 1)).encode(gt, proposal), [[0, 5 / 9, 0, math.log(19 / 9)]],
                               rtol=1e-15)
    # decode with offset 1: centre y 5 + 0.5 * 10 = 10, height 10 * 2 = 20: y1 = 10 - 10 = 0, y2 = 10 + 10 - 1 = 19
    np.testing.assert_allclose(legacy.decode(codes, proposal), gt, rtol=0, atol=1e-13)
    # the same deltas decoded in the other convention: centre 4.5 + 0.5 * 9 = 9, height 18: [0, 0, 9, 18]
    np.testing.assert_allclose(BoxCoder((1, 1, 1, 1)).decode(codes, proposal), [[0, 0, 9, 18]], atol=1e-13)
    # weights (10, 10, 5, 5), gt [1, 1, 10, 10] against [0, 0, 9, 9]: both 10 wide, centres 6 and 5:
    # dx = 10 * (6 - 5) / 10 = 1, dw = 5 * log 1 = 0
    np.testing.assert_array_equal(BoxCoder((10, 10, 5, 5), offset=1).encode([[1, 1, 10, 10.0]], [[0, 0, 9, 9.0]]),
                                  [[1, 1, 0, 0]])
    assert repr(legacy).endswith("offset=1)") and "offset" not in repr(BoxCoder((1, 1, 1, 1)))


def test_offset_is_checked_by_name():
    for bad, error in ((2, ValueError), (-1, ValueError), (0.5, ValueError), (float("nan"), ValueError),
                       (True, TypeError), ("1", TypeError)):
        with pytest.raises(error, match="offset"):
            BoxCoder((1, 1, 1, 1), offset=bad)
    assert BoxCoder((1, 1, 1, 1), offset=np.array(1)).offset == 1


@given(st.integers(0, 2**32 - 1), st.integers(1, 30), weights_strategy, st.sampled_from([np.float32, np.float64]))
def test_offset_1_is_offset_0_on_boxes_grown_by_one_pixel(seed, n, weights, dtype):
    # integer pixel boxes (x2 inclusive): adding the 1 is exact, so the two conventions agree bitwise once the
    # continuous boxes are the inclusive ones with x2 + 1, y2 + 1
    rng = np.random.default_rng(seed)
    gt = random_boxes(rng, n, dtype=np.float64, min_side=1).round().astype(dtype)
    anchors = random_boxes(rng, n, dtype=np.float64, min_side=1).round().astype(dtype)
    grow = np.array([0, 0, 1, 1], dtype=dtype)
    legacy, modern = BoxCoder(weights, offset=1), BoxCoder(weights)
    codes = legacy.encode(gt, anchors)
    np.testing.assert_array_equal(codes, modern.encode(gt + grow, anchors + grow))
    np.testing.assert_array_equal(legacy.decode(codes, anchors), modern.decode(codes, anchors + grow) - grow)
    # and the round trip gives the inclusive boxes back
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-9)
    unclamped = np.all(np.abs(codes[:, 2:] / np.array(weights[2:], dtype)) < CLIP, axis=1)
    np.testing.assert_allclose(legacy.decode(codes, anchors)[unclamped], gt[unclamped], **tol)
