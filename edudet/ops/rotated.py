"""Rotated boxes: exact IoU of two rotated rectangles, rotated NMS, and the angle conventions.

A rotated box is a row ``(cx, cy, w, h, angle)``: centre, width, height and an angle in **degrees**,
detectron2's ``RotatedBoxes`` convention. With image coordinates (x to the right, y **down**), the box is
the axis-aligned ``w x h`` box around ``(cx, cy)`` (w along x) rotated about its centre by ``angle``
degrees **counter-clockwise as seen on the screen** (negative: clockwise). A corner at offset ``(dx, dy)``
from the centre of the unrotated box lands at::

    x = cx + dx * cos(angle) + dy * sin(angle)
    y = cy - dx * sin(angle) + dy * cos(angle)

so at 90 degrees the w side, which pointed right, points up the screen (towards smaller y).

mmcv (``mmcv.ops.box_iou_rotated``, ``nms_rotated``, mmrotate) stores the angle in **radians** and, by
default (``clockwise=True``), counts it **clockwise** on the screen: mmcv angle ``a`` is detectron2 angle
``-degrees(a)``. `rotated_boxes_from_mmcv` and `rotated_boxes_to_mmcv` convert.

The intersection of two rectangles is a convex polygon: box 1 clipped by each edge of box 2 in turn
(Sutherland-Hodgman: keep the corners on the inner side of the edge, add the points where the polygon's
edges cross it), then the shoelace formula gives its area. Each new corner is computed once and shared by
the two edges that meet there, so the polygon is closed whatever the rounding: where two edges nearly
coincide (equal angles, touching or shared sides, very common among duplicate detections) the crossing
point is ill-conditioned but lies on both lines, and the area moves by a sliver of rounding size only.
(Integrating along the clipped edges with Green's theorem gives the same area in exact arithmetic and
vectorises more neatly, but its pieces are clipped separately, and for nearly coincident edges rounding
leaves the boundary open by an amount that the origin's distance multiplies: an IoU off by 1e-2 was seen.
Lesson 12 shows both.) Boxes whose circumscribed circles do not meet are skipped (IoU 0).

Everything is computed in float64 whatever the input dtype; IoU comes back in the boxes' dtype (float64 if
either set is float64, else float32). The NumPy functions here are the readable reference; the fast twins
(``kernels/rotated_numba.py``, ``rotated_cython.pyx``, ``rotated_cuda.py``) repeat the same arithmetic in the
same order and return bitwise-equal results (the CUDA kernels on a real GPU may differ in the last bits:
the GPU compiler fuses multiply-adds).
"""
from __future__ import annotations

import numpy as np

from .._dispatch import Dispatcher
from .._validate import (
    as_int_labels,
    as_real_array,
    as_scores,
    check_allocation,
    check_coordinates,
    check_finite,
    check_scalar,
    common_float_dtype,
    float_dtype_of,
)

__all__ = [
    "box_iou_rotated",
    "nms_rotated",
    "batched_nms_rotated",
    "rotated_box_corners",
    "rotated_boxes_from_mmcv",
    "rotated_boxes_to_mmcv",
]

# The corners of the unrotated box, as multiples of (w / 2, h / 2), in the order that makes the polygon
# positively oriented (cross products of consecutive edges > 0): "inside" is then "left of every edge".
_CORNER_SIGNS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])

# The NumPy reference works on at most this many candidate pairs at a time (each pair holds a few dozen
# float64 corner slots per clipping step: well under 1 KB), so any workload the fast backends take runs in
# ~100 MB here.
_PAIRS_PER_CHUNK = 65536


# ---------------------------------------------------------------------------------------------------------
# NumPy reference (clean (N, 5) float64 arrays in; the public functions below validate)
# ---------------------------------------------------------------------------------------------------------

def _cos_sin(boxes: np.ndarray):
    """cos and sin of each box's angle: (N,) each. Every backend takes them from here (one set of bits)."""
    theta = np.radians(boxes[:, 4])
    return np.cos(theta), np.sin(theta)


