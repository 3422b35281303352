"""paste_masks_in_image: hand cases, properties, parity with torchvision, bad input; every backend."""
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edudet.ops import paste_masks_in_image
from edudet.ops.masks import _paste_masks
from helpers import assert_child_ok, import_torchvision

BACKENDS = _paste_masks.backends
CPU_BACKENDS = [b for b in BACKENDS if b != "cuda"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_by_two_mask_with_padding(backend):
    # M = 2, padding 1: scale (2 + 2) / 2 = 2; box (0, 0, 3, 3): centre 1.5, half-size 1.5 * 2 = 3 ->
    # (-1.5, -1.5, 4.5, 4.5) -> truncated (-1, -1, 4, 4): 6 x 6 box pixels starting at image pixel -1.
    # padded 1-D profile [0, 1, 1, 0] resized 4 -> 6: source (i + 0.5) * 4 / 6 - 0.5 =
    # -1/6 (-> 0), 1/2, 7/6, 11/6, 5/2, 19/6 -> values 0, 0.5, 1, 1, 0.5, 0 (19/6 reads the last, 0).
    # Box pixels 1..5 are image pixels 0..4: [0.5, 1, 1, 0.5, 0]; image pixel 5 is outside the box.
    masks = np.ones((1, 1, 2, 2), np.float32)
    out = paste_masks_in_image(masks, np.array([[0, 0, 3, 3]], np.float32), (6, 6), backend=backend)
    profile = np.array([0.5, 1, 1, 0.5, 0, 0], np.float32)
    assert out.shape == (1, 1, 6, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], np.outer(profile, profile), rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_padding_is_a_plain_resize_and_paste(backend):
    # padding 0, box (1, 2, 2, 3): scale 1, box unchanged, 2 x 2 pixels at rows 2..3, columns 1..2:
    # resizing 2 -> 2 with align_corners=False reads each source pixel exactly
    masks = np.array([[[[0.1, 0.2], [0.3, 0.4]]]])
    out = paste_masks_in_image(masks, np.array([[1.0, 2, 2, 3]]), (5, 4), padding=0, backend=backend)
    expected = np.zeros((5, 4))
    expected[2:4, 1:3] = [[0.1, 0.2], [0.3, 0.4]]
    np.testing.assert_allclose(out[0, 0], expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_boxes_partly_and_wholly_outside(backend):
    masks = np.ones((3, 1, 4, 4), np.float32)
    boxes = np.array([[-3, -3, 1, 1], [50, 50, 60, 60], [-20, -20, -10, -10]], np.float32)
    out = paste_masks_in_image(masks, boxes, (8, 8), padding=0, backend=backend)
    # box 0 covers pixels -3..1 (5 px: a constant mask resized stays 1): only image pixels 0..1 remain
    expected = np.zeros((8, 8), np.float32)
    expected[:2, :2] = 1
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-6)
    assert not out[1:].any()  # wholly outside: nothing pasted (torchvision raises on these)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_integer_masks(backend):
    out = paste_masks_in_image(np.zeros((0, 1, 28, 28)), np.zeros((0, 4)), (10, 12), backend=backend)
    assert out.shape == (0, 1, 10, 12) and out.dtype == np.float64
    out = paste_masks_in_image(np.zeros((0, 1, 5, 5), np.float32), np.zeros((0, 4)), (3, 4), backend=backend)
    assert out.shape == (0, 1, 3, 4) and out.dtype == np.float32
    out = paste_masks_in_image(np.ones((1, 1, 2, 2), np.int64), np.array([[0, 0, 1, 1]]), (3, 3), padding=0,
                               backend=backend)
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
    (dict(backend="tpu"), ValueError, "not usable here; choose one of"),
    (dict(backend="tpu", masks=np.zeros((0, 1, 28, 28)), boxes=np.zeros((0, 4))), ValueError, "not usable here"),
    (dict(backend=1), TypeError, "backend must be a str"),
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


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size, padding", [(28, 1), (14, 0), (28, 2), (7, 1), (1, 1)])
def test_parity_with_torchvision_is_bit_exact(dtype, size, padding, backend):
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
    out = paste_masks_in_image(masks, boxes, (240, 320), padding=padding, backend=backend)
    assert out.dtype == dtype and out.shape == expected.shape
    assert np.array_equal(out, expected), f"{int((out != expected).sum())} pixels differ"


@pytest.mark.skipif("cuda" not in BACKENDS, reason="numba.cuda not usable")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_parity_with_torchvision_is_bit_exact(dtype):
    # small (the simulator runs one Python thread per pixel): 6 masks into 16 x 20, boxes of 3..140 pixels
    # (both of PyTorch's resize kernels), some partly outside
    torch, _ = import_torchvision()
    from torchvision.models.detection.roi_heads import paste_masks_in_image as tv_paste

    rng = np.random.default_rng(np.dtype(dtype).itemsize)
    masks = rng.uniform(0, 1, (6, 1, 6, 6)).astype(dtype)
    xy = rng.uniform(-30, 10, (6, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(3, 140, (6, 2))], axis=1).astype(dtype)
    expected = tv_paste(torch.from_numpy(masks), torch.from_numpy(boxes), (16, 20)).numpy()
    out = paste_masks_in_image(masks, boxes, (16, 20), backend="cuda")
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


# ---------------------------------------------------------------------------------------------------------
# the fast twins (issue 15, item 2): the NumPy reference's bits on every backend
# ---------------------------------------------------------------------------------------------------------
_side = st.one_of(st.floats(0, 4), st.floats(4, 160), st.sampled_from([0.0, 1e-30, 5e-324, 3e9, 1e15]))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 9), padding=st.integers(0, 3),
       dtype=st.sampled_from([np.float32, np.float64]),
       widths=st.lists(st.tuples(_side, _side), min_size=1, max_size=4),
       image=st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_every_cpu_backend_equals_the_reference(seed, size, padding, dtype, widths, image):
    # boxes from empty to 160 px (both of PyTorch's kernels: h + w <= 128 and above) and huge, anywhere around
    # the image, negative masks too: every backend must give the reference's bits
    rng = np.random.default_rng(seed)
    masks = rng.uniform(-1, 2, (len(widths), 1, size, size)).astype(dtype)
    xy = rng.uniform(-50, 60, (len(widths), 2))
    boxes = np.clip(np.concatenate([xy, xy + np.array(widths)], axis=1), -1e15, 1e15).astype(dtype)
    expected = paste_masks_in_image(masks, boxes, image, padding, backend="numpy")
    for backend in CPU_BACKENDS:
        out = paste_masks_in_image(masks, boxes, image, padding, backend=backend)
        assert out.dtype == dtype and np.array_equal(out, expected), (backend, int((out != expected).sum()))


