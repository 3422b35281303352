"""Numba twins of `edudet.ops.iou_variants`: DIoU, CIoU, IoA and mmdetection's bbox_overlaps, pairwise and aligned.

Stable public names (all ``@njit(cache=True)``: callable from Python and from a user's own ``@njit`` code):

``distance_iou_xyxy(a, b, eps)``, ``complete_iou_xyxy(a, b, eps)``, ``ioa_xyxy(a, b)``  (``inline="always"``)
    one pair: a and b are length-4 arrays (a row ``boxes[i]`` is fine) ``(x1, y1, x2, y2)`` of one float dtype;
    the result has that dtype. No checks.
``distance_box_iou(boxes1, boxes2, eps)``, ``complete_box_iou(boxes1, boxes2, eps)``, ``box_ioa(boxes1, boxes2)``
    (N, 4), (M, 4) -> (N, M).
``bbox_overlaps(boxes1, boxes2, mode, eps)`` / ``bbox_overlaps_aligned(boxes1, boxes2, mode, eps)``
    mmdetection's, mode ``"iou"``, ``"iof"`` or ``"giou"``: (N, M), or (N,) for the pairs (i, i).
``overlaps(kind, boxes1, boxes2, eps)`` / ``overlaps_aligned(kind, boxes1, boxes2, eps)``
    the generic loops behind them; ``kind`` is one of the codes of `edudet.ops.iou_variants` (IOA=0, DIOU=1,
    CIOU=2, MM_IOU=3, MM_IOF=4, MM_GIOU=5).

Input: C-contiguous (N, 4) float32 or float64 arrays of one dtype (structure checked, a ``ValueError`` naming the
argument); values (NaN, inf, inverted boxes, the 1e15 bound) are `edudet.ops`' job. Every pair is computed in the
reference's order with no fastmath, so the results are bitwise the reference's, except CIoU's ``atan``
(libm's here, NumPy's there: the last bit or two).

Why it is faster than the reference (and torchvision): each pair is a few register operations written straight
into the output instead of a dozen (N, M) temporaries; the per-box areas, centres and aspect angles are
computed once per box, and `prange` spreads the rows over every core (small matrices stay on one core).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

IOA, DIOU, CIOU, MM_IOU, MM_IOF, MM_GIOU = range(6)  # the codes of edudet.ops.iou_variants
# below this many pairs one core is faster than waking the others
_PARALLEL_MIN_PAIRS = 65536


def _one_float_dtype(a, b):
    return a.dtype == b.dtype and a.dtype.kind == "f"


@overload(_one_float_dtype)
def _one_float_dtype_numba(a, b):
    same = a.dtype == b.dtype and isinstance(a.dtype, types.Float)  # decided at compile time: costs nothing
    return lambda a, b: same


@njit(cache=True)
def _check_pair(boxes1, boxes2, aligned):
    if boxes1.ndim != 2 or boxes1.shape[1] != 4:
        raise ValueError("boxes1 must have shape (N, 4)")
    if boxes2.ndim != 2 or boxes2.shape[1] != 4:
        raise ValueError("boxes2 must have shape (M, 4)")
    if not boxes1.flags.c_contiguous:
        raise ValueError("boxes1 must be C-contiguous (np.ascontiguousarray)")
    if not boxes2.flags.c_contiguous:
        raise ValueError("boxes2 must be C-contiguous (np.ascontiguousarray)")
    if not _one_float_dtype(boxes1, boxes2):
        raise ValueError("boxes1 and boxes2 must share one float dtype (float32 or float64)")
    if aligned and boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError("aligned: boxes1 and boxes2 must have the same number of rows")


@njit(inline="always", cache=True)
def _angle(box):
    """atan(w / h) of a length-4 box: pi / 2 for h == 0 < w, 0 for a point (as the reference's
    `_aspect_angle`)."""
    w = box[2] - box[0]
    h = box[3] - box[1]
    zero = box.dtype.type(0)
    if h > zero:
        return math.atan(w / h)
    if w > zero:
        return math.atan(box.dtype.type(np.inf))  # pi / 2, rounded to the boxes' dtype
    return zero


@njit(inline="always", cache=True, error_model="numpy")
def _pair(kind, ax1, ay1, ax2, ay2, area_a, angle_a, bx1, by1, bx2, by2, area_b, angle_b, eps, constants):
    """One formula of edudet.ops.iou_variants for one pair, in the reference's order of operations."""
    # constants of the boxes' dtype: a bare 1 or 0.5 literal would promote float32 arithmetic to float64
    zero, one, half, four_over_pi_sq = constants
    w = max(min(ax2, bx2) - max(ax1, bx1), zero)
    h = max(min(ay2, by2) - max(ay1, by1), zero)
    inter = w * h
    if kind == IOA:
        return inter / area_a if area_a > zero else zero
    union = area_a + area_b - inter
    if kind == MM_IOU or kind == MM_GIOU:
        union = max(union, eps)
    elif kind == MM_IOF:
        union = max(area_a, eps)
    iou = inter / union if union > zero else zero
    if kind == MM_IOU or kind == MM_IOF:
        return iou
    enclosing_w = max(ax2, bx2) - min(ax1, bx1)
    enclosing_h = max(ay2, by2) - min(ay1, by1)
    if kind == MM_GIOU:
        enclosing = max(enclosing_w * enclosing_h, eps)
        return iou - ((enclosing - union) / enclosing if enclosing > zero else zero)
    diagonal_sq = enclosing_w * enclosing_w + enclosing_h * enclosing_h + eps
    dx = (ax1 + ax2) * half - (bx1 + bx2) * half  # * 0.5 is / 2 exactly, without promoting float32
    dy = (ay1 + ay2) * half - (by1 + by2) * half
    centre_sq = dx * dx + dy * dy
    diou = iou - (centre_sq / diagonal_sq if diagonal_sq > zero else zero)
    if kind == DIOU:
        return diou
    gap = angle_a - angle_b
    v = four_over_pi_sq * (gap * gap)
    denominator = one - iou + v + eps
    alpha = v / denominator if denominator > zero else zero
    return diou - alpha * v


