# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: extra_compile_args = -fno-trapping-math
"""Cython twins of `edudet.ops.boxes` (box_iou, generalized_box_iou, box_area, masks_to_boxes), and C-level box
functions for users' own Cython code.

Python-callable: ``box_iou(boxes1, boxes2, offset=0) -> (N, M)``: (N, 4) and (M, 4) C-contiguous
``(x1, y1, x2, y2)`` arrays of one float dtype (float32 or float64) -> (N, M) IoU in that dtype; 0 where the
union is not positive (torchvision: NaN). ``generalized_box_iou(boxes1, boxes2, offset=0) -> (N, M)``: GIoU,
IoU 0 where the union is 0, penalty 0 where the enclosing box has area 0. ``box_areas(boxes, offset=0) ->
(N,)``. ``offset`` is the pixel convention (0, or 1: x2, y2 inclusive, every width ``x2 - x1 + 1``), added in
the boxes' dtype. ``masks_to_boxes(masks) -> (N, 4) float32``: (N, H, W) C-contiguous uint8 or bool masks ->
the min/max column and row of each mask's nonzero pixels, [0, 0, 0, 0] for an empty mask. Each checks
structure (2-D with 4 columns, C-contiguous, one float dtype) and raises a ``ValueError`` naming the argument;
values (NaN, inf, the 1e15 coordinate bound, an offset other than 0 or 1) are `edudet.ops`' job, or checked
here too when ``EDUDET_CHECK_KERNELS=1`` is set before the first import.

C-level (``boxes_cython.pxd``, ``cdef inline ... noexcept nogil``, fused over float/double, defined in the
``.pxd`` so that they compile into the caller's module; no checks at all):
``iou_xyxy(const floating* a, const floating* b) -> floating``: IoU of two boxes of 4 contiguous values
(``&boxes[i, 0]``); ``box_area(const floating[:, ::1] boxes, floating[::1] out)``: the (N,) areas;
``iou_xyxy_offset(a, b, floating offset)`` and ``box_area_offset(boxes, out, floating offset)``: the same with
the pixel convention. Example::

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
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset
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
                          Py_ssize_t count, floating offset) noexcept nogil:
    # Raw pointers, the division done before the select and -fno-trapping-math (top of this file: lets gcc
    # if-convert the comparisons; IEEE results are unchanged) are what make gcc vectorise this loop.
    # A division by a zero union is computed but never kept, so no NaN escapes.
    cdef Py_ssize_t j
    cdef floating w, h, inter, union_area, ratio
    cdef floating zero = 0
    for j in range(count):
        w = _fmax(_fmin(ax2, bx2[j]) - _fmax(ax1, bx1[j]) + offset, zero)
        h = _fmax(_fmin(ay2, by2[j]) - _fmax(ay1, by1[j]) + offset, zero)
        inter = w * h
        union_area = area1 + area2[j] - inter
        ratio = inter / union_area
        out[j] = ratio if union_area > zero else zero


cdef void _box_iou(const floating[:, ::1] boxes1, const floating[::1] area1,
                   const floating[::1] bx1, const floating[::1] by1,
                   const floating[::1] bx2, const floating[::1] by2, const floating[::1] area2,
                   floating[:, ::1] out, floating offset) noexcept nogil:
    cdef Py_ssize_t n = boxes1.shape[0]
    cdef Py_ssize_t m = bx1.shape[0]
    cdef Py_ssize_t segments = (m + SEGMENT - 1) // SEGMENT
    cdef Py_ssize_t task, i, start, stop
    if n * m < PARALLEL_MIN_PAIRS:
        for i in range(n):
            _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i],
                     &bx1[0], &by1[0], &bx2[0], &by2[0], &area2[0], &out[i, 0], m, offset)
        return
    for task in prange(n * segments, schedule="static"):
        i = task // segments
        start = (task % segments) * SEGMENT
        stop = start + SEGMENT
        if stop > m:
            stop = m
        _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i],
                 &bx1[start], &by1[start], &bx2[start], &by2[start], &area2[start], &out[i, start],
                 stop - start, offset)


def _check_pair(boxes1, boxes2, offset):
    check_structure("boxes1", boxes1, ndim=2, columns=4)
    check_structure("boxes2", boxes2, ndim=2, columns=4, dtype=boxes1.dtype)
    if boxes1.dtype != np.float32 and boxes1.dtype != np.float64:
        raise ValueError(f"boxes1 must be float32 or float64, got {boxes1.dtype}")
    if CHECK_KERNELS:
        check_values(boxes1=boxes1, boxes2=boxes2)
        if offset not in (0, 1):
            raise ValueError(f"offset must be 0 or 1, got {offset!r} (EDUDET_CHECK_KERNELS=1)")


def box_iou(boxes1, boxes2, offset=0):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) IoU (see the module docstring)."""
    _check_pair(boxes1, boxes2, offset)
    return _box_iou_typed(boxes1, boxes2, offset)


