"""Numba twin of `edudet.ops.boxes.box_iou`: same signature, same arithmetic, bitwise-equal results.

``box_iou(boxes1, boxes2)``: (N, 4) and (M, 4) C-contiguous ``(x1, y1, x2, y2)`` arrays of one float dtype
(validated by `edudet.ops.box_iou`) -> (N, M) IoU in that dtype. Every pair is computed in the reference's
order, ``inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))``, ``union = area1 + area2 - inter``,
``iou = inter / union`` or 0 where ``union <= 0``; no fastmath, so no reassociation and no rounding drift.

Why it is faster than the reference: the reference builds four (N, M, 2) temporaries; here each pair is a
few register operations written straight into the output. The second set is split into coordinate columns
(structure of arrays) with its areas precomputed, so the inner loop over it is unit-stride and SIMD
vectorises; the output is cut into row segments that `prange` spreads over every core whichever of N or M
is the larger (small matrices stay on one core).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

# columns per parallel task: long enough to keep the SIMD loop busy, short enough to balance the cores
_SEGMENT = 8192
# below this many pairs one core is faster than waking the others
_PARALLEL_MIN_PAIRS = 65536


@njit(cache=True)
def _areas(boxes):
    n = boxes.shape[0]
    out = np.empty(n, dtype=boxes.dtype)
    for i in range(n):
        out[i] = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
    return out


@njit(cache=True, error_model="numpy")
def _row_iou(ax1, ay1, ax2, ay2, area1, bx1, by1, bx2, by2, area2, out):
    """IoU of one box against a run of columns. A loop from 0 over its own slices (rather than over a
    start..stop range of the full arrays) and numpy's error model (no ZeroDivisionError branch) are what
    let LLVM vectorise it."""
    # +0 of the boxes' dtype (a bare 0.0 literal would promote float32 to float64); not area1 - area1, which
    # is NaN for an infinite area
    zero = out.dtype.type(0)
    for j in range(out.shape[0]):
        w = max(min(ax2, bx2[j]) - max(ax1, bx1[j]), zero)
        h = max(min(ay2, by2[j]) - max(ay1, by1[j]), zero)
        inter = w * h
        union = area1 + area2[j] - inter
        out[j] = inter / union if union > zero else zero


@njit(cache=True)
def _columns(boxes2):
    """boxes2 as four unit-stride coordinate columns plus its areas."""
    return (np.ascontiguousarray(boxes2[:, 0]), np.ascontiguousarray(boxes2[:, 1]),
            np.ascontiguousarray(boxes2[:, 2]), np.ascontiguousarray(boxes2[:, 3]), _areas(boxes2))


@njit(cache=True, parallel=True)
def _box_iou_parallel(boxes1, boxes2):
    n = boxes1.shape[0]
    m = boxes2.shape[0]
    out = np.empty((n, m), dtype=boxes1.dtype)
    area1 = _areas(boxes1)
    bx1, by1, bx2, by2, area2 = _columns(boxes2)
    segments = (m + _SEGMENT - 1) // _SEGMENT
    for task in prange(n * segments):
        i = task // segments
        start = (task % segments) * _SEGMENT
        stop = min(start + _SEGMENT, m)
        _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i],
                 bx1[start:stop], by1[start:stop], bx2[start:stop], by2[start:stop], area2[start:stop],
                 out[i, start:stop])
    return out


@njit(cache=True)
def _box_iou_serial(boxes1, boxes2):
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    area1 = _areas(boxes1)
    bx1, by1, bx2, by2, area2 = _columns(boxes2)
    for i in range(boxes1.shape[0]):
        _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i], bx1, by1, bx2, by2, area2, out[i])
    return out


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, 4), (M, 4) clean boxes of one float dtype -> (N, M) IoU (see the module docstring)."""
    # waking the thread pool costs more than a small matrix takes on one core
    if boxes1.shape[0] * boxes2.shape[0] < _PARALLEL_MIN_PAIRS:
        return _box_iou_serial(boxes1, boxes2)
    return _box_iou_parallel(boxes1, boxes2)
