"""edudet.models.layers: convolution as im2col + matmul, folded batch norm, pooling, resizing."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet.models import layers, winograd
from edudet.models.layers import (Conv2d, Linear, fold_batch_norm, interpolate_bilinear, interpolate_nearest,
                                  max_pool2d, resize_output_size, softmax)
from tests.helpers import import_torchvision


def _conv(weight, bias=None, stride=1, padding=0):
    out_c, in_c, k, _ = weight.shape
    conv = Conv2d(in_c, out_c, k, stride=stride, padding=padding, bias=bias is not None)
    conv.set_weight(np.asarray(weight, np.float32), None if bias is None else np.asarray(bias, np.float32))
    return conv


def _direct_conv(x, weight, bias, stride, padding):
    """The definition, one output pixel at a time, in float64."""
    n, c, h, w = x.shape
    out_c, _, k, _ = weight.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h, out_w = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out = np.zeros((n, out_c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, :, i * stride: i * stride + k, j * stride: j * stride + k]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, weight.astype(np.float64))
    return out + bias[None, :, None, None]


# ---- hand cases -----------------------------------------------------------------------------------
def test_conv_3x3_hand():
    # x = [[1,2,3],[4,5,6],[7,8,9]], an all-ones 3x3 kernel, padding 1: each output is the sum of its
    # neighbourhood: corner (0,0) = 1+2+4+5 = 12, centre = 45, edge (0,1) = 1+2+3+4+5+6 = 21; bias 1 added
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    out = _conv(np.ones((1, 1, 3, 3)), bias=[1.0], padding=1)(x)
    np.testing.assert_array_equal(out[0, 0], [[13, 22, 17], [28, 46, 34], [25, 40, 29]])


def test_conv_stride_2_and_relu_hand():
    # 4x4 ramp 0..15, 1x1 kernel of weight -1, stride 2: picks pixels (0,0)=0, (0,2)=2, (2,0)=8, (2,2)=10,
    # negated -> 0, -2, -8, -10; bias +3 -> 3, 1, -5, -7; ReLU -> 3, 1, 0, 0
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    out = _conv(-np.ones((1, 1, 1, 1)), bias=[3.0], stride=2)(x, relu=True)
    np.testing.assert_array_equal(out[0, 0], [[3, 1], [0, 0]])


def test_fold_batch_norm_hand():
    # conv = identity (1x1 weight 1); BN weight 2, bias 1, mean 3, var 4 - eps: y = 2 (x - 3) / 2 + 1 = x - 2
    conv = _conv(np.ones((1, 1, 1, 1)))
    fold_batch_norm(conv, [2.0], [1.0], [3.0], [4.0 - 1e-5])
    x = np.array([0.0, 2.0, 5.0], np.float32).reshape(1, 1, 1, 3)
    np.testing.assert_allclose(conv(x)[0, 0, 0], [-2.0, 0.0, 3.0], atol=1e-6)


def test_max_pool_hand():
    # 3x3 windows, stride 2, padding 1 (-inf) on a 4x4 ramp: windows centred at (0,0),(0,2),(2,0),(2,2)
    # -> maxima at (1,1)=5, (1,3)=7, (3,1)=13, (3,3)=15
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(max_pool2d(x, 3, 2, 1)[0, 0], [[5, 7], [13, 15]])


def test_nearest_hand():
    # 2x2 -> 4x4 repeats each pixel twice; 2 -> 3 wide: src = floor(dst * 2/3) = 0, 0, 1
    x = np.array([[1, 2], [3, 4]], np.float32).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(interpolate_nearest(x, (4, 4))[0, 0],
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    np.testing.assert_array_equal(interpolate_nearest(x, (2, 3))[0, 0], [[1, 1, 2], [3, 3, 4]])


def test_bilinear_hand():
    # a row [0, 4] upsampled 2x: src = (dst + 0.5) / 2 - 0.5 = -0.25 (-> 0), 0.25, 0.75, 1.25 (-> last pixel)
    # values 0, 0.25 * 4 = 1, 0.75 * 4 = 3, 4
    x = np.array([0.0, 4.0], np.float32).reshape(1, 1, 2)
    np.testing.assert_array_equal(interpolate_bilinear(x, (1, 4))[0, 0], [0, 1, 3, 4])
    # [[0, 4], [8, 12]] -> 4 x 4 (4 + 4 <= 128: the four-corner path): rows and columns both read sources at
    # -0.25 (-> 0), 0.25, 0.75, 1.25 (-> 1). Row 1 = 0.75 [0, 1, 3, 4] + 0.25 [8, 9, 11, 12] = [2, 3, 5, 6];
    # e.g. pixel (1, 1) = 0 * 0.75 * 0.75 + 4 * 0.75 * 0.25 + 8 * 0.25 * 0.75 + 12 * 0.25 * 0.25 = 3
    x = np.array([[0.0, 4.0], [8.0, 12.0]], np.float32)[None]
    np.testing.assert_array_equal(interpolate_bilinear(x, (4, 4))[0],
                                  [[0, 1, 3, 4], [2, 3, 5, 6], [6, 7, 9, 10], [8, 9, 11, 12]])


def test_bilinear_double_rounding_hand():
    # 2370 -> 1024 columns: ratio 2370 / 1024 = 2.314453125 (exact), column 0 reads source 0.5 * 2.314453125 - 0.5
    # = 0.6572265625 = 673 / 1024, so pixels 0 and 1 with weights 351 / 1024 and 673 / 1024. With pixel 0 =
    # 47799 / 2^16, the fused product 47799 * 351 / 2^26 = 16777449 / 2^26 is 25 significant bits, half-way
    # between the float32s 16777448 / 2^26 and 16777450 / 2^26; pixel 1 adds a tiny 2^-56 (as round(b w1)), so
    # PyTorch's single rounding goes up to 16777450 / 2^26. Summing in float64 first rounds the 2^-56 away
    # (below float64's half ulp there, 2^-55) and the float32 tie then goes to even, 16777448 / 2^26: the
    # double rounding the resize must catch (the old float64-then-float32 sum gave 0.25000346).
    x = np.zeros((1, 1, 2370), np.float32)
    x[0, 0, 0] = 47799 / 2**16
    x[0, 0, 1] = np.float32(2.0**-56 / (673 / 1024))
    assert np.float32(x[0, 0, 1] * np.float32(673 / 1024)) == np.float32(2.0**-56)
    out = interpolate_bilinear(x, (1, 1024))
    assert out[0, 0, 0] == np.float32(16777450 / 2**26)
    assert np.float32(np.float64(x[0, 0, 0]) * (351 / 1024) + 2.0**-56) == np.float32(16777448 / 2**26)


def test_resize_output_size_hand():
    # 300 x 400 with s = 320 / 300 = 1.0667: floor(320.0) = 320, floor(426.67) = 426
    assert resize_output_size(300, 400, 320 / 300) == (320, 426)


def test_linear_and_softmax_hand():
    lin = Linear(2, 2)
    lin.set_weight(np.array([[1.0, 2.0], [0.0, -1.0]]), np.array([0.5, 0.0]))
    # [1, 1] W^T + b = [1 + 2 + 0.5, -1] = [3.5, -1]
    np.testing.assert_allclose(lin(np.array([[1.0, 1.0]], np.float32)), [[3.5, -1.0]])
    # softmax([0, ln 3]) = [1/4, 3/4]
    np.testing.assert_allclose(softmax(np.array([[0.0, np.log(3.0)]], np.float32)), [[0.25, 0.75]], rtol=1e-6)


def test_conv_bands_equal_one_band(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 9, 7)).astype(np.float32)
    conv = _conv(rng.standard_normal((5, 4, 3, 3)), bias=rng.standard_normal(5), padding=1)
    whole = conv(x)
    monkeypatch.setattr(layers, "_COLUMN_BYTES", 4 * 4 * 9 * 7 * 2)  # two output rows per band
    np.testing.assert_allclose(conv(x), whole, rtol=1e-6, atol=1e-6)  # BLAS may block the sums differently



@pytest.mark.parametrize("h,w", [(1, 1), (1, 5), (6, 1), (2, 2), (7, 4)])
@pytest.mark.parametrize("band_bytes", [None, 1])
def test_conv_3x3_winograd_path_matches_definition(monkeypatch, h, w, band_bytes):
    # the 3x3 / stride 1 / padding 1 path (Winograd F(2x2, 3x3), models/winograd.py): thin and odd maps where
    # the last tile row / column hangs over the edge, one band or one tile row per band (crossing images)
    if band_bytes is not None:
        monkeypatch.setattr(winograd, "_BAND_BYTES", band_bytes)
    rng = np.random.default_rng(h * 10 + w)
    x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
    weight, bias = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    expected = _direct_conv(x, weight, bias, 1, 1)
    np.testing.assert_allclose(_conv(weight, bias, 1, 1)(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_conv(weight, bias, 1, 1)(x, relu=True), np.maximum(expected, 0), rtol=1e-5, atol=1e-5)


def test_conv_3x3_sees_new_weights():
    # the 3x3 path keeps its Winograd-transformed filters; loading weights or folding a batch norm must refresh them
    x = np.ones((1, 1, 3, 3), np.float32)
    conv = _conv(np.ones((1, 1, 3, 3)), padding=1)
    assert conv(x)[0, 0, 1, 1] == 9  # all nine taps of the centre pixel
    conv.set_weight(2 * np.ones((1, 1, 3, 3), np.float32))
    assert conv(x)[0, 0, 1, 1] == 18
    fold_batch_norm(conv, [1.0], [0.0], [0.0], [0.25 - 1e-5])  # scale 1 / sqrt(0.25) = 2
    assert conv(x)[0, 0, 1, 1] == pytest.approx(36, rel=1e-6)


# ---- properties -----------------------------------------------------------------------------------
@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([1, 3]), st.integers(1, 2), st.integers(0, 1),
       st.integers(3, 7), st.integers(3, 7), st.integers(0, 2**32 - 1))
def test_conv_matches_definition(in_c, out_c, k, stride, padding, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, in_c, h, w)).astype(np.float32)
    weight = rng.standard_normal((out_c, in_c, k, k)).astype(np.float32)
    bias = rng.standard_normal(out_c).astype(np.float32)
    out = _conv(weight, bias, stride, padding)(x)
    np.testing.assert_allclose(out, _direct_conv(x, weight, bias, stride, padding), rtol=1e-5, atol=1e-5)


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 20), st.integers(1, 20),
       st.floats(-5, 5, allow_nan=False))
def test_bilinear_keeps_constants(h, w, out_h, out_w, value):
    x = np.full((2, h, w), value, np.float32)
    out = interpolate_bilinear(x, (out_h, out_w))
    assert out.shape == (2, out_h, out_w)
    np.testing.assert_allclose(out, value, rtol=1e-6, atol=1e-6)


@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_bilinear_within_input_range(h, w, seed):
    x = np.random.default_rng(seed).random((1, h, w)).astype(np.float32)
    out = interpolate_bilinear(x, (2 * h + 1, 3 * w))
    assert out.min() >= x.min() - 1e-6 and out.max() <= x.max() + 1e-6


# ---- parity with torch ----------------------------------------------------------------------------
@pytest.mark.parametrize("in_c,out_c,k,stride,padding", [(3, 8, 7, 2, 3), (8, 8, 3, 1, 1), (8, 16, 3, 2, 1),
                                                         (16, 32, 1, 2, 0), (8, 16, 1, 1, 0)])
def test_conv_matches_torch(in_c, out_c, k, stride, padding):
    torch, _ = import_torchvision()
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.standard_normal((2, in_c, 23, 30)).astype(np.float32)
    weight = (rng.standard_normal((out_c, in_c, k, k)) / np.sqrt(in_c * k * k)).astype(np.float32)
    bias = rng.standard_normal(out_c).astype(np.float32)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias),
                                          stride, padding).numpy()
    np.testing.assert_allclose(_conv(weight, bias, stride, padding)(x), expected, rtol=1e-5, atol=1e-5)


def test_pooling_and_nearest_match_torch():
    torch, _ = import_torchvision()
    x = np.random.default_rng(1).standard_normal((1, 4, 33, 47)).astype(np.float32)
    tx = torch.from_numpy(x)
    np.testing.assert_array_equal(max_pool2d(x, 3, 2, 1), torch.nn.functional.max_pool2d(tx, 3, 2, 1).numpy())
    for size in [(66, 94), (40, 50), (20, 30), (33, 47)]:
        expected = torch.nn.functional.interpolate(tx, size=size, mode="nearest").numpy()
        np.testing.assert_array_equal(interpolate_nearest(x, size), expected)


def _torch_bilinear(torch, x, size=None, scale=None, threads=2):
    """torch's ``F.interpolate(x[None], mode="bilinear", align_corners=False)[0]`` run on `threads` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # import_torchvision pins 1; torch's default is one per core
    try:
        how = {"size": size} if size is not None else {"scale_factor": scale, "recompute_scale_factor": True}
        return torch.nn.functional.interpolate(torch.from_numpy(x)[None], mode="bilinear", align_corners=False,
                                               **how)[0].numpy()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("scale", [800 / 375, 320 / 375, 0.5, 1.0, 512 / 500])