def _corners_about_centre(boxes: np.ndarray, cos: np.ndarray, sin: np.ndarray):
    """(K, 4) x and (K, 4) y of each box's corners relative to its centre (module docstring's formula)."""
    dx = 0.5 * boxes[:, 2, None] * _CORNER_SIGNS[:, 0]
    dy = 0.5 * boxes[:, 3, None] * _CORNER_SIGNS[:, 1]
    c, s = cos[:, None], sin[:, None]
    return dx * c + dy * s, dy * c - dx * s


# A convex polygon clipped by 4 half-planes has at most 8 corners; rounding next to a corner can add a
# spurious one or two. Every backend keeps at most this many (the same ones), so no buffer can overflow.
MAX_VERTICES = 16


def _clip_by_half_plane(px, py, count, ax, ay, bx, by):
    """One Sutherland-Hodgman step for K polygons at once: keep the part left of the line a -> b.

    px, py: (K, S) corners, the first count[k] of row k in use; ax, ay, bx, by: (K,). Returns the new
    (K, S') corners and counts. Walking round the polygon, a corner on the inner side
    (``cross(b - a, p - a) >= 0``) is kept, and where an edge p -> q crosses the line the crossing point
    ``p + t (q - p)``, ``t = side_p / (side_p - side_q)``, is added. Each new corner is computed once and
    shared by the two edges that meet there, so the polygon stays closed whatever the rounding.
    """
    k, slots = px.shape
    slot = np.arange(slots)
    live = slot < count[:, None]
    following = np.where(slot + 1 < count[:, None], slot + 1, 0)  # the next corner, wrapping round
    qx, qy = np.take_along_axis(px, following, axis=1), np.take_along_axis(py, following, axis=1)
    ex, ey = (bx - ax)[:, None], (by - ay)[:, None]
    side = ex * (py - ay[:, None]) - ey * (px - ax[:, None])
    side_next = np.take_along_axis(side, following, axis=1)
    keep = live & (side >= 0)
    crossing = live & (((side > 0) & (side_next < 0)) | ((side < 0) & (side_next > 0)))
    t = np.zeros_like(side)
    np.divide(side, side - side_next, out=t, where=crossing)
    # candidates in walking order: corner 0, crossing after it, corner 1, crossing after it, ...
    candidate_x = np.stack([px, px + t * (qx - px)], axis=2).reshape(k, 2 * slots)
    candidate_y = np.stack([py, py + t * (qy - py)], axis=2).reshape(k, 2 * slots)
    chosen = np.stack([keep, crossing], axis=2).reshape(k, 2 * slots)
    position = np.cumsum(chosen, axis=1) - 1
    chosen &= position < MAX_VERTICES
    new_count = chosen.sum(axis=1)
    width = max(int(new_count.max(initial=0)), 1)
    out_x, out_y = np.zeros((k, width)), np.zeros((k, width))
    rows, cols = np.nonzero(chosen)
    out_x[rows, position[rows, cols]] = candidate_x[rows, cols]
    out_y[rows, position[rows, cols]] = candidate_y[rows, cols]
    return out_x, out_y, new_count


def _shoelace(px, py, count) -> np.ndarray:
    """(K,) area of each polygon, ``1/2 sum(x_i y_(i+1) - x_(i+1) y_i)``, summed corner by corner in order."""
    k, slots = px.shape
    slot = np.arange(slots)
    following = np.where(slot + 1 < count[:, None], slot + 1, 0)
    qx, qy = np.take_along_axis(px, following, axis=1), np.take_along_axis(py, following, axis=1)
    terms = np.where(slot < count[:, None], px * qy - qx * py, 0.0)
    total = np.zeros(k)
    for s in range(slots):  # in order, as the kernels add them (np.sum would add pairwise)
        total = total + terms[:, s]
    return 0.5 * total


