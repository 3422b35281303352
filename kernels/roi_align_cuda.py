"""RoIAlign pooling in numba.cuda. Public, stable:

``bilinear(plane, y, x) -> value``  (``@cuda.jit(device=True)``, for a user's own ``@cuda.jit`` kernel)
    One bilinear sample of a (H, W) device plane (e.g. ``fmap[n, c]``) at continuous (y, x) of its dtype:
    0 when more than one pixel outside (or NaN), the border within a pixel (torchvision's rule); the sample
    `edudet.ops.roi_align` computes. No checks.

Example (user code)::

    from numba import cuda
    from edudet.kernels.roi_align_cuda import bilinear

    @cuda.jit
    def sample(plane, ys, xs, out):
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = bilinear(plane, ys[i], xs[i])

Private (may change): ``roi_align(input, batch_index, plan, max_mode)``, what `edudet.ops.roi_align`
dispatches to (same signature as `edudet.ops.roi_align.roi_align_numpy`).

One thread per output element ``(k, c, ph, pw)``; the sampling plan (a few numbers per RoI) is copied to
the device with the feature map, and the result is copied back. Samples are added in torchvision's order.
Runs under ``NUMBA_ENABLE_CUDASIM=1`` (slowly: tests use small inputs).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from edudet.kernels._roi_common import check_out, check_plan

_THREADS = 128


@cuda.jit(device=True)
def bilinear(plane, y, x):
    """One bilinear sample of a (H, W) plane at (y, x) (torchvision's rule: 0 beyond one pixel outside)."""
    height = plane.shape[0]
    width = plane.shape[1]
    zero = y - y  # 0 in the sample's dtype
    if not (y >= -1.0 and y <= height and x >= -1.0 and x <= width):
        return zero
    if y <= 0:
        y = zero
    if x <= 0:
        x = zero
    y_low = int(y)
    x_low = int(x)
    if y_low >= height - 1:
        y_low = height - 1
        y_high = y_low
        y = zero + y_low
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = width - 1
        x_high = x_low
        x = zero + x_low
    else:
        x_high = x_low + 1
    ly = y - y_low
    lx = x - x_low
    hy = 1 - ly
    hx = 1 - lx
    return (hy * hx * plane[y_low, x_low] + hy * lx * plane[y_low, x_high]
            + ly * hx * plane[y_high, x_low] + ly * lx * plane[y_high, x_high])


@cuda.jit
def _roi_align_kernel(input, batch_index, y_grid, y_off, y_lo, y_hi, y_wlo, y_whi,
                      x_grid, x_off, x_lo, x_hi, x_wlo, x_whi, count, max_mode, zero, out):
    index = cuda.grid(1)
    num_rois, channels, pooled_h, pooled_w = out.shape
    if index >= num_rois * channels * pooled_h * pooled_w:
        return
    pw = index % pooled_w
    ph = (index // pooled_w) % pooled_h
    c = (index // (pooled_w * pooled_h)) % channels
    k = index // (pooled_w * pooled_h * channels)
    n = batch_index[k]
    gh = y_grid[k]
    gw = x_grid[k]
    acc = zero
    best = zero
    for iy in range(gh):
        sy = y_off[k] + ph * gh + iy
        yl = y_lo[sy]
        yh = y_hi[sy]
        hy = y_wlo[sy]
        ly = y_whi[sy]
        for ix in range(gw):
            sx = x_off[k] + pw * gw + ix
            xl = x_lo[sx]
            xh = x_hi[sx]
            hx = x_wlo[sx]
            lx = x_whi[sx]
            val = (hy * hx * input[n, c, yl, xl] + hy * lx * input[n, c, yl, xh]
                   + ly * hx * input[n, c, yh, xl] + ly * lx * input[n, c, yh, xh])
            if max_mode:
                if (iy == 0 and ix == 0) or val > best:
                    best = val
            else:
                acc += val
    if max_mode:
        out[k, c, ph, pw] = best
    else:
        out[k, c, ph, pw] = acc / count[k]


def roi_align(input, batch_index, plan, max_mode, out=None):
    """(N, C, H, W) input, (K,) int64 batch indices, a `SamplingPlan` -> (K, C, PH, PW) on the host, written
    into `out` when given (C-contiguous, that shape and input's dtype: `check_out`)."""
    check_plan(input, batch_index, plan)  # a hand-made plan must not read outside the map
    host = check_out(out, input, batch_index, plan)
    rows, cols = plan.rows, plan.cols
    shape = host.shape
    total = int(np.prod(shape))
    if total == 0:
        return host
    args = [cuda.to_device(a) for a in (input, batch_index, rows.grid, rows.offsets, rows.low, rows.high,
                                        rows.w_low, rows.w_high, cols.grid, cols.offsets, cols.low, cols.high,
                                        cols.w_low, cols.w_high, plan.count)]
    out = cuda.device_array(shape, dtype=input.dtype)
    blocks = math.ceil(total / _THREADS)
    _roi_align_kernel[blocks, _THREADS](*args, bool(max_mode), input.dtype.type(0), out)
    return out.copy_to_host(host)
