"""RoIPool maxima in numba.cuda: same signature as `edudet.ops.roi_pool.roi_pool_numpy`.

One thread per output element ``(k, c, ph, pw)``; the bin edges are copied to the device with the feature
map and the result is copied back. Runs under ``NUMBA_ENABLE_CUDASIM=1`` (slowly: tests use small inputs).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from edudet.kernels._roi_common import check_bins
from edudet.ops.roi_pool import LOWEST

_THREADS = 128


@cuda.jit
def _roi_pool_kernel(input, batch_index, h_start, h_end, w_start, w_end, lowest, zero, out):
    index = cuda.grid(1)
    num_rois, channels, pooled_h, pooled_w = out.shape
    if index >= num_rois * channels * pooled_h * pooled_w:
        return
    pw = index % pooled_w
    ph = (index // pooled_w) % pooled_h
    c = (index // (pooled_w * pooled_h)) % channels
    k = index // (pooled_w * pooled_h * channels)
    n = batch_index[k]
    hs = h_start[k, ph]
    he = h_end[k, ph]
    ws = w_start[k, pw]
    we = w_end[k, pw]
    if he <= hs or we <= ws:
        out[k, c, ph, pw] = zero
        return
    best = lowest
    for h in range(hs, he):
        for w in range(ws, we):
            if input[n, c, h, w] > best:
                best = input[n, c, h, w]
    out[k, c, ph, pw] = best


def roi_pool(input, batch_index, bins):
    """(N, C, H, W) input, (K,) int64 batch indices, `PoolingBins` -> (K, C, PH, PW)."""
    check_bins(input, batch_index, bins)  # hand-made bins must stay in the map
    shape = (len(batch_index), input.shape[1], bins.h_start.shape[1], bins.w_start.shape[1])
    total = int(np.prod(shape))
    if total == 0:
        return np.zeros(shape, dtype=input.dtype)
    args = [cuda.to_device(a) for a in (input, batch_index, bins.h_start, bins.h_end, bins.w_start, bins.w_end)]
    out = cuda.device_array(shape, dtype=input.dtype)
    dtype = input.dtype.type
    _roi_pool_kernel[math.ceil(total / _THREADS), _THREADS](*args, dtype(LOWEST), dtype(0), out)
    return out.copy_to_host()
