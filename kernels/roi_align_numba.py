"""RoIAlign in Numba. Public, stable (callable from a user's ``@njit`` code and from Python):

``roi_align(input, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned, max_mode) -> out``
    input (N, C, H, W) float32/float64 C-contiguous; rois (K, 5) ``[batch_index, x1, y1, x2, y2]`` of the
    same dtype, C-contiguous; pooled_h, pooled_w >= 1 ints; spatial_scale float; sampling_ratio int (<= 0:
    adaptive ``ceil(roi_size / pooled)``); aligned, max_mode bools. Returns (K, C, PH, PW) of input's dtype.
    The sampling plan (torchvision's rounding, in the input's dtype) is built inside, per RoI.
    Checks (ValueError naming the argument): input 4-D with H, W >= 1, rois (K, 5), both C-contiguous,
    same dtype, pooled sizes >= 1; and, O(K) against O(K C PH PW) work, every RoI value finite, every
    batch index an integer in [0, N), at most MAX_SAMPLING_GRID (4096) samples per bin per axis.
    Not checked: the feature map's values (NaN/inf propagate as in torchvision), the coordinate bound
    (|corner| <= 1e15): that is `edudet.ops.roi_align`'s job.
    Values: the same bits as `edudet.ops.roi_align(..., backend="numba")` (one code path behind the
    same plan, see below). max_mode is bit-identical to the NumPy reference too; average pooling adds each
    bin's samples in another order than the reference (merged per pixel, below): a few ulps of the bin's
    summed magnitudes apart (tests: rtol 1e-5 in float32, 1e-13 in float64).
``bilinear(plane, y, x) -> value``  (``@njit(inline="always")``)
    One bilinear sample of a (H, W) plane at continuous (y, x), torchvision's boundary rule: 0 when more
    than one pixel outside (``y < -1 or y > H or x < -1 or x > W``, or NaN), clamped to the border within a
    pixel. y, x of the plane's dtype. Same value as the sample `edudet.ops.roi_align` computes.

Example (user code)::

    from numba import njit
    from edudet.kernels.roi_align_numba import roi_align

    @njit
    def mask_features(fmap, rois):
        return roi_align(fmap, rois, 14, 14, 1.0 / 16, 2, True, False)

Private (may change): ``_roi_align_planned(input, batch_index, plan, max_mode, out=None)``, the kernel
`edudet.ops.roi_align` dispatches to (a plan built by `edudet.ops.roi_align.sampling_plan`, checked by
`_roi_common.check_plan`). `roi_align` builds the same plan in njit (`_axis_plan`, per RoI, in parallel),
and both hand it to `_pool_planned`: one code path, so a user's `@njit` call is as fast as edudet's own.

Parallel over channels; for each channel it visits one image plane at a time and pools every RoI of that
image from it while the plane sits in cache (a 200 x 272 float32 plane is ~217 KB: it fits in L2).

Average pooling is separable: ``bin = sum_y w_y * sum_x w_x * f[y, x]`` with the samples' weights merged
per pixel (`edudet.kernels._roi_common.BinWeights`; merged in njit by `_bin_weights`, the same bits
as the NumPy `bin_weights` the Cython twin uses). Pass 1 reduces each row the RoI reads over every
column bin (once, although neighbouring bins share rows), pass 2 weights those row sums into the bins.
Same sum as torchvision's sample-by-sample one, in another order (a few float32 ulps apart), with 2-4x
fewer reads.
Max pooling cannot merge samples: it interpolates every sample in torchvision's order, as the reference.
The loop nests mirror the Cython twin's general path (it has an unrolled variant for <= 4 entries).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.extending import overload

from edudet.kernels._roi_common import check_out, check_plan



@njit(cache=True, parallel=True)
def _roi_align_avg(input, order, starts, roi_rows_off, roi_rows, y_off, y_slot, y_w, x_off, x_pix, x_w, count,
                   pooled_h, pooled_w, max_rows, zero, out):
    num_images, channels = input.shape[0], input.shape[1]
    for c in prange(channels):
        row_sums = np.empty((max_rows, pooled_w), dtype=input.dtype)  # one RoI's rows, reduced per column bin
        for n in range(num_images):
            plane = input[n, c]
            for t in range(starts[n], starts[n + 1]):
                k = order[t]
                first_row = roi_rows_off[k]
                # pass 1: every row the RoI reads, summed over each column bin with merged weights
                for r in range(roi_rows_off[k + 1] - first_row):
                    y = roi_rows[first_row + r]
                    for pw in range(pooled_w):
                        bx = k * pooled_w + pw
                        inner = zero
                        for ex in range(x_off[bx], x_off[bx + 1]):
                            inner += x_w[ex] * plane[y, x_pix[ex]]
                        row_sums[r, pw] = inner
                # pass 2: each bin weights the row sums of its rows
                for ph in range(pooled_h):
                    by = k * pooled_h + ph
                    for pw in range(pooled_w):
                        acc = zero
                        for ey in range(y_off[by], y_off[by + 1]):
                            acc += y_w[ey] * row_sums[y_slot[ey], pw]
                        out[k, c, ph, pw] = acc / count[k]
    return out


@njit(cache=True, parallel=True)
def _roi_align_max(input, order, starts, y_grid, y_off, y_lo, y_hi, y_wlo, y_whi,
                   x_grid, x_off, x_lo, x_hi, x_wlo, x_whi, pooled_h, pooled_w, zero, out):
    num_images, channels = input.shape[0], input.shape[1]
    for c in prange(channels):
        for n in range(num_images):
            plane = input[n, c]
            for t in range(starts[n], starts[n + 1]):
                k = order[t]
                gh = y_grid[k]
                gw = x_grid[k]
                for ph in range(pooled_h):
                    for pw in range(pooled_w):
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
                                val = (hy * hx * plane[yl, xl] + hy * lx * plane[yl, xh]
                                       + ly * hx * plane[yh, xl] + ly * lx * plane[yh, xh])
                                if (iy == 0 and ix == 0) or val > best:
                                    best = val
                        out[k, c, ph, pw] = best
    return out


# ----------------------------------------------------------------------------------------------------------
# Scalar building blocks: one bilinear sample (public), one RoI's samples along an axis
# ----------------------------------------------------------------------------------------------------------
MAX_SAMPLING_GRID = 4096  # = edudet.ops.roi_align.MAX_SAMPLING_GRID (not imported: kernels must not need ops)


@njit(inline="always", cache=True)
def bilinear(plane, y, x):
    """One bilinear sample of a (H, W) plane at (y, x) (torchvision's rule: 0 beyond one pixel outside)."""
    t = plane.dtype.type
    height, width = plane.shape
    # written as "inside" so that a NaN position reads nothing
    if not (y >= -1.0 and y <= height and x >= -1.0 and x <= width):
        return t(0)
    if y <= 0:
        y = t(0)
    if x <= 0:
        x = t(0)
    y_low = np.int64(y)
    x_low = np.int64(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = t(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = t(x_low)
    else:
        x_high = x_low + 1
    ly = y - t(y_low)
    lx = x - t(x_low)
    hy = t(1) - ly
    hx = t(1) - lx
    return (hy * hx * plane[y_low, x_low] + hy * lx * plane[y_low, x_high]
            + ly * hx * plane[y_high, x_low] + ly * lx * plane[y_high, x_high])


@njit(inline="always", cache=True)
def _axis_samples(start, bin_size, grid, pooled, size, low, high, w_low, w_high):
    """One RoI's ``pooled * grid`` sample neighbours along one axis, as `edudet.ops.roi_align._axis_samples`."""
    t = w_low.dtype.type
    for p in range(pooled):
        for i in range(grid):
            s = p * grid + i
            pos = start + t(p) * bin_size + t(i + 0.5) * bin_size / t(grid)
            if pos >= -1.0 and pos <= size:
                if pos <= 0:
                    pos = t(0)
                lo = np.int64(pos)
                if lo >= size - 1:
                    lo = size - 1
                    hi = lo
                    pos = t(lo)
                else:
                    hi = lo + 1
                w_high[s] = pos - t(lo)
                w_low[s] = t(1) - w_high[s]
                low[s] = lo
                high[s] = hi
            else:
                low[s] = 0
                high[s] = 0
                w_low[s] = t(0)
                w_high[s] = t(0)


# ----------------------------------------------------------------------------------------------------------
# The plan in njit: where each RoI samples (as `edudet.ops.roi_align.sampling_plan`), merged per bin (as
# `_roi_common.bin_weights` / `row_slots`, whose NumPy versions the Cython twin uses). The public
# `roi_align` builds it from the RoIs; `_roi_align_planned` from a plan the op built. Both then run the same
# two kernels above, so their results are the same bits.
# ----------------------------------------------------------------------------------------------------------
@njit(cache=True)
def _group_by_image(batch_index, num_images):
    """`_roi_common.group_by_image` in njit: a stable counting sort of the RoIs by image."""
    starts = np.zeros(num_images + 1, dtype=np.int64)
    for k in range(len(batch_index)):
        starts[batch_index[k] + 1] += 1
    for n in range(num_images):
        starts[n + 1] += starts[n]
    order = np.empty(len(batch_index), dtype=np.int64)
    fill = starts[:-1].copy()
    for k in range(len(batch_index)):
        n = batch_index[k]
        order[fill[n]] = k
        fill[n] += 1
    return order, starts


@njit(cache=True, parallel=True)
def _axis_plan(starts, bin_sizes, grid, pooled, size, dtype_of):
    """Every RoI's ``pooled * grid[k]`` samples along one axis -> (offsets (K + 1,), low, high, w_low, w_high)."""
    num_rois = len(grid)
    offsets = np.zeros(num_rois + 1, dtype=np.int64)
    for k in range(num_rois):
        offsets[k + 1] = offsets[k] + pooled * grid[k]
    low = np.empty(offsets[-1], dtype=np.int64)
    high = np.empty(offsets[-1], dtype=np.int64)
    w_low = np.empty(offsets[-1], dtype=dtype_of.dtype)
    w_high = np.empty(offsets[-1], dtype=dtype_of.dtype)
    for k in prange(num_rois):
        first, last = offsets[k], offsets[k + 1]
        _axis_samples(starts[k], bin_sizes[k], grid[k], pooled, size, low[first:last], high[first:last],
                      w_low[first:last], w_high[first:last])
    return offsets, low, high, w_low, w_high


@njit(inline="always", cache=True)
def _merge_bin(first, n, low, high, w_low, w_high, acc, pixel, weight, at, fill):
    """Merge one bin's n samples into one weight per pixel; write them at `at` when `fill`; -> how many.

    The sums run in float64 in `np.bincount`'s order (every sample's low neighbour, then every high one),
    so each merged weight has the bits of `_roi_common.bin_weights`'. `acc` is a zeroed float64 scratch
    row of the axis length, zeroed again on return. Weights are >= 0: a pixel is listed iff its sum != 0.
    """
    if n == 0:
        return 0
    lo = low[first]
    hi = high[first]
    for s in range(first, first + n):
        if w_low[s] != 0:
            acc[low[s]] += w_low[s]
        lo = min(lo, low[s])
        hi = max(hi, high[s])
    for s in range(first, first + n):
        if w_high[s] != 0:
            acc[high[s]] += w_high[s]
    count = 0
    for p in range(lo, hi + 1):
        if acc[p] != 0:
            if fill:
                pixel[at + count] = p
                weight[at + count] = acc[p]
            count += 1
            acc[p] = 0.0
    return count


@njit(cache=True, parallel=True)
def _bin_weights(grid, offsets, low, high, w_low, w_high, pooled, size):
    """`_roi_common.bin_weights` in njit, the same bits -> (offsets (K * pooled + 1,), pixel (E,), weight (E,))."""
    num_rois = len(grid)
    bin_offsets = np.zeros(num_rois * pooled + 1, dtype=np.int64)
    no_pixel = np.empty(0, dtype=np.int64)
    no_weight = np.empty(0, dtype=w_low.dtype)
    for k in prange(num_rois):  # count each bin's pixels, then fill them in at their offsets
        acc = np.zeros(size, dtype=np.float64)
        for p in range(pooled):
            bin_offsets[k * pooled + p + 1] = _merge_bin(offsets[k] + p * grid[k], grid[k], low, high, w_low,
                                                         w_high, acc, no_pixel, no_weight, 0, False)
    for b in range(num_rois * pooled):
        bin_offsets[b + 1] += bin_offsets[b]
    pixel = np.empty(bin_offsets[-1], dtype=np.int64)
    weight = np.empty(bin_offsets[-1], dtype=w_low.dtype)
    for k in prange(num_rois):
        acc = np.zeros(size, dtype=np.float64)
        for p in range(pooled):
            _merge_bin(offsets[k] + p * grid[k], grid[k], low, high, w_low, w_high, acc, pixel, weight,
                       bin_offsets[k * pooled + p], True)
    return bin_offsets, pixel, weight


@njit(cache=True, parallel=True)
def _row_slots(bin_offsets, pixel, pooled_h, height):
    """`_roi_common.row_slots` in njit -> (offsets (K + 1,), rows (R,), slot (E,)): each RoI's distinct rows."""
    num_rois = (len(bin_offsets) - 1) // pooled_h
    roi_offsets = np.zeros(num_rois + 1, dtype=np.int64)
    for k in prange(num_rois):
        used = np.zeros(height, dtype=np.bool_)
        for e in range(bin_offsets[k * pooled_h], bin_offsets[(k + 1) * pooled_h]):
            used[pixel[e]] = True
        roi_offsets[k + 1] = used.sum()
    for k in range(num_rois):
        roi_offsets[k + 1] += roi_offsets[k]
    rows = np.empty(roi_offsets[-1], dtype=np.int64)
    slot = np.empty(len(pixel), dtype=np.int64)
    for k in prange(num_rois):
        slot_of = np.full(height, -1, dtype=np.int64)
        first, last = bin_offsets[k * pooled_h], bin_offsets[(k + 1) * pooled_h]
        for e in range(first, last):
            slot_of[pixel[e]] = 0
        r = 0
        for y in range(height):  # ascending, as np.unique
            if slot_of[y] == 0:
                slot_of[y] = r
                rows[roi_offsets[k] + r] = y
                r += 1
        for e in range(first, last):
            slot[e] = slot_of[pixel[e]]
    return roi_offsets, rows, slot


@njit(cache=True)
def _pool_planned(input, batch_index, rows, cols, count, pooled_h, pooled_w, max_mode, out):
    """Both entries' common tail: rows / cols = (grid, offsets, low, high, w_low, w_high) per axis; every
    element of `out` (K, C, pooled_h, pooled_w) is written."""
    order, starts = _group_by_image(batch_index, input.shape[0])
    zero = input.dtype.type(0)
    if max_mode:
        return _roi_align_max(input, order, starts, rows[0], rows[1], rows[2], rows[3], rows[4], rows[5],
                              cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], pooled_h, pooled_w, zero, out)
    y_off, y_pix, y_w = _bin_weights(rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], pooled_h, input.shape[2])
    x_off, x_pix, x_w = _bin_weights(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], pooled_w, input.shape[3])
    roi_rows_off, roi_rows, y_slot = _row_slots(y_off, y_pix, pooled_h, input.shape[2])
    max_rows = 0
    for k in range(len(batch_index)):
        max_rows = max(max_rows, roi_rows_off[k + 1] - roi_rows_off[k])
    return _roi_align_avg(input, order, starts, roi_rows_off, roi_rows, y_off, y_slot, y_w, x_off, x_pix, x_w,
                          count, pooled_h, pooled_w, max_rows, zero, out)


