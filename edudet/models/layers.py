"""The layers a detector's forward pass needs, in NumPy: convolution, folded batch norm, pooling, resizing.

Arrays are ``(N, C, H, W)`` float32, torchvision's layout, so every intermediate can be compared with the
torch model's. A convolution is one matrix product per image: the input's ``k x k`` patches are copied
into the columns of a ``(C_in k k, H_out W_out)`` matrix (im2col) and multiplied by the ``(C_out, C_in k k)``
weight matrix (BLAS sgemm does the work). A 1x1 convolution needs no copy at all: ``(C_in, H W)`` is already
the column matrix. The 3x3, stride-1 convolutions, most of a detector's arithmetic, take Winograd's
F(2x2, 3x3) instead (`winograd.py`: 4/9 of the multiply-adds). Batch norm in inference is an affine map per channel, so it is folded into the
preceding convolution's weights and bias once, at load time (Ioffe & Szegedy, 2015; the usual deployment
trick), and costs nothing per image.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np

from .._validate import as_image_size, as_real_array, check_allocation, check_finite, check_scalar
from ..ops.masks import _SMALL_OUTPUT, _bilinear, _fused_multiply_add, _resize_axis
from . import winograd

__all__ = [
    "Conv2d", "Linear", "fold_batch_norm", "max_pool2d", "interpolate_nearest", "interpolate_bilinear",
    "relu_", "softmax", "GroupNorm", "ConvTranspose2d", "FrozenBatchNorm2d",
]

# im2col is done in row bands so the column matrix stays under this size: ResNet's 7x7 stem on an 800 x 1216
# image would otherwise need 143 MB. 32 MB keeps one forward's peak memory below torchvision's; much smaller
# bands make the products too thin for BLAS
_COLUMN_BYTES = 32 * 2**20


def relu_(x: np.ndarray) -> np.ndarray:
    """In-place ReLU (every activation here is a fresh array, so no input is modified)."""
    return np.maximum(x, 0, out=x)


class Conv2d:
    """``(N, C_in, H, W)`` -> ``(N, C_out, H_out, W_out)``, float32, zero padding, torchvision's weight layout.

    ``H_out = (H + 2 padding - kernel_size) // stride + 1``. Weights are ``(C_out, C_in, k, k)`` as in
    ``torch.nn.Conv2d``; they are kept as the ``(C_out, C_in k k)`` matrix the product uses.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.has_bias = bias
        self.matrix = np.zeros((out_channels, in_channels * kernel_size * kernel_size), np.float32)
        self.bias = np.zeros(out_channels, np.float32)

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        k = self.kernel_size
        return (self.out_channels, self.in_channels, k, k)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """``weight`` (and ``bias``, unless built with ``bias=False``): torch's ``Conv2d`` keys."""
        return {"weight": self.weight_shape, **({"bias": (self.out_channels,)} if self.has_bias else {})}

    def load_state(self, state) -> None:
        self.set_weight(state["weight"], state["bias"] if self.has_bias else None)

    def set_weight(self, weight: np.ndarray, bias: np.ndarray | None = None) -> None:
        """Store torch-layout weights (and bias) as the float32 matrix the product uses."""
        self.matrix = np.ascontiguousarray(np.asarray(weight, np.float32).reshape(self.out_channels, -1))
        self.bias = (np.zeros(self.out_channels, np.float32) if bias is None
                     else np.ascontiguousarray(bias, dtype=np.float32))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        k, s, p = self.kernel_size, self.stride, self.padding
        return (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1

    def __call__(self, x: np.ndarray, relu: bool = False) -> np.ndarray:
        n, c, h, w = x.shape
        if self.kernel_size == 3 and self.stride == 1 and self.padding == 1:
            # most of a detector's FLOPs: Winograd's F(2x2, 3x3), 4/9 of im2col's multiply-adds (winograd.py)
            return winograd.conv3x3(x, self._winograd_filters(), self.bias, relu)
        out_h, out_w = self.output_size(h, w)
        out = np.empty((n, self.out_channels, out_h, out_w), np.float32)
        for i in range(n):
            self._single(x[i], out[i].reshape(self.out_channels, out_h * out_w), out_h, out_w, relu)
        return out

    def _single(self, x: np.ndarray, out: np.ndarray, out_h: int, out_w: int, relu: bool) -> None:
        """One image: x (C, H, W) -> out (C_out, H_out W_out) = conv + bias [then ReLU], written in place."""
        k, s, p = self.kernel_size, self.stride, self.padding
        c = x.shape[0]
        if k == 1 and p == 0:
            # a 1x1 convolution is a plain matrix product over the channel axis
            cols = x if s == 1 else x[:, ::s, ::s]
            np.matmul(self.matrix, np.ascontiguousarray(cols).reshape(c, -1), out=out)
            self._add_bias(out.reshape(self.out_channels, out_h, out_w), relu)
            return
        if p:
            padded = np.zeros((c, x.shape[1] + 2 * p, x.shape[2] + 2 * p), np.float32)
            padded[:, p:-p, p:-p] = x
        else:
            padded = x
        rows_per_band = max(1, min(out_h, _COLUMN_BYTES // (4 * c * k * k * out_w)))
        buffer = np.empty(c * k * k * rows_per_band * out_w, np.float32)
        scratch = np.empty(self.out_channels * rows_per_band * out_w, np.float32) if rows_per_band < out_h else None
        for row0 in range(0, out_h, rows_per_band):
            rows = min(rows_per_band, out_h - row0)
            cols = buffer[: c * k * k * rows * out_w].reshape(c, k, k, rows, out_w)
            for dy in range(k):
                top = row0 * s + dy
                for dx in range(k):
                    # tap (dy, dx) of every output pixel in the band: a strided view of the padded input
                    cols[:, dy, dx] = padded[:, top: top + s * (rows - 1) + 1: s, dx: dx + s * (out_w - 1) + 1: s]
            if rows == out_h:
                np.matmul(self.matrix, cols.reshape(c * k * k, rows * out_w), out=out)
            else:
                # BLAS writes only contiguous outputs: the band's product lands in a scratch matrix first
                band = np.matmul(self.matrix, cols.reshape(c * k * k, rows * out_w),
                                 out=scratch[: self.out_channels * rows * out_w].reshape(self.out_channels, -1))
                out[:, row0 * out_w: (row0 + rows) * out_w] = band
        self._add_bias(out.reshape(self.out_channels, out_h, out_w), relu)

    def _add_bias(self, out: np.ndarray, relu: bool) -> None:
        """out (C_out, h, w) += bias, then ReLU, in place."""
        out += self.bias[:, None, None]
        if relu:
            relu_(out)

    def _winograd_filters(self) -> np.ndarray:
        """``(16, C_out, C_in)``: the 3x3 weights through Winograd's filter transform, kept until `matrix` is
        replaced (loading or folding a batch norm assigns a new array)."""
        if getattr(self, "_filters_of", None) is not self.matrix:
            self._filters = winograd.filter_transform(self.matrix.reshape(self.weight_shape))
            self._filters_of = self.matrix
        return self._filters


def fold_batch_norm(conv: Conv2d, weight, bias, running_mean, running_var, eps: float = 1e-5) -> None:
    """Fold an inference batch norm that follows `conv` into its weights: ``y = scale (conv x) + shift``.

    ``scale = weight / sqrt(running_var + eps)``, ``shift = bias - running_mean scale`` (computed in float64,
    then stored as float32); torchvision's BatchNorm2d and FrozenBatchNorm2d both use eps = 1e-5, except
    that torchvision sets eps = 0 when it loads the COCO_V1 weights of Faster/Mask R-CNN and RetinaNet
    (their original training used 0): the models' `bn_eps` keyword.
    """
    scale = np.asarray(weight, np.float64) / np.sqrt(np.asarray(running_var, np.float64) + eps)
    shift = np.asarray(bias, np.float64) - np.asarray(running_mean, np.float64) * scale
    conv.matrix = np.ascontiguousarray((conv.matrix.astype(np.float64) * scale[:, None]).astype(np.float32))
    conv.bias = (conv.bias.astype(np.float64) * scale + shift).astype(np.float32)


class FrozenBatchNorm2d:
    """An inference batch norm that lives inside the convolution before it (`fold_batch_norm`).

    It has torch's ``BatchNorm2d`` keys (``weight``, ``bias``, ``running_mean``, ``running_var``) but no
    forward pass of its own: loading it folds it into `conv`, whose weights must be loaded first (a model
    declares the conv before its norm, as torchvision lists them).
    """

    def __init__(self, conv: "Conv2d", eps: float = 1e-5):
        self.conv, self.eps = conv, float(eps)

    def __repr__(self) -> str:
        return f"FrozenBatchNorm2d({self.conv.out_channels}, eps={self.eps:g})"

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        channels = (self.conv.out_channels,)
        return {"weight": channels, "bias": channels, "running_mean": channels, "running_var": channels}

    def load_state(self, state) -> None:
        fold_batch_norm(self.conv, state["weight"], state["bias"], state["running_mean"], state["running_var"],
                        self.eps)


class Linear:
    """``(N, in_features)`` -> ``(N, out_features)``: ``x W^T + b`` with torch's ``(out, in)`` weight layout."""

    def __init__(self, in_features: int, out_features: int):
        self.in_features, self.out_features = in_features, out_features
        self.weight_t = np.zeros((in_features, out_features), np.float32)
        self.bias = np.zeros(out_features, np.float32)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features})"

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}

    def load_state(self, state) -> None:
        self.set_weight(state["weight"], state["bias"])

    def set_weight(self, weight: np.ndarray, bias: np.ndarray) -> None:
        # stored transposed (a view of the torch layout): x @ W^T is then a plain row-major product
        self.weight_t = np.asarray(weight, np.float32).T
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)

    def __call__(self, x: np.ndarray, relu: bool = False) -> np.ndarray:
        out = x @ self.weight_t
        out += self.bias
        return relu_(out) if relu else out