def _iou_of_pairs(boxes1, cos1, sin1, boxes2, cos2, sin2) -> np.ndarray:
    """IoU of boxes1[k] and boxes2[k] for every k: (K, 5) float64 boxes and their (K,) cos/sin -> (K,)."""
    area1 = boxes1[:, 2] * boxes1[:, 3]
    area2 = boxes2[:, 2] * boxes2[:, 3]
    # box 1's centre is the origin: corners stay small numbers even for coordinates near 1e15
    x1, y1 = _corners_about_centre(boxes1, cos1, sin1)
    x2, y2 = _corners_about_centre(boxes2, cos2, sin2)
    x2 = (boxes2[:, 0] - boxes1[:, 0])[:, None] + x2
    y2 = (boxes2[:, 1] - boxes1[:, 1])[:, None] + y2
    # clip box 1 by each edge of box 2 (Sutherland-Hodgman), then take the polygon's area
    px, py, count = x1, y1, np.full(len(boxes1), 4)
    for j in range(4):
        following = (j + 1) % 4
        px, py, count = _clip_by_half_plane(px, py, count, x2[:, j], y2[:, j], x2[:, following], y2[:, following])
    inter = _shoelace(px, py, count)
    # rounding can push the area a hair outside [0, min(area1, area2)]; the true value is inside
    inter = np.minimum(np.maximum(inter, 0.0), np.minimum(area1, area2))
    union = area1 + area2 - inter
    iou = np.zeros_like(inter)
    np.divide(inter, union, out=iou, where=(area1 > 0) & (area2 > 0) & (union > 0))
    return np.minimum(iou, 1.0)


def _circumradius(boxes: np.ndarray) -> np.ndarray:
    return 0.5 * np.sqrt(boxes[:, 2] * boxes[:, 2] + boxes[:, 3] * boxes[:, 3])


def _may_overlap(boxes1, radius1, boxes2, radius2) -> np.ndarray:
    """(N, M) True where the circles around the boxes meet: only those pairs can overlap."""
    cx = boxes2[None, :, 0] - boxes1[:, None, 0]
    cy = boxes2[None, :, 1] - boxes1[:, None, 1]
    reach = radius1[:, None] + radius2[None, :]
    return cx * cx + cy * cy <= reach * reach