def _roi_align_planned(input, batch_index, plan, max_mode, out=None):
    """(N, C, H, W) input, (K,) int64 batch indices, a `SamplingPlan` -> (K, C, PH, PW), written into `out`
    when given (C-contiguous, that shape and input's dtype: `check_out`)."""
    check_plan(input, batch_index, plan)  # Numba does no bounds checks: a hand-made plan must not read outside
    out = check_out(out, input, batch_index, plan)
    rows, cols = plan.rows, plan.cols
    return _pool_planned(input, batch_index, (rows.grid, rows.offsets, rows.low, rows.high, rows.w_low, rows.w_high),
                         (cols.grid, cols.offsets, cols.low, cols.high, cols.w_low, cols.w_high), plan.count,
                         plan.pooled_height, plan.pooled_width, bool(max_mode), out)


# ----------------------------------------------------------------------------------------------------------
# The stable, njit-callable entry: checks, then the plan built per RoI inside
# ----------------------------------------------------------------------------------------------------------
def _same_dtype(a, b):
    return a.dtype == b.dtype


@overload(_same_dtype)
def _same_dtype_overload(a, b):  # decided at compile time, from the argument types
    same = a.dtype == b.dtype
    return lambda a, b: same


@njit(cache=True)
def _check_rois(input, rois, pooled_h, pooled_w):
    """Structural checks, then the O(K) value checks that keep every read inside `input`."""
    if input.ndim != 4 or input.shape[2] < 1 or input.shape[3] < 1:
        raise ValueError("input must be a (N, C, H, W) array with H >= 1 and W >= 1")
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError("rois must be a (K, 5) array [batch_index, x1, y1, x2, y2]")
    if not input.flags.c_contiguous or not rois.flags.c_contiguous:
        raise ValueError("input and rois must be C-contiguous (np.ascontiguousarray)")
    if pooled_h < 1 or pooled_w < 1:
        raise ValueError("pooled_h and pooled_w must be >= 1")
    for k in range(rois.shape[0]):
        for j in range(5):
            if not np.isfinite(rois[k, j]):
                raise ValueError("rois must be finite")
        index = rois[k, 0]
        if index != np.floor(index) or index < 0 or index >= input.shape[0]:
            raise ValueError("rois[:, 0] (the batch index) must hold integers in [0, N)")