def max_pool2d(x: np.ndarray, kernel_size: int, stride: int, padding: int = 0) -> np.ndarray:
    """``(N, C, H, W)`` -> max over ``kernel_size`` windows every `stride` pixels, padding with -inf."""
    n, c, h, w = x.shape
    out_h = (h + 2 * padding - kernel_size) // stride + 1
    out_w = (w + 2 * padding - kernel_size) // stride + 1
    if padding:
        padded = np.full((n, c, h + 2 * padding, w + 2 * padding), -np.inf, np.float32)
        padded[:, :, padding:-padding, padding:-padding] = x
    else:
        padded = x
    out = None
    for dy in range(kernel_size):
        for dx in range(kernel_size):
            tap = padded[:, :, dy: dy + stride * (out_h - 1) + 1: stride, dx: dx + stride * (out_w - 1) + 1: stride]
            if out is None:
                out = tap.copy()
            else:
                np.maximum(out, tap, out=out)
    return out


def _nearest_source_index(out_size: int, in_size: int) -> np.ndarray:
    # PyTorch's "nearest": src = min(floor(dst * (in / out)), in - 1), the ratio in float32
    if out_size == in_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) // 2
    ratio = np.float32(in_size) / np.float32(out_size)
    return np.minimum(np.floor(np.arange(out_size, dtype=np.float32) * ratio).astype(np.int64), in_size - 1)


