"""Numba twins of `edudet.ops.boxes`: box_iou, generalized_box_iou, box_area, box_convert, and the pair IoU.

Stable public names (all ``@njit(cache=True)``: callable from Python and from a user's own ``@njit`` code):

``iou_xyxy(a, b) -> float``  (``inline="always"``)
    IoU of two boxes, each a length-4 array (a row ``boxes[i]`` is fine) ``(x1, y1, x2, y2)`` of one float
    dtype; the result has that dtype; 0 where the union is not positive. No checks at all.
``box_area(boxes) -> (N,)``
    ``(x2 - x1) * (y2 - y1)`` of each row of an (N, 4) array.
``box_convert(boxes, in_fmt, out_fmt) -> (N, 4)``
    between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"`` (a new array, also when the formats are equal).
``box_iou(boxes1, boxes2) -> (N, M)``
    IoU of every pair; 0 where the union is not positive (torchvision: NaN).
``generalized_box_iou(boxes1, boxes2) -> (N, M)``
    GIoU of every pair; IoU 0 where the union is 0 and penalty 0 where the enclosing box has area 0.

Input: (N, 4) C-contiguous float32 or float64 arrays ``(x1, y1, x2, y2)``; two box sets must share one dtype;
the result has that dtype. Every pair is computed in the NumPy reference's order,
``inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))``, ``union = area1 + area2 - inter``,
``iou = inter / union`` (no fastmath, no reassociation): results are bitwise those of `edudet.ops`.

What each entry checks (a ``ValueError`` naming the argument): every array entry checks structure (2-D with 4
columns, C-contiguous, a float dtype, both sets of one dtype); `box_iou` and `generalized_box_iou` also scan
their boxes for NaN and inf (O(N + M) against O(N M) work). Not checked, being `edudet.ops`' job: the
coordinate bound of 1e15 (finite coordinates beyond it give inf areas and IoU 0, never NaN, never a crash),
inverted boxes (``x2 < x1``: GIoU is then meaningless), and, in `box_area` and `box_convert` (O(n) work, where
a scan would cost as much as the op), NaN and inf, which propagate to the output.

Example (user code)::

    from numba import njit
    from edudet.kernels.boxes_numba import box_iou, iou_xyxy

    @njit
    def best_overlap(gt, anchors):          # (G, 4), (A, 4) float32, C-contiguous
        return box_iou(gt, anchors).max(), iou_xyxy(gt[0], anchors[0])

Why `box_iou` is faster than the reference: the reference builds four (N, M, 2) temporaries; here each pair is
a few register operations written straight into the output. The second set is split into coordinate columns
(structure of arrays) with its areas precomputed, so the inner loop over it is unit-stride and SIMD
vectorises; the output is cut into row segments that `prange` spreads over every core whichever of N or M is
the larger (small matrices stay on one core).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

# columns per parallel task: long enough to keep the SIMD loop busy, short enough to balance the cores
_SEGMENT = 8192
# below this many pairs one core is faster than waking the others
_PARALLEL_MIN_PAIRS = 65536


# --- structural checks (decided at compile time from the array types, so they cost nothing) -------------------

def _same_dtype(a, b):
    return a.dtype == b.dtype


@overload(_same_dtype)
def _same_dtype_numba(a, b):
    same = a.dtype == b.dtype
    return lambda a, b: same


def _is_float(a):
    return a.dtype.kind == "f"


@overload(_is_float)
def _is_float_numba(a):
    floating = isinstance(a.dtype, types.Float)
    return lambda a: floating


def _dimension_guard(name, ndim):
    """A function f(array) for njit code: the array itself if it has `ndim` dimensions, else a ValueError naming
    `name`. Chosen at typing time, so that the rest of an entry is typed with arrays of the right rank (an
    if-statement would still type the rest with the wrong rank and fail with a TypingError instead)."""
    def guard(array):
        return array

    @overload(guard)
    def guard_numba(array):
        if getattr(array, "ndim", None) == ndim:
            return lambda array: array
        message = f"{name} must have shape (N, 4)" if ndim == 2 else f"{name} must have shape (N,)"

        # `size >= 0` is always true but known only at run time; it keeps the return reachable, so that the rest of the entry is typed
        # with a (placeholder) array of the right rank
        def refuse_matrix(array):
            if array.size >= 0:
                raise ValueError(message)
            return np.empty((0, 4), dtype=np.float64)

        def refuse_vector(array):
            if array.size >= 0:
                raise ValueError(message)
            return np.empty(0, dtype=np.float64)
        return refuse_matrix if ndim == 2 else refuse_vector

    return guard


_matrix_boxes = _dimension_guard("boxes", 2)
_matrix_boxes1 = _dimension_guard("boxes1", 2)
_matrix_boxes2 = _dimension_guard("boxes2", 2)
_vector_scores = _dimension_guard("scores", 1)
_vector_idxs = _dimension_guard("idxs", 1)


@njit(cache=True)
def _check_box_pair(boxes1, boxes2):
    if boxes1.ndim != 2 or boxes1.shape[1] != 4:
        raise ValueError("boxes1 must have shape (N, 4)")
    if boxes2.ndim != 2 or boxes2.shape[1] != 4:
        raise ValueError("boxes2 must have shape (M, 4)")
    if not boxes1.flags.c_contiguous:
        raise ValueError("boxes1 must be C-contiguous (np.ascontiguousarray)")
    if not boxes2.flags.c_contiguous:
        raise ValueError("boxes2 must be C-contiguous (np.ascontiguousarray)")
    if not _is_float(boxes1):
        raise ValueError("boxes1 must be float32 or float64")
    if not _same_dtype(boxes1, boxes2):
        raise ValueError("boxes1 and boxes2 must have the same dtype")


@njit(cache=True)
def _check_one(boxes):
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError("boxes must have shape (N, 4)")
    if not boxes.flags.c_contiguous:
        raise ValueError("boxes must be C-contiguous (np.ascontiguousarray)")
    if not _is_float(boxes):
        raise ValueError("boxes must be float32 or float64")


@njit(cache=True)
def _all_finite(array):
    """True iff no entry is NaN or inf (x - x is 0 for a finite x, NaN otherwise)."""
    acc = array.dtype.type(0)
    for value in array.flat:  # any layout: the entry's contiguity check runs first, but numba types all of it
        acc += value - value
    return acc == 0


# --- the scalar building block ----------------------------------------------------------------------------

@njit(inline="always", cache=True)
def iou_xyxy(a, b):
    """IoU of boxes a and b, two length-4 ``(x1, y1, x2, y2)`` arrays of one float dtype; 0 if the union is 0."""
    zero = a.dtype.type(0)
    w = max(min(a[2], b[2]) - max(a[0], b[0]), zero)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), zero)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > zero else zero


# --- box_area and box_convert ------------------------------------------------------------------------------

@njit(cache=True)
def _areas(boxes):
    n = boxes.shape[0]
    out = np.empty(n, dtype=boxes.dtype)
    for i in range(n):
        out[i] = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
    return out


@njit(cache=True)
def box_area(boxes):
    """(N, 4) xyxy boxes -> (N,) areas ``(x2 - x1) * (y2 - y1)`` in their dtype (values not checked)."""
    boxes = _matrix_boxes(boxes)
    _check_one(boxes)
    return _areas(boxes)


@njit(cache=True)
def _format_code(fmt):
    """0, 1, 2 for "xyxy", "xywh", "cxcywh" (compared once, outside the row loop); -1 for anything else."""
    if fmt == "xyxy":
        return 0
    if fmt == "xywh":
        return 1
    if fmt == "cxcywh":
        return 2
    return -1


@njit(cache=True)
def box_convert(boxes, in_fmt, out_fmt):
    """(N, 4) boxes in `in_fmt` -> a new (N, 4) array in `out_fmt`, the reference's arithmetic row by row."""
    boxes = _matrix_boxes(boxes)
    _check_one(boxes)
    source = _format_code(in_fmt)
    target = _format_code(out_fmt)
    if source < 0 or target < 0:
        raise ValueError("in_fmt and out_fmt must be 'xyxy', 'xywh' or 'cxcywh'")
    out = np.empty(boxes.shape, dtype=boxes.dtype)
    if source == target:
        out[:] = boxes
        return out
    half = boxes.dtype.type(0.5)
    two = boxes.dtype.type(2)
    for i in range(boxes.shape[0]):
        a = boxes[i, 0]
        b = boxes[i, 1]
        c = boxes[i, 2]
        d = boxes[i, 3]
        if source == 1:  # (x, y, w, h)
            x1, y1, x2, y2 = a, b, a + c, b + d
        elif source == 2:  # (cx, cy, w, h)
            x1, y1, x2, y2 = a - half * c, b - half * d, a + half * c, b + half * d
        else:
            x1, y1, x2, y2 = a, b, c, d
        if target == 1:
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = x1, y1, x2 - x1, y2 - y1
        elif target == 2:
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = (x1 + x2) / two, (y1 + y2) / two, x2 - x1, y2 - y1
        else:
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = x1, y1, x2, y2
    return out