@njit(cache=True)
def roi_align(input, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned, max_mode):
    """(N, C, H, W) input, (K, 5) rois of its dtype -> (K, C, PH, PW): RoIAlign, see the module docstring."""
    _check_rois(input, rois, pooled_h, pooled_w)
    if not _same_dtype(input, rois):
        raise ValueError("rois must have the same dtype as input")
    t = input.dtype.type
    num_rois, height, width = rois.shape[0], input.shape[2], input.shape[3]
    scale = t(spatial_scale)
    offset = t(0.5) if aligned else t(0.0)
    # per RoI: the corners, bin sizes and grids, in T as the reference computes them (one serial pass, so a
    # grid beyond the limit is refused before any work)
    y1s = np.empty(num_rois, dtype=input.dtype)
    x1s = np.empty(num_rois, dtype=input.dtype)
    bin_hs = np.empty(num_rois, dtype=input.dtype)
    bin_ws = np.empty(num_rois, dtype=input.dtype)
    grid_hs = np.empty(num_rois, dtype=np.int64)
    grid_ws = np.empty(num_rois, dtype=np.int64)
    count = np.empty(num_rois, dtype=input.dtype)
    batch_index = np.empty(num_rois, dtype=np.int64)
    for k in range(num_rois):
        x1 = rois[k, 1] * scale - offset
        y1 = rois[k, 2] * scale - offset
        roi_w = (rois[k, 3] * scale - offset) - x1
        roi_h = (rois[k, 4] * scale - offset) - y1
        if not aligned:  # legacy Detectron: a RoI is at least 1 x 1
            roi_w = roi_w if roi_w > t(1) else t(1)
            roi_h = roi_h if roi_h > t(1) else t(1)
        x1s[k] = x1
        y1s[k] = y1
        bin_hs[k] = roi_h / t(pooled_h)
        bin_ws[k] = roi_w / t(pooled_w)
        if sampling_ratio > 0:
            if sampling_ratio > MAX_SAMPLING_GRID:
                raise ValueError("sampling_ratio must be <= 4096 (samples per bin per axis)")
            grid_hs[k] = sampling_ratio
            grid_ws[k] = sampling_ratio
        else:
            gh = math.ceil(roi_h / t(pooled_h))
            gw = math.ceil(roi_w / t(pooled_w))
            if gh > MAX_SAMPLING_GRID or gw > MAX_SAMPLING_GRID:
                raise ValueError("rois: an adaptive grid (sampling_ratio <= 0) would exceed 4096 samples per bin "
                                 "per axis; check spatial_scale or pass sampling_ratio > 0")
            grid_hs[k] = max(gh, 0)  # a negative-size aligned RoI has no samples: its bins are 0
            grid_ws[k] = max(gw, 0)
        count[k] = t(max(grid_hs[k] * grid_ws[k], 1))
        batch_index[k] = np.int64(rois[k, 0])
    y_off, y_lo, y_hi, y_wlo, y_whi = _axis_plan(y1s, bin_hs, grid_hs, pooled_h, height, y1s)
    x_off, x_lo, x_hi, x_wlo, x_whi = _axis_plan(x1s, bin_ws, grid_ws, pooled_w, width, x1s)
    out = np.empty((len(batch_index), input.shape[1], pooled_h, pooled_w), dtype=input.dtype)
    return _pool_planned(input, batch_index, (grid_hs, y_off, y_lo, y_hi, y_wlo, y_whi),
                         (grid_ws, x_off, x_lo, x_hi, x_wlo, x_whi), count, pooled_h, pooled_w, max_mode, out)