def box_iou_rotated_numpy(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """NumPy reference of `box_iou_rotated`: (N, 5), (M, 5) float64 -> (N, M) float64."""
    n, m = len(boxes1), len(boxes2)
    out = np.zeros((n, m))
    cos1, sin1 = _cos_sin(boxes1)
    cos2, sin2 = _cos_sin(boxes2)
    radius1, radius2 = _circumradius(boxes1), _circumradius(boxes2)
    rows_per_chunk = max(1, (16 * _PAIRS_PER_CHUNK) // max(m, 1))
    for start in range(0, n, rows_per_chunk):
        rows = slice(start, start + rows_per_chunk)
        i, j = np.nonzero(_may_overlap(boxes1[rows], radius1[rows], boxes2, radius2))
        i += start
        for k in range(0, len(i), _PAIRS_PER_CHUNK):
            a, b = i[k:k + _PAIRS_PER_CHUNK], j[k:k + _PAIRS_PER_CHUNK]
            out[a, b] = _iou_of_pairs(boxes1[a], cos1[a], sin1[a], boxes2[b], cos2[b], sin2[b])
    return out


def box_iou_rotated_aligned_numpy(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """NumPy reference of ``box_iou_rotated(aligned=True)``: (N, 5), (N, 5) float64 -> (N,) float64."""
    out = np.zeros(len(boxes1))
    cos1, sin1 = _cos_sin(boxes1)
    cos2, sin2 = _cos_sin(boxes2)
    cx, cy = boxes2[:, 0] - boxes1[:, 0], boxes2[:, 1] - boxes1[:, 1]
    reach = _circumradius(boxes1) + _circumradius(boxes2)
    (k,) = np.nonzero(cx * cx + cy * cy <= reach * reach)
    for s in range(0, len(k), _PAIRS_PER_CHUNK):
        a = k[s:s + _PAIRS_PER_CHUNK]
        out[a] = _iou_of_pairs(boxes1[a], cos1[a], sin1[a], boxes2[a], cos2[a], sin2[a])
    return out


def _iou_one_to_many(boxes: np.ndarray, cos, sin, radius, i: int, later: np.ndarray) -> np.ndarray:
    """IoU of box i (as the first box) with each box of `later`, 0 where the circles do not meet."""
    iou = np.zeros(len(later))
    cx, cy = boxes[later, 0] - boxes[i, 0], boxes[later, 1] - boxes[i, 1]
    reach = radius[i] + radius[later]
    (k,) = np.nonzero(cx * cx + cy * cy <= reach * reach)
    if len(k):
        first = np.full(len(k), i)
        b = later[k]
        iou[k] = _iou_of_pairs(boxes[first], cos[first], sin[first], boxes[b], cos[b], sin[b])
    return iou


def _descending_order(scores: np.ndarray) -> np.ndarray:
    """Indices by decreasing score, ties by increasing index (a stable sort, as torchvision and detectron2)."""
    return np.argsort(-scores, kind="stable")


def nms_rotated_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NumPy reference of `nms_rotated`: the greedy loop, one kept box against all later ones per step."""
    order = _descending_order(scores)
    cos, sin = _cos_sin(boxes)
    radius = _circumradius(boxes)
    suppressed = np.zeros(len(order), dtype=bool)
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        later = order[rank + 1:]
        iou = _iou_one_to_many(boxes, cos, sin, radius, order[rank], later)
        suppressed[rank + 1:] |= iou > iou_threshold
    return order[~suppressed].astype(np.int64)


def batched_nms_rotated_numpy(boxes, scores, idxs, iou_threshold: float) -> np.ndarray:
    """NumPy reference of `batched_nms_rotated`: `nms_rotated` inside each category, then one merge by score."""
    keep = np.zeros(len(scores), dtype=bool)
    for category in np.unique(idxs):
        members = np.flatnonzero(idxs == category)
        keep[members[nms_rotated_numpy(boxes[members], scores[members], iou_threshold)]] = True
    kept = np.flatnonzero(keep)
    return kept[_descending_order(scores[kept])].astype(np.int64)


# Measured (`benchmarks/bench_rotated.py`, 2-core machine, 2026-11-30): IoU 1000 x 1000 numba 73 ms, cython
# 75 ms (level); nms_rotated 2,000 boxes numba 307 ms, cython 117 ms; batched 30 vs 12 ms: Cython first.
_PREFERENCE = ("cython", "numba", "numpy")
_box_iou_rotated = Dispatcher("box_iou_rotated", reference=box_iou_rotated_numpy, preference=_PREFERENCE,
                              numba="rotated_numba:box_iou_rotated", cython="rotated_cython:box_iou_rotated",
                              cuda="rotated_cuda:box_iou_rotated")
_box_iou_rotated_aligned = Dispatcher(
    "box_iou_rotated_aligned", reference=box_iou_rotated_aligned_numpy, preference=_PREFERENCE,
    numba="rotated_numba:box_iou_rotated_aligned", cython="rotated_cython:box_iou_rotated_aligned",
    cuda="rotated_cuda:box_iou_rotated_aligned")
_nms_rotated = Dispatcher("nms_rotated", reference=nms_rotated_numpy, preference=_PREFERENCE,
                          numba="rotated_numba:nms_rotated", cython="rotated_cython:nms_rotated",
                          cuda="rotated_cuda:nms_rotated")
_batched_nms_rotated = Dispatcher(
    "batched_nms_rotated", reference=batched_nms_rotated_numpy, preference=_PREFERENCE,
    numba="rotated_numba:batched_nms_rotated", cython="rotated_cython:batched_nms_rotated",
    cuda="rotated_cuda:batched_nms_rotated")


# ---------------------------------------------------------------------------------------------------------
# Public functions: validate once, then call the chosen kernel
# ---------------------------------------------------------------------------------------------------------

def as_rotated_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """(N, 5) ``(cx, cy, w, h, angle)`` as a C-contiguous float32/float64 array, validated.

    Finite; cx, cy, w, h within [-1e15, 1e15] (edudet's COORDINATE_LIMIT); ``w, h >= 0``; the angle (degrees)
    any finite value of magnitude at most 1e15 (rotations are taken modulo 360 by cos and sin).
    """
    array = as_real_array(boxes, name)
    if array.ndim != 2 or array.shape[1] != 5:
        raise ValueError(f"{name} must have shape (N, 5) (cx, cy, w, h, angle in degrees), got {tuple(array.shape)}")
    check_finite(array, name)
    check_coordinates(array, name)
    if array.size and float(np.min(array[:, 2:4])) < 0:
        raise ValueError(f"{name} has a negative width or height (columns 2 and 3 must be >= 0)")
    return np.ascontiguousarray(array, dtype=float_dtype_of(array))


def _pair(boxes1, boxes2):
    b1 = as_rotated_boxes(boxes1, "boxes1")
    b2 = as_rotated_boxes(boxes2, "boxes2")
    return b1, b2, common_float_dtype(b1, b2)


def box_iou_rotated(boxes1, boxes2, aligned: bool = False, backend: str | None = None) -> np.ndarray:
    """Intersection over union of rotated boxes.

    boxes1: (N, 5), boxes2: (M, 5), rows ``(cx, cy, w, h, angle)`` with the angle in degrees,
    counter-clockwise on the screen in image coordinates (y down): detectron2's convention (see the
    module docstring; mmcv's radians / clockwise boxes convert with `rotated_boxes_from_mmcv`).
    Returns (N, M) ``iou[i, j] = area(b1_i ∩ b2_j) / area(b1_i ∪ b2_j)`` in [0, 1], or with
    ``aligned=True`` (N,) ``iou[i]`` of ``b1_i`` and ``b2_i`` (N == M; mmcv's ``aligned``).
    The intersection is the exact convex polygon (Sutherland-Hodgman clipping, shoelace area), computed in
    float64 and returned in float64 if either input is float64, else float32. A box with ``w = 0`` or ``h = 0``
    has IoU 0 with everything, itself included (no NaN; detectron2 also gives 0 for areas below 1e-14).
    At angle 0 this is `box_iou` of the same boxes in cxcywh format. `backend`: None (the fastest CPU one),
    "numpy", "numba", "cython" or "cuda".
    """
    if not isinstance(aligned, (bool, np.bool_)):
        raise TypeError(f"aligned must be a bool, got {type(aligned).__name__}")
    b1, b2, dtype = _pair(boxes1, boxes2)
    if aligned:
        if len(b1) != len(b2):
            raise ValueError(f"aligned=True needs boxes1 and boxes2 of the same length, got {len(b1)} and {len(b2)}")
        kernel = _box_iou_rotated_aligned.get(backend)
        if len(b1) == 0:
            return np.zeros(0, dtype=dtype)
    else:
        kernel = _box_iou_rotated.get(backend)
        check_allocation((len(b1), len(b2)), 8, "box_iou_rotated's (N, M) output (boxes1: N, boxes2: M)")
        if len(b1) == 0 or len(b2) == 0:
            return np.zeros((len(b1), len(b2)), dtype=dtype)
    iou = kernel(b1.astype(np.float64), b2.astype(np.float64))
    return iou.astype(dtype, copy=False)


def _boxes_and_scores(boxes, scores):
    boxes = as_rotated_boxes(boxes, "boxes")
    scores = as_scores(scores, boxes.shape[0], "scores")
    return boxes.astype(np.float64), scores


def nms_rotated(boxes, scores, iou_threshold: float, backend: str | None = None) -> np.ndarray:
    """Greedy non-maximum suppression of rotated boxes.

    boxes: (N, 5) ``(cx, cy, w, h, angle in degrees)`` (see `box_iou_rotated`); scores: (N,). Returns (K,)
    int64 indices of the kept boxes in decreasing score order. Visiting boxes by decreasing score (equal
    scores by increasing index), a box is kept unless its rotated IoU with an already kept box is strictly
    greater than `iou_threshold`: the rule of ``torchvision.ops.nms`` and detectron2's ``nms_rotated``.
    IoU is the float64 value of `box_iou_rotated` (detectron2 computes it in the boxes' dtype: a float32
    IoU within ~1e-6 of the threshold may decide differently there). Zero-area boxes never suppress and are
    never suppressed.
    """
    kernel = _nms_rotated.get(backend)
    boxes, scores = _boxes_and_scores(boxes, scores)
    threshold = check_scalar(iou_threshold, "iou_threshold", low=0)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    return kernel(boxes, scores, threshold)


def batched_nms_rotated(boxes, scores, idxs, iou_threshold: float, backend: str | None = None) -> np.ndarray:
    """Rotated non-maximum suppression done independently per category.

    boxes: (N, 5) ``(cx, cy, w, h, angle in degrees)``; scores: (N,); idxs: (N,) integer category (or image)
    of each box. Returns (K,) int64 indices of the kept boxes in decreasing score order (ties by increasing
    index): the union of `nms_rotated` run on each category alone, so boxes of different categories never
    suppress each other (detectron2's ``batched_nms_rotated``; edudet runs the loop per category instead of
    shifting the boxes apart, so no coordinate is ever enlarged).
    """
    kernel = _batched_nms_rotated.get(backend)
    boxes, scores = _boxes_and_scores(boxes, scores)
    idxs = as_int_labels(idxs, boxes.shape[0], "idxs")
    threshold = check_scalar(iou_threshold, "iou_threshold", low=0)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    return kernel(boxes, scores, idxs, threshold)


def rotated_box_corners(boxes) -> np.ndarray:
    """The four corners of each rotated box: (N, 5) ``(cx, cy, w, h, angle in degrees)`` -> (N, 4, 2) ``(x, y)``.

    In the order ``(-w/2, -h/2), (+w/2, -h/2), (+w/2, +h/2), (-w/2, +h/2)`` of the unrotated box (top-left,
    top-right, bottom-right, bottom-left on the screen at angle 0), each rotated counter-clockwise on the
    screen by the angle (module docstring). In the boxes' float dtype; for drawing and for checking by hand.
    """
    b = as_rotated_boxes(boxes)
    b64 = b.astype(np.float64)
    x, y = _corners_about_centre(b64, *_cos_sin(b64))
    return np.stack([b64[:, 0, None] + x, b64[:, 1, None] + y], axis=-1).astype(b.dtype, copy=False)


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def rotated_boxes_from_mmcv(boxes, clockwise: bool = True) -> np.ndarray:
    """mmcv's ``(cx, cy, w, h, angle in radians)`` -> edudet's / detectron2's ``(cx, cy, w, h, angle in degrees)``.

    boxes: (N, 5). mmcv (``box_iou_rotated(..., clockwise=True)``, its default, and mmrotate) counts the angle
    clockwise on the screen (y down); detectron2 and edudet count it counter-clockwise: the angle becomes
    ``-degrees(a)``. With ``clockwise=False`` (mmcv's other option) it becomes ``degrees(a)``.
    Returns a new (N, 5) array in the boxes' float dtype.
    """
    clockwise = _check_bool(clockwise, "clockwise")
    b = as_rotated_boxes(boxes).copy()
    b[:, 4] = np.degrees(b[:, 4]) * (-1 if clockwise else 1)
    return b


def rotated_boxes_to_mmcv(boxes, clockwise: bool = True) -> np.ndarray:
    """edudet's / detectron2's ``(cx, cy, w, h, angle in degrees)`` -> mmcv's ``(cx, cy, w, h, angle in radians)``.

    The inverse of `rotated_boxes_from_mmcv`: ``-radians(angle)`` for mmcv's default ``clockwise=True``,
    ``radians(angle)`` for ``clockwise=False``. boxes: (N, 5); returns a new (N, 5) array.
    """
    clockwise = _check_bool(clockwise, "clockwise")
    b = as_rotated_boxes(boxes).copy()
    b[:, 4] = np.radians(b[:, 4]) * (-1 if clockwise else 1)
    return b
