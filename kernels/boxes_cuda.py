"""numba.cuda twin of `edudet.ops.boxes.box_iou`: same signature, host arrays in and out.

``box_iou(boxes1, boxes2)``: (N, 4) and (M, 4) C-contiguous ``(x1, y1, x2, y2)`` arrays of one float dtype
(validated by `edudet.ops.box_iou`) -> (N, M) IoU in that dtype, computed on the GPU in the reference's
order: ``inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))``, ``union = area1 + area2 - inter``,
``iou = inter / union`` or 0 where ``union <= 0``.

One thread per output pair on a 2-D grid: x runs along the columns (M) so neighbouring threads write
neighbouring addresses (coalesced stores). The areas are computed once on the host, exactly as the NumPy
reference computes them. On a real GPU, NVVM contracts ``area1 + area2 - w * h`` into a fused multiply-add
by default (numba exposes no switch for it), so an IoU can differ from the reference in the last bit or
two; under ``NUMBA_ENABLE_CUDASIM=1`` (the simulator, slow: small inputs only) the results are bitwise equal.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64

_BLOCK = (32, 8)  # 256 threads; 32 along the contiguous axis = one warp per row segment


def _make_kernel(box_type):
    @cuda.jit
    def box_iou_kernel(boxes1, area1, boxes2, area2, out):
        j, i = cuda.grid(2)
        if i >= boxes1.shape[0] or j >= boxes2.shape[0]:
            return
        a1 = area1[i]
        zero = box_type(0)  # +0 of the boxes' dtype: a 0.0 literal would promote float32 to float64
        w = max(min(boxes1[i, 2], boxes2[j, 2]) - max(boxes1[i, 0], boxes2[j, 0]), zero)
        h = max(min(boxes1[i, 3], boxes2[j, 3]) - max(boxes1[i, 1], boxes2[j, 1]), zero)
        inter = w * h
        union = a1 + area2[j] - inter
        out[i, j] = inter / union if union > zero else zero

    return box_iou_kernel


_kernels = {}


def _kernel(dtype):
    if dtype not in _kernels:
        _kernels[dtype] = _make_kernel(float32 if dtype == np.float32 else float64)
    return _kernels[dtype]


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, 4), (M, 4) clean boxes of one float dtype -> (N, M) IoU, computed on the GPU."""
    n, m = boxes1.shape[0], boxes2.shape[0]
    if n == 0 or m == 0:  # an empty grid is an error in CUDA
        return np.zeros((n, m), dtype=boxes1.dtype)
    out = cuda.device_array((n, m), dtype=boxes1.dtype)
    grid = ((m + _BLOCK[0] - 1) // _BLOCK[0], (n + _BLOCK[1] - 1) // _BLOCK[1])
    _kernel(boxes1.dtype.type)[grid, _BLOCK](cuda.to_device(boxes1), cuda.to_device(_areas(boxes1)),
                                             cuda.to_device(boxes2), cuda.to_device(_areas(boxes2)), out)
    return out.copy_to_host()
