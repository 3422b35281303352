"""numba.cuda twins of `edudet.ops.rotated`: rotated IoU (matrix and aligned), rotated NMS, batched rotated NMS.

Same signatures as the NumPy references, host arrays in and out: clean C-contiguous (N, 5) float64
``(cx, cy, w, h, angle in degrees)`` boxes. `_pair_iou` is the device form of the reference's
`_iou_of_pairs`, the same operations in the same order (box 1 clipped by each edge of box 2,
Sutherland-Hodgman, then the shoelace area); cos and sin of the angles come from NumPy on the host, as in the reference.

IoU matrix: one thread per pair on a 2-D grid (x along the columns: coalesced stores). NMS: the bitmask
scheme of the GPU NMS kernels (see `kernels/nms_cuda.py`): boxes sorted by category and decreasing score,
each thread writes one 64-bit word whose bit c says "my row box and column box c are in the same category
and their IoU > t", and a host scan walks the rows in order. Under ``NUMBA_ENABLE_CUDASIM=1`` (numba's
simulator, slow: small inputs only) the results are bitwise equal to the reference; on a real GPU the
compiler fuses multiply-adds, so an IoU can differ in the last bits.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float64, njit, uint64

THREADS = 64  # one bit per column box in a uint64 word
MAX_VERTICES = 16  # at most this many polygon corners are kept (`edudet.ops.rotated.MAX_VERTICES`)
_BLOCK = (32, 8)  # IoU matrix: 256 threads, 32 along the contiguous axis


@cuda.jit(device=True)
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


@cuda.jit(device=True)
def _corners(hw, hh, c, s, x, y):
    """Corners about the centre in the reference's order: (-,-), (+,-), (+,+), (-,+) half sides, rotated."""
    x[0] = -hw * c + -hh * s
    y[0] = -hh * c - -hw * s
    x[1] = hw * c + -hh * s
    y[1] = -hh * c - hw * s
    x[2] = hw * c + hh * s
    y[2] = hh * c - hw * s
    x[3] = -hw * c + hh * s
    y[3] = hh * c - -hw * s


@cuda.jit(device=True)
def _pair_iou(boxes1, i, c1, s1, r1, boxes2, j, c2, s2, r2):
    """IoU of boxes1[i] and boxes2[j] (rotated boxes) with their cos, sin and circumradius."""
    cx = boxes2[j, 0] - boxes1[i, 0]
    cy = boxes2[j, 1] - boxes1[i, 1]
    reach = r1 + r2
    if not cx * cx + cy * cy <= reach * reach:
        return 0.0
    area1 = boxes1[i, 2] * boxes1[i, 3]
    area2 = boxes2[j, 2] * boxes2[j, 3]
    if not (area1 > 0.0 and area2 > 0.0):
        return 0.0
    px = cuda.local.array(MAX_VERTICES, float64)
    py = cuda.local.array(MAX_VERTICES, float64)
    qx = cuda.local.array(MAX_VERTICES, float64)
    qy = cuda.local.array(MAX_VERTICES, float64)
    side = cuda.local.array(MAX_VERTICES, float64)
    bx = cuda.local.array(4, float64)
    by = cuda.local.array(4, float64)
    _corners(0.5 * boxes1[i, 2], 0.5 * boxes1[i, 3], c1, s1, px, py)
    _corners(0.5 * boxes2[j, 2], 0.5 * boxes2[j, 3], c2, s2, bx, by)
    for k in range(4):  # box 1's centre is the origin
        bx[k] = cx + bx[k]
        by[k] = cy + by[k]
    n = _clip(px, py, 4, bx[0], by[0], bx[1], by[1], qx, qy, side)
    n = _clip(qx, qy, n, bx[1], by[1], bx[2], by[2], px, py, side)
    n = _clip(px, py, n, bx[2], by[2], bx[3], by[3], qx, qy, side)
    n = _clip(qx, qy, n, bx[3], by[3], bx[0], by[0], px, py, side)
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


@cuda.jit
def _iou_matrix_kernel(boxes1, cos1, sin1, radius1, boxes2, cos2, sin2, radius2, out):
    j, i = cuda.grid(2)
    if i < boxes1.shape[0] and j < boxes2.shape[0]:
        out[i, j] = _pair_iou(boxes1, i, cos1[i], sin1[i], radius1[i], boxes2, j, cos2[j], sin2[j], radius2[j])


@cuda.jit
def _iou_aligned_kernel(boxes1, cos1, sin1, radius1, boxes2, cos2, sin2, radius2, out):
    i = cuda.grid(1)
    if i < boxes1.shape[0]:
        out[i] = _pair_iou(boxes1, i, cos1[i], sin1[i], radius1[i], boxes2, i, cos2[i], sin2[i], radius2[i])