def test_bilinear_matches_torch(scale):
    # the transform's sizes and 3 channels: torch on several threads (its default) takes the separable kernel
    torch, _ = import_torchvision()
    img = np.random.default_rng(2).random((3, 375, 500)).astype(np.float32)
    expected = _torch_bilinear(torch, img, scale=scale)
    np.testing.assert_array_equal(interpolate_bilinear(img, resize_output_size(375, 500, scale)), expected)


def test_bilinear_single_thread_matches_torch_on_one_thread():
    # on one thread torch takes its four-corner kernel for 3 channels at every size, so its result depends on
    # its thread count; single_thread=True reproduces that one
    torch, _ = import_torchvision()
    img = np.random.default_rng(3).random((3, 150, 200)).astype(np.float32)
    one, several = (_torch_bilinear(torch, img, (320, 426), threads=n) for n in (1, 2))
    assert (one != several).any()
    np.testing.assert_array_equal(interpolate_bilinear(img, (320, 426), single_thread=True), one)
    np.testing.assert_array_equal(interpolate_bilinear(img, (320, 426)), several)


@pytest.mark.parametrize("channels", [1, 3, 4, 8, 9, 20])
@pytest.mark.parametrize("size", [(64, 64), (64, 65), (1, 127), (127, 2), (100, 1)])
def test_bilinear_kernel_choice_matches_torch(channels, size):
    # H + W = 128 is torch's four-corner kernel, 129 its separable one; from 8 channels on, whole SIMD registers
    torch, _ = import_torchvision()
    x = np.random.default_rng([channels, *size]).standard_normal((channels, 23, 37)).astype(np.float32)
    for threads in (2, 1):
        expected = _torch_bilinear(torch, x, size, threads=threads)
        np.testing.assert_array_equal(interpolate_bilinear(x, size, single_thread=threads == 1), expected)


