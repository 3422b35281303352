"""The layers a detector's forward pass needs, in NumPy: convolution, folded batch norm, pooling, resizing.

Arrays are ``(N, C, H, W)`` float32, torchvision's layout, so every intermediate can be compared with the
torch model's. A convolution is one matrix product per image: the input's ``k x k`` patches are copied
into the columns of a ``(C_in k k, H_out W_out)`` matrix (im2col) and multiplied by the ``(C_out, C_in k k)``
weight matrix (BLAS sgemm does the work). A 1x1 convolution needs no copy at all: ``(C_in, H W)`` is already
the column matrix. Batch norm in inference is an affine map per channel, so it is folded into the
preceding convolution's weights and bias once, at load time (Ioffe & Szegedy, 2015; the usual deployment
trick), and costs nothing per image.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "Conv2d", "Linear", "fold_batch_norm", "max_pool2d", "interpolate_nearest", "interpolate_bilinear",
    "relu_", "softmax", "GroupNorm", "ConvTranspose2d", "FrozenBatchNorm2d",
]

# im2col is done in row bands so the column matrix stays under this size: the 3x3 conv of the RPN head on
# P2 of an 800 x 1216 image would otherwise need 560 MB. 64 MB keeps one forward's peak memory below
# torchvision's; smaller bands make the products too thin for BLAS (and the 3x3 path recomputes 2 rows a band)
_COLUMN_BYTES = 64 * 2**20


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
        if k == 3 and s == 1 and p == 1:
            self._single_3x3(x, out, out_h, out_w, relu)
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

    def _single_3x3(self, x: np.ndarray, out: np.ndarray, out_h: int, out_w: int, relu: bool) -> None:
        """The same product as `_single` for a 3x3, stride 1, padding 1 convolution, with 3 copies instead of 9.

        Why a second path: these convolutions (FPN outputs, RPN and dense heads, ResNet's bottlenecks) hold
        most of a detector's FLOPs, and im2col's nine strided copies of the input cost about as much as the
        product itself on a 2-core CPU. Lay the zero-padded image out row after row, rows ``W + 2`` wide, as
        one flat vector per channel. Shifting that vector by ``dx`` (one contiguous copy) and reading it from
        row ``dy`` on gives tap ``(dy, dx)`` of every output pixel at once (plus two junk columns per row,
        which read across the row's border and are dropped). So with the three dx-shifted copies stacked
        (rows ``(c, dx)``) one product with the weights stacked by dy (rows ``(dy, o)``, columns ``(c, dx)``)
        gives, for each dy, the sum over c and dx; the output is the sum of the three dy blocks, each read
        ``dy`` rows further down. Same FLOPs as im2col, one larger product, a third of the copies.
        """
        c, h, w = x.shape
        width = w + 2  # a padded row
        length = (h + 2) * width
        # two trailing zeros: the dx = 2 copy of the last padded row reads two values past its end
        padded = np.zeros((c, length + 2), np.float32)
        padded[:, :length].reshape(c, h + 2, width)[:, 1:-1, 1:-1] = x
        taps = self._taps_by_row()
        out_c = self.out_channels
        bytes_per_row = 4 * 3 * (c + out_c) * width  # shifted copies + product, per padded row
        rows_per_band = max(1, min(out_h, _COLUMN_BYTES // bytes_per_row - 2))
        shifted = np.empty(3 * c * (rows_per_band + 2) * width, np.float32)
        products = np.empty(3 * out_c * (rows_per_band + 2) * width, np.float32)
        out = out.reshape(out_c, out_h, out_w)
        for row0 in range(0, out_h, rows_per_band):
            rows = min(rows_per_band, out_h - row0)
            columns = (rows + 2) * width  # the band's output rows need padded rows row0 .. row0 + rows + 1
            cols = shifted[: 3 * c * columns].reshape(c, 3, columns)
            for dx in range(3):
                cols[:, dx] = padded[:, row0 * width + dx: row0 * width + dx + columns]
            by_row = np.matmul(taps, cols.reshape(3 * c, columns),
                               out=products[: 3 * out_c * columns].reshape(3 * out_c, columns))
            by_row = by_row.reshape(3, out_c, rows + 2, width)
            band = out[:, row0: row0 + rows]
            # the bias rides along with the first sum (no pass of its own over the output)
            np.add(by_row[0, :, 0: rows, :w], self.bias[:, None, None], out=band)
            band += by_row[1, :, 1: rows + 1, :w]
            band += by_row[2, :, 2: rows + 2, :w]
            if relu:
                relu_(band)

    def _taps_by_row(self) -> np.ndarray:
        """``(3 C_out, 3 C_in)``: the 3x3 weights with rows ``(dy, o)`` and columns ``(c, dx)``, kept until
        `matrix` is replaced (loading or folding a batch norm assigns a new array)."""
        if getattr(self, "_taps_of", None) is not self.matrix:
            weight = self.matrix.reshape(self.out_channels, self.in_channels, 3, 3)
            self._taps = np.ascontiguousarray(weight.transpose(2, 0, 1, 3)).reshape(3 * self.out_channels, -1)
            self._taps_of = self.matrix
        return self._taps


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


def _linear_taps(out_size: int, in_size: int):
    """Source indices and weights of PyTorch's bilinear rule along one axis (align_corners=False).

    ``src = max((dst + 0.5) * in / out - 0.5, 0)`` with the ratio in float32; taps ``floor(src)`` and the
    next pixel (the same pixel at the border) with weights ``1 - frac`` and ``frac``.
    """
    ratio = np.float32(in_size) / np.float32(out_size)
    # PyTorch's CPU kernel is compiled with fused multiply-add: ratio * (dst + 0.5) - 0.5 is rounded to
    # float32 once. The float64 product of two float32 numbers is exact, so this reproduces it bit for bit
    src = (np.float64(ratio) * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0))
    index0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    index1 = index0 + (index0 < in_size - 1)
    lambda1 = np.clip(src - index0.astype(np.float32), np.float32(0), np.float32(1))
    lambda0 = np.float32(1) - lambda1
    return index0, index1, lambda0, lambda1


def _mix(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """``a wa + b wb`` in float32 as PyTorch's fused kernel rounds it: ``fma(a, wa, round(b wb))``."""
    exact = np.multiply(a, wa, dtype=np.float64)  # exact: a float32 x float32 product fits in a float64
    exact += b * wb  # this product is rounded to float32 first, as in the fused kernel
    return exact.astype(np.float32)


def interpolate_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(C, h, w)`` float32 -> ``(C, H, W)``: ``F.interpolate(mode="bilinear", align_corners=False)``.

    Each output pixel mixes four input pixels, along the row then along the column,
    ``out = h0 (w0 x00 + w1 x01) + h1 (w0 x10 + w1 x11)``, rounded as PyTorch's CPU kernel rounds it
    (bit-identical on a CPU with FMA, which every x86-64 PyTorch build uses).
    """
    out_h, out_w = size
    if (out_h, out_w) == tuple(x.shape[-2:]):  # scale 1: every weight is 1 on the pixel itself and 0 beside it
        return x.copy()
    r0, r1, h0, h1 = _linear_taps(out_h, x.shape[-2])
    c0, c1, w0, w1 = _linear_taps(out_w, x.shape[-1])
    # along each row first (once per input row), then between the two rows each output row reads
    along_rows = _mix(x[:, :, c0], w0, x[:, :, c1], w1)
    return _mix(along_rows[:, r0], h0[:, None], along_rows[:, r1], h1[:, None])


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
    whole map is one affine per channel.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5):
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = np.ones(num_channels, np.float32)
        self.bias = np.zeros(num_channels, np.float32)

    def __repr__(self) -> str:
        return f"GroupNorm({self.num_groups}, {self.num_channels})"

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.num_channels,), "bias": (self.num_channels,)}

    def load_state(self, state) -> None:
        self.set_weight(state["weight"], state["bias"])

    def set_weight(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)

    def __call__(self, x: np.ndarray, relu: bool = False) -> np.ndarray:
        """Normalises `x` in place (it is always a fresh activation here) and returns it.

        The fast path is `edudet.kernels.norm_numba.group_norm_` (two passes instead of about ten, float64
        sums, compiled on first use); `reference` is the NumPy version below, the one to read.
        """
        kernel = _group_norm_kernel()
        if kernel is None or x.dtype != np.float32 or not x.flags.c_contiguous:
            return self.reference(x, relu)
        n, c = x.shape[:2]
        kernel(x.reshape(n, c, -1), self.num_groups, self.weight, self.bias, float(self.eps), bool(relu))
        return x

    def reference(self, x: np.ndarray, relu: bool = False) -> np.ndarray:
        """The NumPy group norm, in place (two-pass variance)."""
        n, c, h, w = x.shape
        groups = x.reshape(n, self.num_groups, -1)
        mean = groups.mean(axis=-1, dtype=np.float64)
        centred = groups - mean.astype(np.float32)[:, :, None]
        np.square(centred, out=centred)
        # float32 pairwise summation along the contiguous axis: about as accurate as torch's accumulation
        var = centred.sum(axis=-1, dtype=np.float32).astype(np.float64) / groups.shape[-1]
        del centred
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