@njit(inline="always", cache=True)
def _constants(boxes):
    t = boxes.dtype.type
    return t(0), t(1), t(0.5), t(4 / math.pi ** 2)


@njit(cache=True)
def _per_box(kind, boxes):
    """Areas and (for CIoU) aspect angles of each box: O(N) work done once, not once per pair."""
    n = boxes.shape[0]
    area = np.empty(n, dtype=boxes.dtype)
    angle = np.zeros(n, dtype=boxes.dtype)
    for i in range(n):
        area[i] = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        if kind == CIOU:
            angle[i] = _angle(boxes[i])
    return area, angle


@njit(cache=True, error_model="numpy")
def _row(kind, i, boxes1, area1, angle1, boxes2, area2, angle2, eps, out):
    ax1, ay1, ax2, ay2 = boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3]
    constants = _constants(boxes1)
    for j in range(boxes2.shape[0]):
        out[i, j] = _pair(kind, ax1, ay1, ax2, ay2, area1[i], angle1[i],
                          boxes2[j, 0], boxes2[j, 1], boxes2[j, 2], boxes2[j, 3], area2[j], angle2[j],
                          eps, constants)


@njit(cache=True, parallel=True)
def _rows_parallel(kind, boxes1, area1, angle1, boxes2, area2, angle2, eps, out):
    for i in prange(boxes1.shape[0]):
        _row(kind, i, boxes1, area1, angle1, boxes2, area2, angle2, eps, out)