@pytest.mark.parametrize("channels", [1, 3, 4, 9])
def test_bilinear_one_pixel_input_matches_torch(channels):
    # a contiguous (1, C, 1, 1) tensor is also channels-last, so torch takes its four-corner kernel for more than
    # 3 channels even for a large output; its weights on the one pixel, (1 - f, f), need not sum to exactly 1
    torch, _ = import_torchvision()
    x = np.random.default_rng(channels).standard_normal((channels, 1, 1)).astype(np.float32)
    for threads in (2, 1):
        expected = _torch_bilinear(torch, x, (90, 150), threads=threads)
        np.testing.assert_array_equal(interpolate_bilinear(x, (90, 150), single_thread=threads == 1), expected)


@given(h=st.integers(1, 24), w=st.integers(1, 24), out_h=st.integers(1, 90), out_w=st.integers(1, 90),
       channels=st.sampled_from([1, 2, 3, 4, 8, 11, 17]), magnitude=st.sampled_from([1e-38, 1e-3, 1.0, 1e6]),
       seed=st.integers(0, 2**32 - 1))
def test_bilinear_equals_torch_bit_for_bit(h, w, out_h, out_w, channels, magnitude, seed):
    # every size (tiny ones, both sides of H + W = 128, up- and downsampling) and channel count, on several
    # threads and on one
    torch, _ = import_torchvision()
    x = (np.random.default_rng(seed).standard_normal((channels, h, w)) * magnitude).astype(np.float32)
    for threads in (2, 1):
        expected = _torch_bilinear(torch, x, (out_h, out_w), threads=threads)
        np.testing.assert_array_equal(interpolate_bilinear(x, (out_h, out_w), single_thread=threads == 1), expected)