def _areas(b, offset):
    """The (N,) areas, in the reference's order: (x2 - x1 + offset) * (y2 - y1 + offset)."""
    if offset:
        return (b[:, 2] - b[:, 0] + offset) * (b[:, 3] - b[:, 1] + offset)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _box_iou_typed(const floating[:, ::1] boxes1, const floating[:, ::1] boxes2, offset):
    b1 = np.asarray(boxes1)
    b2 = np.asarray(boxes2)
    dtype = b1.dtype
    cdef floating one = offset
    out = np.empty((b1.shape[0], b2.shape[0]), dtype=dtype)
    area1_arr = _areas(b1, offset)
    area2_arr = _areas(b2, offset)
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
        _box_iou(boxes1, area1, bx1, by1, bx2, by2, area2, out_view, one)
    return out


# --- generalized_box_iou, box_areas ------------------------------------------------------------------------

cdef inline void _giou_row(Py_ssize_t i, const floating[:, ::1] boxes1, const floating[::1] area1,
                           const floating[:, ::1] boxes2, const floating[::1] area2, floating[:, ::1] out,
                           floating offset) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating zero = 0
    cdef floating w, h, inter, union_area, iou, ew, eh, enclosing
    for j in range(boxes2.shape[0]):
        w = _fmax(_fmin(boxes1[i, 2], boxes2[j, 2]) - _fmax(boxes1[i, 0], boxes2[j, 0]) + offset, zero)
        h = _fmax(_fmin(boxes1[i, 3], boxes2[j, 3]) - _fmax(boxes1[i, 1], boxes2[j, 1]) + offset, zero)
        inter = w * h
        union_area = area1[i] + area2[j] - inter
        iou = inter / union_area if union_area > zero else zero
        ew = _fmax(_fmax(boxes1[i, 2], boxes2[j, 2]) - _fmin(boxes1[i, 0], boxes2[j, 0]) + offset, zero)
        eh = _fmax(_fmax(boxes1[i, 3], boxes2[j, 3]) - _fmin(boxes1[i, 1], boxes2[j, 1]) + offset, zero)
        enclosing = ew * eh
        out[i, j] = iou - ((enclosing - union_area) / enclosing if enclosing > zero else zero)


cdef void _giou_rows(const floating[:, ::1] boxes1, const floating[::1] area1, const floating[:, ::1] boxes2,
                     const floating[::1] area2, floating[:, ::1] out, floating offset) noexcept nogil:
    cdef Py_ssize_t n = boxes1.shape[0]
    cdef Py_ssize_t m = boxes2.shape[0]
    cdef Py_ssize_t i, j
    cdef floating zero = 0
    if n * m < PARALLEL_MIN_PAIRS or n < 2:
        for i in range(n):
            _giou_row(i, boxes1, area1, boxes2, area2, out, offset)
        return
    for i in prange(n, schedule="static"):
        _giou_row(i, boxes1, area1, boxes2, area2, out, offset)