# --- box_iou -----------------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _row_iou(ax1, ay1, ax2, ay2, area1, bx1, by1, bx2, by2, area2, out):
    """IoU of one box against a run of columns. A loop from 0 over its own slices (rather than over a
    start..stop range of the full arrays) and numpy's error model (no ZeroDivisionError branch) are what
    let LLVM vectorise it."""
    # +0 of the boxes' dtype (a bare 0.0 literal would promote float32 to float64); not area1 - area1, which
    # is NaN for an infinite area
    zero = out.dtype.type(0)
    for j in range(out.shape[0]):
        w = max(min(ax2, bx2[j]) - max(ax1, bx1[j]), zero)
        h = max(min(ay2, by2[j]) - max(ay1, by1[j]), zero)
        inter = w * h
        union = area1 + area2[j] - inter
        out[j] = inter / union if union > zero else zero


@njit(cache=True)
def _columns(boxes2):
    """boxes2 as four unit-stride coordinate columns plus its areas."""
    return (np.ascontiguousarray(boxes2[:, 0]), np.ascontiguousarray(boxes2[:, 1]),
            np.ascontiguousarray(boxes2[:, 2]), np.ascontiguousarray(boxes2[:, 3]), _areas(boxes2))


@njit(cache=True, parallel=True)
def _box_iou_parallel(boxes1, boxes2):
    n = boxes1.shape[0]
    m = boxes2.shape[0]
    out = np.empty((n, m), dtype=boxes1.dtype)
    area1 = _areas(boxes1)
    bx1, by1, bx2, by2, area2 = _columns(boxes2)
    segments = (m + _SEGMENT - 1) // _SEGMENT
    for task in prange(n * segments):
        i = task // segments
        start = (task % segments) * _SEGMENT
        stop = min(start + _SEGMENT, m)
        _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i],
                 bx1[start:stop], by1[start:stop], bx2[start:stop], by2[start:stop], area2[start:stop],
                 out[i, start:stop])
    return out


