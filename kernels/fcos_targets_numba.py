"""Numba twin of `edudet.targets.fcos_assign_numpy`: FCOS point-to-ground-truth assignment.

One pass over points (in parallel) x ground truths, keeping only the running smallest candidate area: the
(P, G, 4) distance and (P, G) area temporaries of the reference are never built. Every value is computed
with the reference's operations in the same dtype, so the assignment is identical. `no_candidate_area` is
`edudet.targets.FCOS_INF` (infinity) in the input dtype: a candidate's area must be below it.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def fcos_assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area):
    n = points.shape[0]
    num_gt = gt.shape[0]
    areas = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    two = np.full(1, 2, dtype=gt.dtype)[0]  # halve in the input dtype, as the reference does
    center_x = (gt[:, 0] + gt[:, 2]) / two
    center_y = (gt[:, 1] + gt[:, 3]) / two
    out = np.empty(n, dtype=np.int64)
    for p in prange(n):
        x = points[p, 0]
        y = points[p, 1]
        r = radius_stride[p]
        best_area = no_candidate_area
        best = -1
        for g in range(num_gt):
            left = x - gt[g, 0]
            top = y - gt[g, 1]
            right = gt[g, 2] - x
            bottom = gt[g, 3] - y
            if center_sampling:
                inside = (x - max(center_x[g] - r, gt[g, 0]) > 0 and y - max(center_y[g] - r, gt[g, 1]) > 0
                          and min(center_x[g] + r, gt[g, 2]) - x > 0 and min(center_y[g] + r, gt[g, 3]) - y > 0)
            else:
                inside = left > 0 and top > 0 and right > 0 and bottom > 0
            if not inside:
                continue
            reach = max(max(left, top), max(right, bottom))
            if reach < range_low[p] or reach > range_high[p]:
                continue
            if areas[g] < best_area:  # strict: the first gt wins a tie, as argmin
                best_area = areas[g]
                best = g
        out[p] = best
    return out