@cuda.jit
def _suppression_masks(boxes, cos, sin, radius, groups, iou_threshold, masks):
    """masks[r, b] bit c: sorted box r and sorted box 64 b + c (> r) share a group and have IoU > t."""
    row_block = cuda.blockIdx.y
    col_block = cuda.blockIdx.x
    if row_block > col_block:  # a box only suppresses later ones: nothing below the diagonal
        return
    n = boxes.shape[0]
    r = row_block * THREADS + cuda.threadIdx.x
    if r >= n:
        return
    word = uint64(0)
    start = col_block * THREADS
    for c in range(THREADS):
        s = start + c
        if s > r and s < n and groups[s] == groups[r]:
            if _pair_iou(boxes, r, cos[r], sin[r], radius[r], boxes, s, cos[s], sin[s], radius[s]) > iou_threshold:
                word |= uint64(1) << uint64(c)
    masks[r, col_block] = word


@njit(cache=True)
def _scan_masks(masks, n):
    """The greedy part on the host: keep a row unless an earlier kept row's bits removed it."""
    removed = np.zeros(masks.shape[1], dtype=np.uint64)
    keep = np.zeros(n, dtype=np.bool_)
    for r in range(n):
        if (removed[r // THREADS] >> np.uint64(r % THREADS)) & np.uint64(1):
            continue
        keep[r] = True
        for b in range(masks.shape[1]):
            removed[b] |= masks[r, b]
    return keep


def _cos_sin(boxes):
    """cos and sin of each angle, with NumPy's functions exactly as `edudet.ops.rotated._cos_sin`."""
    theta = np.radians(boxes[:, 4])
    return np.cos(theta), np.sin(theta)


def _radii(boxes):
    return 0.5 * np.sqrt(boxes[:, 2] * boxes[:, 2] + boxes[:, 3] * boxes[:, 3])


def _on_device(boxes):
    return [cuda.to_device(np.ascontiguousarray(a)) for a in (boxes, *_cos_sin(boxes), _radii(boxes))]


def box_iou_rotated(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, 5), (M, 5) clean float64 rotated boxes -> (N, M) float64 IoU, computed on the GPU."""
    n, m = boxes1.shape[0], boxes2.shape[0]
    if n == 0 or m == 0:  # an empty grid is an error in CUDA
        return np.zeros((n, m))
    out = cuda.device_array((n, m), dtype=np.float64)
    grid = ((m + _BLOCK[0] - 1) // _BLOCK[0], (n + _BLOCK[1] - 1) // _BLOCK[1])
    _iou_matrix_kernel[grid, _BLOCK](*_on_device(boxes1), *_on_device(boxes2), out)
    return out.copy_to_host()


def box_iou_rotated_aligned(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, 5), (N, 5) clean float64 rotated boxes -> (N,) float64 IoU of each aligned pair, on the GPU."""
    n = boxes1.shape[0]
    if n == 0:
        return np.zeros(0)
    out = cuda.device_array(n, dtype=np.float64)
    _iou_aligned_kernel[(n + 127) // 128, 128](*_on_device(boxes1), *_on_device(boxes2), out)
    return out.copy_to_host()


def _greedy_on_gpu(boxes, scores, order, groups, iou_threshold):
    n = len(order)
    blocks = (n + THREADS - 1) // THREADS
    masks = cuda.device_array((n, blocks), dtype=np.uint64)
    sorted_boxes = np.ascontiguousarray(boxes[order])
    _suppression_masks[(blocks, blocks), THREADS](*_on_device(sorted_boxes), cuda.to_device(groups),
                                                 float(iou_threshold), masks)
    keep = np.sort(order[_scan_masks(masks.copy_to_host(), n)])  # by index: equal scores stay in index order
    return keep[np.argsort(-scores[keep], kind="stable")].astype(np.int64)


def nms_rotated(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """(N, 5) clean float64 rotated boxes, (N,) scores -> (K,) int64 kept indices by decreasing score."""
    order = np.argsort(-scores, kind="stable")
    return _greedy_on_gpu(boxes, scores, order, np.zeros(len(order), dtype=np.int64), iou_threshold)


def batched_nms_rotated(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, iou_threshold: float) -> np.ndarray:
    """`nms_rotated` per category of `idxs` (N,) int64, merged by decreasing score."""
    order = np.argsort(-scores, kind="stable")
    order = order[np.argsort(idxs[order], kind="stable")]  # by category, by decreasing score inside each
    return _greedy_on_gpu(boxes, scores, order, np.ascontiguousarray(idxs[order]), iou_threshold)
