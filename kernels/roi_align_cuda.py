"""RoIAlign pooling in numba.cuda: same signature as `edudet.ops.roi_align.roi_align_numpy`.

One thread per output element ``(k, c, ph, pw)``; the sampling plan (a few numbers per RoI) is copied to
the device with the feature map, and the result is copied back. Samples are added in torchvision's order.
Runs under ``NUMBA_ENABLE_CUDASIM=1`` (slowly: tests use small inputs).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from edudet.kernels._roi_common import check_plan

_THREADS = 128


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


def roi_align(input, batch_index, plan, max_mode):
    """(N, C, H, W) input, (K,) int64 batch indices, a `SamplingPlan` -> (K, C, PH, PW)."""
    check_plan(input, batch_index, plan)  # a hand-made plan must not read outside the map
    rows, cols = plan.rows, plan.cols
    shape = (len(batch_index), input.shape[1], plan.pooled_height, plan.pooled_width)
    total = int(np.prod(shape))
    if total == 0:
        return np.zeros(shape, dtype=input.dtype)
    args = [cuda.to_device(a) for a in (input, batch_index, rows.grid, rows.offsets, rows.low, rows.high,
                                        rows.w_low, rows.w_high, cols.grid, cols.offsets, cols.low, cols.high,
                                        cols.w_low, cols.w_high, plan.count)]
    out = cuda.device_array(shape, dtype=input.dtype)
    blocks = math.ceil(total / _THREADS)
    _roi_align_kernel[blocks, _THREADS](*args, bool(max_mode), input.dtype.type(0), out)
    return out.copy_to_host()
