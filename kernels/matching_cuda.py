"""numba.cuda twin of `edudet.matcher.match_boxes_numpy`: IoU + Matcher fused, one thread per box.

Public names (stable; see docs/kernels.md):

* ``match_boxes(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches) -> (N,) int64``: gt (G, 4)
  and boxes (N, 4) ``(x1, y1, x2, y2)``, both float32 or both float64, C-contiguous, NumPy arrays or device arrays
  (anything with ``__cuda_array_interface__``: numba device arrays, CuPy). With a device array in, the result
  is a numba device array (no copy to the host); with host arrays, a NumPy array, as the other backends.
* ``best_match(gt, box) -> (iou, index)`` (``@cuda.jit(device=True)``): one box's best IoU over the rows of gt
  and the first row reaching it (the Matcher's argmax); gt a (G, 4) and box a length-4 array of one float dtype,
  G >= 1. IoU as torchvision's ``box_iou`` (0 where the union is 0).

Checks at entry of ``match_boxes`` (ValueError naming the argument): 2-D with 4 columns, C-contiguity, one float
dtype. With ``EDUDET_CHECK_KERNELS=1``: finite coordinates within 1e15 (device inputs are copied to the host
for that). Not checked: ground truths with x2 >= x1, the thresholds' range: `edudet.Matcher.match_boxes` does.

Kernel 1: each thread finds its box's best IoU and first argmax (`best_match`) and, for low-quality matches,
folds its IoUs into the per-gt best with ``cuda.atomic.max``. Kernel 2: thresholds, then low-quality matches
(recomputing the IoUs of boxes that could tie a gt's best). Runs under ``NUMBA_ENABLE_CUDASIM=1`` too (slowly).

Example::

    import numpy as np
    from numba import cuda
    from edudet.kernels.matching_cuda import match_boxes
    gt = cuda.to_device(np.array([[0, 0, 10, 10]], dtype=np.float32))
    boxes = cuda.to_device(np.array([[0, 0, 10, 10], [0, 0, 10, 20], [20, 20, 30, 30]], dtype=np.float32))
    match_boxes(gt, boxes, 0.7, 0.3, False).copy_to_host()            # IoUs 1, 0.5, 0 -> [0, -2, -1]
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ._checks import CHECK_KERNELS, check_structure, check_values

_THREADS = 256


# ---- device-array plumbing (shared by the FCOS and anchors CUDA kernels) ------------------------------------
def _device_view(array):
    """A numba device array for a device input (numba's own, or anything with ``__cuda_array_interface__``),
    None for a host array."""
    if cuda.devicearray.is_cuda_ndarray(array):
        return array
    if hasattr(array, "__cuda_array_interface__"):
        return cuda.as_cuda_array(array)
    return None


def _check_input(name, array, ndim=2, columns=None, length=None, dtype=None):
    """The structural checks of `_checks.check_structure`, for host and device arrays alike."""
    device = _device_view(array)
    if device is None:
        check_structure(name, array, ndim=ndim, columns=columns, length=length, dtype=dtype)
        return
    if device.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {device.shape}")
    if columns is not None and device.shape[1] != columns:
        raise ValueError(f"{name} must have shape (N, {columns}), got {device.shape}")
    if length is not None and device.shape[0] != length:
        raise ValueError(f"{name} has {device.shape[0]} rows; expected {length} to match the other inputs")
    if dtype is not None and device.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {device.dtype}")
    if not device.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous")


def _on_device(array):
    """(device array, whether it was already there)."""
    device = _device_view(array)
    return (device, True) if device is not None else (cuda.to_device(array), False)


def _host(array):
    device = _device_view(array)
    return array if device is None else device.copy_to_host()


def _scalar(value, dtype):
    """A 1-element device array: the kernel then compares in the inputs' dtype, as torch does."""
    return cuda.to_device(np.array([value], dtype=dtype))


# ---- public device function ----------------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def _iou(ax1, ay1, ax2, ay2, gx1, gy1, gx2, gy2):
    # torchvision's box_iou operations in the same order and dtype: the value is bit-identical; 0 for a zero union
    area_a = (ax2 - ax1) * (ay2 - ay1)
    zero = area_a - area_a
    w = min(ax2, gx2) - max(ax1, gx1)
    if w <= zero:
        return zero
    h = min(ay2, gy2) - max(ay1, gy1)
    if h <= zero:
        return zero
    inter = w * h
    union = ((gx2 - gx1) * (gy2 - gy1) + area_a) - inter
    if union <= zero:
        return zero
    return inter / union


@cuda.jit(device=True)
def best_match(gt, box):
    """(best IoU of `box` over the rows of `gt`, the first row reaching it); G >= 1."""
    v = _iou(box[0], box[1], box[2], box[3], gt[0, 0], gt[0, 1], gt[0, 2], gt[0, 3])
    k = 0
    for g in range(1, gt.shape[0]):
        iou = _iou(box[0], box[1], box[2], box[3], gt[g, 0], gt[g, 1], gt[g, 2], gt[g, 3])
        if iou > v:  # strict: the first gt reaching the max wins a tie, as torch.max(dim=0)
            v = iou
            k = g
    return v, k


@cuda.jit
def _best_kernel(gt, boxes, allow_low_quality, best, argbest, gt_best):
    i = cuda.grid(1)
    if i >= boxes.shape[0]:
        return
    v, k = best_match(gt, boxes[i])
    best[i] = v
    argbest[i] = k
    if allow_low_quality:  # only the low-quality rule needs each gt's best IoU over all boxes
        for g in range(gt.shape[0]):
            iou = _iou(boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], gt[g, 0], gt[g, 1], gt[g, 2], gt[g, 3])
            cuda.atomic.max(gt_best, g, iou)


