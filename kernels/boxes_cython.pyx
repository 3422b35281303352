# cython: language_level=3
# distutils: extra_compile_args = -fno-trapping-math
"""Cython twin of `edudet.ops.boxes.box_iou`, and C-level box functions for users' own Cython code.

Python-callable: ``box_iou(boxes1, boxes2) -> (N, M)``: (N, 4) and (M, 4) C-contiguous ``(x1, y1, x2, y2)``
arrays of one float dtype (float32 or float64) -> (N, M) IoU in that dtype; 0 where the union is not
positive (torchvision: NaN). It checks structure (2-D with 4 columns, C-contiguous, one float dtype) and
raises a ``ValueError`` naming the argument; values (NaN, inf, the 1e15 coordinate bound) are `edudet.ops`'
job, or checked here too when ``EDUDET_CHECK_KERNELS=1`` is set before the first import.

C-level (``boxes_cython.pxd``, ``cdef inline ... noexcept nogil``, fused over float/double, defined in the
``.pxd`` so that they compile into the caller's module; no checks at all):
``iou_xyxy(const floating* a, const floating* b) -> floating``: IoU of two boxes of 4 contiguous values
(``&boxes[i, 0]``); ``box_area(const floating[:, ::1] boxes, floating[::1] out)``: the (N,) areas. Example::

    # user.pyx, built with cythonize(..., include_path=[edudet.kernels.get_include()])
    from edudet.kernels.boxes_cython cimport iou_xyxy
    def first_pair(double[:, ::1] boxes):
        with nogil:
            return iou_xyxy(&boxes[0, 0], &boxes[1, 0])

Every pair is computed in the reference's order, ``inter = max(0, min(x2) - max(x1)) * max(0, min(y2) -
max(y1))``, ``union = area1 + area2 - inter``, ``iou = inter / union`` or 0 where ``union <= 0``; compiled
without -ffast-math, so no reassociation: bitwise the results of `edudet.ops.box_iou`.

Like the Numba twin, the second set is split into coordinate columns with precomputed areas so the inner
loop is unit-stride (the C compiler vectorises it), and OpenMP `prange` spreads row segments of the output
over every core whichever of N or M is the larger (small matrices stay on one core).
"""
import numpy as np

from ._checks import CHECK_KERNELS, check_structure, check_values

cimport cython
from cython cimport floating
from cython.parallel cimport prange

# columns per parallel task: long enough to keep the SIMD loop busy, short enough to balance the cores
cdef enum:
    SEGMENT = 8192
    # below this many pairs one core is faster than waking the others
    PARALLEL_MIN_PAIRS = 65536


cdef inline floating _fmax(floating a, floating b) noexcept nogil:
    return a if a > b else b


cdef inline floating _fmin(floating a, floating b) noexcept nogil:
    return a if a < b else b


cdef inline void _row_iou(floating ax1, floating ay1, floating ax2, floating ay2, floating area1,
                          const floating* bx1, const floating* by1, const floating* bx2,
                          const floating* by2, const floating* area2, floating* out,
                          Py_ssize_t count) noexcept nogil:
    # Raw pointers, the division done before the select and -fno-trapping-math (top of this file: lets gcc
    # if-convert the comparisons; IEEE results are unchanged) are what make gcc vectorise this loop.
    # A division by a zero union is computed but never kept, so no NaN escapes.
    cdef Py_ssize_t j
    cdef floating w, h, inter, union_area, ratio
    cdef floating zero = 0
    for j in range(count):
        w = _fmax(_fmin(ax2, bx2[j]) - _fmax(ax1, bx1[j]), zero)
        h = _fmax(_fmin(ay2, by2[j]) - _fmax(ay1, by1[j]), zero)
        inter = w * h
        union_area = area1 + area2[j] - inter
        ratio = inter / union_area
        out[j] = ratio if union_area > zero else zero


cdef void _box_iou(const floating[:, ::1] boxes1, const floating[::1] area1,
                   const floating[::1] bx1, const floating[::1] by1,
                   const floating[::1] bx2, const floating[::1] by2, const floating[::1] area2,
                   floating[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t n = boxes1.shape[0]
    cdef Py_ssize_t m = bx1.shape[0]
    cdef Py_ssize_t segments = (m + SEGMENT - 1) // SEGMENT
    cdef Py_ssize_t task, i, start, stop
    if n * m < PARALLEL_MIN_PAIRS:
        for i in range(n):
            _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i],
                     &bx1[0], &by1[0], &bx2[0], &by2[0], &area2[0], &out[i, 0], m)
        return
    for task in prange(n * segments, schedule="static"):
        i = task // segments
        start = (task % segments) * SEGMENT
        stop = start + SEGMENT
        if stop > m:
            stop = m
        _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i],
                 &bx1[start], &by1[start], &bx2[start], &by2[start], &area2[start], &out[i, start],
                 stop - start)


def box_iou(boxes1, boxes2):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) IoU (see the module docstring)."""
    check_structure("boxes1", boxes1, ndim=2, columns=4)
    check_structure("boxes2", boxes2, ndim=2, columns=4, dtype=boxes1.dtype)
    if boxes1.dtype != np.float32 and boxes1.dtype != np.float64:
        raise ValueError(f"boxes1 must be float32 or float64, got {boxes1.dtype}")
    if CHECK_KERNELS:
        check_values(boxes1=boxes1, boxes2=boxes2)
    return _box_iou_typed(boxes1, boxes2)


def _box_iou_typed(const floating[:, ::1] boxes1, const floating[:, ::1] boxes2):
    b1 = np.asarray(boxes1)
    b2 = np.asarray(boxes2)
    dtype = b1.dtype
    out = np.empty((b1.shape[0], b2.shape[0]), dtype=dtype)
    area1_arr = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2_arr = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    cdef const floating[::1] area1 = area1_arr
    cdef const floating[::1] area2 = area2_arr
    columns = np.ascontiguousarray(b2.T)  # (4, M): one unit-stride column per coordinate
    cdef const floating[::1] bx1 = columns[0]
    cdef const floating[::1] by1 = columns[1]
    cdef const floating[::1] bx2 = columns[2]
    cdef const floating[::1] by2 = columns[3]
    cdef floating[:, ::1] out_view = out
    if out.size == 0:
        return out
    with nogil:
        _box_iou(boxes1, area1, bx1, by1, bx2, by2, area2, out_view)
    return out
