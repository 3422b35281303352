# cython: language_level=3
# distutils: extra_compile_args = -fno-trapping-math
"""Cython twins of `edudet.ops.iou_variants`: DIoU, CIoU, IoA and mmdetection's bbox_overlaps.

Python-callable: ``overlaps(kind, boxes1, boxes2, eps) -> (N, M)`` and ``overlaps_aligned(kind, boxes1, boxes2,
eps) -> (N,)``, ``kind`` one of the codes of `edudet.ops.iou_variants` (IOA=0, DIOU=1, CIOU=2, MM_IOU=3,
MM_IOF=4, MM_GIOU=5); and the named entries ``distance_box_iou(boxes1, boxes2, eps=1e-7)``,
``complete_box_iou(boxes1, boxes2, eps=1e-7)``, ``box_ioa(boxes1, boxes2)``, ``bbox_overlaps(boxes1, boxes2,
mode="iou", is_aligned=False, eps=1e-6)``. Input: C-contiguous (N, 4) ``(x1, y1, x2, y2)`` arrays of one float
dtype (float32 or float64); the output has that dtype. Structure is checked (a ``ValueError`` naming the
argument); values (NaN, inf, inverted boxes, the 1e15 bound) are `edudet.ops`' job, or checked here too with
``EDUDET_CHECK_KERNELS=1``.

Every pair is computed in the reference's order, without -ffast-math: bitwise the reference's results, except
CIoU's ``atan`` (libm's here, NumPy's there: the last bit or two). Areas and aspect angles are computed once per
box; OpenMP `prange` spreads the rows over every core (small matrices stay on one core).
"""
import numpy as np

from ._checks import CHECK_KERNELS, check_structure, check_values

cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport atan, atanf, INFINITY, M_PI

cdef enum:
    IOA = 0
    DIOU = 1
    CIOU = 2
    MM_IOU = 3
    MM_IOF = 4
    MM_GIOU = 5
    # below this many pairs one core is faster than waking the others
    PARALLEL_MIN_PAIRS = 65536

_MODES = {"iou": MM_IOU, "iof": MM_IOF, "giou": MM_GIOU}


cdef inline floating _fmax(floating a, floating b) noexcept nogil:
    return a if a > b else b


cdef inline floating _fmin(floating a, floating b) noexcept nogil:
    return a if a < b else b


cdef inline floating _pair(int kind, const floating* a, floating area_a, floating angle_a,
                           const floating* b, floating area_b, floating angle_b,
                           floating eps) noexcept nogil:
    """One formula for one pair, in the reference's order of operations (see edudet.ops.iou_variants)."""
    cdef floating zero = 0
    cdef floating one = 1
    cdef floating half = 0.5
    cdef floating four_over_pi_sq = 4 / (M_PI * M_PI)
    cdef floating w = _fmax(_fmin(a[2], b[2]) - _fmax(a[0], b[0]), zero)
    cdef floating h = _fmax(_fmin(a[3], b[3]) - _fmax(a[1], b[1]), zero)
    cdef floating inter = w * h
    cdef floating union_area, iou, enclosing_w, enclosing_h, enclosing, diagonal_sq, dx, dy, centre_sq
    cdef floating diou, gap, v, denominator, alpha
    if kind == IOA:
        return inter / area_a if area_a > zero else zero
    union_area = area_a + area_b - inter
    if kind == MM_IOU or kind == MM_GIOU:
        union_area = _fmax(union_area, eps)
    elif kind == MM_IOF:
        union_area = _fmax(area_a, eps)
    iou = inter / union_area if union_area > zero else zero
    if kind == MM_IOU or kind == MM_IOF:
        return iou
    enclosing_w = _fmax(a[2], b[2]) - _fmin(a[0], b[0])
    enclosing_h = _fmax(a[3], b[3]) - _fmin(a[1], b[1])
    if kind == MM_GIOU:
        enclosing = _fmax(enclosing_w * enclosing_h, eps)
        return iou - ((enclosing - union_area) / enclosing if enclosing > zero else zero)
    diagonal_sq = enclosing_w * enclosing_w + enclosing_h * enclosing_h + eps
    dx = (a[0] + a[2]) * half - (b[0] + b[2]) * half  # * 0.5 is / 2 exactly
    dy = (a[1] + a[3]) * half - (b[1] + b[3]) * half
    centre_sq = dx * dx + dy * dy
    diou = iou - (centre_sq / diagonal_sq if diagonal_sq > zero else zero)
    if kind == DIOU:
        return diou
    gap = angle_a - angle_b
    v = four_over_pi_sq * (gap * gap)
    denominator = one - iou + v + eps
    alpha = v / denominator if denominator > zero else zero
    return diou - alpha * v


cdef inline floating _angle(const floating* box) noexcept nogil:
    """atan(w / h): pi / 2 for h == 0 < w, 0 for a point (as the reference's `_aspect_angle`)."""
    cdef floating w = box[2] - box[0]
    cdef floating h = box[3] - box[1]
    cdef floating ratio
    if h > 0:
        ratio = w / h
    elif w > 0:
        ratio = INFINITY
    else:
        return 0
    if floating is float:  # atanf, as NumPy's float32 arctan: atan in double then rounded can differ
        return atanf(ratio)
    else:
        return atan(ratio)


cdef void _per_box(int kind, const floating[:, ::1] boxes, floating[::1] area,
                   floating[::1] angle) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(boxes.shape[0]):
        area[i] = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        angle[i] = _angle(&boxes[i, 0]) if kind == CIOU else 0