def test_bilinear_bands_equal_one_pass(monkeypatch):
    # the separable path works in bands of rows; one row per band gives the same bits
    x = np.random.default_rng(4).standard_normal((2, 40, 30)).astype(np.float32)
    whole = interpolate_bilinear(x, (97, 61))
    monkeypatch.setattr(layers, "_BAND_BYTES", 1)
    np.testing.assert_array_equal(interpolate_bilinear(x, (97, 61)), whole)


def test_bilinear_bad_input_and_empty():
    with pytest.raises(ValueError, match=r"x must have shape \(C, h, w\)"):
        interpolate_bilinear(np.zeros((4, 5), np.float32), (2, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(C, h, w\) with h, w >= 1"):
        interpolate_bilinear(np.zeros((1, 0, 5), np.float32), (2, 2))
    with pytest.raises(ValueError, match=r"size\[0\] must be >= 1"):
        interpolate_bilinear(np.zeros((1, 4, 5), np.float32), (0, 2))
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        interpolate_bilinear(np.full((1, 2, 2), np.inf, np.float32), (3, 3))
    with pytest.raises(TypeError, match="x must have a real numeric dtype"):
        interpolate_bilinear(np.zeros((1, 2, 2), bool), (3, 3))
    with pytest.raises(ValueError, match="interpolate_bilinear's .* GiB"):
        interpolate_bilinear(np.zeros((3, 2, 2), np.float32), (10**5, 10**5))
    out = interpolate_bilinear(np.zeros((0, 4, 5), np.float32), (7, 9))
    assert out.shape == (0, 7, 9) and out.dtype == np.float32
    # other real dtypes compute in float32, as PyTorch's float32 kernel
    ramp = np.arange(6).reshape(1, 2, 3)
    np.testing.assert_array_equal(interpolate_bilinear(ramp, (4, 6)),
                                  interpolate_bilinear(ramp.astype(np.float32), (4, 6)))


# ---- group norm: the Numba kernel against the NumPy reference and torch ---------------------------------
def test_group_norm_kernel_matches_reference_and_torch():
    torch, _ = import_torchvision()
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2, 8, 5, 7)) * 3 + 1).astype(np.float32)
    x[1, 4:] = 2.5  # a constant group: variance 0 (no NaN; x scale + shift cancels to ~bias, as in torch)
    norm = layers.GroupNorm(2, 8)
    norm.set_weight(rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32))
    for relu in (False, True):
        fast = norm(x.copy(), relu=relu)
        reference = norm.reference(x.copy(), relu=relu)
        expected = torch.nn.functional.group_norm(torch.from_numpy(x), 2, torch.from_numpy(norm.weight),
                                                  torch.from_numpy(norm.bias)).numpy()
        if relu:
            expected = np.maximum(expected, 0)
        np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-5)
        # in the constant group x scale + shift cancels (scale ~ 1/sqrt(eps) = 316): each library lands within
        # ~1e-4 of the bias by its own rounding, so torch is compared on the first image only
        np.testing.assert_allclose(fast[0], expected[0], rtol=1e-5, atol=1e-5)


