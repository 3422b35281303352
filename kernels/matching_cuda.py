"""numba.cuda twin of `edudet.matcher.match_boxes_numpy`: IoU + Matcher fused, one thread per box.

Kernel 1: each thread scans the ground truths for its box's best IoU and first argmax and folds its IoUs
into the per-gt best with ``cuda.atomic.max``. Kernel 2: thresholds, then low-quality matches (recomputing
the IoUs of boxes that could tie a gt's best). The wrapper copies to the device and back; it also runs
under ``NUMBA_ENABLE_CUDASIM=1`` (slowly: small inputs only).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

_THREADS = 256


@cuda.jit(device=True, inline=True)
def _iou(ax1, ay1, ax2, ay2, area_a, gx1, gy1, gx2, gy2, area_g):
    # torchvision's box_iou operations in the same order and dtype: the value is bit-identical
    w = min(ax2, gx2) - max(ax1, gx1)
    if w <= 0:
        return area_a - area_a
    h = min(ay2, gy2) - max(ay1, gy1)
    if h <= 0:
        return area_a - area_a
    inter = w * h
    union = (area_g + area_a) - inter
    if union <= 0:
        return area_a - area_a
    return inter / union


@cuda.jit
def _best_kernel(gt, gt_area, boxes, best, argbest, gt_best):
    i = cuda.grid(1)
    if i >= boxes.shape[0]:
        return
    ax1, ay1, ax2, ay2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
    area_a = (ax2 - ax1) * (ay2 - ay1)
    v = -1.0  # below every IoU, so the first gt always takes it
    k = 0
    for g in range(gt.shape[0]):
        iou = _iou(ax1, ay1, ax2, ay2, area_a, gt[g, 0], gt[g, 1], gt[g, 2], gt[g, 3], gt_area[g])
        if iou > v:  # strict: the first gt wins a tie
            v = iou
            k = g
        cuda.atomic.max(gt_best, g, iou)
    best[i] = v
    argbest[i] = k


@cuda.jit
def _final_kernel(gt, gt_area, boxes, best, argbest, gt_best, smallest_gt_best, high, low, allow_low_quality,
                  matches):
    i = cuda.grid(1)
    if i >= boxes.shape[0]:
        return
    v = best[i]
    if v >= high[0]:
        matches[i] = argbest[i]
        return
    matches[i] = -1 if v < low[0] else -2
    if allow_low_quality and v >= smallest_gt_best[0]:
        ax1, ay1, ax2, ay2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        area_a = (ax2 - ax1) * (ay2 - ay1)
        for g in range(gt.shape[0]):
            if _iou(ax1, ay1, ax2, ay2, area_a, gt[g, 0], gt[g, 1], gt[g, 2], gt[g, 3], gt_area[g]) == gt_best[g]:
                matches[i] = argbest[i]
                return


def match_boxes(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches):
    """(G, 4) gt and (N, 4) boxes of one float dtype, thresholds in that dtype -> (N,) int64 matches."""
    dtype = gt.dtype
    n, num_gt = boxes.shape[0], gt.shape[0]
    if num_gt == 0 or n == 0:  # Matcher refuses G = 0; a direct caller gets all background, never a bad read
        return np.full(n, -1, dtype=np.int64)
    gt_area = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    d_gt, d_area, d_boxes = cuda.to_device(gt), cuda.to_device(gt_area), cuda.to_device(boxes)
    d_best = cuda.device_array(n, dtype=dtype)
    d_argbest = cuda.device_array(n, dtype=np.int64)
    d_gt_best = cuda.to_device(np.full(num_gt, -1, dtype=dtype))
    blocks = math.ceil(n / _THREADS)
    _best_kernel[blocks, _THREADS](d_gt, d_area, d_boxes, d_best, d_argbest, d_gt_best)
    gt_best = d_gt_best.copy_to_host()
    # thresholds travel as 1-element arrays so the kernel compares in the boxes' dtype, as torch does
    scalars = [cuda.to_device(np.array([x], dtype=dtype)) for x in (gt_best.min(), high_threshold, low_threshold)]
    d_matches = cuda.device_array(n, dtype=np.int64)
    _final_kernel[blocks, _THREADS](d_gt, d_area, d_boxes, d_best, d_argbest, d_gt_best, scalars[0], scalars[1],
                                    scalars[2], bool(allow_low_quality_matches), d_matches)
    return d_matches.copy_to_host()
