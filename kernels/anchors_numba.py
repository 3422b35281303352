"""Numba twin of `edudet.anchors.grid_anchors_numpy`: every level's anchor grid written straight into the output.

Public names (stable; see docs/kernels.md):

* ``grid_anchors(base_anchors, base_counts, feature_shapes, strides, center_offset, out) -> out``
  (``@njit(cache=True)``): base_anchors (B, 4) float32, the levels' zero-centred base anchors
  stacked; base_counts (L,) int64, A_l per level (summing to B); feature_shapes (L, 2) int64 ``(h, w)``;
  strides (L, 2) int64 ``(stride_h, stride_w)``; center_offset a float32 (0: torchvision, 0.5: mmdetection);
  out (sum_l h_l * w_l * A_l, 4) float32 or float64, C-contiguous, filled level by level, location by location
  (row-major), base anchor by base anchor, and returned.
* ``anchor_xyxy(base, stride_h, stride_w, i, j, center_offset) -> (x1, y1, x2, y2)`` (``@njit(inline="always")``):
  one anchor, base a length-4 float32 array; float32 arithmetic, as torchvision's.

Checks at entry (ValueError naming the argument): 2-D shapes and column counts, C-contiguity, float32 base
anchors, int64 counts/shapes/strides, L equal everywhere, counts summing to B, non-negative counts and shapes,
out's row count equal to the anchors the shapes make (so no write leaves `out`), and finite base anchors.
Not checked: the size of the values (a coordinate beyond 1e15, a stride that does not match the image):
`edudet.AnchorGenerator` checks those. A wrong ndim or dtype is a Numba TypingError (Numba compiles per type).

One pass writes each anchor once: no (h * w, A, 4) temporaries, no concatenation, no dtype copy (the
reference makes three). Serial on purpose: the work is writing 16 or 32 bytes per anchor (~0.3 ms for the
242,991 anchors of an 800 x 1216 FPN image), and threads only add a fork/join that a busy machine stretches
into milliseconds.

Example::

    import numpy as np
    from edudet.kernels.anchors_numba import grid_anchors
    base = np.array([[-16, -16, 16, 16]], dtype=np.float32)            # one 32 x 32 anchor per location
    out = np.empty((2 * 3, 4), dtype=np.float32)                       # a 2 x 3 map, stride 8
    grid_anchors(base, np.array([1]), np.array([[2, 3]]), np.array([[8, 8]]), np.float32(0), out)
    out[4]                                                             # (i, j) = (1, 1): [-8, -8, 24, 24]
"""
from __future__ import annotations

import numpy as np
from numba import njit

from edudet.kernels.matching_numba import _is_float32


@njit(inline="always", cache=True)
def anchor_xyxy(base, stride_h, stride_w, i, j, center_offset):
    """Anchor ``base`` (length-4 float32) at location (i, j): ``base + (x, y, x, y)``, float32 as torchvision."""
    # the shift is int64 j * stride rounded to float32 once, plus the (float32) centre offset of the cell
    x = np.float32(j * stride_w) + np.float32(center_offset) * np.float32(stride_w)
    y = np.float32(i * stride_h) + np.float32(center_offset) * np.float32(stride_h)
    return base[0] + x, base[1] + y, base[2] + x, base[3] + y


@njit(cache=True)
def grid_anchors(base_anchors, base_counts, feature_shapes, strides, center_offset, out):
    num_levels = base_counts.shape[0]
    if base_anchors.shape[1] != 4 or not base_anchors.flags.c_contiguous:
        raise ValueError("base_anchors must be a C-contiguous (B, 4) array")
    if not _is_float32(base_anchors):
        raise ValueError("base_anchors must be float32")
    if feature_shapes.shape[0] != num_levels or feature_shapes.shape[1] != 2:
        raise ValueError("feature_shapes must have shape (L, 2), L = len(base_counts)")
    if strides.shape[0] != num_levels or strides.shape[1] != 2:
        raise ValueError("strides must have shape (L, 2), L = len(base_counts)")
    if out.shape[1] != 4 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous (N, 4) array")
    total_base = 0
    total = 0
    for level in range(num_levels):
        if base_counts[level] < 0 or feature_shapes[level, 0] < 0 or feature_shapes[level, 1] < 0:
            raise ValueError("base_counts and feature_shapes must be >= 0")
        total_base += base_counts[level]
        total += feature_shapes[level, 0] * feature_shapes[level, 1] * base_counts[level]
    if total_base != base_anchors.shape[0]:
        raise ValueError("base_counts must sum to the number of base_anchors rows")
    if total != out.shape[0]:
        raise ValueError("out must have sum_l h_l * w_l * A_l rows (feature_shapes x base_counts)")
    if not np.all(np.isfinite(base_anchors)):
        raise ValueError("base_anchors contains NaN or inf")
    start = 0
    first_base = 0
    for level in range(num_levels):
        count = base_counts[level]
        height = feature_shapes[level, 0]
        width = feature_shapes[level, 1]
        stride_h = strides[level, 0]
        stride_w = strides[level, 1]
        for i in range(height):
            row = start + i * width * count
            for j in range(width):
                for a in range(count):
                    x1, y1, x2, y2 = anchor_xyxy(base_anchors[first_base + a], stride_h, stride_w, i, j,
                                                 center_offset)
                    k = row + j * count + a
                    out[k, 0] = x1
                    out[k, 1] = y1
                    out[k, 2] = x2
                    out[k, 3] = y2
        start += height * width * count
        first_base += count
    return out
