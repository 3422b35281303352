"""Pasting Mask R-CNN's fixed-size mask probabilities back into the image.

The mask head predicts an M x M (28 x 28) grid of probabilities per detection, in the detection box's
frame. To draw it, torchvision pads the grid by one zero cell per side (so the mask fades to 0 at its
border instead of ending abruptly), grows the box by the same proportion, snaps it to whole pixels,
resizes the padded grid to the box with bilinear interpolation (``align_corners=False``: grid cell i's
centre lands at ``(i + 0.5) * box_size / M_padded``), and copies the part inside the image.
See `edudet.poolers.roi_grid_to_image` for the same grid convention as a coordinate map.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .._dispatch import Dispatcher
from .._validate import (as_boxes, as_image_size, as_real_array, check_allocation, check_finite, check_scalar,
                         float_dtype_of)

__all__ = ["paste_masks_in_image", "expand_boxes"]

# grown boxes are truncated to int64 pixel coordinates; within +-1e18 their widths (x2 - x1 + 1) cannot wrap
_PIXEL_LIMIT = 1e18


def expand_boxes(boxes: np.ndarray, scale: float) -> np.ndarray:
    """(K, 4) boxes grown about their centres by `scale` per side length, in the boxes' dtype."""
    dtype = boxes.dtype.type
    half_w = (boxes[:, 2] - boxes[:, 0]) * dtype(0.5) * dtype(scale)
    half_h = (boxes[:, 3] - boxes[:, 1]) * dtype(0.5) * dtype(scale)
    centre_x = (boxes[:, 2] + boxes[:, 0]) * dtype(0.5)
    centre_y = (boxes[:, 3] + boxes[:, 1]) * dtype(0.5)
    return np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], axis=1)


def _resize_axis(out_size: int, in_size: int, first: int, stop: int, dtype):
    """Bilinear, ``align_corners=False``, as PyTorch's CPU ``upsample_bilinear2d``: output pixels
    ``first..stop-1`` of `out_size` read source pixels ``i0`` and ``i1`` with weights ``(w0, w1)``.

    The source coordinate is ``(dst + 0.5) * (in / out) - 0.5`` (one fused multiply-add), clamped at 0; the
    last pixel repeats at the far edge; equal sizes copy (weights 1, 0). (dst) -> i0, i1 int64, w0, w1 dtype."""
    pixels = np.arange(first, stop)
    if out_size == in_size:
        return pixels, pixels, np.ones(len(pixels), dtype), np.zeros(len(pixels), dtype)
    scale = dtype(in_size) / dtype(out_size)
    src = np.maximum(_fused_multiply_add(scale, pixels.astype(dtype) + dtype(0.5), dtype(-0.5)), dtype(0))
    # PyTorch floors with C's floorf, in float32 even for float64 input: a float64 source just below an
    # integer (7.999999999999999) is floored to that integer (8), its weight clamped at 0
    i0 = np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = np.clip(src - i0.astype(dtype), dtype(0), dtype(1))
    return i0, i1, dtype(1) - w1, w1


# PyTorch's CPU bilinear resize of a one-channel image takes one of two kernels by the output's size (``h + w <=
# 128``: its "channels-last" kernel, else its separable one); each rounds differently, so the paste chooses alike
_SMALL_OUTPUT = 128


def _bilinear(grid, rows, columns, small: bool):
    """PyTorch's bilinear blend of `grid` (m, m) at (rows, columns) from `_resize_axis` -> (len(rows), len(columns)).

    small: the four corners weighted by ``h_weight * w_weight`` and summed top-left, top-right, bottom-left,
    bottom-right; else along x on the two source rows, then along y. Same value, different last bits."""
    fma = _fused_multiply_add
    (r0, r1, hy, ly), (c0, c1, hx, lx) = rows, columns
    hy, ly = hy[:, None], ly[:, None]
    top_left, top_right = grid[r0][:, c0], grid[r0][:, c1]
    bottom_left, bottom_right = grid[r1][:, c0], grid[r1][:, c1]
    if small:
        total = fma(top_left, hy * hx, top_right * (hy * lx))
        total = fma(bottom_left, ly * hx, total)
        return fma(bottom_right, ly * lx, total)
    upper = fma(top_left, hx, top_right * lx)
    lower = fma(bottom_left, hx, bottom_right * lx)
    return fma(upper, hy, lower * ly)


