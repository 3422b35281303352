"""Numba twin of `edudet.matcher.match_boxes_numpy`: IoU + Matcher fused, without the (G, N) matrix.

Pass 1 (parallel over blocks of boxes): each box's best IoU and first argmax over the ground truths, and
each block's best IoU per ground truth (merged afterwards, so threads never share a write). Pass 2 applies the
thresholds and, for low-quality matches, recomputes IoUs only for the boxes that could tie a ground
truth's best (best IoU >= the smallest per-gt best, and not already positive). Twice the length of the NumPy
reference and 10-20x faster (242k anchors x 50 boxes: ~30 ms on one core against ~700 ms), because nothing
(G, N) is ever written. prange splits blocks statically: on a busy machine one thread often beats two.

Whatever the values (even NaN IoUs from a caller that skips `Matcher.match_boxes`' checks), every index
written is in range: the argmax scan is bounded by the number of ground truths.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

_BLOCK = 4096  # boxes per parallel task: the per-block gt maxima stay small
_MAX_BLOCK_MAXIMA = 2**22  # at most this many per-block gt maxima (16 MB in float32), however many gts


@njit(cache=True, parallel=True)
def match_boxes(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches):
    num_gt = gt.shape[0]
    n = boxes.shape[0]
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