def interpolate_nearest(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, C, h, w)`` -> ``(N, C, H, W)`` by PyTorch's nearest rule (``F.interpolate(mode="nearest")``)."""
    h, w = x.shape[-2:]
    out_h, out_w = size
    if (out_h, out_w) == (2 * h, 2 * w):  # the FPN's usual case: a 2x repeat, done by broadcasting
        out = np.empty((*x.shape[:-2], h, 2, w, 2), x.dtype)
        out[...] = x[:, :, :, None, :, None]
        return out.reshape(*x.shape[:-2], out_h, out_w)
    rows = _nearest_source_index(out_h, h)
    cols = _nearest_source_index(out_w, w)
    return x[:, :, rows][:, :, :, cols]


# PyTorch's CPU bilinear resize (``upsample_bilinear2d``, float32, ``align_corners=False``) has two kernels that
# round differently, and picks one by shape (found by experiment with torch 2.14.1 on x86-64):
# - the "four corners" kernel (its channels-last one) sums the four source pixels, each weighted by
#   ``h_weight * w_weight``. It runs when out_h + out_w <= 128 (`_SMALL_OUTPUT`, the rule the mask paste
#   matches), when the input is channels-last contiguous with more than 3 channels (for a contiguous
#   (1, C, h, w) tensor that means a 1 x 1 image) and, on one thread only, for 3 channels;
# - otherwise the separable kernel mixes along x on the two source rows, then along y.
# In the four-corner kernel, channels go through SIMD registers of this many floats at a time and those sums
# round in another order than the leftover channels: 8 with AVX2 (measured); 16 where PyTorch dispatches
# to AVX-512 (its rule: AVX512 F, BW, DQ, VL and FMA; inferred, not measured). ATEN_CPU_CAPABILITY overrides.
def _torch_vector_width() -> int:
    capability = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    if capability:
        return 16 if capability == "avx512" else 8
    core = getattr(np, "_core", None) or getattr(np, "core", None)  # NumPy 2.x, 1.x
    features = getattr(getattr(core, "_multiarray_umath", None), "__cpu_features__", None)
    if not features:
        return 8
    return 16 if all(features.get(name) for name in ("AVX512F", "AVX512BW", "AVX512DQ", "AVX512VL", "FMA3")) else 8