@pytest.mark.skipif("cuda" not in BACKENDS, reason="numba.cuda not usable")
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]), padding=st.integers(0, 2))
def test_cuda_equals_the_reference(seed, dtype, padding):
    rng = np.random.default_rng(seed)
    masks = rng.uniform(0, 1, (3, 1, 4, 4)).astype(dtype)
    xy = rng.uniform(-20, 10, (3, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 90, (3, 2))], axis=1).astype(dtype)
    expected = paste_masks_in_image(masks, boxes, (9, 11), padding, backend="numpy")
    np.testing.assert_array_equal(paste_masks_in_image(masks, boxes, (9, 11), padding, backend="cuda"), expected)


@lru_cache(maxsize=None)
def _numba_fma():
    """The kernel's fma intrinsic wrapped in one njit function (compiled once per session)."""
    from numba import njit

    from edudet.kernels.masks_numba import fma

    return njit(lambda x, y, z: fma(x, y, z))


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not usable")
@settings(max_examples=200, deadline=None)
@given(a=st.floats(-1e6, 1e6), b=st.floats(-1e6, 1e6), c=st.floats(-1e12, 1e12))
def test_numba_fma_rounds_once(a, b, c):
    # the kernel's llvm.fma intrinsic against the reference's exact NumPy fma (itself tested against Fractions
    # above), float32 and float64; and the classic case a plain multiply-add gets wrong
    from edudet.ops.masks import _fused_multiply_add

    call = _numba_fma()
    for dtype in (np.float32, np.float64):
        x, y, z = dtype(a), dtype(b), dtype(c)
        assert call(x, y, z) == _fused_multiply_add(x, y, z)  # numba returns a Python float: exact either way
    assert call(np.float32(1 + 2.0**-13), np.float32(1 - 2.0**-13), np.float32(-1)) == np.float32(-(2.0**-26))
    assert call(1 + 2.0**-27, 1 - 2.0**-27, -1.0) == -(2.0**-54)


