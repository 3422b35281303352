"""numba.cuda twins of `edudet.ops.boxes` (box_iou, generalized_box_iou, box_area, masks_to_boxes), and device
functions for users' own ``@cuda.jit`` kernels.

Stable public names:

``iou_xyxy(a, b)``  (``@cuda.jit(device=True)``)
    IoU of two boxes, each a length-4 array (a row ``boxes[i]`` of a device array is fine) ``(x1, y1, x2, y2)``
    of one float dtype, in that dtype; 0 where the union is not positive. Finite coordinates assumed; no checks.
``box_area(box)``  (``@cuda.jit(device=True)``)
    ``(x2 - x1) * (y2 - y1)`` of one length-4 box.
``iou_xyxy_offset(a, b, offset)``, ``box_area_offset(box, offset)``  (``@cuda.jit(device=True)``)
    the same with the pixel convention `offset` (0, or 1: x2, y2 inclusive, every width ``x2 - x1 + 1``),
    given in the boxes' dtype (``boxes.dtype.type(1)``: a Python 1 would promote float32 to float64).
``box_iou(boxes1, boxes2, offset=0) -> (N, M)``  (host launcher)
    (N, 4) and (M, 4) C-contiguous boxes of one float dtype (float32 or float64). NumPy arrays in: a NumPy
    array out (copied back). Device arrays in (anything with ``__cuda_array_interface__``: numba device arrays,
    CuPy): a numba device array out, nothing copied to the host. It checks structure (2-D with 4 columns,
    C-contiguous, one float dtype) and raises a ``ValueError`` naming the argument; values (NaN, inf, the 1e15
    coordinate bound) are `edudet.ops`' job, or checked here for NumPy input when ``EDUDET_CHECK_KERNELS=1``.
``generalized_box_iou(boxes1, boxes2, offset=0) -> (N, M)``, ``box_areas(boxes, offset=0) -> (N,)``  (host)
    NumPy in, NumPy out; the same checks.
``masks_to_boxes(masks) -> (N, 4) float32``  (host)
    (N, H, W) C-contiguous uint8 or bool NumPy masks -> the min/max column and row of each mask's nonzero
    pixels; [0, 0, 0, 0] for an empty mask. One thread per mask row, folding into the mask's box with atomic
    min/max on int32.

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


@cuda.jit(device=True)
def box_area_offset(box, offset):
    return (box[2] - box[0] + offset) * (box[3] - box[1] + offset)


@cuda.jit(device=True)
def iou_xyxy_offset(a, b, offset):
    zero = a[0] - a[0]
    w = max(min(a[2], b[2]) - max(a[0], b[0]) + offset, zero)
    h = max(min(a[3], b[3]) - max(a[1], b[1]) + offset, zero)
    inter = w * h
    union = box_area_offset(a, offset) + box_area_offset(b, offset) - inter
    return inter / union if union > zero else zero


@cuda.jit(device=True)
def _giou_xyxy_offset(a, b, offset):
    zero = a[0] - a[0]
    w = max(min(a[2], b[2]) - max(a[0], b[0]) + offset, zero)
    h = max(min(a[3], b[3]) - max(a[1], b[1]) + offset, zero)
    inter = w * h
    union = box_area_offset(a, offset) + box_area_offset(b, offset) - inter
    iou = inter / union if union > zero else zero
    ew = max(max(a[2], b[2]) - min(a[0], b[0]) + offset, zero)
    eh = max(max(a[3], b[3]) - min(a[1], b[1]) + offset, zero)
    enclosing = ew * eh
    return iou - ((enclosing - union) / enclosing if enclosing > zero else zero)


@cuda.jit
def _box_iou_kernel(boxes1, boxes2, out, offset):
    j, i = cuda.grid(2)
    if i < boxes1.shape[0] and j < boxes2.shape[0]:
        out[i, j] = iou_xyxy_offset(boxes1[i], boxes2[j], offset[0])


@cuda.jit
def _giou_kernel(boxes1, boxes2, out, offset):
    j, i = cuda.grid(2)
    if i < boxes1.shape[0] and j < boxes2.shape[0]:
        out[i, j] = _giou_xyxy_offset(boxes1[i], boxes2[j], offset[0])


@cuda.jit
def _areas_kernel(boxes, out, offset):
    i = cuda.grid(1)
    if i < boxes.shape[0]:
        out[i] = box_area_offset(boxes[i], offset[0])


@cuda.jit
def _mask_rows_kernel(masks, extents):
    """One thread per (mask, row): a row holding a pixel folds its first/last column and itself into
    extents[mask] = (x1, y1, x2, y2), int32, which starts at (W, H, -1, -1)."""
    y, k = cuda.grid(2)
    width = masks.shape[2]
    if k >= masks.shape[0] or y >= masks.shape[1]:
        return
    first = -1
    last = -1
    for x in range(width):
        if masks[k, y, x] != 0:
            if first < 0:
                first = x
            last = x
    if first >= 0:
        cuda.atomic.min(extents, (k, 0), first)
        cuda.atomic.min(extents, (k, 1), y)
        cuda.atomic.max(extents, (k, 2), last)
        cuda.atomic.max(extents, (k, 3), y)


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


def box_iou(boxes1, boxes2, offset=0):
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
                                  cuda.to_device(boxes2) if not on_device else boxes2, out,
                                  _offset_array(offset, boxes1.dtype))
    return out if on_device else out.copy_to_host()


def _offset_array(offset, dtype):
    """The offset as a 1-element device array of the boxes' dtype: one kernel type for float32 and float64
    either way, and float32 arithmetic stays float32 (a Python scalar argument would be float64)."""
    if CHECK_KERNELS and offset not in (0, 1):
        raise ValueError(f"offset must be 0 or 1, got {offset!r} (EDUDET_CHECK_KERNELS=1)")
    return cuda.to_device(np.array([offset], dtype=dtype))


def _check_host_boxes(boxes1, boxes2=None):
    check_structure("boxes1" if boxes2 is not None else "boxes", boxes1, ndim=2, columns=4)
    if boxes2 is not None:
        check_structure("boxes2", boxes2, ndim=2, columns=4, dtype=boxes1.dtype)
    if boxes1.dtype not in (np.float32, np.float64):
        raise ValueError(f"{'boxes1' if boxes2 is not None else 'boxes'} must be float32 or float64, got "
                         f"{boxes1.dtype}")
    if CHECK_KERNELS:
        check_values(**({"boxes1": boxes1, "boxes2": boxes2} if boxes2 is not None else {"boxes": boxes1}))


def generalized_box_iou(boxes1, boxes2, offset=0):
    """(N, 4), (M, 4) NumPy boxes of one float dtype -> (N, M) generalized IoU computed on the GPU."""
    _check_host_boxes(boxes1, boxes2)
    n, m = boxes1.shape[0], boxes2.shape[0]
    if n == 0 or m == 0:
        return np.zeros((n, m), dtype=boxes1.dtype)
    out = cuda.device_array((n, m), dtype=boxes1.dtype)
    grid = ((m + _BLOCK[0] - 1) // _BLOCK[0], (n + _BLOCK[1] - 1) // _BLOCK[1])
    _giou_kernel[grid, _BLOCK](cuda.to_device(boxes1), cuda.to_device(boxes2), out,
                               _offset_array(offset, boxes1.dtype))
    return out.copy_to_host()


def box_areas(boxes, offset=0):
    """(N, 4) NumPy boxes -> (N,) areas ``(x2 - x1 + offset) * (y2 - y1 + offset)`` computed on the GPU."""
    _check_host_boxes(boxes)
    n = boxes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=boxes.dtype)
    out = cuda.device_array(n, dtype=boxes.dtype)
    threads = 256
    _areas_kernel[(n + threads - 1) // threads, threads](cuda.to_device(boxes), out,
                                                          _offset_array(offset, boxes.dtype))
    return out.copy_to_host()


def masks_to_boxes(masks):
    """(N, H, W) NumPy uint8 (0/1) or bool masks -> (N, 4) float32 boxes computed on the GPU."""
    check_structure("masks", masks, ndim=3)
    if masks.dtype not in (np.uint8, np.bool_):
        raise ValueError(f"masks must be uint8 or bool, got {masks.dtype}")
    n, height, width = masks.shape
    if masks.size == 0:
        return np.zeros((n, 4), dtype=np.float32)
    extents = np.empty((n, 4), dtype=np.int32)
    extents[:] = (width, height, -1, -1)  # an empty mask keeps these
    device_extents = cuda.to_device(extents)
    grid = ((height + _BLOCK[0] - 1) // _BLOCK[0], (n + _BLOCK[1] - 1) // _BLOCK[1])
    _mask_rows_kernel[grid, _BLOCK](cuda.to_device(masks.view(np.uint8)), device_extents)
    extents = device_extents.copy_to_host()
    boxes = extents.astype(np.float32)
    boxes[extents[:, 2] < 0] = 0  # empty: torchvision's [0, 0, 0, 0]
    return boxes