def paste_masks_in_image(masks, boxes, image_shape, padding: int = 1, backend: str | None = None) -> np.ndarray:
    """Mask R-CNN's masks back in the image: (K, 1, M, M) probabilities + (K, 4) boxes -> (K, 1, H, W).

    boxes: ``(x1, y1, x2, y2)`` detections in image pixels; image_shape: ``(H, W)``. Returns the masks'
    float dtype (float32 for integer masks).

    Rule (torchvision's ``paste_masks_in_image``): pad each mask by `padding` zero cells per side, grow its
    box about the centre by ``(M + 2 padding) / M`` and truncate the corners to integers; resize the padded
    mask to the ``max(x2 - x1 + 1, 1)`` x ``max(y2 - y1 + 1, 1)`` pixels of that box with bilinear
    interpolation (``align_corners=False``); pixels outside the box, or the box's part outside the
    image, are 0 / dropped. Only the visible part of each box is computed.

    Results equal torchvision's on the CPU bit for bit, float32 and float64: the resize rounds as PyTorch's
    CPU ``upsample_bilinear2d`` does (fused multiply-adds, a float32 floor, and its choice of kernel by output
    size; determined and tested against torch 2.14.1 on an x86-64 AVX2 build).

    Refused with ``ValueError``: NaN or inf in `masks` or `boxes`; a box coordinate beyond +-1e15
    (``COORDINATE_LIMIT``); a box grown by the padding beyond +-1e18 pixels (``padding`` hundreds of times
    ``M``); a padded-mask or output array above edudet's allocation limit.
    """
    kernel = _paste_masks.get(backend)
    array = as_real_array(masks, "masks")
    if array.ndim != 4 or array.shape[1] != 1 or array.shape[2] != array.shape[3] or array.shape[2] < 1:
        raise ValueError(f"masks must have shape (K, 1, M, M) with M >= 1, got {tuple(array.shape)}")
    check_finite(array, "masks")
    dtype = float_dtype_of(array)
    array = np.ascontiguousarray(array, dtype=dtype)
    boxes = as_boxes(boxes, dtype=dtype)
    if len(boxes) != len(array):
        raise ValueError(f"boxes has {len(boxes)} rows but masks has {len(array)}; they must match")
    height, width = as_image_size(image_shape, "image_shape")
    padding = check_scalar(padding, "padding", low=0, integer=True)
    size = array.shape[-1]
    check_allocation((len(array), 1, height, width), np.dtype(dtype).itemsize,
                     "paste_masks_in_image's (K, 1, H, W) output (masks: K, image_shape: H, W)")
    out = np.zeros((len(array), 1, height, width), dtype=dtype)
    if len(array) == 0:
        return out
    check_allocation((len(array), size + 2 * padding, size + 2 * padding), np.dtype(dtype).itemsize,
                     "paste_masks_in_image's padded masks (K, M + 2 padding, M + 2 padding)")
    scale = (size + 2 * padding) / size
    with np.errstate(over="ignore"):
        expanded = np.trunc(expand_boxes(boxes, scale))  # torchvision's .to(int64) truncates toward zero
    largest = float(np.abs(expanded).max())
    if not largest <= _PIXEL_LIMIT:  # also catches inf: float32 boxes grown past 3.4e38
        raise ValueError(f"boxes grown by padding={padding} (x {scale:.3g} for M = {size}) reach {largest:.3g}, "
                         f"beyond the +-{_PIXEL_LIMIT:.0e} pixel coordinates paste_masks_in_image handles; "
                         f"use a smaller padding")
    expanded = expanded.astype(np.int64)
    padded = np.pad(array[:, 0], ((0, 0), (padding, padding), (padding, padding)))
    return kernel(padded, expanded, out)