_VECTOR_WIDTH = _torch_vector_width()

# Half-way between two float32s, a float64 reads 1000...0 in its low 29 bits (float64 keeps 29 more), and in
# more of them for float32's subnormals: its bits 0..27 are 0, and bits 16..27 make a cheap first test
_LOW_29_BITS, _HALF_WAY = np.uint64(0x1FFFFFFF), np.uint64(0x10000000)
_BITS_16_TO_31 = 1 if sys.byteorder == "little" else 2  # which of a float64's four uint16s holds them
_FLOAT32_TINY = np.finfo(np.float32).tiny


def _mix(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray, out: np.ndarray) -> None:
    """``out = a wa + b wb`` in float32 as PyTorch's separable kernel rounds it: ``fma(a, wa, round(b wb))``.

    a, b: float32 C-contiguous arrays of out's shape (b is overwritten); wa, wb: float32 weights that
    broadcast to it. The float64 product ``a wa`` is exact, and rounding the float64 sum to float32 is the
    one correct rounding except where that sum sits half-way between two float32s (a double rounding may go
    the wrong way): those few are found and redone with the exact fused multiply-add the mask paste uses.
    """
    rounded = np.multiply(b, wb, out=b)  # rounded to float32 first, as in the fused kernel
    total = a.astype(np.float64)
    total *= wa  # exact: a float32 x float32 product fits in a float64
    total += rounded
    out[...] = total
    maybe = np.flatnonzero((total.view(np.uint16)[..., _BITS_16_TO_31::4] & np.uint16(0x0FFF)) == 0)
    if len(maybe):
        sums = total.reshape(-1)[maybe]
        half_way = ((sums.view(np.uint64) & _LOW_29_BITS) == _HALF_WAY) | (
            (np.abs(sums) < _FLOAT32_TINY) & (sums != 0))
        index = np.unravel_index(maybe[half_way], out.shape)
        out[index] = _fused_multiply_add(a[index], np.broadcast_to(wa, out.shape)[index], rounded[index])


# the separable resize runs in bands of rows whose float64 temporaries take about this many bytes: small enough
# to stay in the CPU's cache, which makes it about 1.3x faster than whole-image passes (measured, 800 x 1066)
_BAND_BYTES = 2**20


