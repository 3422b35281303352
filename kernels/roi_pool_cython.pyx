# cython: language_level=3
"""RoIPool maxima in Cython: same signature as `edudet.ops.roi_pool.roi_pool_numpy`.

OpenMP `prange` over channels (dynamic chunks of 4: a busy core takes fewer); for each channel one image plane
at a time, pooling every RoI of that image while the plane is in cache. Each bin starts at -FLT_MAX and keeps
a value only if strictly larger (NaN never is); an empty bin is 0: torchvision's rule. Fused types: one copy
for float32, one for float64.
"""
import numpy as np

from cython.parallel import prange
from libc.stdint cimport int64_t

from edudet.kernels._roi_common import check_bins, group_by_image
from edudet.ops.roi_pool import LOWEST

ctypedef fused real:
    float
    double


cdef void _pool_plane(const real[:, ::1] plane, const int64_t[::1] order, int64_t first, int64_t last,
                      Py_ssize_t c, const int64_t[:, ::1] h_start, const int64_t[:, ::1] h_end,
                      const int64_t[:, ::1] w_start, const int64_t[:, ::1] w_end, real lowest,
                      real[:, :, :, ::1] out) noexcept nogil:
    cdef int64_t t, k, hs, he, ws, we, h, w
    cdef Py_ssize_t ph, pw
    cdef Py_ssize_t pooled_h = h_start.shape[1], pooled_w = w_start.shape[1]
    cdef real b0, b1, b2, b3
    cdef const real* row
    for t in range(first, last):
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
                # four running maxima over interleaved columns: the compare-select chains run in parallel.
                # Each is a select, never a branch (NaN is never greater); the max does not depend on the order
                b0 = lowest
                b1 = lowest
                b2 = lowest
                b3 = lowest
                for h in range(hs, he):
                    row = &plane[h, 0]
                    w = ws
                    while w + 4 <= we:
                        b0 = row[w] if row[w] > b0 else b0
                        b1 = row[w + 1] if row[w + 1] > b1 else b1
                        b2 = row[w + 2] if row[w + 2] > b2 else b2
                        b3 = row[w + 3] if row[w + 3] > b3 else b3
                        w = w + 4
                    while w < we:
                        b0 = row[w] if row[w] > b0 else b0
                        w = w + 1
                b0 = b1 if b1 > b0 else b0
                b2 = b3 if b3 > b2 else b2
                out[k, c, ph, pw] = b2 if b2 > b0 else b0


def _roi_pool(const real[:, :, :, ::1] input, const int64_t[::1] order, const int64_t[::1] starts,
              const int64_t[:, ::1] h_start, const int64_t[:, ::1] h_end, const int64_t[:, ::1] w_start,
              const int64_t[:, ::1] w_end, real lowest, real[:, :, :, ::1] out):
    cdef Py_ssize_t c, n
    cdef Py_ssize_t num_images = input.shape[0], channels = input.shape[1]
    for c in prange(channels, nogil=True, schedule="dynamic", chunksize=4):
        for n in range(num_images):
            _pool_plane(input[n, c], order, starts[n], starts[n + 1], c, h_start, h_end, w_start, w_end,
                        lowest, out)


def roi_pool(input, batch_index, bins):
    """(N, C, H, W) input, (K,) int64 batch indices, `PoolingBins` -> (K, C, PH, PW)."""
    check_bins(input, batch_index, bins)  # the kernel does no bounds checks: hand-made bins must stay in the map
    order, starts = group_by_image(batch_index, input.shape[0])
    out = np.empty((len(batch_index), input.shape[1], bins.h_start.shape[1], bins.w_start.shape[1]),
                   dtype=input.dtype)
    _roi_pool(input, order, starts, bins.h_start, bins.h_end, bins.w_start, bins.w_end, input.dtype.type(LOWEST),
              out)
    return out
