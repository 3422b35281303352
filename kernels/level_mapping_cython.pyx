# cython: language_level=3
"""FPN level mapping in Cython. Public, stable (Python-callable ``def``):

``fpn_levels(boxes, k_min, k_max, canonical_scale, canonical_level, eps) -> (N,) int64``  (FPN eq. 1)
``map_roi_levels(boxes, num_levels, finest_scale) -> (N,) int64``  (mmdetection)

boxes: (N, 4) C-contiguous float32/float64; the arithmetic in the boxes' dtype, as
`edudet.level_mapper`'s NumPy reference (see ``level_mapping_numba``). Checks: structure (ValueError);
values (finite boxes) only with ``EDUDET_CHECK_KERNELS=1``. No .pxd: one box's level is a one-line formula.
"""
import numpy as np

from cython cimport floating
from libc.math cimport floor, log2, log2f, sqrt, sqrtf
from libc.stdint cimport int64_t

from ._checks import check_level_mapping


cdef inline floating _log2(floating x) noexcept nogil:
    if floating is float:
        return log2f(x)
    return log2(x)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    return sqrt(x)


cdef void _fpn(const floating[:, ::1] boxes, int64_t k_min, int64_t k_max, floating scale0, floating level0,
               floating eps, int64_t[::1] out) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating area, level
    for i in range(boxes.shape[0]):
        area = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        if area > 0:
            level = <floating>floor(level0 + _log2(_sqrt(area) / scale0) + eps)
            level = k_min if level < k_min else (k_max if level > k_max else level)
        else:
            level = k_min  # log2(0) = -inf
        out[i] = <int64_t>level - k_min


cdef void _mmdet(const floating[:, ::1] boxes, int64_t num_levels, floating finest,
                 int64_t[::1] out) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating area, level, tiny = <floating>1e-6
    for i in range(boxes.shape[0]):
        area = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        area = area if area > 0 else 0
        level = <floating>floor(_log2(_sqrt(area) / finest + tiny))
        out[i] = <int64_t>(0 if level < 0 else (num_levels - 1 if level > num_levels - 1 else level))


def fpn_levels(boxes, k_min, k_max, canonical_scale, canonical_level, eps):
    """(N, 4) boxes -> (N,) int64 FPN level counted from k_min."""
    check_level_mapping(boxes, k_min=k_min, k_max=k_max, canonical_scale=canonical_scale)
    t = boxes.dtype.type
    out = np.empty(len(boxes), dtype=np.int64)
    if boxes.dtype == np.float32:
        _fpn[float](boxes, k_min, k_max, t(canonical_scale), t(canonical_level), t(eps), out)
    else:
        _fpn[double](boxes, k_min, k_max, t(canonical_scale), t(canonical_level), t(eps), out)
    return out


def map_roi_levels(boxes, num_levels, finest_scale):
    """(N, 4) boxes -> (N,) int64 level in [0, num_levels) (mmdetection's rule)."""
    check_level_mapping(boxes, num_levels=num_levels, finest_scale=finest_scale)
    t = boxes.dtype.type
    out = np.empty(len(boxes), dtype=np.int64)
    if boxes.dtype == np.float32:
        _mmdet[float](boxes, num_levels, t(finest_scale), out)
    else:
        _mmdet[double](boxes, num_levels, t(finest_scale), out)
    return out
