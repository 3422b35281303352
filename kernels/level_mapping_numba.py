"""FPN level mapping in Numba. Public, stable (callable from a user's ``@njit`` code and from Python):

``fpn_levels(boxes, k_min, k_max, canonical_scale, canonical_level, eps) -> (N,) int64``
    FPN eq. 1 as `edudet.level_mapper.LevelMapper`: ``clamp(floor(canonical_level + log2(sqrt(area) /
    canonical_scale) + eps), k_min, k_max) - k_min``, computed in the boxes' dtype (float32/float64).
``map_roi_levels(boxes, num_levels, finest_scale) -> (N,) int64``
    mmdetection's rule as `edudet.level_mapper.map_roi_levels`: ``clamp(floor(log2(sqrt(area) /
    finest_scale + 1e-6)), 0, num_levels - 1)``, in the boxes' dtype.

boxes: (N, 4) ``(x1, y1, x2, y2)``, C-contiguous float32/float64 (pass ``rois[:, 1:]`` copied contiguous
for (N, 5) rois). Checks (ValueError): 2-D with 4 columns, C-contiguous, k_max >= k_min, num_levels >= 1,
the scales positive in the boxes' dtype, and (O(N), the whole work) every coordinate finite. Not checked:
the coordinate bound (1e15). Zero-area boxes map to the lowest level. Values: equal to the NumPy
reference wherever Numba's log2 rounds as NumPy's (both correctly rounded in practice; `eps` keeps exact
powers of two off the boundaries).

Example (user code)::

    from numba import njit
    from edudet.kernels.level_mapping_numba import fpn_levels

    @njit
    def levels(boxes):
        return fpn_levels(boxes, 2, 5, 224.0, 4.0, 1e-6)

`edudet.level_mapper.LevelMapper(...)(boxes, backend="numba")` and `map_roi_levels(..., backend="numba")`
call these same functions after their checks.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _check_boxes(boxes):
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError("boxes must have shape (N, 4)")
    if not boxes.flags.c_contiguous:
        raise ValueError("boxes must be C-contiguous (np.ascontiguousarray)")
    for i in range(boxes.shape[0]):
        for j in range(4):
            if not np.isfinite(boxes[i, j]):
                raise ValueError("boxes must be finite")


@njit(cache=True)
def fpn_levels(boxes, k_min, k_max, canonical_scale, canonical_level, eps):
    """(N, 4) boxes -> (N,) int64 FPN level counted from k_min (FPN eq. 1; see the module docstring)."""
    _check_boxes(boxes)
    if k_max < k_min:
        raise ValueError("k_max must be >= k_min")
    t = boxes.dtype.type
    scale0 = t(canonical_scale)
    if not scale0 > 0:
        raise ValueError("canonical_scale must be positive in the boxes' dtype")
    level0 = t(canonical_level)
    epsilon = t(eps)
    out = np.empty(boxes.shape[0], dtype=np.int64)
    for i in range(boxes.shape[0]):
        area = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        if area > 0:
            level = np.floor(level0 + np.log2(np.sqrt(area) / scale0) + epsilon)
            level = min(max(level, k_min), k_max)  # log2(inf) = inf: clamped to k_max
        else:
            level = k_min  # log2(0) = -inf
        out[i] = np.int64(level) - k_min
    return out


@njit(cache=True)
def map_roi_levels(boxes, num_levels, finest_scale):
    """(N, 4) boxes -> (N,) int64 level in [0, num_levels) (mmdetection; see the module docstring)."""
    _check_boxes(boxes)
    if num_levels < 1:
        raise ValueError("num_levels must be >= 1")
    t = boxes.dtype.type
    finest = t(finest_scale)
    if not finest > 0:
        raise ValueError("finest_scale must be positive in the boxes' dtype")
    out = np.empty(boxes.shape[0], dtype=np.int64)
    for i in range(boxes.shape[0]):
        area = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        area = area if area > 0 else t(0)
        level = np.floor(np.log2(np.sqrt(area) / finest + t(1e-6)))
        out[i] = np.int64(min(max(level, 0), num_levels - 1))
    return out
