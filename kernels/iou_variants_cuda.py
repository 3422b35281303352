"""numba.cuda twins of `edudet.ops.iou_variants`: DIoU, CIoU, IoA and mmdetection's bbox_overlaps.

Stable public names:

``pair_overlap(kind, a, b, area_a, angle_a, area_b, angle_b, eps, constants)``  (``@cuda.jit(device=True)``)
    one pair for a user's own ``@cuda.jit`` kernel: a, b length-4 ``(x1, y1, x2, y2)`` rows of one float
    dtype, their areas and (for CIoU) aspect angles ``atan(w / h)``, eps and ``constants`` (the array
    `constants(dtype)` on the device: typed literals, so float32 stays float32); ``kind`` a code of
    `edudet.ops.iou_variants` (IOA=0, DIOU=1, CIOU=2, MM_IOU=3, MM_IOF=4, MM_GIOU=5).
``overlaps(kind, boxes1, boxes2, eps) -> (N, M)``, ``overlaps_aligned(kind, boxes1, boxes2, eps) -> (N,)``
    host launchers on C-contiguous (N, 4) NumPy arrays of one float dtype; a NumPy array comes back. Structure is
    checked (a ``ValueError`` naming the argument); values are `edudet.ops`' job (or checked here too with
    ``EDUDET_CHECK_KERNELS=1``).

The per-box areas and aspect angles are computed on the host (O(N + M)), the pairs on the GPU, one thread each
(x along the columns: coalesced stores). Arithmetic: the reference's order; on a real GPU NVVM contracts
products and sums into fused multiply-adds, so values can differ from the reference in the last bit or two;
under ``NUMBA_ENABLE_CUDASIM=1`` (the simulator: small inputs only) they are the reference's.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ._checks import CHECK_KERNELS, check_structure, check_values

IOA, DIOU, CIOU, MM_IOU, MM_IOF, MM_GIOU = range(6)  # the codes of edudet.ops.iou_variants
_BLOCK = (32, 8)  # 256 threads; 32 along the contiguous axis = one warp per row segment
_THREADS = 256


def constants(dtype) -> np.ndarray:
    """(4,) array of 0, 1, 0.5 and 4 / pi^2 in `dtype`: the typed literals `pair_overlap` needs."""
    return np.array([0, 1, 0.5, 4 / math.pi ** 2], dtype=dtype)


@cuda.jit(device=True)
def pair_overlap(kind, a, b, area_a, angle_a, area_b, angle_b, eps, constants):
    zero = constants[0]
    one = constants[1]
    half = constants[2]
    w = max(min(a[2], b[2]) - max(a[0], b[0]), zero)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), zero)
    inter = w * h
    if kind == IOA:
        return inter / area_a if area_a > zero else zero
    union = area_a + area_b - inter
    if kind == MM_IOU or kind == MM_GIOU:
        union = max(union, eps)
    elif kind == MM_IOF:
        union = max(area_a, eps)
    iou = inter / union if union > zero else zero
    if kind == MM_IOU or kind == MM_IOF:
        return iou
    enclosing_w = max(a[2], b[2]) - min(a[0], b[0])
    enclosing_h = max(a[3], b[3]) - min(a[1], b[1])
    if kind == MM_GIOU:
        enclosing = max(enclosing_w * enclosing_h, eps)
        return iou - ((enclosing - union) / enclosing if enclosing > zero else zero)
    diagonal_sq = enclosing_w * enclosing_w + enclosing_h * enclosing_h + eps
    dx = (a[0] + a[2]) * half - (b[0] + b[2]) * half
    dy = (a[1] + a[3]) * half - (b[1] + b[3]) * half
    centre_sq = dx * dx + dy * dy
    diou = iou - (centre_sq / diagonal_sq if diagonal_sq > zero else zero)
    if kind == DIOU:
        return diou
    gap = angle_a - angle_b
    v = constants[3] * (gap * gap)
    denominator = one - iou + v + eps
    alpha = v / denominator if denominator > zero else zero
    return diou - alpha * v


@cuda.jit
def _matrix_kernel(kind, boxes1, area1, angle1, boxes2, area2, angle2, eps, consts, out):
    j, i = cuda.grid(2)
    if i < boxes1.shape[0] and j < boxes2.shape[0]:
        out[i, j] = pair_overlap(kind, boxes1[i], boxes2[j], area1[i], angle1[i], area2[j], angle2[j], eps,
                                 consts)


@cuda.jit
def _aligned_kernel(kind, boxes1, area1, angle1, boxes2, area2, angle2, eps, consts, out):
    i = cuda.grid(1)
    if i < boxes1.shape[0]:
        out[i] = pair_overlap(kind, boxes1[i], boxes2[i], area1[i], angle1[i], area2[i], angle2[i], eps, consts)


def _per_box(kind, boxes):
    """(N,) areas and aspect angles (0 unless CIoU), as the reference computes them."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    area = w * h
    if kind != CIOU:
        return area, np.zeros_like(area)
    ratio = np.where(w > 0, np.inf, 0).astype(boxes.dtype)  # pi / 2 for a flat box, 0 for a point
    np.divide(w, h, out=ratio, where=h > 0)
    return area, np.arctan(ratio)