cdef void _rows(int kind, const floating[:, ::1] boxes1, const floating[::1] area1,
                const floating[::1] angle1, const floating[:, ::1] boxes2, const floating[::1] area2,
                const floating[::1] angle2, floating eps, floating[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t n = boxes1.shape[0]
    cdef Py_ssize_t m = boxes2.shape[0]
    cdef Py_ssize_t i, j
    if n * m < PARALLEL_MIN_PAIRS or n < 2:
        for i in range(n):
            for j in range(m):
                out[i, j] = _pair(kind, &boxes1[i, 0], area1[i], angle1[i], &boxes2[j, 0], area2[j], angle2[j],
                                  eps)
        return
    for i in prange(n, schedule="static"):
        for j in range(m):
            out[i, j] = _pair(kind, &boxes1[i, 0], area1[i], angle1[i], &boxes2[j, 0], area2[j], angle2[j], eps)


cdef void _aligned(int kind, const floating[:, ::1] boxes1, const floating[::1] area1,
                   const floating[::1] angle1, const floating[:, ::1] boxes2, const floating[::1] area2,
                   const floating[::1] angle2, floating eps, floating[::1] out) noexcept nogil:
    cdef Py_ssize_t n = boxes1.shape[0]
    cdef Py_ssize_t i
    if n < PARALLEL_MIN_PAIRS:
        for i in range(n):
            out[i] = _pair(kind, &boxes1[i, 0], area1[i], angle1[i], &boxes2[i, 0], area2[i], angle2[i], eps)
        return
    for i in prange(n, schedule="static"):
        out[i] = _pair(kind, &boxes1[i, 0], area1[i], angle1[i], &boxes2[i, 0], area2[i], angle2[i], eps)


def _check(kind, boxes1, boxes2, aligned):
    check_structure("boxes1", boxes1, ndim=2, columns=4)
    check_structure("boxes2", boxes2, ndim=2, columns=4, dtype=boxes1.dtype,
                    length=boxes1.shape[0] if aligned else None)
    if boxes1.dtype != np.float32 and boxes1.dtype != np.float64:
        raise ValueError(f"boxes1 must be float32 or float64, got {boxes1.dtype}")
    if kind not in (IOA, DIOU, CIOU, MM_IOU, MM_IOF, MM_GIOU):
        raise ValueError(f"kind must be one of the codes 0..5 of edudet.ops.iou_variants, got {kind!r}")
    if CHECK_KERNELS:
        check_values(boxes1=boxes1, boxes2=boxes2)


def overlaps(int kind, boxes1, boxes2, eps):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) values of formula `kind` (see the module docstring)."""
    _check(kind, boxes1, boxes2, False)
    return _overlaps_typed(kind, boxes1, boxes2, eps)


def overlaps_aligned(int kind, boxes1, boxes2, eps):
    """(N, 4), (N, 4) boxes of one float dtype -> (N,) values of formula `kind` for the pairs (i, i)."""
    _check(kind, boxes1, boxes2, True)
    return _aligned_typed(kind, boxes1, boxes2, eps)


def _overlaps_typed(int kind, const floating[:, ::1] boxes1, const floating[:, ::1] boxes2, double eps):
    dtype = np.float32 if floating is float else np.float64
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=dtype)
    area1_arr, angle1_arr = np.empty(boxes1.shape[0], dtype), np.empty(boxes1.shape[0], dtype)
    area2_arr, angle2_arr = np.empty(boxes2.shape[0], dtype), np.empty(boxes2.shape[0], dtype)
    cdef floating[::1] area1 = area1_arr, angle1 = angle1_arr, area2 = area2_arr, angle2 = angle2_arr
    cdef floating[:, ::1] out_view = out
    cdef floating eps_typed = <floating>eps
    with nogil:
        _per_box(kind, boxes1, area1, angle1)
        _per_box(kind, boxes2, area2, angle2)
        _rows(kind, boxes1, area1, angle1, boxes2, area2, angle2, eps_typed, out_view)
    return out


def _aligned_typed(int kind, const floating[:, ::1] boxes1, const floating[:, ::1] boxes2, double eps):
    dtype = np.float32 if floating is float else np.float64
    n = boxes1.shape[0]
    out = np.empty(n, dtype=dtype)
    area1_arr, angle1_arr, area2_arr, angle2_arr = (np.empty(n, dtype) for _ in range(4))
    cdef floating[::1] area1 = area1_arr, angle1 = angle1_arr, area2 = area2_arr, angle2 = angle2_arr
    cdef floating[::1] out_view = out
    cdef floating eps_typed = <floating>eps
    with nogil:
        _per_box(kind, boxes1, area1, angle1)
        _per_box(kind, boxes2, area2, angle2)
        _aligned(kind, boxes1, area1, angle1, boxes2, area2, angle2, eps_typed, out_view)
    return out


def distance_box_iou(boxes1, boxes2, eps=1e-7):
    """(N, 4), (M, 4) -> (N, M) DIoU."""
    return overlaps(DIOU, boxes1, boxes2, eps)


def complete_box_iou(boxes1, boxes2, eps=1e-7):
    """(N, 4), (M, 4) -> (N, M) CIoU."""
    return overlaps(CIOU, boxes1, boxes2, eps)


def box_ioa(boxes1, boxes2):
    """(N, 4), (M, 4) -> (N, M) intersection over the area of the boxes1 box."""
    return overlaps(IOA, boxes1, boxes2, 0.0)


def bbox_overlaps(boxes1, boxes2, mode="iou", is_aligned=False, eps=1e-6):
    """mmdetection's bbox_overlaps on (N, 4), (M, 4): (N, M), or (N,) when `is_aligned`."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {tuple(_MODES)}, got {mode!r}")
    return (overlaps_aligned if is_aligned else overlaps)(_MODES[mode], boxes1, boxes2, eps)
