"""Mask pasting in numba.cuda: same signature as `edudet.ops.masks.paste_masks_numpy`.

One thread per output pixel ``(k, y, x)``: a pixel outside its box's visible window returns (the output
starts at zero); inside, it computes its row's and column's sources and weights (PyTorch's CPU bilinear rule,
`edudet.ops.masks._resize_axis`) and blends with `cuda.fma` where the NumPy reference fuses, so the GPU gives
the reference's bits (division and conversions round to nearest, as IEEE float32/float64 on the host).
Under ``NUMBA_ENABLE_CUDASIM=1`` the simulator's `cuda.fma` is a plain ``a * b + c`` (two roundings): there
the reference's exact NumPy fma stands in. Simulator-tested only (small inputs); not timed.
"""
from __future__ import annotations

import math

import numpy as np
from numba import config, cuda

from edudet.ops.masks import _SMALL_OUTPUT, _fused_multiply_add, check_paste_arguments

_THREADS = 256

if config.ENABLE_CUDASIM:
    def _fma(a, b, c):
        return _fused_multiply_add(a, b, c)[()]
else:
    _fma = cuda.fma


def _make_kernel(real):
    """The kernel for one float type (`real`: np.float32 or np.float64): constants must be of that type."""

    @cuda.jit(device=True)
    def source(out_size, in_size, dst):
        """(i0, i1, w0, w1) of output pixel `dst` of `out_size` read from `in_size` source pixels."""
        if out_size == in_size:
            return dst, dst, real(1), real(0)
        scale = real(in_size) / real(out_size)
        src = max(_fma(scale, real(dst) + real(0.5), real(-0.5)), real(0))
        low = min(math.floor(np.float32(src)), in_size - 1)  # PyTorch floors in float32
        weight = min(max(src - real(low), real(0)), real(1))
        return low, min(low + 1, in_size - 1), real(1) - weight, weight

    @cuda.jit
    def kernel(padded_masks, boxes, small_output, out):
        index = cuda.grid(1)
        num_masks, height, width = out.shape[0], out.shape[2], out.shape[3]
        if index >= num_masks * height * width:
            return
        x = index % width
        y = (index // width) % height
        k = index // (width * height)
        x1, y1, x2, y2 = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]
        box_w, box_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        if x < x1 or x >= min(x2 + 1, x1 + box_w) or y < y1 or y >= min(y2 + 1, y1 + box_h):
            return
        r0, r1, high, low = source(box_h, padded_masks.shape[1], y - y1)
        c0, c1, hx, lx = source(box_w, padded_masks.shape[2], x - x1)
        top_left, top_right = padded_masks[k, r0, c0], padded_masks[k, r0, c1]
        bottom_left, bottom_right = padded_masks[k, r1, c0], padded_masks[k, r1, c1]
        if box_h + box_w <= small_output:  # the four corners, weighted by products of the axes' weights
            total = _fma(top_left, high * hx, top_right * (high * lx))
            total = _fma(bottom_left, low * hx, total)
            out[k, 0, y, x] = _fma(bottom_right, low * lx, total)
        else:  # along x on both source rows, then along y
            upper = _fma(top_left, hx, top_right * lx)
            lower = _fma(bottom_left, hx, bottom_right * lx)
            out[k, 0, y, x] = _fma(upper, high, lower * low)

    return kernel


_KERNELS = {}


def paste_masks(padded_masks, boxes, out):
    """Fills `out` (K, 1, H, W) with the pasted masks on the GPU and returns it (host arrays in and out).
    Checks as `edudet.ops.masks.check_paste_arguments` (ValueError)."""
    check_paste_arguments(padded_masks, boxes, out)
    if out.size == 0:
        return out
    dtype = out.dtype.type
    if dtype not in _KERNELS:
        _KERNELS[dtype] = _make_kernel(dtype)
    device_out = cuda.to_device(out)
    blocks = math.ceil(out.size / _THREADS)
    _KERNELS[dtype][blocks, _THREADS](cuda.to_device(padded_masks), cuda.to_device(boxes), _SMALL_OUTPUT,
                                      device_out)
    device_out.copy_to_host(out)
    return out
