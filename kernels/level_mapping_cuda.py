"""FPN level mapping in numba.cuda. Public, stable (host launchers, Python-callable):

``fpn_levels(boxes, k_min, k_max, canonical_scale, canonical_level, eps) -> (N,) int64``  (FPN eq. 1)
``map_roi_levels(boxes, num_levels, finest_scale) -> (N,) int64``  (mmdetection)

boxes: (N, 4) C-contiguous float32/float64 host array; one thread per box; the result comes back to the
host. Same formulas as ``level_mapping_numba`` (float32 boxes compute log2 in float32 on a GPU, in float64
under the simulator: equal to the reference except within an ulp of a level boundary). Checks: structure
(ValueError); values (finite boxes) only with ``EDUDET_CHECK_KERNELS=1``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ._checks import check_level_mapping

_THREADS = 128


@cuda.jit
def _fpn_kernel(boxes, k_min, k_max, scale0, level0, eps, out):
    i = cuda.grid(1)
    if i >= out.shape[0]:
        return
    area = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
    if area > 0:
        level = math.floor(level0 + math.log2(math.sqrt(area) / scale0) + eps)
        out[i] = min(max(level, k_min), k_max) - k_min
    else:
        out[i] = 0  # log2(0) = -inf: the lowest level


@cuda.jit
def _mmdet_kernel(boxes, num_levels, finest, tiny, out):
    i = cuda.grid(1)
    if i >= out.shape[0]:
        return
    area = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
    if area > 0:
        level = math.floor(math.log2(math.sqrt(area) / finest + tiny))
        out[i] = min(max(level, 0), num_levels - 1)
    else:
        out[i] = 0  # log2(0 + 1e-6) < 0: the lowest level


def _launch(kernel, boxes, *args):
    out = np.zeros(len(boxes), dtype=np.int64)
    if len(boxes):
        device_out = cuda.to_device(out)
        kernel[math.ceil(len(boxes) / _THREADS), _THREADS](cuda.to_device(boxes), *args, device_out)
        out = device_out.copy_to_host()
    return out


def fpn_levels(boxes, k_min, k_max, canonical_scale, canonical_level, eps):
    """(N, 4) boxes -> (N,) int64 FPN level counted from k_min."""
    check_level_mapping(boxes, k_min=k_min, k_max=k_max, canonical_scale=canonical_scale)
    t = boxes.dtype.type
    return _launch(_fpn_kernel, boxes, int(k_min), int(k_max), t(canonical_scale), t(canonical_level), t(eps))


def map_roi_levels(boxes, num_levels, finest_scale):
    """(N, 4) boxes -> (N,) int64 level in [0, num_levels) (mmdetection's rule)."""
    check_level_mapping(boxes, num_levels=num_levels, finest_scale=finest_scale)
    t = boxes.dtype.type
    return _launch(_mmdet_kernel, boxes, int(num_levels), t(finest_scale), t(1e-6))
