"""numba.cuda twin of `edudet.ops.boxes.box_iou`, and device functions for users' own ``@cuda.jit`` kernels.

Stable public names:

``iou_xyxy(a, b)``  (``@cuda.jit(device=True)``)
    IoU of two boxes, each a length-4 array (a row ``boxes[i]`` of a device array is fine) ``(x1, y1, x2, y2)``
    of one float dtype, in that dtype; 0 where the union is not positive. Finite coordinates assumed; no checks.
``box_area(box)``  (``@cuda.jit(device=True)``)
    ``(x2 - x1) * (y2 - y1)`` of one length-4 box.
``box_iou(boxes1, boxes2) -> (N, M)``  (host launcher)
    (N, 4) and (M, 4) C-contiguous boxes of one float dtype (float32 or float64). NumPy arrays in: a NumPy
    array out (copied back). Device arrays in (anything with ``__cuda_array_interface__``: numba device arrays,
    CuPy): a numba device array out, nothing copied to the host. It checks structure (2-D with 4 columns,
    C-contiguous, one float dtype) and raises a ``ValueError`` naming the argument; values (NaN, inf, the 1e15
    coordinate bound) are `edudet.ops`' job, or checked here for NumPy input when ``EDUDET_CHECK_KERNELS=1``.

Example (user code)::

    from numba import cuda
    from edudet.kernels.boxes_cuda import iou_xyxy

    @cuda.jit
    def diagonal_iou(boxes1, boxes2, out):     # out[i] = IoU(boxes1[i], boxes2[i])
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = iou_xyxy(boxes1[i], boxes2[i])

Arithmetic: the reference's order, ``inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))``,
``union = area1 + area2 - inter``, ``iou = inter / union`` or 0 where ``union <= 0``. On a real GPU, NVVM
contracts products and sums into fused multiply-adds by default (numba exposes no switch for it), so an IoU
can differ from the reference in the last bit or two; under ``NUMBA_ENABLE_CUDASIM=1`` (the simulator, slow:
small inputs only) the results are bitwise equal.

`box_iou` runs one thread per output pair on a 2-D grid: x runs along the columns (M) so neighbouring threads
write neighbouring addresses (coalesced stores).
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from ._checks import CHECK_KERNELS, check_structure, check_values

_BLOCK = (32, 8)  # 256 threads; 32 along the contiguous axis = one warp per row segment


@cuda.jit(device=True)
def box_area(box):
    return (box[2] - box[0]) * (box[3] - box[1])


@cuda.jit(device=True)
def iou_xyxy(a, b):
    # +0 of the boxes' dtype (a 0.0 literal would promote float32 to float64): x - x of a finite coordinate
    zero = a[0] - a[0]
    w = max(min(a[2], b[2]) - max(a[0], b[0]), zero)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), zero)
    inter = w * h
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > zero else zero


@cuda.jit
def _box_iou_kernel(boxes1, boxes2, out):
    j, i = cuda.grid(2)
    if i < boxes1.shape[0] and j < boxes2.shape[0]:
        out[i, j] = iou_xyxy(boxes1[i], boxes2[j])


def _check_device_boxes(name, boxes, dtype=None):
    """The structural checks of `_checks.check_structure`, for a device array."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(boxes.shape)}")
    if np.dtype(boxes.dtype) not in (np.float32, np.float64):
        raise ValueError(f"{name} must be float32 or float64, got {boxes.dtype}")
    if dtype is not None and np.dtype(boxes.dtype) != np.dtype(dtype):
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {boxes.dtype}")
    if not boxes.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous")


def is_device_array(array) -> bool:
    """True for a GPU array (``__cuda_array_interface__``, or the simulator's fake device arrays)."""
    if isinstance(array, np.ndarray):
        return False
    return hasattr(array, "__cuda_array_interface__") or cuda.devicearray.is_cuda_ndarray(array)


def as_device_array(array):
    """A numba device array viewing `array` (a no-op for numba's own; CuPy and others are wrapped, not copied)."""
    if cuda.devicearray.is_cuda_ndarray(array):
        return array
    return cuda.as_cuda_array(array)


def box_iou(boxes1, boxes2):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) IoU computed on the GPU (see the module docstring)."""
    on_device = is_device_array(boxes1) or is_device_array(boxes2)
    if on_device:
        boxes1, boxes2 = as_device_array(boxes1), as_device_array(boxes2)
        _check_device_boxes("boxes1", boxes1)
        _check_device_boxes("boxes2", boxes2, dtype=boxes1.dtype)
    else:
        check_structure("boxes1", boxes1, ndim=2, columns=4)
        check_structure("boxes2", boxes2, ndim=2, columns=4, dtype=boxes1.dtype)
        if boxes1.dtype not in (np.float32, np.float64):
            raise ValueError(f"boxes1 must be float32 or float64, got {boxes1.dtype}")
        if CHECK_KERNELS:
            check_values(boxes1=boxes1, boxes2=boxes2)
    n, m = boxes1.shape[0], boxes2.shape[0]
    if n == 0 or m == 0:  # an empty grid is an error in CUDA
        empty = np.zeros((n, m), dtype=boxes1.dtype)
        return cuda.to_device(empty) if on_device else empty
    out = cuda.device_array((n, m), dtype=boxes1.dtype)
    grid = ((m + _BLOCK[0] - 1) // _BLOCK[0], (n + _BLOCK[1] - 1) // _BLOCK[1])
    _box_iou_kernel[grid, _BLOCK](cuda.to_device(boxes1) if not on_device else boxes1,
                                  cuda.to_device(boxes2) if not on_device else boxes2, out)
    return out if on_device else out.copy_to_host()
