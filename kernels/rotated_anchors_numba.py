"""Numba twin of `edudet.rotated_anchors.rotated_grid_anchors_numpy`: same signature, bitwise-equal values.

Fills one level's (h * w * A, 5) output in one pass, location by location (row-major), each location's A cell
anchors in order, without the reference's (h * w, A, 5) float64 temporaries. The centre is
``offset * stride + j * stride`` in float64, plus the cell anchor's 0, rounded once to the output's dtype,
as the reference does.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def _fill(cell_anchors, height, width, stride, offset, out):
    count = cell_anchors.shape[0]
    for i in prange(height):
        centre_y = offset * stride + np.float64(i) * stride
        for j in range(width):
            centre_x = offset * stride + np.float64(j) * stride
            first = (i * width + j) * count
            for a in range(count):
                out[first + a, 0] = centre_x + cell_anchors[a, 0]
                out[first + a, 1] = centre_y + cell_anchors[a, 1]
                out[first + a, 2] = cell_anchors[a, 2]
                out[first + a, 3] = cell_anchors[a, 3]
                out[first + a, 4] = cell_anchors[a, 4]


def rotated_grid_anchors(cell_anchors, feature_shape, stride, offset, out):
    """(A, 5) float64 cell anchors, (h, w), int stride, float offset, (h * w * A, 5) out -> out, filled."""
    height, width = int(feature_shape[0]), int(feature_shape[1])
    if out.shape != (height * width * cell_anchors.shape[0], 5) or cell_anchors.dtype != np.float64:
        raise ValueError(f"out must have shape (h * w * A, 5) = ({height * width * cell_anchors.shape[0]}, 5) and "
                         f"cell_anchors dtype float64, got {out.shape}, {cell_anchors.dtype}")
    _fill(np.ascontiguousarray(cell_anchors), height, width, float(stride), float(offset), out)
    return out
