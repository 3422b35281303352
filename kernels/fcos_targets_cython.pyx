# cython: language_level=3
"""Cython twin of `edudet.targets.fcos_assign_numpy`: FCOS point-to-ground-truth assignment.

Public names (stable; see docs/kernels.md):

* ``fcos_assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
  torchvision_rule=False) -> (P,) int64`` (``def``): points (P, 2), gt (G, 4) ``(x1, y1, x2, y2)``,
  radius_stride (the centre region's half-side, ``stride * radius``), range_low, range_high (P,), all of one
  float dtype, C-contiguous; no_candidate_area: the rank a candidate must be below (`edudet.targets.FCOS_INF`
  under mmdetection's rule). Each point's ground-truth index, -1 for none. OpenMP over points.
  torchvision_rule: torchvision's centre test, strict range ends and ranks ``area - 1e8``
  (`edudet.targets.fcos_ranks`).
* ``fcos_assign_point(x, y, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
  torchvision_rule=False)``: ``cdef inline int64_t ... noexcept nogil``, defined in ``fcos_targets_cython.pxd``:
  one point.

Checks at entry of ``fcos_assign`` (ValueError naming the argument): ndarrays, shapes (P, 2), (G, 4), (P,) x 3,
matching lengths, C-contiguity, one float dtype. With ``EDUDET_CHECK_KERNELS=1``: finite points and boxes within
1e15, finite radius_stride. Not checked: x2 >= x1, range_low <= range_high. ``fcos_assign_point`` checks nothing.

One pass over points x ground truths keeping the running lowest candidate rank: no (P, G, 4) temporaries.
Same operations and dtype as the reference, so the assignment is identical. ``fcos_assign`` runs its own copy
of the point loop (ranks and centres computed once per ground truth), so that this module builds whether or
not Cython finds the .pxd; the tests hold the two equal.

Example (from a user's .pyx)::

    from libc.math cimport INFINITY
    from edudet.kernels.fcos_targets_cython cimport fcos_assign_point
    def assign(float x, float y, const float[:, ::1] gt):
        with nogil:   # stride 8 x radius 1.5 = 12, regression range [0, 64], no center sampling
            return fcos_assign_point(x, y, gt, 12, 0, 64, False, INFINITY)
"""
import numpy as np
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from ._checks import CHECK_KERNELS, check_structure, check_values
from edudet.targets import TORCHVISION_AREA_OFFSET


cdef int64_t _assign_point(const floating[:, ::1] points, const floating[:, ::1] gt, const floating[::1] ranks,
                               const floating[::1] center_x, const floating[::1] center_y,
                               const floating[::1] radius_stride, const floating[::1] range_low,
                               const floating[::1] range_high, bint center_sampling, floating no_candidate_area,
                               bint torchvision_rule, Py_ssize_t p) noexcept nogil:
    cdef floating x = points[p, 0], y = points[p, 1], r = radius_stride[p]
    cdef floating left, top, right, bottom, reach, lo, hi
    cdef floating best_rank = no_candidate_area
    cdef int64_t best = -1
    cdef Py_ssize_t g
    cdef bint inside
    for g in range(gt.shape[0]):
        left = x - gt[g, 0]
        top = y - gt[g, 1]
        right = gt[g, 2] - x
        bottom = gt[g, 3] - y
        if center_sampling and not torchvision_rule:
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
            if inside and center_sampling:  # torchvision's: within r of the centre along both axes
                lo = x - center_x[g]
                hi = y - center_y[g]
                inside = (lo if lo >= 0 else -lo) < r and (hi if hi >= 0 else -hi) < r
        if not inside:
            continue
        reach = left if left > top else top
        if right > reach:
            reach = right
        if bottom > reach:
            reach = bottom
        if torchvision_rule:
            if not (reach > range_low[p] and reach < range_high[p]):
                continue
        elif reach < range_low[p] or reach > range_high[p]:
            continue
        if ranks[g] < best_rank:  # strict: the first gt wins a tie, as argmin
            best_rank = ranks[g]
            best = g
    return best


def _assign(const floating[:, ::1] points, const floating[:, ::1] gt, const floating[::1] radius_stride,
            const floating[::1] range_low, const floating[::1] range_high, bint center_sampling,
            floating no_candidate_area, bint torchvision_rule):
    gt_np = np.asarray(gt)
    ranks_np = (gt_np[:, 2] - gt_np[:, 0]) * (gt_np[:, 3] - gt_np[:, 1])
    if torchvision_rule:  # torchvision's score 1e8 - area, negated, rounded in the input dtype as it rounds
        ranks_np = ranks_np - gt_np.dtype.type(TORCHVISION_AREA_OFFSET)
    cdef floating[::1] ranks = np.ascontiguousarray(ranks_np)
    cdef floating[::1] center_x = np.ascontiguousarray((gt_np[:, 0] + gt_np[:, 2]) / 2)
    cdef floating[::1] center_y = np.ascontiguousarray((gt_np[:, 1] + gt_np[:, 3]) / 2)
    out = np.empty(points.shape[0], dtype=np.int64)
    cdef int64_t[::1] assigned = out
    cdef Py_ssize_t p
    with nogil:
        for p in prange(points.shape[0], schedule="static"):
            assigned[p] = _assign_point(points, gt, ranks, center_x, center_y, radius_stride, range_low, range_high,
                                        center_sampling, no_candidate_area, torchvision_rule, p)
    return out


def fcos_assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
                torchvision_rule=False):
    """points (P, 2), gt (G, 4) and per-point radius_stride, range_low, range_high of one float dtype -> (P,) int64."""
    check_structure("points", points, columns=2)
    check_structure("gt", gt, columns=4)
    n = points.shape[0]
    for name, values in (("radius_stride", radius_stride), ("range_low", range_low), ("range_high", range_high)):
        check_structure(name, values, ndim=1, length=n)
    if gt.dtype not in (np.float32, np.float64) or any(
            a.dtype != gt.dtype for a in (points, radius_stride, range_low, range_high)):
        raise ValueError("points, gt, radius_stride, range_low and range_high must share one float dtype "
                         "(float32 or float64)")
    if CHECK_KERNELS:
        check_values(points=points, gt_boxes=gt, radius_stride=radius_stride)
    return _assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
                   torchvision_rule)