def test_group_norm_refuses_bad_arguments_by_name():
    # each was accepted (or failed unnamed) before: 0 groups -> ZeroDivisionError, -1 -> a reshape error at the
    # call, eps NaN -> NaN everywhere
    for args, kwargs, message in [
        ((0, 4), {}, "num_groups must be >= 1"),
        ((-1, 4), {}, "num_groups must be >= 1"),
        ((1.5, 3), {}, "num_groups must be an integer"),
        ((2, 0), {}, "num_channels must be >= 1"),
        ((3, 4), {}, r"num_channels \(4\) must be divisible by num_groups \(3\)"),
        ((2, 4), {"eps": float("nan")}, "eps must be finite"),
        ((2, 4), {"eps": float("inf")}, "eps must be finite"),
        ((2, 4), {"eps": -1e-5}, "eps must be >= 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            layers.GroupNorm(*args, **kwargs)
    with pytest.raises(TypeError, match="num_groups must be a real number"):
        layers.GroupNorm("2", 4)
    assert layers.GroupNorm(np.int64(2), 4.0, eps=np.array(0.0)).num_channels == 4  # whole floats, 0-d arrays


def test_group_norm_refuses_wrong_inputs_and_weights_by_name():
    norm = layers.GroupNorm(2, 4)
    for call in (norm, norm.reference):
        for shape in [(1, 3, 2, 2), (4, 2, 2), (1, 4, 2, 2, 1)]:
            with pytest.raises(ValueError, match=r"x must be \(N, 4, H, W\) for GroupNorm\(2, 4\)"):
                call(np.ones(shape, np.float32))
        with pytest.raises(TypeError, match="x must be a floating-point numpy array"):
            call(np.ones((1, 4, 2, 2), np.int32))  # cannot be normalised in place
    # the kernel reads one weight and bias per channel without bounds checks
    with pytest.raises(ValueError, match=r"weight must be \(4,\)"):
        norm.set_weight(np.ones(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"bias must be \(4,\)"):
        norm.load_state({"weight": np.ones(4, np.float32), "bias": np.zeros((1, 4), np.float32)})


@pytest.mark.parametrize("shape", [(0, 4, 3, 3), (2, 4, 0, 3), (1, 4, 3, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_norm_empty_maps_come_back_empty(shape, dtype):
    # (0, C, H, W) used to fail in reshape(0, G, -1) (NumPy cannot infer -1 from a zero size)
    norm = layers.GroupNorm(2, 4)
    for call in (norm, norm.reference):
        out = call(np.zeros(shape, dtype), relu=True)
        assert out.shape == shape and out.dtype == dtype


def test_group_norm_reference_redoes_extreme_groups_in_float64():
    # Each group is one channel of 4 values, eps = 0, weight 1, bias 0.
    # group 0: v, -v, v, -v with v = 3e38: mean 0, var v^2 = 9e76, so y = +-v / v = +-1. In float32 each square
    #   overflows (torch gives NaN here); the float64 redo gives +-1 to float32 rounding of 1 / v.
    # group 1: 0, 0, 0, 4e-22: mean 1e-22; deviations -1e-22 (x3), 3e-22; var = (3 + 9)e-44 / 4 = 3e-44,
    #   std = sqrt(3) 1e-22, so y = -1 / sqrt(3) = -0.57735 (x3), 3 / sqrt(3) = 1.7320508. In float32 the
    #   squares 1e-44 are subnormal (about 7 ulps): torch's variance is 2.7% off (-0.5695, 1.7086).
    # group 2: ordinary values 1, 2, 3, 6: mean 3, var (4 + 1 + 0 + 9) / 4 = 3.5: not redone.
    v = np.float32(3e38)
    x = np.array([v, -v, v, -v, 0, 0, 0, 4e-22, 1, 2, 3, 6], np.float32).reshape(1, 3, 2, 2)
    norm = layers.GroupNorm(3, 3, eps=0.0)
    third = 1 / np.sqrt(3)
    expected = np.array([1, -1, 1, -1, -third, -third, -third, 3 * third,
                         -2 / np.sqrt(3.5), -1 / np.sqrt(3.5), 0, 3 / np.sqrt(3.5)]).reshape(1, 3, 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the float32 overflow is expected and handled: no RuntimeWarning
        reference = norm.reference(x.copy())
    # within float32 rounding of the affine x scale + shift it is evaluated as (a few ulps of ~1)
    np.testing.assert_allclose(reference, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm(x.copy()), expected, rtol=1e-6, atol=1e-6)  # the Numba kernel: float64 squares
