"""RoIPool in Numba. Public, stable (callable from a user's ``@njit`` code and from Python):

``roi_pool(input, rois, pooled_h, pooled_w, spatial_scale) -> out``
    input (N, C, H, W) float32/float64 C-contiguous; rois (K, 5) ``[batch_index, x1, y1, x2, y2]`` of the
    same dtype, C-contiguous; pooled_h, pooled_w >= 1. Returns (K, C, PH, PW) of input's dtype. The bins
    (torchvision's rounding: `edudet.ops.roi_pool.pooling_bins`) are computed inside, per RoI.
    Checks (ValueError): the same structure and O(K) RoI checks as `roi_align_numba.roi_align` (finite
    RoIs, batch indices integers in [0, N)). Not checked: the map's values, the coordinate bound (1e15).
    Bit-identical to `edudet.ops.roi_pool` (a maximum does not depend on order) on finite maps.

Example (user code)::

    from numba import njit
    from edudet.kernels.roi_pool_numba import roi_pool

    @njit
    def pooled(fmap, rois):
        return roi_pool(fmap, rois, 7, 7, 1.0 / 16)

Private (may change): ``_roi_pool_bins(input, batch_index, bins)``, what `edudet.ops.roi_pool` dispatches
to (bins from `pooling_bins`, checked by `_roi_common.check_bins`). Both entries run one kernel, `_roi_pool`:
`roi_pool` only computes the bins itself first, so it is as fast as the op's numba backend.

Parallel over channels; for each channel one image plane at a time, pooling every RoI of that image from
it while it is in cache. Each bin starts at -FLT_MAX and keeps a value only if strictly larger (NaN never
is), an empty bin is 0: torchvision's rule.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from edudet.kernels._roi_common import check_bins
from edudet.kernels.roi_align_numba import _check_rois, _group_by_image, _same_dtype
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


def _roi_pool_bins(input, batch_index, bins):
    """(N, C, H, W) input, (K,) int64 batch indices, `PoolingBins` -> (K, C, PH, PW)."""
    check_bins(input, batch_index, bins)  # the kernel does no bounds checks: hand-made bins must stay in the map
    order, starts = _group_by_image(batch_index, input.shape[0])
    out = np.empty((len(batch_index), input.shape[1], bins.h_start.shape[1], bins.w_start.shape[1]),
                   dtype=input.dtype)
    return _roi_pool(input, order, starts, bins.h_start, bins.h_end, bins.w_start, bins.w_end,
                     input.dtype.type(LOWEST), out)


@njit(inline="always", cache=True)
def _round_half_away(value):
    """C's round (2.5 -> 3, -2.5 -> -3) of a finite float, as an int64."""
    whole = np.trunc(value)
    if abs(value - whole) >= 0.5:
        whole += 1.0 if value > 0 else -1.0
    return np.int64(whole)


@njit(cache=True, parallel=True)
def roi_pool(input, rois, pooled_h, pooled_w, spatial_scale):
    """(N, C, H, W) input, (K, 5) rois of its dtype -> (K, C, PH, PW): RoIPool, see the module docstring."""
    _check_rois(input, rois, pooled_h, pooled_w)
    if not _same_dtype(input, rois):
        raise ValueError("rois must have the same dtype as input")
    t = input.dtype.type
    num_rois, height, width = rois.shape[0], input.shape[2], input.shape[3]
    scale = t(spatial_scale)
    # each RoI's bin edges (`edudet.ops.roi_pool.pooling_bins`), then the same kernel as the numba backend
    h_start = np.empty((num_rois, pooled_h), dtype=np.int64)
    h_end = np.empty((num_rois, pooled_h), dtype=np.int64)
    w_start = np.empty((num_rois, pooled_w), dtype=np.int64)
    w_end = np.empty((num_rois, pooled_w), dtype=np.int64)
    batch_index = np.empty(num_rois, dtype=np.int64)
    for k in prange(num_rois):
        x1 = _round_half_away(rois[k, 1] * scale)
        y1 = _round_half_away(rois[k, 2] * scale)
        x2 = _round_half_away(rois[k, 3] * scale)
        y2 = _round_half_away(rois[k, 4] * scale)
        # the end pixel is included; a malformed region is 1 pixel
        bin_h = t(max(y2 - y1 + 1, 1)) / t(pooled_h)
        bin_w = t(max(x2 - x1 + 1, 1)) / t(pooled_w)
        for ph in range(pooled_h):
            h_start[k, ph] = min(max(np.int64(np.floor(t(ph) * bin_h)) + y1, 0), height)
            h_end[k, ph] = min(max(np.int64(np.ceil(t(ph + 1) * bin_h)) + y1, 0), height)
        for pw in range(pooled_w):
            w_start[k, pw] = min(max(np.int64(np.floor(t(pw) * bin_w)) + x1, 0), width)
            w_end[k, pw] = min(max(np.int64(np.ceil(t(pw + 1) * bin_w)) + x1, 0), width)
        batch_index[k] = np.int64(rois[k, 0])
    order, starts = _group_by_image(batch_index, input.shape[0])
    out = np.empty((num_rois, input.shape[1], pooled_h, pooled_w), dtype=input.dtype)
    return _roi_pool(input, order, starts, h_start, h_end, w_start, w_end, t(LOWEST), out)
