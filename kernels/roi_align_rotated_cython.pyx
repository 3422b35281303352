# cython: language_level=3
"""Cython twin of `edudet.ops.roi_align_rotated`: same signature, same arithmetic, bitwise-equal results.

``roi_align_rotated(input, batch_index, plan, output_size)``: (N, C, H, W) float32/float64 feature maps,
(K,) int64 batch indices and the (K, 11) float64 plan of `edudet.ops.roi_align_rotated.rotated_sampling_plan`
-> (K, C, PH, PW) float64. RoIs are spread over the cores with OpenMP `prange` (dynamic chunks: RoIs differ in
size when `sampling_ratio <= 0`). The map is copied channels-last once, so each sample's bilinear weights
are computed once and applied to four contiguous runs of channels (a vectorised loop, faster than reading
channel planes); every sample is added in the reference's order (bin by bin, rows of samples outer, columns
inner) with the same operations, compiled without -ffast-math or FMA contraction, so the sums are bitwise equal.
Fused types compile one copy for float32 and one for float64 maps.
"""
import numpy as np

from cython.parallel import prange

from edudet.kernels._roi_align_rotated_common import check_rotated_plan
from libc.math cimport floor
from libc.stdint cimport int64_t
cimport openmp

ctypedef fused real:
    float
    double


cdef void _pool_roi(const real[:, :, ::1] plane, const double[::1] plan, int pooled_h, int pooled_w,
                    double* acc, double[:, :, ::1] out) noexcept nogil:
    """One RoI of the plan on its image's channels-last (H, W, C) plane into out (C, PH, PW)."""
    cdef Py_ssize_t height = plane.shape[0], width = plane.shape[1], channels = plane.shape[2]
    cdef double centre_x = plan[0], centre_y = plan[1], start_x = plan[2], start_y = plan[3]
    cdef double bin_w = plan[4], bin_h = plan[5], cos_t = plan[6], sin_t = plan[7]
    cdef double grid_w = plan[8], grid_h = plan[9], count = plan[10]
    cdef int64_t n_y = <int64_t>grid_h, n_x = <int64_t>grid_w, iy, ix, y_low, x_low, y_high, x_high
    cdef Py_ssize_t c
    cdef int ph, pw
    cdef double yy, xx, y, x, ly, lx, hy, hx, w1, w2, w3, w4
    cdef const real* p1
    cdef const real* p2
    cdef const real* p3
    cdef const real* p4
    for ph in range(pooled_h):
        for pw in range(pooled_w):
            for c in range(channels):
                acc[c] = 0.0
            for iy in range(n_y):
                yy = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                for ix in range(n_x):
                    xx = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                    y = yy * cos_t - xx * sin_t + centre_y  # turn about the centre, then move there
                    x = yy * sin_t + xx * cos_t + centre_x
                    if y < -1.0 or y > height or x < -1.0 or x > width:
                        continue  # more than a pixel outside the map: reads 0 (the reference adds 0)
                    # RoIAlign's bilinear rule; y, x are within [-1, H] x [-1, W] here, so the casts are safe
                    if y < 0.0:
                        y = 0.0
                    if x < 0.0:
                        x = 0.0
                    y_low = <int64_t>floor(y)
                    x_low = <int64_t>floor(x)
                    if y_low >= height - 1:
                        y_low = height - 1
                        y_high = y_low
                        y = <double>y_low
                    else:
                        y_high = y_low + 1
                    if x_low >= width - 1:
                        x_low = width - 1
                        x_high = x_low
                        x = <double>x_low
                    else:
                        x_high = x_low + 1
                    ly = y - y_low
                    lx = x - x_low
                    hy = 1.0 - ly
                    hx = 1.0 - lx
                    w1 = hy * hx
                    w2 = hy * lx
                    w3 = ly * hx
                    w4 = ly * lx
                    # channels last: the four pixels' channels are contiguous, so this loop vectorises
                    p1 = &plane[y_low, x_low, 0]
                    p2 = &plane[y_low, x_high, 0]
                    p3 = &plane[y_high, x_low, 0]
                    p4 = &plane[y_high, x_high, 0]
                    for c in range(channels):
                        acc[c] = acc[c] + (w1 * p1[c] + w2 * p2[c] + w3 * p3[c] + w4 * p4[c])
            for c in range(channels):
                out[c, ph, pw] = acc[c] / count


def _roi_align_rotated(const real[:, :, :, ::1] input, const int64_t[::1] batch_index, const double[:, ::1] plan,
                       int pooled_h, int pooled_w, double[:, ::1] scratch, double[:, :, :, ::1] out):
    cdef Py_ssize_t k
    for k in prange(plan.shape[0], nogil=True, schedule="dynamic", chunksize=1):
        _pool_roi(input[batch_index[k]], plan[k], pooled_h, pooled_w, &scratch[openmp.omp_get_thread_num(), 0],
                  out[k])


def roi_align_rotated(input, batch_index, plan, output_size):
    """(N, C, H, W), (K,) int64, (K, 11) float64 plan, (PH, PW) -> (K, C, PH, PW) float64."""
    check_rotated_plan(input, batch_index, plan, output_size)  # a hand-made plan must not read outside
    pooled_h, pooled_w = int(output_size[0]), int(output_size[1])
    out = np.zeros((plan.shape[0], input.shape[1], pooled_h, pooled_w))
    if out.size == 0:
        return out
    # channels last (one copy of the map, a few ms): each sample then reads 4 contiguous runs of C values
    channels_last = np.ascontiguousarray(input.transpose(0, 2, 3, 1))
    scratch = np.zeros((openmp.omp_get_max_threads(), input.shape[1]))  # one bin's sums per thread
    _roi_align_rotated(channels_last, batch_index, plan, pooled_h, pooled_w, scratch, out)
    return out