@njit(cache=True)
def overlaps(kind, boxes1, boxes2, eps):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) values of formula `kind` (see the module docstring)."""
    _check_pair(boxes1, boxes2, False)
    eps = boxes1.dtype.type(eps)
    area1, angle1 = _per_box(kind, boxes1)
    area2, angle2 = _per_box(kind, boxes2)
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    if boxes1.shape[0] * boxes2.shape[0] < _PARALLEL_MIN_PAIRS or boxes1.shape[0] < 2:
        for i in range(boxes1.shape[0]):
            _row(kind, i, boxes1, area1, angle1, boxes2, area2, angle2, eps, out)
    else:
        _rows_parallel(kind, boxes1, area1, angle1, boxes2, area2, angle2, eps, out)
    return out


@njit(cache=True, parallel=True, error_model="numpy")
def _aligned_loop(kind, boxes1, area1, angle1, boxes2, area2, angle2, eps, out):
    constants = _constants(boxes1)
    for i in prange(boxes1.shape[0]):
        out[i] = _pair(kind, boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i], angle1[i],
                       boxes2[i, 0], boxes2[i, 1], boxes2[i, 2], boxes2[i, 3], area2[i], angle2[i],
                       eps, constants)


@njit(cache=True)
def overlaps_aligned(kind, boxes1, boxes2, eps):
    """(N, 4), (N, 4) boxes of one float dtype -> (N,) values of formula `kind` for the pairs (i, i)."""
    _check_pair(boxes1, boxes2, True)
    eps = boxes1.dtype.type(eps)
    area1, angle1 = _per_box(kind, boxes1)
    area2, angle2 = _per_box(kind, boxes2)
    out = np.empty(boxes1.shape[0], dtype=boxes1.dtype)
    _aligned_loop(kind, boxes1, area1, angle1, boxes2, area2, angle2, eps, out)
    return out


# --- named entries ----------------------------------------------------------------------------------------

@njit(inline="always", cache=True)
def _one(kind, a, b, eps):
    eps = a.dtype.type(eps)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    angle_a = _angle(a) if kind == CIOU else eps - eps
    angle_b = _angle(b) if kind == CIOU else eps - eps
    return _pair(kind, a[0], a[1], a[2], a[3], area_a, angle_a, b[0], b[1], b[2], b[3], area_b, angle_b, eps,
                 _constants(a))


@njit(inline="always", cache=True)
def distance_iou_xyxy(a, b, eps=1e-7):
    """DIoU of boxes a and b (two length-4 (x1, y1, x2, y2) arrays of one float dtype)."""
    return _one(DIOU, a, b, eps)


@njit(inline="always", cache=True)
def complete_iou_xyxy(a, b, eps=1e-7):
    """CIoU of boxes a and b (two length-4 (x1, y1, x2, y2) arrays of one float dtype)."""
    return _one(CIOU, a, b, eps)


@njit(inline="always", cache=True)
def ioa_xyxy(a, b):
    """Intersection of a and b over the area of a; 0 where a has zero area."""
    return _one(IOA, a, b, 0.0)


@njit(cache=True)
def distance_box_iou(boxes1, boxes2, eps=1e-7):
    """(N, 4), (M, 4) -> (N, M) DIoU."""
    return overlaps(DIOU, boxes1, boxes2, eps)


@njit(cache=True)
def complete_box_iou(boxes1, boxes2, eps=1e-7):
    """(N, 4), (M, 4) -> (N, M) CIoU."""
    return overlaps(CIOU, boxes1, boxes2, eps)


@njit(cache=True)
def box_ioa(boxes1, boxes2):
    """(N, 4), (M, 4) -> (N, M) intersection over the area of the boxes1 box."""
    return overlaps(IOA, boxes1, boxes2, 0.0)


@njit(cache=True)
def _mode_code(mode):
    if mode == "iou":
        return MM_IOU
    if mode == "iof":
        return MM_IOF
    if mode == "giou":
        return MM_GIOU
    raise ValueError("mode must be 'iou', 'iof' or 'giou'")


@njit(cache=True)
def bbox_overlaps(boxes1, boxes2, mode="iou", eps=1e-6):
    """mmdetection's bbox_overlaps, pairwise: (N, 4), (M, 4) -> (N, M)."""
    return overlaps(_mode_code(mode), boxes1, boxes2, eps)


@njit(cache=True)
def bbox_overlaps_aligned(boxes1, boxes2, mode="iou", eps=1e-6):
    """mmdetection's bbox_overlaps with is_aligned=True: (N, 4), (N, 4) -> (N,)."""
    return overlaps_aligned(_mode_code(mode), boxes1, boxes2, eps)
