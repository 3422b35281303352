"""numba.cuda twin of `edudet.targets.fcos_assign_numpy`: FCOS assignment, one thread per point.

Public names (stable; see docs/kernels.md):

* ``fcos_assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
  torchvision_rule=False) -> (P,) int64``: points (P, 2), gt (G, 4) ``(x1, y1, x2, y2)``, radius_stride /
  range_low / range_high (P,), all of one float dtype and C-contiguous, NumPy or device arrays
  (``__cuda_array_interface__``); no_candidate_area: the rank a candidate must be below
  (`edudet.targets.FCOS_INF` under mmdetection's rule). Each point's ground-truth index, -1 for none. With any
  device array in, the result is a numba device array (no copy to the host); with host arrays, a NumPy array.
  torchvision_rule: torchvision's centre test, strict range ends, ranks ``area - 1e8``
  (`edudet.targets.fcos_ranks`).
* ``fcos_assign_point(x, y, gt, ranks, center_x, center_y, radius_stride, range_low, range_high,
  center_sampling, no_candidate_area, torchvision_rule) -> index`` (``@cuda.jit(device=True)``): one point's
  assignment; ranks, center_x, center_y (G,) are ``(x2 - x1) * (y2 - y1)`` (minus torchvision's 1e8 under
  torchvision_rule), ``(x1 + x2) / 2``, ``(y1 + y2) / 2`` of gt, in its dtype.

Checks at entry of ``fcos_assign`` (ValueError naming the argument): shapes (P, 2), (G, 4), (P,) x 3, matching
lengths, C-contiguity, one float dtype. With ``EDUDET_CHECK_KERNELS=1``: finite points and boxes within 1e15 too
(device inputs are copied to the host for that). Not checked: x2 >= x1, range_low <= range_high.

Each thread scans the ground truths keeping the lowest candidate rank (no (P, G) temporaries). Runs under
``NUMBA_ENABLE_CUDASIM=1`` too (slowly: small inputs only).

Example::

    import numpy as np
    from numba import cuda
    from edudet.kernels.fcos_targets_cuda import fcos_assign
    points = cuda.to_device(np.array([[5, 5], [50, 50]], dtype=np.float32))
    gt = cuda.to_device(np.array([[0, 0, 20, 20]], dtype=np.float32))
    per_point = cuda.to_device(np.array([12, 12], dtype=np.float32))        # stride 8 x radius 1.5
    low, high = cuda.to_device(np.zeros(2, np.float32)), cuda.to_device(np.full(2, 64, np.float32))
    fcos_assign(points, gt, per_point, low, high, False, np.float32(np.inf)).copy_to_host()   # [0, -1]
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from edudet.targets import TORCHVISION_AREA_OFFSET

from ._checks import CHECK_KERNELS, check_values
from .matching_cuda import _check_input, _device_view, _host, _on_device

_THREADS = 256


@cuda.jit(device=True)
def fcos_assign_point(x, y, gt, ranks, center_x, center_y, radius_stride, range_low, range_high, center_sampling,
                      no_candidate_area, torchvision_rule):
    """The index of the ground truth point (x, y) is assigned (lowest candidate rank, first on ties), or -1."""
    best_rank = no_candidate_area
    best = -1
    r = radius_stride
    for g in range(gt.shape[0]):
        left = x - gt[g, 0]
        top = y - gt[g, 1]
        right = gt[g, 2] - x
        bottom = gt[g, 3] - y
        if center_sampling and not torchvision_rule:
            # the gt's centre square of half-side stride * radius, clipped to the gt box
            inside = (x - max(center_x[g] - r, gt[g, 0]) > 0 and y - max(center_y[g] - r, gt[g, 1]) > 0
                      and min(center_x[g] + r, gt[g, 2]) - x > 0 and min(center_y[g] + r, gt[g, 3]) - y > 0)
        else:
            inside = left > 0 and top > 0 and right > 0 and bottom > 0
            if inside and center_sampling:  # torchvision's: within r of the centre along both axes
                inside = max(abs(x - center_x[g]), abs(y - center_y[g])) < r
        if inside:
            reach = max(max(left, top), max(right, bottom))  # the longest side distance decides the level
            if torchvision_rule:
                in_range = reach > range_low and reach < range_high
            else:
                in_range = reach >= range_low and reach <= range_high
            if in_range and ranks[g] < best_rank:
                best_rank = ranks[g]  # strict <: the first gt wins a tie, as argmin
                best = g
    return best


@cuda.jit
def _geometry_kernel(gt, constants, torchvision_rule, ranks, center_x, center_y):
    g = cuda.grid(1)
    if g < gt.shape[0]:  # in the boxes' dtype (`constants`: 2 and torchvision's area offset in it), as the reference
        ranks[g] = (gt[g, 2] - gt[g, 0]) * (gt[g, 3] - gt[g, 1])
        if torchvision_rule:
            ranks[g] = ranks[g] - constants[1]
        center_x[g] = (gt[g, 0] + gt[g, 2]) / constants[0]
        center_y[g] = (gt[g, 1] + gt[g, 3]) / constants[0]


@cuda.jit
def _assign_kernel(points, gt, ranks, center_x, center_y, radius_stride, range_low, range_high, inf,
                   center_sampling, torchvision_rule, out):
    p = cuda.grid(1)
    if p < points.shape[0]:
        out[p] = fcos_assign_point(points[p, 0], points[p, 1], gt, ranks, center_x, center_y, radius_stride[p],
                                   range_low[p], range_high[p], center_sampling, inf[0], torchvision_rule)


def fcos_assign(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
                torchvision_rule=False):
    """points (P, 2), gt (G, 4), per-point radius_stride, range_low, range_high (host or device) -> (P,) int64."""
    _check_input("points", points, columns=2)
    _check_input("gt", gt, columns=4)
    n = points.shape[0]
    for name, values in (("radius_stride", radius_stride), ("range_low", range_low), ("range_high", range_high)):
        _check_input(name, values, ndim=1, length=n)
    dtype = np.dtype(gt.dtype)
    if dtype not in (np.float32, np.float64) or any(
            np.dtype(a.dtype) != dtype for a in (points, radius_stride, range_low, range_high)):
        raise ValueError("points, gt, radius_stride, range_low and range_high must share one float dtype "
                         "(float32 or float64)")
    if CHECK_KERNELS:
        check_values(points=_host(points), gt_boxes=_host(gt), radius_stride=_host(radius_stride))
    to_device = any(_device_view(a) is not None for a in (points, gt, radius_stride, range_low, range_high))
    args = [_on_device(a)[0] for a in (points, gt)]
    num_gt = gt.shape[0]
    geometry = [cuda.device_array(num_gt, dtype=dtype) for _ in range(3)]  # ranks, center_x, center_y
    if num_gt:
        _geometry_kernel[math.ceil(num_gt / _THREADS), _THREADS](
            args[1], cuda.to_device(np.array([2, TORCHVISION_AREA_OFFSET], dtype)), bool(torchvision_rule), *geometry)
    args += geometry + [_on_device(a)[0] for a in (radius_stride, range_low, range_high)]
    args.append(cuda.to_device(np.array([no_candidate_area], dtype=dtype)))  # compared in the input dtype
    out = cuda.device_array(n, dtype=np.int64)
    if n:
        _assign_kernel[math.ceil(n / _THREADS), _THREADS](*args, bool(center_sampling), bool(torchvision_rule), out)
    return out if to_device else out.copy_to_host()
