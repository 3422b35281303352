# cython: language_level=3
"""RoIAlign pooling in Cython: same signature as `edudet.ops.roi_align.roi_align_numpy`.

OpenMP `prange` over channels (dynamic chunks of 4: a busy core takes fewer); for each channel one image plane
at a time, pooling every RoI of that image while the plane is in cache. Fused types compile one copy for
float32 and one for float64.

Average pooling is separable: ``bin = sum_y w_y * sum_x w_x * f[y, x]`` with the samples' weights merged
per pixel (`edudet.kernels._roi_common.BinWeights`). Pass 1 reduces each row the RoI reads over every
column bin (once, although neighbouring bins share rows), pass 2 weights those row sums into the bins.
Same sum as torchvision's sample-by-sample one, in another order (a few float32 ulps apart), with 2-4x
fewer reads.
When no bin reads more than 4 pixels per axis (``sampling_ratio <= 2``, Mask R-CNN's setting) a variant
with the entries padded to exactly 4 unrolls the sums (~2x faster on the mask-head workload); its padding
only ever multiplies, by 0, pixels its own bin reads, so a non-finite pixel cannot spread to other bins.
Max pooling cannot merge samples: it interpolates every sample in torchvision's order, as the reference.
Three times the code of one loop nest; the speed is worth it (see benchmarks/bench_roi.py), and the NumPy
reference stays the readable truth.
"""
import numpy as np

from cython.parallel import prange
cimport openmp
from libc.stdint cimport int64_t

from edudet.kernels._roi_common import bin_weights, check_out, check_plan, group_by_image, row_slots

ctypedef fused real:
    float
    double


cdef void _average_plane(const real[:, ::1] plane, const int64_t[::1] order, int64_t first, int64_t last,
                         Py_ssize_t c, const int64_t[::1] roi_rows_off, const int64_t[::1] roi_rows,
                         const int64_t[::1] y_off, const int64_t[::1] y_slot, const real[::1] y_w,
                         const int64_t[::1] x_off, const int64_t[::1] x_pix, const real[::1] x_w,
                         const real[::1] count, int pooled_h, int pooled_w, real[:, ::1] row_sums,
                         real[:, :, :, ::1] out) noexcept nogil:
    cdef int64_t t, k, r, y, bx, by, ex, ey, first_row
    cdef int ph, pw
    cdef real inner, acc
    cdef const real* row
    for t in range(first, last):
        k = order[t]
        first_row = roi_rows_off[k]
        # pass 1: every row the RoI reads, summed over each column bin with merged weights
        for r in range(roi_rows_off[k + 1] - first_row):
            row = &plane[roi_rows[first_row + r], 0]
            for pw in range(pooled_w):
                bx = k * pooled_w + pw
                inner = 0
                for ex in range(x_off[bx], x_off[bx + 1]):
                    inner = inner + x_w[ex] * row[x_pix[ex]]
                row_sums[r, pw] = inner
        # pass 2: each bin weights the row sums of its rows
        for ph in range(pooled_h):
            by = k * pooled_h + ph
            for pw in range(pooled_w):
                acc = 0
                for ey in range(y_off[by], y_off[by + 1]):
                    acc = acc + y_w[ey] * row_sums[y_slot[ey], pw]
                out[k, c, ph, pw] = acc / count[k]