@njit(cache=True)
def _box_iou_serial(boxes1, boxes2):
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    area1 = _areas(boxes1)
    bx1, by1, bx2, by2, area2 = _columns(boxes2)
    for i in range(boxes1.shape[0]):
        _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i], bx1, by1, bx2, by2, area2, out[i])
    return out


@njit(cache=True)
def box_iou(boxes1, boxes2):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) IoU (see the module docstring)."""
    boxes1 = _matrix_boxes1(boxes1)
    boxes2 = _matrix_boxes2(boxes2)
    _check_box_pair(boxes1, boxes2)
    if not _all_finite(boxes1):
        raise ValueError("boxes1 contains NaN or inf")
    if not _all_finite(boxes2):
        raise ValueError("boxes2 contains NaN or inf")
    # waking the thread pool costs more than a small matrix takes on one core
    if boxes1.shape[0] * boxes2.shape[0] < _PARALLEL_MIN_PAIRS:
        return _box_iou_serial(boxes1, boxes2)
    return _box_iou_parallel(boxes1, boxes2)


# --- generalized_box_iou -----------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _row_giou(i, boxes1, area1, boxes2, area2, out):
    zero = out.dtype.type(0)
    ax1 = boxes1[i, 0]
    ay1 = boxes1[i, 1]
    ax2 = boxes1[i, 2]
    ay2 = boxes1[i, 3]
    for j in range(boxes2.shape[0]):
        w = max(min(ax2, boxes2[j, 2]) - max(ax1, boxes2[j, 0]), zero)
        h = max(min(ay2, boxes2[j, 3]) - max(ay1, boxes2[j, 1]), zero)
        inter = w * h
        union = area1[i] + area2[j] - inter
        iou = inter / union if union > zero else zero
        ew = max(max(ax2, boxes2[j, 2]) - min(ax1, boxes2[j, 0]), zero)
        eh = max(max(ay2, boxes2[j, 3]) - min(ay1, boxes2[j, 1]), zero)
        enclosing = ew * eh
        out[i, j] = iou - ((enclosing - union) / enclosing if enclosing > zero else zero)


@njit(cache=True, parallel=True)
def _giou_parallel(boxes1, area1, boxes2, area2, out):
    for i in prange(boxes1.shape[0]):
        _row_giou(i, boxes1, area1, boxes2, area2, out)


@njit(cache=True)
def generalized_box_iou(boxes1, boxes2):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) generalized IoU (see the module docstring)."""
    boxes1 = _matrix_boxes1(boxes1)
    boxes2 = _matrix_boxes2(boxes2)
    _check_box_pair(boxes1, boxes2)
    if not _all_finite(boxes1):
        raise ValueError("boxes1 contains NaN or inf")
    if not _all_finite(boxes2):
        raise ValueError("boxes2 contains NaN or inf")
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    area1 = _areas(boxes1)
    area2 = _areas(boxes2)
    if boxes1.shape[0] * boxes2.shape[0] < _PARALLEL_MIN_PAIRS or boxes1.shape[0] < 2:
        for i in range(boxes1.shape[0]):
            _row_giou(i, boxes1, area1, boxes2, area2, out)
    else:
        _giou_parallel(boxes1, area1, boxes2, area2, out)
    return out