def paste_masks_numpy(padded_masks: np.ndarray, boxes: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The reference: padded masks (K, P, P) float32/float64, their grown boxes (K, 4) int64 ``(x1, y1, x2, y2)``
    (inclusive pixel corners), `out` (K, 1, H, W) of the masks' dtype, zero: each box's visible window is
    written with its resized mask; returns `out`. The fast twins in `kernels/masks_*` share this signature."""
    height, width = out.shape[2:]
    dtype = out.dtype.type
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        box_w, box_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        # the box's pixels that fall inside the image, as image and as box coordinates
        left, right = max(x1, 0), min(x2 + 1, width)
        top, bottom = max(y1, 0), min(y2 + 1, height)
        right, bottom = min(right, x1 + box_w), min(bottom, y1 + box_h)
        if right <= left or bottom <= top:
            continue
        rows = _resize_axis(box_h, padded_masks.shape[1], top - y1, bottom - y1, dtype)
        columns = _resize_axis(box_w, padded_masks.shape[2], left - x1, right - x1, dtype)
        out[k, 0, top:bottom, left:right] = _bilinear(padded_masks[k], rows, columns,
                                                      box_h + box_w <= _SMALL_OUTPUT)
    return out


def check_paste_arguments(padded_masks: np.ndarray, boxes: np.ndarray, out: np.ndarray) -> None:
    """The kernels' entry checks (O(K)): shapes that agree and grown boxes within +-1e18 pixels (beyond, the
    sources' indices would overflow). ``ValueError`` naming the argument."""
    if padded_masks.ndim != 3 or padded_masks.shape[1] != padded_masks.shape[2] or padded_masks.shape[1] < 1:
        raise ValueError(f"padded_masks must have shape (K, P, P), P >= 1, got {padded_masks.shape}")
    if boxes.shape != (len(padded_masks), 4):
        raise ValueError(f"boxes must have shape ({len(padded_masks)}, 4), got {boxes.shape}")
    if out.ndim != 4 or out.shape[:2] != (len(padded_masks), 1):
        raise ValueError(f"out must have shape ({len(padded_masks)}, 1, H, W), got {out.shape}")
    if len(boxes) and np.abs(boxes).max() > _PIXEL_LIMIT:
        raise ValueError(f"boxes must lie within +-{_PIXEL_LIMIT:.0e} pixels")


_paste_masks = Dispatcher("paste_masks_in_image", reference=paste_masks_numpy, numba="masks_numba:paste_masks",
                          cython="masks_cython:paste_masks", cuda="masks_cuda:paste_masks")


# ---------------------------------------------------------------------------------------------------------
# a fused multiply-add in NumPy: PyTorch's CPU kernels round a * b + c once, and bit-exact parity needs the same
# ---------------------------------------------------------------------------------------------------------
def _fused_multiply_add(a, b, c):
    """``a * b + c`` rounded once, in the inputs' dtype (float32 or float64), as PyTorch's CPU kernels compute
    it: they are compiled with fused multiply-adds, and bit-exact parity with torchvision needs the same.

    NumPy has no fma. float32: the product is exact in float64 and the float64 sum is rounded once more to
    float32, which is the correct single rounding except where the float64 sum sits exactly half-way between
    two float32s (or in float32's subnormal range): those few are redone exactly. float64: the exact value is
    carried as unevaluated sums (Dekker's product, Knuth's TwoSum) and rounded once, through "round to odd"
    (Boldo & Melquiond, 2008: rounding to odd first makes the final rounding exact); products below 2^-960,
    whose error terms underflow, are redone with Fractions; values beyond ~1e300, whose splitting overflows,
    get the plain ``a * b + c``."""
    if np.result_type(a, b, c) == np.float32:
        return _fused_multiply_add_float32(a, b, c)
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        product, product_error = _two_product(a, b)  # a * b == product + product_error exactly
        high, low = _two_sum(c, product)  # c + product == high + low exactly
        total = high + _round_to_odd_sum(low, product_error)
        total = np.where(np.isfinite(total), total, a * b + c)
        # near float64's subnormals the error terms underflow and the sum is no longer exact: the rare products
        # below 2^-960 are redone in exact rational arithmetic (Python's int division rounds correctly)
        tiny = (np.abs(product) < 2.0 ** -960) & (a != 0) & (b != 0)
    if tiny.any():
        total = np.array(total)  # writable, 0-d for scalars
        a, b, c, tiny = np.broadcast_arrays(a, b, c, tiny)
        for index in map(tuple, np.argwhere(tiny)):
            total[index] = float(Fraction(float(a[index])) * Fraction(float(b[index])) + Fraction(float(c[index])))
    return total


def _fused_multiply_add_float32(a, b, c):
    a, b, c = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, c)))
    product = a * b  # exact: 24 + 24 significant bits fit in 53
    total = product + c
    out = np.array(total, dtype=np.float32)  # an array even for 0-d input: written below
    # a float64 sum ending in binary 1000...0 (29 bits) is a float32 half-way point: if it was rounded to get
    # there, the float32 rounding of it can go the wrong way (a double rounding); redo those by rounding to odd
    subnormal = (np.abs(total) < np.finfo(np.float32).tiny) & (total != 0)  # a sum that rounds to 0 is exact
    suspect = ((_bits(total) & 0x1FFFFFFF) == 0x10000000) | subnormal
    if suspect.any():
        out[suspect] = _round_to_odd_sum(c[suspect], product[suspect]).astype(np.float32)
    return out


def _bits(x):
    """The float64 array x's bit patterns as uint64, same shape."""
    return np.ascontiguousarray(x).reshape(-1).view(np.uint64).reshape(np.shape(x))


def _two_sum(x, y):
    """(s, e): s = fl(x + y) and its exact rounding error, s + e == x + y (Knuth)."""
    total = x + y
    virtual = total - x
    return total, (x - (total - virtual)) + (y - virtual)


def _two_product(x, y):
    """(p, e): p = fl(x * y) and its exact rounding error, p + e == x * y (Dekker, with Veltkamp's split)."""
    product = x * y
    x_high, x_low = _split(x)
    y_high, y_low = _split(y)
    return product, ((x_high * y_high - product) + x_high * y_low + x_low * y_high) + x_low * y_low


def _split(x):
    """x == high + low with 26-bit halves, so that their products are exact."""
    scaled = 134217729.0 * x  # 2 ** 27 + 1
    high = scaled - (scaled - x)
    return high, x - high


def _round_to_odd_sum(x, y):
    """x + y rounded to odd: exact if representable, else the neighbour whose last significand bit is 1."""
    total, error = _two_sum(x, y)
    even = (_bits(total) & 1) == 0
    return np.where((error != 0) & even, np.nextafter(total, np.copysign(np.inf, error)), total)
