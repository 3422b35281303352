"""Numba twin of `edudet.targets.fcos_assign_numpy`: FCOS point-to-ground-truth assignment.

Public names (stable; see docs/kernels.md):

* ``fcos_assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
  torchvision_rule=False) -> (P,) int64`` (``@njit(cache=True, parallel=True)``): points (P, 2), gt (G, 4)
  ``(x1, y1, x2, y2)``, radius_stride (the centre region's half-side: ``stride * center_sample_radius``),
  range_low, range_high (P,), all of one float dtype, C-contiguous; center_sampling a bool;
  no_candidate_area: the rank a candidate must be below, in that dtype (`edudet.targets.FCOS_INF` under
  mmdetection's rule). Each point's ground-truth index (the lowest-rank candidate, first on ties), -1 for
  none. torchvision_rule: torchvision's centre test ``max(|x - cx|, |y - cy|) < r`` (and inside the box),
  strict range ends, and rank ``area - 1e8`` in the input dtype (`edudet.targets.fcos_ranks`).

Checks at entry (ValueError naming the argument): shapes (P, 2), (G, 4), lengths of the per-point arrays,
C-contiguity, one float dtype, and finite points, boxes and radius_stride (an O(P + G) scan against O(P * G)
work; the range ends may be infinite). Not checked: the 1e15 coordinate bound, x2 >= x1, range_low <=
range_high: `edudet.fcos_targets` checks those. A wrong ndim is a Numba TypingError (Numba compiles per type).

Example::

    import numpy as np
    from edudet.kernels.fcos_targets_numba import fcos_assign
    points = np.array([[5, 5], [50, 50]], dtype=np.float32)
    gt = np.array([[0, 0, 20, 20]], dtype=np.float32)
    per_point = np.full(2, 12, np.float32)                       # stride 8 x radius 1.5
    fcos_assign(points, gt, per_point, np.zeros(2, np.float32), np.full(2, 64, np.float32), False,
                np.float32(np.inf))                              # [0, -1]: (5, 5) is inside, (50, 50) is not

One pass over points (in parallel) x ground truths, keeping only the running lowest candidate rank: the
(P, G, 4) distance and (P, G) area temporaries of the reference are never built. Every value is computed
with the reference's operations in the same dtype, so the assignment is identical.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from edudet.kernels.matching_numba import _all_finite, _same_float_dtype
from edudet.targets import TORCHVISION_AREA_OFFSET


@njit(cache=True, parallel=True)
def fcos_assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
                torchvision_rule=False):
    n = points.shape[0]
    num_gt = gt.shape[0]
    if points.shape[1] != 2 or not points.flags.c_contiguous:
        raise ValueError("points must be a C-contiguous (P, 2) array")
    if gt.shape[1] != 4 or not gt.flags.c_contiguous:
        raise ValueError("gt must be a C-contiguous (G, 4) array")
    if radius_stride.shape[0] != n or range_low.shape[0] != n or range_high.shape[0] != n:
        raise ValueError("radius_stride, range_low and range_high must have one entry per point (P,)")
    if not (_same_float_dtype(points, gt) and _same_float_dtype(points, radius_stride)
            and _same_float_dtype(points, range_low) and _same_float_dtype(points, range_high)):
        raise ValueError("points, gt, radius_stride, range_low and range_high must share one float dtype")
    if not (_all_finite(points) and _all_finite(gt) and _all_finite(radius_stride)):
        raise ValueError("points, gt or radius_stride contains NaN or inf")
    ranks = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    if torchvision_rule:  # torchvision's score 1e8 - area, negated, rounded in the input dtype as it rounds
        ranks = ranks - np.full(1, TORCHVISION_AREA_OFFSET, dtype=gt.dtype)[0]
    two = np.full(1, 2, dtype=gt.dtype)[0]  # halve in the input dtype, as the reference does
    center_x = (gt[:, 0] + gt[:, 2]) / two
    center_y = (gt[:, 1] + gt[:, 3]) / two
    out = np.empty(n, dtype=np.int64)
    for p in prange(n):
        x = points[p, 0]
        y = points[p, 1]
        r = radius_stride[p]
        low = range_low[p]
        high = range_high[p]
        best_rank = no_candidate_area
        best = -1
        for g in range(num_gt):
            left = x - gt[g, 0]
            top = y - gt[g, 1]
            right = gt[g, 2] - x
            bottom = gt[g, 3] - y
            if center_sampling and not torchvision_rule:
                inside = (x - max(center_x[g] - r, gt[g, 0]) > 0 and y - max(center_y[g] - r, gt[g, 1]) > 0
                          and min(center_x[g] + r, gt[g, 2]) - x > 0 and min(center_y[g] + r, gt[g, 3]) - y > 0)
            else:
                inside = left > 0 and top > 0 and right > 0 and bottom > 0
                if inside and center_sampling:  # torchvision's: within r of the centre along both axes
                    inside = max(abs(x - center_x[g]), abs(y - center_y[g])) < r
            if not inside:
                continue
            reach = max(max(left, top), max(right, bottom))
            if torchvision_rule:
                if not (reach > low and reach < high):
                    continue
            elif reach < low or reach > high:
                continue
            if ranks[g] < best_rank:  # strict: the first gt wins a tie, as argmin
                best_rank = ranks[g]
                best = g
        out[p] = best
    return out