cdef void _average_plane_4(const real[:, ::1] plane, const int64_t[::1] order, int64_t first, int64_t last,
                           Py_ssize_t c, const int64_t[::1] roi_rows_off, const int64_t[::1] roi_rows,
                           const int64_t[::1] y_n, const int64_t[:, ::1] y_slot, const real[:, ::1] y_w,
                           const int64_t[::1] x_n, const int64_t[:, ::1] x_pix, const real[:, ::1] x_w,
                           const real[::1] count, int pooled_h, int pooled_w, real[:, ::1] row_sums,
                           real[:, :, :, ::1] out) noexcept nogil:
    # `_average_plane` when no bin reads more than 4 pixels per axis (sampling_ratio <= 2, the common case):
    # each bin's entries are padded to exactly 4 (see `_pad_to_4`), so the sums unroll without inner loops.
    # A padding entry repeats a pixel (row) its own bin reads, weight 0: it adds 0 unless that pixel is inf
    # or NaN, and then the bin is not finite anyway. A bin with no entries on an axis is 0 by a select: its
    # padding reads pixel (row slot) 0, which it never covers. Finite results are those of `_average_plane`
    cdef int64_t t, k, r, bx, by, first_row
    cdef int ph, pw
    cdef real total
    cdef const real* row
    for t in range(first, last):
        k = order[t]
        first_row = roi_rows_off[k]
        for r in range(roi_rows_off[k + 1] - first_row):
            row = &plane[roi_rows[first_row + r], 0]
            for pw in range(pooled_w):
                bx = k * pooled_w + pw
                row_sums[r, pw] = (x_w[bx, 0] * row[x_pix[bx, 0]] + x_w[bx, 1] * row[x_pix[bx, 1]]
                                   + x_w[bx, 2] * row[x_pix[bx, 2]] + x_w[bx, 3] * row[x_pix[bx, 3]])
        for ph in range(pooled_h):
            by = k * pooled_h + ph
            for pw in range(pooled_w):
                bx = k * pooled_w + pw
                total = (y_w[by, 0] * row_sums[y_slot[by, 0], pw] + y_w[by, 1] * row_sums[y_slot[by, 1], pw]
                         + y_w[by, 2] * row_sums[y_slot[by, 2], pw] + y_w[by, 3] * row_sums[y_slot[by, 3], pw])
                out[k, c, ph, pw] = total / count[k] if x_n[bx] != 0 and y_n[by] != 0 else 0


cdef void _max_plane(const real[:, ::1] plane, const int64_t[::1] order, int64_t first, int64_t last,
                     Py_ssize_t c, const int64_t[::1] y_grid, const int64_t[::1] y_off,
                     const int64_t[::1] y_lo, const int64_t[::1] y_hi, const real[::1] y_wlo,
                     const real[::1] y_whi, const int64_t[::1] x_grid, const int64_t[::1] x_off,
                     const int64_t[::1] x_lo, const int64_t[::1] x_hi, const real[::1] x_wlo,
                     const real[::1] x_whi, int pooled_h, int pooled_w, real[:, :, :, ::1] out) noexcept nogil:
    cdef int64_t t, k, gh, gw, sy, sx, yl, yh, xl, xh, iy, ix
    cdef int ph, pw
    cdef real best, val, hy, ly, hx, lx
    for t in range(first, last):
        k = order[t]
        gh = y_grid[k]
        gw = x_grid[k]
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                best = 0
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


def _roi_align_avg(const real[:, :, :, ::1] input, const int64_t[::1] order, const int64_t[::1] starts,
                   const int64_t[::1] roi_rows_off, const int64_t[::1] roi_rows, const int64_t[::1] y_off,
                   const int64_t[::1] y_slot, const real[::1] y_w, const int64_t[::1] x_off,
                   const int64_t[::1] x_pix, const real[::1] x_w, const real[::1] count, int pooled_h,
                   int pooled_w, real[:, :, ::1] scratch, real[:, :, :, ::1] out):
    cdef Py_ssize_t c, n
    cdef Py_ssize_t num_images = input.shape[0], channels = input.shape[1]
    cdef int thread
    for c in prange(channels, nogil=True, schedule="dynamic", chunksize=4):
        thread = openmp.omp_get_thread_num()
        for n in range(num_images):
            _average_plane(input[n, c], order, starts[n], starts[n + 1], c, roi_rows_off, roi_rows, y_off, y_slot,
                           y_w, x_off, x_pix, x_w, count, pooled_h, pooled_w, scratch[thread], out)


def _roi_align_avg_4(const real[:, :, :, ::1] input, const int64_t[::1] order, const int64_t[::1] starts,
                     const int64_t[::1] roi_rows_off, const int64_t[::1] roi_rows, const int64_t[::1] y_n,
                     const int64_t[:, ::1] y_slot, const real[:, ::1] y_w, const int64_t[::1] x_n,
                     const int64_t[:, ::1] x_pix, const real[:, ::1] x_w, const real[::1] count, int pooled_h,
                     int pooled_w, real[:, :, ::1] scratch, real[:, :, :, ::1] out):
    cdef Py_ssize_t c, n
    cdef Py_ssize_t num_images = input.shape[0], channels = input.shape[1]
    cdef int thread
    for c in prange(channels, nogil=True, schedule="dynamic", chunksize=4):
        thread = openmp.omp_get_thread_num()
        for n in range(num_images):
            _average_plane_4(input[n, c], order, starts[n], starts[n + 1], c, roi_rows_off, roi_rows, y_n, y_slot,
                             y_w, x_n, x_pix, x_w, count, pooled_h, pooled_w, scratch[thread], out)


