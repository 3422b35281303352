# cython: language_level=3
"""Cython twins of `edudet.ops.rotated`: rotated IoU (matrix and aligned), rotated NMS and batched rotated NMS.

Same signatures as the NumPy references: clean C-contiguous (N, 5) float64 ``(cx, cy, w, h, angle in
degrees)`` boxes in. Each pair is computed by `_pair_iou`, the scalar form of the reference's
`_iou_of_pairs` (box 1 clipped by each edge of box 2, Sutherland-Hodgman, then the shoelace area): the
same operations in the same order, compiled without -ffast-math, so the results are bitwise equal. cos and sin
of the angles come from NumPy, as in the reference. The IoU matrix spreads its rows over the cores with
OpenMP `prange`; a pair whose circumscribed circles do not meet costs one comparison.
"""
import numpy as np

cimport cython
from cython.parallel cimport prange

cdef enum:
    # below this many pairs one core is faster than waking the others
    PARALLEL_MIN_PAIRS = 4096


cdef inline double _fmax(double a, double b) noexcept nogil:
    return a if a > b else b


cdef inline double _fmin(double a, double b) noexcept nogil:
    return a if a < b else b


cdef enum:
    # at most this many polygon corners are kept (`edudet.ops.rotated.MAX_VERTICES`)
    MAX_VERTICES = 16


cdef inline int _clip(const double* px, const double* py, int n, double ax, double ay, double bx, double by,
                      double* out_x, double* out_y) noexcept nogil:
    """One Sutherland-Hodgman step: the part of polygon (px, py)[:n] left of a -> b into out; returns its count."""
    cdef double side[MAX_VERTICES]
    cdef double ex = bx - ax, ey = by - ay, t
    cdef int s, f, m = 0
    for s in range(n):
        side[s] = ex * (py[s] - ay) - ey * (px[s] - ax)
    for s in range(n):
        f = s + 1 if s + 1 < n else 0
        if side[s] >= 0.0:
            if m < MAX_VERTICES:
                out_x[m] = px[s]
                out_y[m] = py[s]
            m += 1
        if (side[s] > 0.0 and side[f] < 0.0) or (side[s] < 0.0 and side[f] > 0.0):
            t = side[s] / (side[s] - side[f])
            if m < MAX_VERTICES:
                out_x[m] = px[s] + t * (px[f] - px[s])
                out_y[m] = py[s] + t * (py[f] - py[s])
            m += 1
    return m if m < MAX_VERTICES else MAX_VERTICES


cdef inline void _corners(double hw, double hh, double c, double s, double cx, double cy,
                          double* x, double* y) noexcept nogil:
    # the reference's order: (-,-), (+,-), (+,+), (-,+) half sides, rotated, then moved by (cx, cy)
    x[0] = cx + (-hw * c + -hh * s)
    y[0] = cy + (-hh * c - -hw * s)
    x[1] = cx + (hw * c + -hh * s)
    y[1] = cy + (-hh * c - hw * s)
    x[2] = cx + (hw * c + hh * s)
    y[2] = cy + (hh * c - hw * s)
    x[3] = cx + (-hw * c + hh * s)
    y[3] = cy + (hh * c - -hw * s)


cdef double _pair_iou(const double* b1, double c1, double s1, double r1,
                      const double* b2, double c2, double s2, double r2) noexcept nogil:
    """IoU of rotated boxes b1 and b2 (rows of 5) with their cos, sin and circumradius."""
    cdef double cx = b2[0] - b1[0], cy = b2[1] - b1[1], reach = r1 + r2
    cdef double area1, area2, inter, union_area, total
    cdef double px[MAX_VERTICES]
    cdef double py[MAX_VERTICES]
    cdef double qx[MAX_VERTICES]
    cdef double qy[MAX_VERTICES]
    cdef double bx[4]
    cdef double by[4]
    cdef int n, s, f
    if not cx * cx + cy * cy <= reach * reach:
        return 0.0
    area1 = b1[2] * b1[3]
    area2 = b2[2] * b2[3]
    if not (area1 > 0.0 and area2 > 0.0):
        return 0.0
    # box 1's corners about its own centre: the first corner computed as 0 + value (exact), as the others
    _corners(0.5 * b1[2], 0.5 * b1[3], c1, s1, 0.0, 0.0, px, py)
    _corners(0.5 * b2[2], 0.5 * b2[3], c2, s2, cx, cy, bx, by)
    n = _clip(px, py, 4, bx[0], by[0], bx[1], by[1], qx, qy)
    n = _clip(qx, qy, n, bx[1], by[1], bx[2], by[2], px, py)
    n = _clip(px, py, n, bx[2], by[2], bx[3], by[3], qx, qy)
    n = _clip(qx, qy, n, bx[3], by[3], bx[0], by[0], px, py)
    total = 0.0
    for s in range(n):
        f = s + 1 if s + 1 < n else 0
        total = total + (px[s] * py[f] - px[f] * py[s])
    inter = 0.5 * total
    inter = _fmin(_fmax(inter, 0.0), _fmin(area1, area2))
    union_area = area1 + area2 - inter
    if not union_area > 0.0:
        return 0.0
    return _fmin(inter / union_area, 1.0)


def _cos_sin(boxes):
    """cos and sin of each angle, with NumPy's functions exactly as `edudet.ops.rotated._cos_sin`."""
    theta = np.radians(boxes[:, 4])
    return np.cos(theta), np.sin(theta)