def test_reference_fma_is_exact_near_float64_subnormals():
    # found by the numba twin: a * b = 9.9172558569045e-311 is subnormal, where Dekker's error term underflows
    # and the reference's round-to-odd sum was off by an ulp; such products are now redone with Fractions
    from fractions import Fraction

    from edudet.ops.masks import _fused_multiply_add

    a = np.array([9.958541990123054e-156, 1e-160, 3e-200, 2.0])
    c = np.array([0.0, 1e-310, -1e-320, 1.0])
    exact = [float(Fraction(float(x)) * Fraction(float(x)) + Fraction(float(z))) for x, z in zip(a, c)]
    assert _fused_multiply_add(a, a, c).tolist() == exact
    assert _fused_multiply_add(a[0], a[0], c[0]) == exact[0]


def test_absurd_boxes_never_write_out_of_range():
    # the kernels write through raw indices: boxes far outside, straddling the image by 1e15 pixels, grown to
    # 8e17 by padding 400, zero-sized, reversed, into 1 x 1 and 3 x 2 images: run in a child so that an
    # out-of-range write is a named crash, not a corrupted test process; every backend equals the reference
    assert_child_ok("""
import numpy as np
from edudet.ops import paste_masks_in_image
from edudet.ops.masks import _paste_masks

cases = {
    "straddling 1e15": (np.ones((2, 1, 3, 3)), [[-1e15, -1e15, 1e15, 1e15], [-1e15, 0, 1, 1e15]], (3, 2), 1),
    "far outside": (np.ones((4, 1, 2, 2)), [[1e15, 1e15, 1e15, 1e15], [-1e15, -1e15, -1e15 + 5, -1e15 + 5],
                                            [5, -1e15, 6, -1], [-1e15, 2, -1, 3]], (3, 2), 1),
    "grown to 8e17": (np.ones((1, 1, 1, 1)), [[-1e15, -1e15, 1e15, 1e15]], (1, 1), 400),
    "zero-sized and reversed": (np.ones((3, 1, 4, 4)), [[0, 0, 0, 0], [2, 2, 1, 1], [1e15, 0, -1e15, 2]], (3, 2), 0),
    "1 x 1 image": (np.ones((2, 1, 5, 5)), [[-3, -3, 3, 3], [0.2, 0.2, 0.7, 0.7]], (1, 1), 2),
}
for backend in [b for b in _paste_masks.backends if b != "cuda"]:
    for name, (masks, boxes, shape, padding) in cases.items():
        for dtype in (np.float32, np.float64):
            print(backend, name, dtype.__name__, flush=True)
            m, b = masks.astype(dtype), np.array(boxes, dtype)
            out = paste_masks_in_image(m, b, shape, padding, backend=backend)
            assert np.array_equal(out, paste_masks_in_image(m, b, shape, padding, backend="numpy")), name
print("done")
""")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_kernel_entries_check_shapes_and_box_range(backend):
    # the kernels are public (edudet.kernels.masks_*): called directly, wrong shapes and boxes beyond +-1e18
    # (whose source indices would overflow to out-of-range reads) are refused by name
    kernel = _paste_masks.get(backend)
    padded, boxes, out = np.zeros((2, 4, 4)), np.zeros((2, 4), np.int64), np.zeros((2, 1, 3, 3))
    kernel(padded, boxes, out)
    with pytest.raises(ValueError, match="padded_masks must have shape"):
        kernel(np.zeros((2, 4, 5)), boxes, out)
    with pytest.raises(ValueError, match="boxes must have shape"):
        kernel(padded, np.zeros((3, 4), np.int64), out)
    with pytest.raises(ValueError, match="out must have shape"):
        kernel(padded, boxes, np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="boxes must lie within"):
        kernel(padded, np.array([[-2**62, 0, 2**62, 1], [0, 0, 1, 1]], np.int64), out)


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not usable")
def test_kernels_page_example_runs():
    # docs/kernels/masks.md promises its examples run: execute each python block
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "kernels" / "masks.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/kernels/masks.md", "exec"), {})