def generalized_box_iou(boxes1, boxes2, offset=0):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) generalized IoU (see the module docstring)."""
    _check_pair(boxes1, boxes2, offset)
    return _giou_typed(boxes1, boxes2, offset)


def _giou_typed(const floating[:, ::1] boxes1, const floating[:, ::1] boxes2, offset):
    b1 = np.asarray(boxes1)
    b2 = np.asarray(boxes2)
    cdef floating one = offset
    out = np.empty((b1.shape[0], b2.shape[0]), dtype=b1.dtype)
    if out.size == 0:
        return out
    cdef const floating[::1] area1 = _areas(b1, offset)
    cdef const floating[::1] area2 = _areas(b2, offset)
    cdef floating[:, ::1] out_view = out
    with nogil:
        _giou_rows(boxes1, area1, boxes2, area2, out_view, one)
    return out


def box_areas(boxes, offset=0):
    """(N, 4) boxes -> (N,) areas ``(x2 - x1 + offset) * (y2 - y1 + offset)`` in their dtype."""
    check_structure("boxes", boxes, ndim=2, columns=4)
    if boxes.dtype != np.float32 and boxes.dtype != np.float64:
        raise ValueError(f"boxes must be float32 or float64, got {boxes.dtype}")
    if CHECK_KERNELS and offset not in (0, 1):
        raise ValueError(f"offset must be 0 or 1, got {offset!r} (EDUDET_CHECK_KERNELS=1)")
    return _areas_typed(boxes, offset)


def _areas_typed(const floating[:, ::1] boxes, offset):
    out = np.empty(boxes.shape[0], dtype=np.asarray(boxes).dtype)
    cdef floating[::1] out_view = out
    cdef floating one = offset
    cdef Py_ssize_t i
    with nogil:
        if one == 0:  # the default convention keeps its two-subtraction loop
            for i in range(boxes.shape[0]):
                out_view[i] = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        else:
            for i in range(boxes.shape[0]):
                out_view[i] = (boxes[i, 2] - boxes[i, 0] + one) * (boxes[i, 3] - boxes[i, 1] + one)
    return out


# --- masks_to_boxes ---------------------------------------------------------------------------------------
# One pass over each mask, OR-ing every row into a "columns seen" accumulator and into a "row seen" flag,
# 8 pixels at a time as uint64 words (memcpy: rows need not be 8-byte aligned; it compiles to one load), the
# row's last W % 8 pixels byte by byte; x1 and x2 are the first and last nonzero bytes of the accumulator.
# One read of the mask, where np.any per axis (the reference, torchvision) reads it twice. One core: the op
# only streams memory, and on a busy machine a second thread made the Numba twin slower, never faster.

cdef void _mask_box(const unsigned char* mask, Py_ssize_t height, Py_ssize_t width, uint64_t* seen,
                    float* out) noexcept nogil:
    cdef Py_ssize_t words = width // 8
    cdef Py_ssize_t x, y
    cdef Py_ssize_t y1 = -1, y2 = -1
    cdef const unsigned char* row
    cdef unsigned char* seen_bytes = <unsigned char*>seen
    cdef uint64_t word, hit
    memset(seen, 0, ((width + 7) // 8) * sizeof(uint64_t))
    for y in range(height):
        row = mask + y * width
        hit = 0
        for x in range(words):
            memcpy(&word, row + 8 * x, 8)
            seen[x] |= word
            hit |= word
        for x in range(8 * words, width):
            seen_bytes[x] |= row[x]
            hit |= row[x]
        if hit != 0:
            if y1 < 0:
                y1 = y
            y2 = y
    if y1 < 0:  # empty: torchvision's [0, 0, 0, 0]
        out[0] = 0
        out[1] = 0
        out[2] = 0
        out[3] = 0
        return
    x = 0
    while seen_bytes[x] == 0:
        x += 1
    out[0] = <float>x
    x = width - 1
    while seen_bytes[x] == 0:
        x -= 1
    out[2] = <float>x
    out[1] = <float>y1
    out[3] = <float>y2


def masks_to_boxes(masks):
    """(N, H, W) C-contiguous uint8 (0/1) or bool masks -> (N, 4) float32 boxes (see the module docstring)."""
    check_structure("masks", masks, ndim=3)
    if masks.dtype != np.uint8 and masks.dtype != np.bool_:
        raise ValueError(f"masks must be uint8 or bool, got {masks.dtype}")
    out = np.zeros((masks.shape[0], 4), dtype=np.float32)
    if masks.size == 0:
        return out
    cdef const unsigned char[:, :, ::1] view = masks.view(np.uint8)
    cdef float[:, ::1] out_view = out
    cdef uint64_t[::1] seen = np.empty((masks.shape[2] + 7) // 8, dtype=np.uint64)
    cdef Py_ssize_t n = view.shape[0], height = view.shape[1], width = view.shape[2]
    cdef Py_ssize_t k
    with nogil:
        for k in range(n):
            _mask_box(&view[k, 0, 0], height, width, &seen[0], &out_view[k, 0])
    return out
