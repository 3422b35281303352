"""RoIPool maxima in Numba: same signature as `edudet.ops.roi_pool.roi_pool_numpy`.

Parallel over channels; for each channel one image plane at a time, pooling every RoI of that image from
it while it is in cache. Each bin starts at -FLT_MAX and keeps a value only if strictly larger (NaN never
is), an empty bin is 0: torchvision's rule.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from edudet.kernels._roi_common import check_bins, group_by_image
from edudet.ops.roi_pool import LOWEST


@njit(cache=True, parallel=True)
def _roi_pool(input, order, starts, h_start, h_end, w_start, w_end, lowest, out):
    num_images, channels = input.shape[0], input.shape[1]
    pooled_h, pooled_w = h_start.shape[1], w_start.shape[1]
    for c in prange(channels):
        for n in range(num_images):
            plane = input[n, c]
            for t in range(starts[n], starts[n + 1]):
                k = order[t]
                for ph in range(pooled_h):
                    hs = h_start[k, ph]
                    he = h_end[k, ph]
                    for pw in range(pooled_w):
                        ws = w_start[k, pw]
                        we = w_end[k, pw]
                        if he <= hs or we <= ws:
                            out[k, c, ph, pw] = 0
                            continue
                        # four running maxima over interleaved columns: the compare-select chains run in
                        # parallel. Selects, not branches (NaN is never greater); the max ignores the order
                        b0 = lowest
                        b1 = lowest
                        b2 = lowest
                        b3 = lowest
                        for h in range(hs, he):
                            w = ws
                            while w + 4 <= we:
                                v0 = plane[h, w]
                                v1 = plane[h, w + 1]
                                v2 = plane[h, w + 2]
                                v3 = plane[h, w + 3]
                                b0 = v0 if v0 > b0 else b0
                                b1 = v1 if v1 > b1 else b1
                                b2 = v2 if v2 > b2 else b2
                                b3 = v3 if v3 > b3 else b3
                                w += 4
                            while w < we:
                                v0 = plane[h, w]
                                b0 = v0 if v0 > b0 else b0
                                w += 1
                        b0 = b1 if b1 > b0 else b0
                        b2 = b3 if b3 > b2 else b2
                        out[k, c, ph, pw] = b2 if b2 > b0 else b0
    return out


def roi_pool(input, batch_index, bins):
    """(N, C, H, W) input, (K,) int64 batch indices, `PoolingBins` -> (K, C, PH, PW)."""
    check_bins(input, batch_index, bins)  # the kernel does no bounds checks: hand-made bins must stay in the map
    order, starts = group_by_image(batch_index, input.shape[0])
    out = np.empty((len(batch_index), input.shape[1], bins.h_start.shape[1], bins.w_start.shape[1]),
                   dtype=input.dtype)
    return _roi_pool(input, order, starts, bins.h_start, bins.h_end, bins.w_start, bins.w_end,
                     input.dtype.type(LOWEST), out)
