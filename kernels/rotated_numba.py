"""Numba twins of `edudet.ops.rotated`: rotated IoU (matrix and aligned), rotated NMS and batched rotated NMS.

Same signatures as the NumPy references: clean C-contiguous (N, 5) float64 ``(cx, cy, w, h, angle in
degrees)`` boxes in (validated by `edudet.ops.box_iou_rotated` and friends). Each pair is computed by
`_pair_iou`, the scalar form of the reference's `_iou_of_pairs`: the same operations in the same order
(box 1 clipped by each edge of box 2, Sutherland-Hodgman, then the shoelace area), no fastmath, so the results are
bitwise equal. cos and sin of the angles come from NumPy (`_cos_sin`), as in the reference, so every
backend starts from the same bits.

Why it is faster: the reference builds (K, slots) tables per clipping step for a batch of pairs; here a pair
is a few hundred operations on 16-slot buffers reused by every pair of a thread, and a pair whose
circumscribed circles do not meet costs one comparison. The IoU matrix runs its rows in parallel (`prange`);
the greedy NMS loop is serial by nature.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

# below this many pairs one core is faster than waking the others
_PARALLEL_MIN_PAIRS = 4096


def _cos_sin(boxes):
    """cos and sin of each angle, with NumPy's functions exactly as `edudet.ops.rotated._cos_sin`."""
    theta = np.radians(boxes[:, 4])
    return np.cos(theta), np.sin(theta)


def _radii(boxes):
    return 0.5 * np.sqrt(boxes[:, 2] * boxes[:, 2] + boxes[:, 3] * boxes[:, 3])


# at most this many polygon corners are kept (`edudet.ops.rotated.MAX_VERTICES`)
MAX_VERTICES = 16


@njit(cache=True)
def _scratch():
    """Corner buffers for one thread: x, y of the polygon being clipped, x, y of the clipped one, sides."""
    return (np.empty(MAX_VERTICES), np.empty(MAX_VERTICES), np.empty(MAX_VERTICES), np.empty(MAX_VERTICES),
            np.empty(MAX_VERTICES))


# inlined: as separate calls (buffers passed by reference each time) the matrix took 3x longer
@njit(cache=True, inline="always", boundscheck=False)
def _clip(px, py, n, ax, ay, bx, by, out_x, out_y, side):
    """One Sutherland-Hodgman step: the part of polygon (px, py)[:n] left of a -> b into out; returns its count."""
    ex = bx - ax
    ey = by - ay
    for s in range(n):
        side[s] = ex * (py[s] - ay) - ey * (px[s] - ax)
    m = 0
    for s in range(n):
        f = s + 1 if s + 1 < n else 0
        if side[s] >= 0.0:
            if m < MAX_VERTICES:
                out_x[m] = px[s]
                out_y[m] = py[s]
            m += 1
        if (side[s] > 0.0 and side[f] < 0.0) or (side[s] < 0.0 and side[f] > 0.0):
            t = side[s] / (side[s] - side[f])
            if m < MAX_VERTICES:
                out_x[m] = px[s] + t * (px[f] - px[s])
                out_y[m] = py[s] + t * (py[f] - py[s])
            m += 1
    return min(m, MAX_VERTICES)


@njit(cache=True, inline="always", boundscheck=False)
def _pair_iou(b1, c1, s1, r1, b2, c2, s2, r2, scratch):
    """IoU of rotated boxes b1 and b2 (rows of 5) with their cos, sin and circumradius."""
    cx = b2[0] - b1[0]
    cy = b2[1] - b1[1]
    reach = r1 + r2
    if not cx * cx + cy * cy <= reach * reach:
        return 0.0
    area1 = b1[2] * b1[3]
    area2 = b2[2] * b2[3]
    if not (area1 > 0.0 and area2 > 0.0):
        return 0.0
    px, py, qx, qy, side = scratch
    # box 1's corners about its own centre, in the reference's order: (-,-), (+,-), (+,+), (-,+) half sides
    hw = 0.5 * b1[2]
    hh = 0.5 * b1[3]
    px[0] = -hw * c1 + -hh * s1
    py[0] = -hh * c1 - -hw * s1
    px[1] = hw * c1 + -hh * s1
    py[1] = -hh * c1 - hw * s1
    px[2] = hw * c1 + hh * s1
    py[2] = hh * c1 - hw * s1
    px[3] = -hw * c1 + hh * s1
    py[3] = hh * c1 - -hw * s1
    hw = 0.5 * b2[2]
    hh = 0.5 * b2[3]
    bx0 = cx + (-hw * c2 + -hh * s2)
    by0 = cy + (-hh * c2 - -hw * s2)
    bx1 = cx + (hw * c2 + -hh * s2)
    by1 = cy + (-hh * c2 - hw * s2)
    bx2 = cx + (hw * c2 + hh * s2)
    by2 = cy + (hh * c2 - hw * s2)
    bx3 = cx + (-hw * c2 + hh * s2)
    by3 = cy + (hh * c2 - -hw * s2)
    n = _clip(px, py, 4, bx0, by0, bx1, by1, qx, qy, side)
    n = _clip(qx, qy, n, bx1, by1, bx2, by2, px, py, side)
    n = _clip(px, py, n, bx2, by2, bx3, by3, qx, qy, side)
    n = _clip(qx, qy, n, bx3, by3, bx0, by0, px, py, side)
    total = 0.0
    for s in range(n):
        f = s + 1 if s + 1 < n else 0
        total = total + (px[s] * py[f] - px[f] * py[s])
    inter = 0.5 * total
    inter = min(max(inter, 0.0), min(area1, area2))
    union = area1 + area2 - inter
    if not union > 0.0:
        return 0.0
    return min(inter / union, 1.0)


