# cython: language_level=3
"""Cython twin of `edudet.targets.fcos_assign_numpy`: FCOS point-to-ground-truth assignment.

One pass over points (OpenMP prange) x ground truths keeping the running smallest candidate area: no
(P, G, 4) temporaries. Same operations and dtype as the reference, so the assignment is identical.
`no_candidate_area` is `edudet.targets.FCOS_INF` (infinity): a candidate's area must be below it.
"""
import numpy as np
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange


cdef cnp.int64_t _assign_point(const floating[:, ::1] points, const floating[:, ::1] gt, const floating[::1] areas,
                               const floating[::1] center_x, const floating[::1] center_y,
                               const floating[::1] radius_stride, const floating[::1] range_low,
                               const floating[::1] range_high, bint center_sampling, floating no_candidate_area,
                               Py_ssize_t p) noexcept nogil:
    cdef floating x = points[p, 0], y = points[p, 1], r = radius_stride[p]
    cdef floating left, top, right, bottom, reach, lo, hi
    cdef floating best_area = no_candidate_area
    cdef cnp.int64_t best = -1
    cdef Py_ssize_t g
    cdef bint inside
    for g in range(gt.shape[0]):
        left = x - gt[g, 0]
        top = y - gt[g, 1]
        right = gt[g, 2] - x
        bottom = gt[g, 3] - y
        if center_sampling:
            # the gt's centre square of half-side stride * radius, clipped to the gt box
            lo = center_x[g] - r
            hi = center_x[g] + r
            inside = (x - (lo if lo > gt[g, 0] else gt[g, 0]) > 0) and ((hi if hi < gt[g, 2] else gt[g, 2]) - x > 0)
            if inside:
                lo = center_y[g] - r
                hi = center_y[g] + r
                inside = (y - (lo if lo > gt[g, 1] else gt[g, 1]) > 0) and ((hi if hi < gt[g, 3] else gt[g, 3]) - y > 0)
        else:
            inside = left > 0 and top > 0 and right > 0 and bottom > 0
        if not inside:
            continue
        reach = left if left > top else top
        if right > reach:
            reach = right
        if bottom > reach:
            reach = bottom
        if reach < range_low[p] or reach > range_high[p]:
            continue
        if areas[g] < best_area:  # strict: the first gt wins a tie, as argmin
            best_area = areas[g]
            best = g
    return best


def _assign(const floating[:, ::1] points, const floating[:, ::1] gt, const floating[::1] radius_stride,
            const floating[::1] range_low, const floating[::1] range_high, bint center_sampling,
            floating no_candidate_area):
    gt_np = np.asarray(gt)
    cdef floating[::1] areas = np.ascontiguousarray((gt_np[:, 2] - gt_np[:, 0]) * (gt_np[:, 3] - gt_np[:, 1]))
    cdef floating[::1] center_x = np.ascontiguousarray((gt_np[:, 0] + gt_np[:, 2]) / 2)
    cdef floating[::1] center_y = np.ascontiguousarray((gt_np[:, 1] + gt_np[:, 3]) / 2)
    out = np.empty(points.shape[0], dtype=np.int64)
    cdef cnp.int64_t[::1] assigned = out
    cdef Py_ssize_t p
    with nogil:
        for p in prange(points.shape[0], schedule="static"):
            assigned[p] = _assign_point(points, gt, areas, center_x, center_y, radius_stride, range_low, range_high,
                                        center_sampling, no_candidate_area, p)
    return out


def fcos_assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area):
    """points (P, 2), gt (G, 4) and per-point radius_stride, range_low, range_high of one float dtype -> (P,) int64."""
    return _assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area)