def _pad_to_4(offsets, index, weight):
    """(B + 1,) offsets, ragged entries (<= 4 per bin) -> (B,) counts, (B, 4) indices and weights.

    A bin's padding repeats its last index with weight 0 (so 0 multiplies a pixel the bin reads anyway, never
    an unrelated one that could be inf); a bin with no entries pads with index 0 and is zeroed by count.
    """
    counts = np.diff(offsets)
    bins = np.repeat(np.arange(len(counts)), counts)
    place = np.arange(len(index)) - offsets[bins]
    last = np.where(counts > 0, index[np.maximum(offsets[1:] - 1, 0)] if len(index) else 0, 0)
    padded_index = np.repeat(last[:, None], 4, axis=1).astype(np.int64)
    padded_weight = np.zeros((len(counts), 4), dtype=weight.dtype)
    padded_index[bins, place] = index
    padded_weight[bins, place] = weight
    return np.ascontiguousarray(counts, dtype=np.int64), padded_index, padded_weight


def _roi_align_max(const real[:, :, :, ::1] input, const int64_t[::1] order, const int64_t[::1] starts,
                   const int64_t[::1] y_grid, const int64_t[::1] y_off, const int64_t[::1] y_lo,
                   const int64_t[::1] y_hi, const real[::1] y_wlo, const real[::1] y_whi,
                   const int64_t[::1] x_grid, const int64_t[::1] x_off, const int64_t[::1] x_lo,
                   const int64_t[::1] x_hi, const real[::1] x_wlo, const real[::1] x_whi,
                   int pooled_h, int pooled_w, real[:, :, :, ::1] out):
    cdef Py_ssize_t c, n
    cdef Py_ssize_t num_images = input.shape[0], channels = input.shape[1]
    for c in prange(channels, nogil=True, schedule="dynamic", chunksize=4):
        for n in range(num_images):
            _max_plane(input[n, c], order, starts[n], starts[n + 1], c, y_grid, y_off, y_lo, y_hi, y_wlo, y_whi,
                       x_grid, x_off, x_lo, x_hi, x_wlo, x_whi, pooled_h, pooled_w, out)


def roi_align(input, batch_index, plan, max_mode, out=None):
    """(N, C, H, W) input, (K,) int64 batch indices, a `SamplingPlan` -> (K, C, PH, PW), written into `out`
    when given (C-contiguous, that shape and input's dtype: `check_out`)."""
    check_plan(input, batch_index, plan)  # the kernels do no bounds checks: a hand-made plan must not read outside
    out = check_out(out, input, batch_index, plan)
    order, starts = group_by_image(batch_index, input.shape[0])
    rows, cols = plan.rows, plan.cols
    if max_mode:
        _roi_align_max(input, order, starts, rows.grid, rows.offsets, rows.low, rows.high, rows.w_low, rows.w_high,
                       cols.grid, cols.offsets, cols.low, cols.high, cols.w_low, cols.w_high,
                       plan.pooled_height, plan.pooled_width, out)
        return out
    ys = bin_weights(rows, plan.pooled_height, input.shape[2])
    xs = bin_weights(cols, plan.pooled_width, input.shape[3])
    slots = row_slots(ys, plan.pooled_height, input.shape[2])
    max_rows = int(np.diff(slots.offsets).max())
    # at least one row: an empty bin's padding reads row slot 0 (and its result is then set to 0)
    scratch = np.zeros((openmp.omp_get_max_threads(), max(max_rows, 1), plan.pooled_width), dtype=input.dtype)
    if max(np.diff(ys.offsets).max(), np.diff(xs.offsets).max()) <= 4:
        y_n, y_slot, y_w = _pad_to_4(ys.offsets, slots.slot, ys.weight)
        x_n, x_pix, x_w = _pad_to_4(xs.offsets, xs.pixel, xs.weight)
        _roi_align_avg_4(input, order, starts, slots.offsets, slots.rows, y_n, y_slot, y_w, x_n, x_pix, x_w,
                         plan.count, plan.pooled_height, plan.pooled_width, scratch, out)
        return out
    _roi_align_avg(input, order, starts, slots.offsets, slots.rows, ys.offsets, slots.slot, ys.weight,
                   xs.offsets, xs.pixel, xs.weight, plan.count, plan.pooled_height, plan.pooled_width, scratch, out)
    return out