@njit(cache=True, parallel=True)
def _iou_matrix_parallel(boxes1, cos1, sin1, radius1, boxes2, cos2, sin2, radius2, out):
    for i in prange(boxes1.shape[0]):
        scratch = _scratch()
        for j in range(boxes2.shape[0]):
            out[i, j] = _pair_iou(boxes1[i], cos1[i], sin1[i], radius1[i], boxes2[j], cos2[j], sin2[j], radius2[j],
                                  scratch)


@njit(cache=True)
def _iou_matrix_serial(boxes1, cos1, sin1, radius1, boxes2, cos2, sin2, radius2, out):
    scratch = _scratch()
    for i in range(boxes1.shape[0]):
        for j in range(boxes2.shape[0]):
            out[i, j] = _pair_iou(boxes1[i], cos1[i], sin1[i], radius1[i], boxes2[j], cos2[j], sin2[j], radius2[j],
                                  scratch)


def box_iou_rotated(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, 5), (M, 5) clean float64 rotated boxes -> (N, M) float64 IoU."""
    out = np.empty((boxes1.shape[0], boxes2.shape[0]))
    args = (boxes1, *_cos_sin(boxes1), _radii(boxes1), boxes2, *_cos_sin(boxes2), _radii(boxes2), out)
    if out.size < _PARALLEL_MIN_PAIRS:
        _iou_matrix_serial(*args)
    else:
        _iou_matrix_parallel(*args)
    return out


@njit(cache=True)
def _iou_aligned(boxes1, cos1, sin1, radius1, boxes2, cos2, sin2, radius2, out):
    scratch = _scratch()
    for i in range(boxes1.shape[0]):
        out[i] = _pair_iou(boxes1[i], cos1[i], sin1[i], radius1[i], boxes2[i], cos2[i], sin2[i], radius2[i], scratch)


def box_iou_rotated_aligned(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, 5), (N, 5) clean float64 rotated boxes -> (N,) float64 IoU of each aligned pair."""
    out = np.empty(boxes1.shape[0])
    _iou_aligned(boxes1, *_cos_sin(boxes1), _radii(boxes1), boxes2, *_cos_sin(boxes2), _radii(boxes2), out)
    return out


@njit(cache=True)
def _greedy(boxes, cos, sin, radius, order, starts, iou_threshold, keep):
    """Greedy NMS of each run order[starts[g]:starts[g + 1]] (a category, by decreasing score)."""
    suppressed = np.zeros(order.shape[0], dtype=np.bool_)
    scratch = _scratch()
    for g in range(starts.shape[0] - 1):
        for r in range(starts[g], starts[g + 1]):
            if suppressed[r]:
                continue
            i = order[r]
            keep[i] = True
            for s in range(r + 1, starts[g + 1]):
                if suppressed[s]:
                    continue
                j = order[s]
                iou = _pair_iou(boxes[i], cos[i], sin[i], radius[i], boxes[j], cos[j], sin[j], radius[j], scratch)
                if iou > iou_threshold:
                    suppressed[s] = True


def _descending_order(scores):
    return np.argsort(-scores, kind="stable")


def _run_greedy(boxes, scores, order, starts, iou_threshold):
    keep = np.zeros(boxes.shape[0], dtype=np.bool_)
    _greedy(boxes, *_cos_sin(boxes), _radii(boxes), order, starts, float(iou_threshold), keep)
    kept = np.flatnonzero(keep)
    return kept[_descending_order(scores[kept])].astype(np.int64)


def category_runs(scores: np.ndarray, idxs: np.ndarray):
    """Boxes by category, by decreasing score inside each: (order, starts).

    Category g is order[starts[g]:starts[g + 1]].
    """
    order = _descending_order(scores)
    order = order[np.argsort(idxs[order], kind="stable")]
    sorted_idxs = idxs[order]
    boundaries = np.flatnonzero(sorted_idxs[1:] != sorted_idxs[:-1]) + 1
    starts = np.concatenate([[0], boundaries, [len(order)]]).astype(np.int64)
    return order, starts


def nms_rotated(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """(N, 5) clean float64 rotated boxes, (N,) scores -> (K,) int64 kept indices by decreasing score."""
    order = _descending_order(scores)
    return _run_greedy(boxes, scores, order, np.array([0, len(order)], dtype=np.int64), iou_threshold)


def batched_nms_rotated(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, iou_threshold: float) -> np.ndarray:
    """`nms_rotated` per category of `idxs` (N,) int64, merged by decreasing score."""
    order, starts = category_runs(scores, idxs)
    return _run_greedy(boxes, scores, order, starts, iou_threshold)

