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
    Values: max_mode is bit-identical to `edudet.ops.roi_align` (backend="numpy"); average pooling adds
    each bin's samples in the order NumPy's reductions take in the reference (each sample row left to
    right, then the rows as ``np.add.reduceat``: the first plus the pairwise sum of the rest) and is
    bit-identical to it on the tests' inputs (hypothesis, C = 3). NumPy picks its order from memory
    layout, so other shapes (C = 1 with >= 8 samples per bin row; RoIs over 2 ** 21 samples, which the
    reference splits) differ by rounding: a few ulps of the bin's summed magnitudes.
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

Private (may change): ``_roi_align_planned(input, batch_index, plan, max_mode)``, the kernel
`edudet.ops.roi_align` dispatches to (a plan built by `edudet.ops.roi_align.sampling_plan`, checked by
`_roi_common.check_plan`). It is ~3x faster than `roi_align` on average pooling (below) and a few ulps
from the reference.

Parallel over channels; for each channel it visits one image plane at a time and pools every RoI of that
image from it while the plane sits in cache (a 200 x 272 float32 plane is ~217 KB: it fits in L2).

Average pooling is separable: ``bin = sum_y w_y * sum_x w_x * f[y, x]`` with the samples' weights merged
per pixel (`edudet.kernels._roi_common.BinWeights`). Pass 1 reduces each row the RoI reads over every
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

from edudet.kernels._roi_common import bin_weights, check_plan, group_by_image, row_slots


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


def _roi_align_planned(input, batch_index, plan, max_mode):
    """(N, C, H, W) input, (K,) int64 batch indices, a `SamplingPlan` -> (K, C, PH, PW)."""
    check_plan(input, batch_index, plan)  # Numba does no bounds checks: a hand-made plan must not read outside
    order, starts = group_by_image(batch_index, input.shape[0])
    out = np.empty((len(batch_index), input.shape[1], plan.pooled_height, plan.pooled_width), dtype=input.dtype)
    zero = input.dtype.type(0)
    rows, cols = plan.rows, plan.cols
    if max_mode:
        return _roi_align_max(input, order, starts, rows.grid, rows.offsets, rows.low, rows.high, rows.w_low,
                              rows.w_high, cols.grid, cols.offsets, cols.low, cols.high, cols.w_low, cols.w_high,
                              plan.pooled_height, plan.pooled_width, zero, out)
    ys = bin_weights(rows, plan.pooled_height, input.shape[2])
    xs = bin_weights(cols, plan.pooled_width, input.shape[3])
    slots = row_slots(ys, plan.pooled_height, input.shape[2])
    max_rows = int(np.diff(slots.offsets).max())
    return _roi_align_avg(input, order, starts, slots.offsets, slots.rows, ys.offsets, slots.slot, ys.weight,
                          xs.offsets, xs.pixel, xs.weight, plan.count, plan.pooled_height, plan.pooled_width,
                          max_rows, zero, out)


# ----------------------------------------------------------------------------------------------------------
# The stable, njit-callable surface: the plan is built per RoI inside the kernel
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


@njit(inline="always", cache=True)
def _block_sum(values, first, n):
    """NumPy's float sum of values[first:first + n] for n <= 128: 8 running sums, combined pairwise."""
    t = values.dtype.type
    if n < 8:
        total = t(-0.0)
        for i in range(first, first + n):
            total += values[i]
        return total
    if n <= 128:
        r0, r1, r2, r3 = values[first], values[first + 1], values[first + 2], values[first + 3]
        r4, r5, r6, r7 = values[first + 4], values[first + 5], values[first + 6], values[first + 7]
        i = 8
        while i < n - n % 8:
            j = first + i
            r0 += values[j]
            r1 += values[j + 1]
            r2 += values[j + 2]
            r3 += values[j + 3]
            r4 += values[j + 4]
            r5 += values[j + 5]
            r6 += values[j + 6]
            r7 += values[j + 7]
            i += 8
        total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            total += values[first + i]
            i += 1
        return total