def _radii(boxes):
    return 0.5 * np.sqrt(boxes[:, 2] * boxes[:, 2] + boxes[:, 3] * boxes[:, 3])


def box_iou_rotated(const double[:, ::1] boxes1, const double[:, ::1] boxes2):
    """(N, 5), (M, 5) clean float64 rotated boxes -> (N, M) float64 IoU."""
    b1, b2 = np.asarray(boxes1), np.asarray(boxes2)
    cos1_arr, sin1_arr = _cos_sin(b1)
    cos2_arr, sin2_arr = _cos_sin(b2)
    cdef const double[::1] cos1 = cos1_arr, sin1 = sin1_arr, r1 = _radii(b1)
    cdef const double[::1] cos2 = cos2_arr, sin2 = sin2_arr, r2 = _radii(b2)
    cdef Py_ssize_t n = boxes1.shape[0], m = boxes2.shape[0], i, j
    out = np.empty((n, m))
    cdef double[:, ::1] o = out
    if n == 0 or m == 0:
        return out
    with nogil:
        if n * m < PARALLEL_MIN_PAIRS:
            for i in range(n):
                for j in range(m):
                    o[i, j] = _pair_iou(&boxes1[i, 0], cos1[i], sin1[i], r1[i], &boxes2[j, 0], cos2[j], sin2[j], r2[j])
        else:
            for i in prange(n, schedule="dynamic"):
                for j in range(m):
                    o[i, j] = _pair_iou(&boxes1[i, 0], cos1[i], sin1[i], r1[i], &boxes2[j, 0], cos2[j], sin2[j], r2[j])
    return out


def box_iou_rotated_aligned(const double[:, ::1] boxes1, const double[:, ::1] boxes2):
    """(N, 5), (N, 5) clean float64 rotated boxes -> (N,) float64 IoU of each aligned pair."""
    b1, b2 = np.asarray(boxes1), np.asarray(boxes2)
    cos1_arr, sin1_arr = _cos_sin(b1)
    cos2_arr, sin2_arr = _cos_sin(b2)
    cdef const double[::1] cos1 = cos1_arr, sin1 = sin1_arr, r1 = _radii(b1)
    cdef const double[::1] cos2 = cos2_arr, sin2 = sin2_arr, r2 = _radii(b2)
    cdef Py_ssize_t n = boxes1.shape[0], i
    out = np.empty(n)
    cdef double[::1] o = out
    with nogil:
        for i in range(n):
            o[i] = _pair_iou(&boxes1[i, 0], cos1[i], sin1[i], r1[i], &boxes2[i, 0], cos2[i], sin2[i], r2[i])
    return out


cdef void _greedy(const double[:, ::1] boxes, const double[::1] cos, const double[::1] sin,
                  const double[::1] radius, const long long[::1] order, const long long[::1] starts,
                  double iou_threshold, unsigned char[::1] suppressed, unsigned char[::1] keep) noexcept nogil:
    """Greedy NMS of each run order[starts[g]:starts[g + 1]] (a category, by decreasing score)."""
    cdef Py_ssize_t g, r, s, i, j
    for g in range(starts.shape[0] - 1):
        for r in range(starts[g], starts[g + 1]):
            if suppressed[r]:
                continue
            i = order[r]
            keep[i] = 1
            for s in range(r + 1, starts[g + 1]):
                if suppressed[s]:
                    continue
                j = order[s]
                if _pair_iou(&boxes[i, 0], cos[i], sin[i], radius[i],
                             &boxes[j, 0], cos[j], sin[j], radius[j]) > iou_threshold:
                    suppressed[s] = 1


def _descending_order(scores):
    return np.argsort(-scores, kind="stable")


def _run_greedy(boxes, scores, order, starts, double iou_threshold):
    cos, sin = _cos_sin(boxes)
    keep = np.zeros(boxes.shape[0], dtype=np.uint8)
    suppressed = np.zeros(boxes.shape[0], dtype=np.uint8)
    cdef const long long[::1] order_view = np.ascontiguousarray(order, dtype=np.int64)
    cdef const long long[::1] starts_view = np.ascontiguousarray(starts, dtype=np.int64)
    _greedy(boxes, cos, sin, _radii(boxes), order_view, starts_view, iou_threshold, suppressed, keep)
    kept = np.flatnonzero(keep)
    return kept[_descending_order(scores[kept])].astype(np.int64)


def nms_rotated(const double[:, ::1] boxes, scores, double iou_threshold):
    """(N, 5) clean float64 rotated boxes, (N,) scores -> (K,) int64 kept indices by decreasing score."""
    order = _descending_order(scores)
    return _run_greedy(np.asarray(boxes), scores, order, np.array([0, len(order)]), iou_threshold)


def batched_nms_rotated(const double[:, ::1] boxes, scores, idxs, double iou_threshold):
    """`nms_rotated` per category of `idxs` (N,) int64, merged by decreasing score."""
    order = _descending_order(scores)
    order = order[np.argsort(idxs[order], kind="stable")]  # by category, by decreasing score inside each
    sorted_idxs = idxs[order]
    n = len(order)
    starts = np.concatenate([[0], np.flatnonzero(sorted_idxs[1:] != sorted_idxs[:n - 1]) + 1, [n]])
    return _run_greedy(np.asarray(boxes), scores, order, starts, iou_threshold)
