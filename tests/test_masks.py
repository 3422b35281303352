"""paste_masks_in_image: hand cases, properties, parity with torchvision, bad input."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet.ops import paste_masks_in_image
from helpers import import_torchvision


def test_two_by_two_mask_with_padding():
    # M = 2, padding 1: scale (2 + 2) / 2 = 2; box (0, 0, 3, 3): centre 1.5, half-size 1.5 * 2 = 3 ->
    # (-1.5, -1.5, 4.5, 4.5) -> truncated (-1, -1, 4, 4): 6 x 6 box pixels starting at image pixel -1.
    # padded 1-D profile [0, 1, 1, 0] resized 4 -> 6: source (i + 0.5) * 4 / 6 - 0.5 =
    # -1/6 (-> 0), 1/2, 7/6, 11/6, 5/2, 19/6 -> values 0, 0.5, 1, 1, 0.5, 0 (19/6 reads the last, 0).
    # Box pixels 1..5 are image pixels 0..4: [0.5, 1, 1, 0.5, 0]; image pixel 5 is outside the box.
    masks = np.ones((1, 1, 2, 2), np.float32)
    out = paste_masks_in_image(masks, np.array([[0, 0, 3, 3]], np.float32), (6, 6))
    profile = np.array([0.5, 1, 1, 0.5, 0, 0], np.float32)
    assert out.shape == (1, 1, 6, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], np.outer(profile, profile), rtol=0, atol=1e-6)


def test_no_padding_is_a_plain_resize_and_paste():
    # padding 0, box (1, 2, 2, 3): scale 1, box unchanged, 2 x 2 pixels at rows 2..3, columns 1..2:
    # resizing 2 -> 2 with align_corners=False reads each source pixel exactly
    masks = np.array([[[[0.1, 0.2], [0.3, 0.4]]]])
    out = paste_masks_in_image(masks, np.array([[1.0, 2, 2, 3]]), (5, 4), padding=0)
    expected = np.zeros((5, 4))
    expected[2:4, 1:3] = [[0.1, 0.2], [0.3, 0.4]]
    np.testing.assert_allclose(out[0, 0], expected, rtol=0, atol=1e-15)


def test_boxes_partly_and_wholly_outside():
    masks = np.ones((3, 1, 4, 4), np.float32)
    boxes = np.array([[-3, -3, 1, 1], [50, 50, 60, 60], [-20, -20, -10, -10]], np.float32)
    out = paste_masks_in_image(masks, boxes, (8, 8), padding=0)
    # box 0 covers pixels -3..1 (5 px: a constant mask resized stays 1): only image pixels 0..1 remain
    expected = np.zeros((8, 8), np.float32)
    expected[:2, :2] = 1
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-6)
    assert not out[1:].any()  # wholly outside: nothing pasted (torchvision raises on these)


def test_empty_and_integer_masks():
    out = paste_masks_in_image(np.zeros((0, 1, 28, 28)), np.zeros((0, 4)), (10, 12))
    assert out.shape == (0, 1, 10, 12) and out.dtype == np.float64
    out = paste_masks_in_image(np.ones((1, 1, 2, 2), np.int64), np.array([[0, 0, 1, 1]]), (3, 3), padding=0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]], atol=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(masks=np.zeros((2, 28, 28))), ValueError, r"masks must have shape \(K, 1, M, M\)"),
    (dict(masks=np.zeros((2, 1, 28, 14))), ValueError, r"masks must have shape \(K, 1, M, M\)"),
    (dict(boxes=np.zeros((3, 4))), ValueError, "they must match"),
    (dict(boxes=np.array([[0, 0, np.inf, 1], [0, 0, 1, 1]])), ValueError, "NaN or inf"),
    (dict(masks=np.full((2, 1, 28, 28), np.nan)), ValueError, "masks contains NaN"),
    (dict(padding=-1), ValueError, "padding must be >= 0"),
    (dict(image_shape=(0, 10)), ValueError, "image_shape"),
    (dict(image_shape=10), ValueError, "image_shape"),
])
def test_bad_input(kwargs, error, match):
    args = dict(masks=np.zeros((2, 1, 28, 28)), boxes=np.zeros((2, 4)), image_shape=(10, 10))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        paste_masks_in_image(**args)


@given(seed=st.integers(0, 2**32 - 1), padding=st.integers(0, 2))
def test_probabilities_stay_probabilities_and_stay_in_their_box(seed, padding):
    rng = np.random.default_rng(seed)
    masks = rng.uniform(0, 1, (4, 1, 7, 7))
    xy = rng.uniform(-10, 30, (4, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 20, (4, 2))], axis=1)
    out = paste_masks_in_image(masks, boxes, (24, 32), padding=padding)
    assert out.min() >= 0 and out.max() <= 1 + 1e-12
    scale = (7 + 2 * padding) / 7
    centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2 * scale
    for k in range(4):
        ys, xs = np.nonzero(out[k, 0])
        if len(xs):  # nothing outside the grown box (+1 pixel for the inclusive end)
            assert xs.min() >= np.trunc(centre[k, 0] - half[k, 0]) and xs.max() <= centre[k, 0] + half[k, 0] + 1
            assert ys.min() >= np.trunc(centre[k, 1] - half[k, 1]) and ys.max() <= centre[k, 1] + half[k, 1] + 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size, padding", [(28, 1), (14, 0), (28, 2), (7, 1), (1, 1)])
def test_parity_with_torchvision_is_bit_exact(dtype, size, padding):
    # issue 15, item 5: equal bit for bit (torchvision's own test checks exact equality); before the fix
    # 2-3% of float32 pixels differed in the last bits (max ~9e-7)
    torch, torchvision = import_torchvision()
    from torchvision.models.detection.roi_heads import paste_masks_in_image as tv_paste

    rng = np.random.default_rng([size, padding, np.dtype(dtype).itemsize])
    masks = rng.uniform(0, 1, (60, 1, size, size)).astype(dtype)
    # torchvision fails on boxes that start beyond the image's right/bottom edge or end before its
    # top/left: keep every box overlapping the image (partly outside is fine), some of zero size; sizes from
    # 1 to 150 px cover both of PyTorch's resize kernels (grown box h + w <= 128 and > 128)
    xy = rng.uniform(-40, 220, (60, 2))
    wh = rng.uniform(45, 150, (60, 2)) * rng.uniform(0.02, 1, (60, 1))
    wh[:3] = 0
    xy[:3] = 20
    xy[3:] = np.minimum(xy[3:], [310, 230])
    boxes = np.concatenate([xy, np.maximum(xy + wh, 1)], axis=1).astype(dtype)
    expected = tv_paste(torch.from_numpy(masks), torch.from_numpy(boxes), (240, 320), padding=padding).numpy()
    out = paste_masks_in_image(masks, boxes, (240, 320), padding=padding)
    assert out.dtype == dtype and out.shape == expected.shape
    assert np.array_equal(out, expected), f"{int((out != expected).sum())} pixels differ"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out_h, out_w", [(60, 68), (60, 69), (1, 127), (127, 2), (31, 114), (21, 108), (30, 30)])
def test_resize_is_pytorchs_cpu_bilinear_bit_for_bit(dtype, out_h, out_w):
    # the resize alone against F.interpolate, at the edge of PyTorch's two kernels (h + w = 128: four corner
    # weights; 129: x then y, each rounding differently), at sizes whose float64 source index falls just
    # below an integer (34 -> 114 columns: column 28's source 34 / 114 * 28.5 - 0.5 is 7.999999999999999,
    # which PyTorch floors in float32, to 8), and equal sizes (a copy)
    torch, _ = import_torchvision()
    import torch.nn.functional as F

    from edudet.ops.masks import _SMALL_OUTPUT, _bilinear, _resize_axis

    for n in (30, 34, 12, 5):
        grid = np.random.default_rng([n, out_h, out_w]).uniform(-2, 2, (n, n)).astype(dtype)
        expected = F.interpolate(torch.from_numpy(grid)[None, None], size=(out_h, out_w), mode="bilinear",
                                 align_corners=False)[0, 0].numpy()
        rows = _resize_axis(out_h, n, 0, out_h, dtype)
        columns = _resize_axis(out_w, n, 0, out_w, dtype)
        out = _bilinear(grid, rows, columns, out_h + out_w <= _SMALL_OUTPUT)
        assert np.array_equal(out, expected), (n, int((out != expected).sum()))


@given(a=st.floats(-1e6, 1e6), b=st.floats(-1e6, 1e6), c=st.floats(-1e12, 1e12),
       single=st.booleans())
def test_fused_multiply_add_rounds_once(a, b, c, single):
    # against exact rational arithmetic: Fraction -> float rounds to nearest even, once
    from fractions import Fraction

    from edudet.ops.masks import _fused_multiply_add

    dtype = np.float32 if single else np.float64
    a, b, c = dtype(a), dtype(b), dtype(c)
    got = _fused_multiply_add(a, b, c)
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    assert got.dtype == dtype
    if single:
        # Fraction -> float32 in one rounding: the float64 neighbours bracket it, pick the float32 nearest
        below = np.float32(float(exact))
        candidates = [np.nextafter(below, np.float32(-np.inf)), below, np.nextafter(below, np.float32(np.inf))]
        best = min(candidates, key=lambda v: (abs(Fraction(float(v)) - exact), int(v.view(np.int32)) & 1))
        assert got == best
    else:
        assert got == float(exact)
    # the classic case a plain multiply-add gets wrong: (1 + 2^-k)(1 - 2^-k) - 1 = -2^-2k exactly
    k = 13 if single else 27  # 1 - 2^-2k rounds to 1: 2k beyond the 24 / 53 significant bits
    x, y = dtype(1 + 2.0 ** -k), dtype(1 - 2.0 ** -k)
    assert _fused_multiply_add(x, y, dtype(-1)) == dtype(-(2.0 ** (-2 * k)))
    assert x * y - dtype(1) == 0


# ---------------------------------------------------------------------------------------------------------
# extreme input (issue 12): coordinates up to 1e15 pasted exactly, everything else refused by name
# ---------------------------------------------------------------------------------------------------------
def test_boxes_beyond_two_to_the_30_are_pasted_exactly():
    # corners used to be clipped to +-2**30, which moved the mask. Mask columns [0, 1], padding 0, box x from
    # -3e9 to 1e9: 4e9 + 1 pixels; image pixel 0 is box pixel 3e9, source (3e9 + 0.5) * 2 / (4e9 + 1) - 0.5
    # = 0.99999999987: nearly all of column 1 -> ~1 (pixels 1, 2 read column 1 only: 1). Clipped to -2**30
    # it read source 0.536, half-way between the columns
    masks = np.array([[[[0.0, 1.0], [0.0, 1.0]]]])
    out = paste_masks_in_image(masks, np.array([[-3e9, -3e9, 1e9, 3e9]]), (2, 3), padding=0)
    np.testing.assert_allclose(out[0, 0], np.ones((2, 3)), rtol=0, atol=1e-9)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(boxes=np.array([[0, 0, 1.0000001e15, 1], [0, 0, 1, 1]])), ValueError, "coordinate of magnitude"),
    (dict(boxes=np.array([[-3e38, 0, 3e38, 1], [0, 0, 1, 1]], np.float32)), ValueError, "coordinate of magnitude"),
    (dict(padding=np.nan), ValueError, "padding must be finite"),
    (dict(padding=2**64), ValueError, "padding must fit in a 64-bit integer"),
    (dict(padding=1.5), ValueError, "padding must be an integer"),
    (dict(padding=10**6), ValueError, "padded masks"),
    (dict(image_shape=(np.nan, 10)), ValueError, r"image_shape\[0\] must be finite"),
    (dict(image_shape=(10, 2**64)), ValueError, r"image_shape\[1\] must fit in a 64-bit integer"),
    (dict(image_shape=np.array(10)), ValueError, "image_shape must be a"),
    (dict(image_shape=(10**6, 10**6)), ValueError, r"\(K, 1, H, W\) output"),
])
def test_bad_sizes_and_coordinates_are_named(kwargs, error, match):
    # issue 12, findings 13 and 14: named errors, and sizes checked before anything is allocated
    args = dict(masks=np.zeros((2, 1, 28, 28)), boxes=np.zeros((2, 4)), image_shape=(10, 10))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        paste_masks_in_image(**args)


def test_zero_d_array_parameters_are_unwrapped():
    masks = np.ones((1, 1, 2, 2), np.float32)
    expected = paste_masks_in_image(masks, np.array([[0, 0, 3, 3]], np.float32), (6, 6), 1)
    out = paste_masks_in_image(masks, np.array([[0, 0, 3, 3]], np.float32), (np.array(6), np.int64(6)), np.array(1))
    np.testing.assert_array_equal(out, expected)


def test_padding_that_grows_boxes_past_int64_pixels_is_refused():
    # M = 1, padding 600: boxes grow 1201-fold about their centres; (-1e15, -1e15, 1e15, 1e15) reaches
    # +-1e15 * 1201 = +-1.2e18, past the +-1e18 pixel coordinates whose widths still fit in int64
    with pytest.raises(ValueError, match="use a smaller padding"):
        paste_masks_in_image(np.ones((1, 1, 1, 1)), np.array([[-1e15, -1e15, 1e15, 1e15]]), (4, 4), padding=600)
    # the same box with padding 400 (x 801: 8.01e17) is pasted: the image lies in its middle, where the
    # 1 x 1 mask padded to 801 x 801 is 1 (cell 400): every pixel samples cell 400, up to float64 rounding
    out = paste_masks_in_image(np.ones((1, 1, 1, 1)), np.array([[-1e15, -1e15, 1e15, 1e15]]), (4, 4), padding=400)
    np.testing.assert_allclose(out, 1.0, rtol=0, atol=1e-9)


_magnitudes = st.sampled_from([0.0, 5e-324, 1e-310, 1e-45, 1e-30, 0.5, 3.0, 17.25, 1e3, 3e9, 1e14, 1e15])
_coordinate = st.builds(lambda m, sign: sign * m, _magnitudes, st.sampled_from([-1, 1]))


@given(corners=st.lists(st.tuples(_coordinate, _coordinate, _coordinate, _coordinate), min_size=1, max_size=3),
       dtype=st.sampled_from([np.float32, np.float64]), padding=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_extreme_finite_boxes_paste_probabilities(corners, dtype, padding, seed):
    # coordinates from subnormal to 1e15, either order: the result is finite probabilities of the right shape,
    # zero outside the grown box, and the same as pasting each box alone
    masks = np.random.default_rng(seed).uniform(0, 1, (len(corners), 1, 5, 5)).astype(dtype)
    boxes = np.array(corners, dtype=dtype)
    out = paste_masks_in_image(masks, boxes, (6, 7), padding)
    assert out.shape == (len(corners), 1, 6, 7) and out.dtype == dtype
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1 + 1e-6
    for k in range(len(corners)):
        alone = paste_masks_in_image(masks[k:k + 1], boxes[k:k + 1], (6, 7), padding)
        np.testing.assert_array_equal(alone[0], out[k])
