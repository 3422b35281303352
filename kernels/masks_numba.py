"""Mask pasting in Numba: same signature as `edudet.ops.masks.paste_masks_numpy`.

``paste_masks(padded_masks, boxes, out) -> out``
    padded_masks (K, P, P) float32/float64 C-contiguous; boxes (K, 4) int64 grown, truncated
    ``(x1, y1, x2, y2)`` (inclusive pixel corners, within +-1e18); out (K, 1, H, W) zeros of the masks' dtype.
    Writes each box's visible window, returns `out`. Checks (ValueError): shapes that agree, boxes within
    +-1e18 (beyond, source indices would overflow); not the masks' values (`edudet.ops.paste_masks_in_image`
    validates those). Every write is clipped to the image.

Parallel over masks (`prange`); each mask computes its window's row and column source indices and weights
once (PyTorch's CPU bilinear rule, `edudet.ops.masks._resize_axis`), then blends. Bit-identical to the NumPy
reference: every ``a * b + c`` the reference fuses goes through `fma`, an LLVM ``llvm.fma`` intrinsic (one
rounding, as C's ``fma``; Numba has no ``math.fma`` on Python 3.11), and Numba never contracts the others
(no ``fastmath``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

# PyTorch's bilinear kernel choice by output size: see edudet.ops.masks._SMALL_OUTPUT
from edudet.ops.masks import _PIXEL_LIMIT, _SMALL_OUTPUT


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once, for three floats of one type (float32 or float64): LLVM's ``llvm.fma``."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        value_type = context.get_value_type(signature.return_type)
        function_type = ir.FunctionType(value_type, [value_type] * 3)
        function = builder.module.declare_intrinsic("llvm.fma", [value_type], function_type)
        return builder.call(function, args)

    return a(a, b, c), codegen


@njit(cache=True)
def _resize_axis(out_size, in_size, first, i0, i1, w0, w1):
    """Fill i0, i1 (n,) int64 and w0, w1 (n,) float with the sources of output pixels first..first+n-1."""
    real = w0.dtype.type
    if out_size == in_size:  # equal sizes copy
        for t in range(len(i0)):
            i0[t] = first + t
            i1[t] = first + t
            w0[t] = real(1)
            w1[t] = real(0)
        return
    scale = real(in_size) / real(out_size)
    for t in range(len(i0)):
        src = max(fma(scale, real(first + t) + real(0.5), real(-0.5)), real(0))
        # PyTorch floors in float32 even for float64 input (see the reference)
        low = min(np.int64(np.floor(np.float32(src))), in_size - 1)
        i0[t] = low
        i1[t] = min(low + 1, in_size - 1)
        weight = min(max(src - real(low), real(0)), real(1))
        w1[t] = weight
        w0[t] = real(1) - weight


@njit(cache=True)
def _paste_one(grid, x1, y1, x2, y2, plane):
    height, width = plane.shape
    box_w, box_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    left, right = max(x1, 0), min(min(x2 + 1, width), x1 + box_w)
    top, bottom = max(y1, 0), min(min(y2 + 1, height), y1 + box_h)
    if right <= left or bottom <= top:
        return
    n_cols, n_rows = right - left, bottom - top
    c0, c1 = np.empty(n_cols, np.int64), np.empty(n_cols, np.int64)
    hx, lx = np.empty(n_cols, plane.dtype), np.empty(n_cols, plane.dtype)
    r0, r1 = np.empty(n_rows, np.int64), np.empty(n_rows, np.int64)
    hy, ly = np.empty(n_rows, plane.dtype), np.empty(n_rows, plane.dtype)
    _resize_axis(box_w, grid.shape[1], left - x1, c0, c1, hx, lx)
    _resize_axis(box_h, grid.shape[0], top - y1, r0, r1, hy, ly)
    small = box_h + box_w <= _SMALL_OUTPUT
    for i in range(n_rows):
        upper_row, lower_row = grid[r0[i]], grid[r1[i]]
        high, low = hy[i], ly[i]
        out_row = plane[top + i]
        for j in range(n_cols):
            top_left, top_right = upper_row[c0[j]], upper_row[c1[j]]
            bottom_left, bottom_right = lower_row[c0[j]], lower_row[c1[j]]
            if small:  # the four corners, weighted by products of the two axes' weights
                total = fma(top_left, high * hx[j], top_right * (high * lx[j]))
                total = fma(bottom_left, low * hx[j], total)
                out_row[left + j] = fma(bottom_right, low * lx[j], total)
            else:  # along x on both source rows, then along y
                upper = fma(top_left, hx[j], top_right * lx[j])
                lower = fma(bottom_left, hx[j], bottom_right * lx[j])
                out_row[left + j] = fma(upper, high, lower * low)


@njit(cache=True, parallel=True)
def _paste_all(padded_masks, boxes, out):
    for k in prange(boxes.shape[0]):
        _paste_one(padded_masks[k], boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3], out[k, 0])
    return out


@njit(cache=True)
def paste_masks(padded_masks, boxes, out):
    num_masks = padded_masks.shape[0]
    if padded_masks.shape[1] != padded_masks.shape[2] or padded_masks.shape[1] < 1:
        raise ValueError("padded_masks must have shape (K, P, P) with P >= 1")
    if boxes.shape[0] != num_masks or boxes.shape[1] != 4:
        raise ValueError("boxes must have shape (K, 4), K = len(padded_masks)")
    if out.shape[0] != num_masks or out.shape[1] != 1:
        raise ValueError("out must have shape (K, 1, H, W), K = len(padded_masks)")
    for k in range(num_masks):
        for i in range(4):
            if abs(boxes[k, i]) > _PIXEL_LIMIT:
                raise ValueError("boxes must lie within +-1e18 pixels")
    return _paste_all(padded_masks, boxes, out)