def _separable(x: np.ndarray, rows, columns) -> np.ndarray:
    """PyTorch's separable kernel: (C, h, w) float32 -> (C, H, W), along x on each source row, then along y
    between the two rows each output row reads. `rows`, `columns`: `_resize_axis` taps of each axis."""
    (r0, r1, h0, h1), (c0, c1, w0, w1) = rows, columns
    channels, height, width = len(x), x.shape[1], len(c0)
    band = max(1, _BAND_BYTES // (8 * channels * width))
    along_rows = np.empty((channels, height, width), np.float32)  # each source row is mixed once
    for top in range(0, height, band):
        source = x[:, top: top + band]
        # np.take makes contiguous copies (fancy indexing the last axis would give strided ones)
        _mix(np.take(source, c0, axis=2), w0, np.take(source, c1, axis=2), w1, along_rows[:, top: top + band])
    out = np.empty((channels, len(r0), width), np.float32)
    for top in range(0, len(r0), band):
        i = slice(top, top + band)
        _mix(np.take(along_rows, r0[i], axis=1), h0[i, None], np.take(along_rows, r1[i], axis=1), h1[i, None],
             out[:, i])
    return out


def _four_corners(x: np.ndarray, rows, columns) -> np.ndarray:
    """PyTorch's four-corner kernel: (C, h, w) float32 -> (C, H, W), each output pixel the sum of its four
    source pixels weighted by ``h_weight * w_weight``, every step a fused multiply-add.

    Channels that fill whole SIMD registers (`_VECTOR_WIDTH` at a time) are summed bottom-left (rounded),
    bottom-right, top-right, top-left, the order in which PyTorch's compiler fused them; the channels left
    over go one at a time in the order the mask paste matches (`edudet.ops.masks._bilinear`)."""
    (r0, r1, h0, h1), (c0, c1, w0, w1) = rows, columns
    h0, h1 = h0[:, None], h1[:, None]
    out = np.empty((len(x), len(r0), len(c0)), np.float32)
    in_registers = len(x) - len(x) % _VECTOR_WIDTH
    top, bottom = x[:in_registers, r0], x[:in_registers, r1]
    total = _fused_multiply_add(bottom[:, :, c1], h1 * w1, bottom[:, :, c0] * (h1 * w0))
    total = _fused_multiply_add(top[:, :, c1], h0 * w1, total)
    out[:in_registers] = _fused_multiply_add(top[:, :, c0], h0 * w0, total)
    for channel in range(in_registers, len(x)):
        out[channel] = _bilinear(x[channel], rows, columns, small=True)
    return out


def interpolate_bilinear(x: np.ndarray, size: tuple[int, int], *, single_thread: bool = False) -> np.ndarray:
    """``(C, h, w)`` -> ``(C, H, W)`` float32: ``F.interpolate(x[None], size, mode="bilinear",
    align_corners=False)[0]``, bit for bit with PyTorch's CPU kernel (x86-64; determined with torch 2.14.1).

    Output pixel ``(i, j)`` reads source rows ``r0 = floor(y), r1 = r0 + 1`` and columns ``c0, c1`` around
    ``y = max((i + 0.5) h / H - 0.5, 0)`` (ratio in float32), ``x`` alike, the last row / column repeating at
    the far edge, and mixes the four pixels with weights ``(1 - fy, fy)`` x ``(1 - fx, fx)``. PyTorch
    rounds that sum one of two ways, chosen by shape, and so does this function:

    - four corners (``H + W <= 128``; a 1 x 1 input with more than 3 channels; 3 channels with
      `single_thread`): ``x00 wy0 wx0 + x01 wy0 wx1 + x10 wy1 wx0 + x11 wy1 wx1``, see `_four_corners`;
    - separable (every other shape): ``wy0 (wx0 x00 + wx1 x01) + wy1 (wx0 x10 + wx1 x11)``, see `_separable`.

    single_thread: PyTorch's choice depends on its thread count for 3-channel inputs: with
    ``torch.set_num_threads(1)`` it takes the four-corner kernel for every size. The default matches torch
    on more than one thread, its default on any multi-core machine (and torchvision's detection transform
    there); True matches a single thread. Equal sizes are a copy in both. x: any real dtype, computed in
    float32 (PyTorch's float32 kernel); NaN / inf refused. ``ValueError`` names a bad `x` or `size`.
    """
    array = as_real_array(x, "x")
    if array.ndim != 3 or array.shape[1] < 1 or array.shape[2] < 1:
        raise ValueError(f"x must have shape (C, h, w) with h, w >= 1, got {array.shape}")
    out_h, out_w = as_image_size(size, "size")
    check_finite(array, "x")
    check_allocation((len(array), out_h, out_w), 8,
                     "interpolate_bilinear's (C, H, W) float64 sums (x: C, size: H, W)")
    array = np.ascontiguousarray(array, dtype=np.float32)
    channels, height, width = array.shape
    if channels == 0:
        return np.zeros((0, out_h, out_w), np.float32)
    if (out_h, out_w) == (height, width):  # weights 1 on the pixel itself and 0 beside it: both kernels copy
        return array.copy()
    rows = _resize_axis(out_h, height, 0, out_h, np.float32)
    columns = _resize_axis(out_w, width, 0, out_w, np.float32)
    four_corners = (out_h + out_w <= _SMALL_OUTPUT or (height == width == 1 and channels > 3)
                    or (single_thread and channels == 3))
    return (_four_corners if four_corners else _separable)(array, rows, columns)


def resize_output_size(height: int, width: int, scale_factor: float) -> tuple[int, int]:
    """``F.interpolate(scale_factor=s, recompute_scale_factor=True)``'s output size: ``floor(size * s)``."""
    return int(math.floor(height * scale_factor)), int(math.floor(width * scale_factor))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along `axis`, shifted by the maximum so exp cannot overflow (as torch computes it)."""
    if x.size == 0:  # no rows (an image without proposals): nothing to normalise
        return x.copy()
    shifted = x - x.max(axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted


def _group_norm_kernel():
    """The Numba group norm, imported (and compiled) on first use; None where Numba is unusable."""
    global _GROUP_NORM_KERNEL
    if _GROUP_NORM_KERNEL is None:
        try:
            from ..kernels.norm_numba import group_norm_
        except ImportError:
            group_norm_ = False
        _GROUP_NORM_KERNEL = group_norm_
    return _GROUP_NORM_KERNEL or None


_GROUP_NORM_KERNEL = None


class GroupNorm:
    """``(N, C, H, W)`` -> same shape: each image's channels split into `num_groups` groups, each group
    normalised to zero mean and unit variance over its channels and pixels, then ``weight_c x + bias_c``.

    ``y = (x - mean_g) / sqrt(var_g + eps) * weight_c + bias_c`` with the biased variance (Wu & He, 2018;
    ``torch.nn.GroupNorm``, eps 1e-5). Unlike batch norm the statistics come from the image itself, so
    nothing can be folded into the convolution before it: FCOS's head pays for it on every call. The mean
    is taken in float64 and the variance from the centred values (two passes, no cancellation), then the
    whole map is one affine per channel. `num_groups` and `num_channels` are integers >= 1 (C divisible by
    the groups), `eps` a finite float >= 0; an empty map (N, H or W = 0) comes back as it is.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5):
        num_groups = check_scalar(num_groups, "num_groups", low=1, integer=True)
        num_channels = check_scalar(num_channels, "num_channels", low=1, integer=True)
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps = check_scalar(eps, "eps", low=0.0)  # 0 is torch's too: a constant group then gives NaN
        self.weight = np.ones(num_channels, np.float32)
        self.bias = np.zeros(num_channels, np.float32)

    def __repr__(self) -> str:
        return f"GroupNorm({self.num_groups}, {self.num_channels})"

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.num_channels,), "bias": (self.num_channels,)}

    def load_state(self, state) -> None:
        self.set_weight(state["weight"], state["bias"])

    def set_weight(self, weight: np.ndarray, bias: np.ndarray) -> None:
        """`weight`, `bias`: ``(C,)`` each (the kernel reads one per channel, unchecked: checked here)."""
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        bias = np.ascontiguousarray(bias, dtype=np.float32)
        for name, value in (("weight", weight), ("bias", bias)):
            if value.shape != (self.num_channels,):
                raise ValueError(f"{name} must be ({self.num_channels},) for {self!r}, got shape {value.shape}")
        self.weight, self.bias = weight, bias

    def _check_input(self, x) -> None:
        if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"x must be a floating-point numpy array (normalised in place), got "
                            f"{type(x).__name__} {getattr(x, 'dtype', '')}")
        if x.ndim != 4 or x.shape[1] != self.num_channels:
            raise ValueError(f"x must be (N, {self.num_channels}, H, W) for {self!r}, got shape {x.shape}")

    def __call__(self, x: np.ndarray, relu: bool = False) -> np.ndarray:
        """Normalises `x` ``(N, C, H, W)`` in place (it is always a fresh activation here) and returns it.

        The fast path is `edudet.kernels.norm_numba.group_norm_` (two passes instead of about ten, float64
        sums, compiled on first use); `reference` is the NumPy version below, the one to read.
        """
        self._check_input(x)
        if x.size == 0:
            return x  # nothing to normalise (and (0, G, -1) is a shape NumPy cannot infer)
        kernel = _group_norm_kernel()
        if kernel is None or x.dtype != np.float32 or not x.flags.c_contiguous:
            return self.reference(x, relu)
        n, c = x.shape[:2]
        kernel(x.reshape(n, c, -1), self.num_groups, self.weight, self.bias, float(self.eps), bool(relu))
        return x

    def reference(self, x: np.ndarray, relu: bool = False) -> np.ndarray:
        """The NumPy group norm of `x` ``(N, C, H, W)``, in place (two-pass variance)."""
        self._check_input(x)
        if x.size == 0:
            return x
        n, c, h, w = x.shape
        groups = x.reshape(n, self.num_groups, -1)
        mean = groups.mean(axis=-1, dtype=np.float64)
        with np.errstate(over="ignore"):  # an overflowing group is detected and redone below
            centred = groups - mean.astype(np.float32)[:, :, None]
            np.square(centred, out=centred)
            # float32 pairwise summation along the contiguous axis: about as accurate as torch's accumulation
            squares = centred.sum(axis=-1, dtype=np.float32)  # (n, G)
        del centred
        count = groups.shape[-1]
        var = squares.astype(np.float64) / count
        # float32 squares lose the variance at both ends, as torch's do: |x - mean| beyond ~1e19 squares to inf
        # (torch then outputs the bias or NaN), below ~1e-19 to subnormals with few digits left (or to 0 for a
        # group that is not constant). Those groups alone (finite input, mean square outside float32's normal range)
        # are redone in float64: ordinary data keeps torch's bits, the extremes get their true variance
        normal = (squares >= count * np.finfo(np.float32).tiny) & (squares < np.inf)
        redo = np.isfinite(mean) & ~normal
        if redo.any():
            deviations = groups[redo].astype(np.float64) - mean[redo][:, None]
            var[redo] = np.square(deviations).mean(axis=-1)
        inv_std = 1.0 / np.sqrt(var + self.eps)  # (n, G), float64
        per_channel = np.repeat(inv_std, c // self.num_groups, axis=1)  # (n, C)
        scale = (per_channel * self.weight).astype(np.float32)
        shift = (self.bias - np.repeat(mean, c // self.num_groups, axis=1) * per_channel * self.weight)
        x *= scale[:, :, None, None]
        x += shift.astype(np.float32)[:, :, None, None]
        return relu_(x) if relu else x


class ConvTranspose2d:
    """``(N, C_in, H, W)`` -> ``(N, C_out, k H, k W)``: a transposed convolution whose stride equals its
    kernel size `k` (Mask R-CNN's 2 x 2, stride 2 upsampling), no padding.

    With stride = kernel the output windows do not overlap: input pixel ``(i, j)`` alone writes the
    ``k x k`` block at ``(k i, k j)``, ``out[o, k i + dy, k j + dx] = sum_c W[c, o, dy, dx] x[c, i, j] + b[o]``,
    so the layer is one ``(C_out k k, C_in) @ (C_in, H W)`` product and a reshuffle. Weights are
    ``(C_in, C_out, k, k)`` as in ``torch.nn.ConvTranspose2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.matrix = np.zeros((out_channels * kernel_size * kernel_size, in_channels), np.float32)
        self.bias = np.zeros(out_channels, np.float32)

    def __repr__(self) -> str:
        k = self.kernel_size
        return f"ConvTranspose2d({self.in_channels}, {self.out_channels}, kernel_size={k}, stride={k})"

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        k = self.kernel_size
        return (self.in_channels, self.out_channels, k, k)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight": self.weight_shape, "bias": (self.out_channels,)}

    def load_state(self, state) -> None:
        self.set_weight(state["weight"], state["bias"])

    def set_weight(self, weight: np.ndarray, bias: np.ndarray) -> None:
        weight = np.asarray(weight, np.float32)
        # (C_in, C_out, k, k) -> rows (o, dy, dx), columns c
        self.matrix = np.ascontiguousarray(weight.transpose(1, 2, 3, 0).reshape(-1, self.in_channels))
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)

    def __call__(self, x: np.ndarray, relu: bool = False) -> np.ndarray:
        n, c, h, w = x.shape
        k = self.kernel_size
        blocks = np.matmul(self.matrix, x.reshape(n, c, h * w))  # (n, C_out k k, H W)
        blocks = blocks.reshape(n, self.out_channels, k, k, h, w).transpose(0, 1, 4, 2, 5, 3)
        out = np.ascontiguousarray(blocks).reshape(n, self.out_channels, h * k, w * k)
        out += self.bias[:, None, None]
        return relu_(out) if relu else out
