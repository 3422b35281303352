"""edudet.models.layers: convolution as im2col + matmul, folded batch norm, pooling, resizing."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet.models import layers
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
    np.testing.assert_allclose(interpolate_bilinear(x, (1, 4))[0, 0], [0, 1, 3, 4], atol=1e-6)


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
@pytest.mark.parametrize("column_bytes", [None, 1])
def test_conv_3x3_shifted_rows_match_definition(monkeypatch, h, w, column_bytes):
    # the 3x3 / stride 1 / padding 1 path (three shifted copies, one product, sums of row-shifted blocks):
    # thin maps where the junk columns and the two trailing zeros matter, one band or one output row per band
    if column_bytes is not None:
        monkeypatch.setattr(layers, "_COLUMN_BYTES", column_bytes)
    rng = np.random.default_rng(h * 10 + w)
    x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
    weight, bias = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    expected = _direct_conv(x, weight, bias, 1, 1)
    np.testing.assert_allclose(_conv(weight, bias, 1, 1)(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_conv(weight, bias, 1, 1)(x, relu=True), np.maximum(expected, 0), rtol=1e-5, atol=1e-5)


def test_conv_3x3_sees_new_weights():
    # the 3x3 path keeps its weights regrouped by row; loading weights or folding a batch norm must refresh them
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


@pytest.mark.parametrize("scale", [800 / 375, 320 / 375, 0.5, 1.0, 512 / 500])
def test_bilinear_matches_torch(scale):
    torch, _ = import_torchvision()
    img = np.random.default_rng(2).random((3, 375, 500)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(img)[None], scale_factor=scale, mode="bilinear",
                                               recompute_scale_factor=True, align_corners=False)[0].numpy()
    out = interpolate_bilinear(img, resize_output_size(375, 500, scale))
    assert out.shape == expected.shape
    # bit-identical where PyTorch's kernel uses fused multiply-add (every x86-64 build); 1 ulp otherwise
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-7)


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