@njit(cache=True)
def _pairwise_sum(values, first, n):
    """NumPy's float sum of values[first:first + n] (pairwise in blocks of 8): the reference's rounding.

    NumPy recurses, ``sum(n) = sum(half) + sum(n - half)`` with ``half = n // 2`` rounded down to a multiple
    of 8, down to blocks of <= 128. Done here with explicit stacks (Numba's on-disk cache mishandles
    recursive functions): ranges still to sum, and partial sums combined left + right as the recursion does.
    """
    if n <= 128:
        return _block_sum(values, first, n)
    range_first = np.empty(64, dtype=np.int64)
    range_n = np.empty(64, dtype=np.int64)
    split = np.zeros(64, dtype=np.bool_)
    partial = np.empty(64, dtype=values.dtype)
    range_first[0] = first
    range_n[0] = n
    top = 1
    done = 0
    while top > 0:
        i = top - 1
        if range_n[i] <= 128:
            partial[done] = _block_sum(values, range_first[i], range_n[i])
            done += 1
            top -= 1
        elif split[i]:  # both halves summed: combine them
            partial[done - 2] = partial[done - 2] + partial[done - 1]
            done -= 1
            split[i] = False
            top -= 1
        else:  # push the right half, then the left one (summed first)
            half = range_n[i] // 2
            half -= half % 8
            split[i] = True
            range_first[top] = range_first[i] + half
            range_n[top] = range_n[i] - half
            split[top] = False
            range_first[top + 1] = range_first[i]
            range_n[top + 1] = half
            split[top + 1] = False
            top += 2
    return partial[0]


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


@njit(cache=True, parallel=True)
def roi_align(input, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned, max_mode):
    """(N, C, H, W) input, (K, 5) rois of its dtype -> (K, C, PH, PW): RoIAlign, see the module docstring."""
    _check_rois(input, rois, pooled_h, pooled_w)
    if not _same_dtype(input, rois):
        raise ValueError("rois must have the same dtype as input")
    t = input.dtype.type
    num_rois, channels, height, width = rois.shape[0], input.shape[1], input.shape[2], input.shape[3]
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
    out = np.zeros((num_rois, channels, pooled_h, pooled_w), dtype=input.dtype)
    for k in prange(num_rois):
        gh = grid_hs[k]
        gw = grid_ws[k]
        if gh == 0 or gw == 0:
            continue
        y_lo = np.empty(pooled_h * gh, dtype=np.int64)
        y_hi = np.empty(pooled_h * gh, dtype=np.int64)
        hy = np.empty(pooled_h * gh, dtype=input.dtype)
        ly = np.empty(pooled_h * gh, dtype=input.dtype)
        x_lo = np.empty(pooled_w * gw, dtype=np.int64)
        x_hi = np.empty(pooled_w * gw, dtype=np.int64)
        hx = np.empty(pooled_w * gw, dtype=input.dtype)
        lx = np.empty(pooled_w * gw, dtype=input.dtype)
        _axis_samples(y1s[k], bin_hs[k], gh, pooled_h, height, y_lo, y_hi, hy, ly)
        _axis_samples(x1s[k], bin_ws[k], gw, pooled_w, width, x_lo, x_hi, hx, lx)
        count = t(max(gh * gw, 1))
        row = np.empty(gw, dtype=input.dtype)  # one sample row of one bin
        row_sums = np.empty(gh, dtype=input.dtype)  # a bin's sample rows, each summed
        n = np.int64(rois[k, 0])
        for c in range(channels):
            plane = input[n, c]
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    acc = t(0)
                    for iy in range(gh):
                        sy = ph * gh + iy
                        for ix in range(gw):
                            sx = pw * gw + ix
                            # the weights are outer products, multiplied first, as in the reference
                            row[ix] = (hy[sy] * hx[sx] * plane[y_lo[sy], x_lo[sx]]
                                       + hy[sy] * lx[sx] * plane[y_lo[sy], x_hi[sx]]
                                       + ly[sy] * hx[sx] * plane[y_hi[sy], x_lo[sx]]
                                       + ly[sy] * lx[sx] * plane[y_hi[sy], x_hi[sx]])
                        if max_mode:
                            for ix in range(gw):
                                if (iy == 0 and ix == 0) or row[ix] > acc:
                                    acc = row[ix]
                        else:
                            row_sum = row[0]
                            for ix in range(1, gw):
                                row_sum += row[ix]
                            row_sums[iy] = row_sum
                    if max_mode:
                        out[k, c, ph, pw] = acc
                    else:
                        # NumPy's reduceat over a bin's rows: the first row plus the rest summed pairwise
                        acc = row_sums[0]
                        if gh > 1:
                            acc += _pairwise_sum(row_sums, 1, gh - 1)
                        out[k, c, ph, pw] = (t(0) + acc) / count
    return out
