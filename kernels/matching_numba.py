"""Numba twin of `edudet.matcher.match_boxes_numpy`: IoU + Matcher fused, without the (G, N) matrix.

Public names (stable; see docs/kernels.md):

* ``match_boxes(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches) -> (N,) int64``
  (``@njit(cache=True, parallel=True)``): gt (G, 4) and boxes (N, 4) ``(x1, y1, x2, y2)``, both float32 or both
  float64, C-contiguous; thresholds as floats (compared in the boxes' dtype when given in it, as
  `edudet.Matcher` does); the result is the ground-truth index of each box, -1 below `low_threshold`, -2
  between the thresholds (`edudet.Matcher`'s rule, torchvision's). G = 0 or N = 0 gives all -1.

Checks at entry (ValueError naming the argument): 4 columns, C-contiguity, the same float dtype, and finite
coordinates (an O(G + N) scan against O(G * N) work). Not checked: the 1e15 coordinate bound, x2 >= x1 of the
ground truths, the thresholds' range: `edudet.Matcher.match_boxes` checks those. A wrong ndim is a Numba
TypingError (Numba compiles per type).

Example::

    import numpy as np
    from edudet.kernels.matching_numba import match_boxes
    gt = np.array([[0, 0, 10, 10]], dtype=np.float32)
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 20], [20, 20, 30, 30]], dtype=np.float32)
    match_boxes(gt, boxes, np.float32(0.7), np.float32(0.3), False)   # IoUs 1, 0.5, 0 -> [0, -2, -1]

How it works:

Pass 1 (parallel over blocks of boxes): each box's best IoU and first argmax over the ground truths, and
each block's best IoU per ground truth (merged afterwards, so threads never share a write). Pass 2 applies the
thresholds and, for low-quality matches, recomputes IoUs only for the boxes that could tie a ground
truth's best (best IoU >= the smallest per-gt best, and not already positive). Twice the length of the NumPy
reference and 10-20x faster (242k anchors x 50 boxes: ~30 ms on one core against ~700 ms), because nothing
(G, N) is ever written. prange splits blocks statically: on a busy machine one thread often beats two.

Whatever the finite values (coordinates beyond the 1e15 bound whose areas overflow to inf give NaN IoUs),
every index written is in range: the argmax scan is bounded by the number of ground truths.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

_BLOCK = 4096  # boxes per parallel task: the per-block gt maxima stay small
_MAX_BLOCK_MAXIMA = 2**22  # at most this many per-block gt maxima (16 MB in float32), however many gts


# ---- the structural checks of njit entry points (shared by the anchors and FCOS Numba kernels) -------------
# Numba cannot compare dtypes at run time; these overloads answer at compile time, per argument types.
def _same_float_dtype(a, b):
    """True if a and b are arrays of one float dtype (the Python version; njit code runs the overload)."""
    return a.dtype == b.dtype and a.dtype.kind == "f"


@overload(_same_float_dtype, jit_options={"cache": True})
def _same_float_dtype_overload(a, b):
    same = (isinstance(a, types.Array) and isinstance(b, types.Array) and a.dtype == b.dtype
            and isinstance(a.dtype, types.Float))
    return lambda a, b: same


def _is_float32(a):
    """True if a is a float32 array (the Python version; njit code runs the overload)."""
    return a.dtype == np.float32


@overload(_is_float32, jit_options={"cache": True})
def _is_float32_overload(a):
    answer = isinstance(a, types.Array) and a.dtype == types.float32
    return lambda a: answer


@njit(cache=True)
def _all_finite(values):
    for v in values.flat:
        if not np.isfinite(v):
            return False
    return True


@njit(cache=True, parallel=True)
def match_boxes(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches):
    num_gt = gt.shape[0]
    n = boxes.shape[0]
    if gt.shape[1] != 4 or not gt.flags.c_contiguous:
        raise ValueError("gt must be a C-contiguous (G, 4) array")
    if boxes.shape[1] != 4 or not boxes.flags.c_contiguous:
        raise ValueError("boxes must be a C-contiguous (N, 4) array")
    if not _same_float_dtype(gt, boxes):
        raise ValueError("gt and boxes must have the same float dtype (float32 or float64)")
    if not _all_finite(gt):
        raise ValueError("gt contains NaN or inf")
    if not _all_finite(boxes):
        raise ValueError("boxes contains NaN or inf")
    if num_gt == 0 or n == 0:  # Matcher refuses G = 0; a direct caller gets all background, never a bad read
        return np.full(n, -1, dtype=np.int64)
    gx1 = gt[:, 0].copy()  # one contiguous array per coordinate: the inner loop over gts streams them
    gy1 = gt[:, 1].copy()
    gx2 = gt[:, 2].copy()
    gy2 = gt[:, 3].copy()
    gt_area = (gx2 - gx1) * (gy2 - gy1)
    zero = np.zeros(1, dtype=gt.dtype)[0]  # a 0 in the input dtype (a float literal would promote to float64)
    # many gts: fewer, longer blocks, so the (blocks, gts) partial maxima stay within _MAX_BLOCK_MAXIMA
    num_blocks = min((n + _BLOCK - 1) // _BLOCK, max(1, _MAX_BLOCK_MAXIMA // num_gt))
    block = (n + num_blocks - 1) // num_blocks
    block_gt_best = np.full((num_blocks, num_gt), -1.0, dtype=gt.dtype)
    best = np.empty(n, dtype=gt.dtype)
    argbest = np.empty(n, dtype=np.int64)
    for b in prange(num_blocks):
        # one box's IoUs with every gt, then three short loops over them (max, first argmax, per-gt max):
        # ~1.5x faster than one loop with the bookkeeping interleaved
        ious = np.empty(num_gt, dtype=gt.dtype)
        row = block_gt_best[b]
        for i in range(b * block, min(n, (b + 1) * block)):
            ax1, ay1, ax2, ay2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            area_a = (ax2 - ax1) * (ay2 - ay1)
            for g in range(num_gt):
                # torchvision's box_iou operations in its order and dtype (clamp at 0, w * h, a1 + a2 - inter):
                # bit-identical values; a zero union (two degenerate boxes) gives 0 where torchvision gives NaN
                w = max(min(ax2, gx2[g]) - max(ax1, gx1[g]), zero)
                h = max(min(ay2, gy2[g]) - max(ay1, gy1[g]), zero)
                inter = w * h
                union = (gt_area[g] + area_a) - inter
                ious[g] = inter / union if union > zero else zero
            v = ious[0]
            for g in range(1, num_gt):
                v = max(v, ious[g])
            # the first gt reaching the max wins a tie, as torch.max(dim=0); bounded, so a NaN v (never equal
            # to anything) stops at the last gt instead of running off the array
            k = 0
            while k < num_gt - 1 and ious[k] != v:
                k += 1
            for g in range(num_gt):
                row[g] = max(row[g], ious[g])
            best[i] = v
            argbest[i] = k
    gt_best = np.empty(num_gt, dtype=gt.dtype)
    for g in range(num_gt):
        gt_best[g] = block_gt_best[:, g].max()
    smallest_gt_best = gt_best.min()
    matches = np.empty(n, dtype=np.int64)
    for i in prange(n):
        v = best[i]
        if v >= high_threshold:
            matches[i] = argbest[i]
            continue
        matches[i] = -1 if v < low_threshold else -2
        # a box can tie some gt's best only if its own best reaches the smallest per-gt best
        if allow_low_quality_matches and v >= smallest_gt_best:
            ax1, ay1, ax2, ay2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            area_a = (ax2 - ax1) * (ay2 - ay1)
            for g in range(num_gt):
                w = max(min(ax2, gx2[g]) - max(ax1, gx1[g]), zero)
                h = max(min(ay2, gy2[g]) - max(ay1, gy1[g]), zero)
                inter = w * h
                union = (gt_area[g] + area_a) - inter
                iou = inter / union if union > zero else zero
                if iou == gt_best[g]:
                    matches[i] = argbest[i]
                    break
    return matches