def _check(kind, boxes1, boxes2, aligned):
    check_structure("boxes1", boxes1, ndim=2, columns=4)
    check_structure("boxes2", boxes2, ndim=2, columns=4, dtype=boxes1.dtype,
                    length=boxes1.shape[0] if aligned else None)
    if boxes1.dtype not in (np.float32, np.float64):
        raise ValueError(f"boxes1 must be float32 or float64, got {boxes1.dtype}")
    if kind not in range(6):
        raise ValueError(f"kind must be one of the codes 0..5 of edudet.ops.iou_variants, got {kind!r}")
    if CHECK_KERNELS:
        check_values(boxes1=boxes1, boxes2=boxes2)


def _device_inputs(kind, boxes1, boxes2):
    area1, angle1 = _per_box(kind, boxes1)
    area2, angle2 = _per_box(kind, boxes2)
    return [cuda.to_device(np.ascontiguousarray(x))
            for x in (boxes1, area1, angle1, boxes2, area2, angle2)]


def overlaps(kind, boxes1, boxes2, eps):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) values of formula `kind`, computed on the GPU."""
    _check(kind, boxes1, boxes2, False)
    n, m = boxes1.shape[0], boxes2.shape[0]
    if n == 0 or m == 0:  # an empty grid is an error in CUDA
        return np.zeros((n, m), dtype=boxes1.dtype)
    b1, a1, g1, b2, a2, g2 = _device_inputs(kind, boxes1, boxes2)
    out = cuda.device_array((n, m), dtype=boxes1.dtype)
    grid = ((m + _BLOCK[0] - 1) // _BLOCK[0], (n + _BLOCK[1] - 1) // _BLOCK[1])
    _matrix_kernel[grid, _BLOCK](kind, b1, a1, g1, b2, a2, g2, boxes1.dtype.type(eps),
                                 cuda.to_device(constants(boxes1.dtype)), out)
    return out.copy_to_host()


def overlaps_aligned(kind, boxes1, boxes2, eps):
    """(N, 4), (N, 4) boxes of one float dtype -> (N,) values of formula `kind` for the pairs (i, i)."""
    _check(kind, boxes1, boxes2, True)
    n = boxes1.shape[0]
    if n == 0:
        return np.zeros(0, dtype=boxes1.dtype)
    b1, a1, g1, b2, a2, g2 = _device_inputs(kind, boxes1, boxes2)
    out = cuda.device_array(n, dtype=boxes1.dtype)
    _aligned_kernel[(n + _THREADS - 1) // _THREADS, _THREADS](kind, b1, a1, g1, b2, a2, g2,
                                                              boxes1.dtype.type(eps),
                                                              cuda.to_device(constants(boxes1.dtype)), out)
    return out.copy_to_host()
