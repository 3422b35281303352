"""numba.cuda twin of `edudet.targets.fcos_assign_numpy`: FCOS assignment, one thread per point.

Each thread scans the ground truths keeping the smallest candidate area (no (P, G) temporaries). The wrapper
copies to the device and back; it also runs under ``NUMBA_ENABLE_CUDASIM=1`` (slowly: small inputs only).
`no_candidate_area` is `edudet.targets.FCOS_INF` (infinity): a candidate's area must be below it.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

_THREADS = 256


@cuda.jit
def _assign_kernel(points, gt, areas, center_x, center_y, radius_stride, range_low, range_high, inf,
                   center_sampling, out):
    p = cuda.grid(1)
    if p >= points.shape[0]:
        return
    x = points[p, 0]
    y = points[p, 1]
    r = radius_stride[p]
    best_area = inf[0]
    best = -1
    for g in range(gt.shape[0]):
        left = x - gt[g, 0]
        top = y - gt[g, 1]
        right = gt[g, 2] - x
        bottom = gt[g, 3] - y
        if center_sampling:
            inside = (x - max(center_x[g] - r, gt[g, 0]) > 0 and y - max(center_y[g] - r, gt[g, 1]) > 0
                      and min(center_x[g] + r, gt[g, 2]) - x > 0 and min(center_y[g] + r, gt[g, 3]) - y > 0)
        else:
            inside = left > 0 and top > 0 and right > 0 and bottom > 0
        if inside:
            reach = max(max(left, top), max(right, bottom))
            if reach >= range_low[p] and reach <= range_high[p] and areas[g] < best_area:
                best_area = areas[g]  # strict <: the first gt wins a tie, as argmin
                best = g
    out[p] = best


def fcos_assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area):
    """points (P, 2), gt (G, 4) and per-point radius_stride, range_low, range_high of one float dtype -> (P,) int64."""
    dtype = gt.dtype
    areas = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    center_x = (gt[:, 0] + gt[:, 2]) / dtype.type(2)
    center_y = (gt[:, 1] + gt[:, 3]) / dtype.type(2)
    inf = np.array([no_candidate_area], dtype=dtype)  # a 1-element array: the kernel compares in the input dtype
    args = [cuda.to_device(np.ascontiguousarray(a)) for a in (points, gt, areas, center_x, center_y, radius_stride,
                                                               range_low, range_high, inf)]
    out = cuda.device_array(points.shape[0], dtype=np.int64)
    _assign_kernel[math.ceil(points.shape[0] / _THREADS), _THREADS](*args, bool(center_sampling), out)
    return out.copy_to_host()