@cuda.jit
def _smallest_kernel(values, out):
    if cuda.grid(1) == 0:
        smallest = values[0]
        for g in range(1, values.shape[0]):
            smallest = min(smallest, values[g])
        out[0] = smallest


@cuda.jit
def _final_kernel(gt, boxes, best, argbest, gt_best, smallest_gt_best, high, low, allow_low_quality, matches):
    i = cuda.grid(1)
    if i >= boxes.shape[0]:
        return
    v = best[i]
    if v >= high[0]:
        matches[i] = argbest[i]
        return
    matches[i] = -1 if v < low[0] else -2
    # a box can tie some gt's best only if its own best reaches the smallest per-gt best
    if allow_low_quality and v >= smallest_gt_best[0]:
        for g in range(gt.shape[0]):
            iou = _iou(boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], gt[g, 0], gt[g, 1], gt[g, 2], gt[g, 3])
            if iou == gt_best[g]:
                matches[i] = argbest[i]
                return


def match_boxes(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches):
    """(G, 4) gt and (N, 4) boxes of one float dtype (host or device) -> (N,) int64 matches (host or device)."""
    _check_input("gt", gt, columns=4)
    _check_input("boxes", boxes, columns=4)
    dtype = np.dtype(gt.dtype)
    if dtype != boxes.dtype or dtype not in (np.float32, np.float64):
        raise ValueError(f"gt and boxes must have the same float dtype (float32 or float64), got {gt.dtype} "
                         f"and {boxes.dtype}")
    if CHECK_KERNELS:
        check_values(gt_boxes=_host(gt), boxes=_host(boxes))
    d_gt, gt_on_device = _on_device(gt)
    d_boxes, boxes_on_device = _on_device(boxes)
    to_device = gt_on_device or boxes_on_device
    n, num_gt = d_boxes.shape[0], d_gt.shape[0]
    if num_gt == 0 or n == 0:  # Matcher refuses G = 0; a direct caller gets all background, never a bad read
        out = np.full(n, -1, dtype=np.int64)
        return cuda.to_device(out) if to_device else out
    allow = bool(allow_low_quality_matches)
    d_best = cuda.device_array(n, dtype=dtype)
    d_argbest = cuda.device_array(n, dtype=np.int64)
    d_gt_best = cuda.to_device(np.full(num_gt, -1, dtype=dtype))
    blocks = math.ceil(n / _THREADS)
    _best_kernel[blocks, _THREADS](d_gt, d_boxes, allow, d_best, d_argbest, d_gt_best)
    d_smallest = cuda.device_array(1, dtype=dtype)
    _smallest_kernel[1, 1](d_gt_best, d_smallest)
    d_matches = cuda.device_array(n, dtype=np.int64)
    _final_kernel[blocks, _THREADS](d_gt, d_boxes, d_best, d_argbest, d_gt_best, d_smallest,
                                    _scalar(high_threshold, dtype), _scalar(low_threshold, dtype), allow, d_matches)
    return d_matches if to_device else d_matches.copy_to_host()
