"""The IoU family beyond plain IoU: distance IoU, complete IoU, intersection over the first box (IoA / "iof"),
and mmdetection's `bbox_overlaps` front; pairwise or aligned, single or batched.

Boxes are ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and ``y1 <= y2`` (inverted boxes raise a `ValueError`: their
"areas" and enclosing boxes are meaningless here). Every op takes

* ``(N, 4)`` and ``(M, 4)`` -> ``(N, M)`` pairwise values, or with ``aligned=True`` (``is_aligned`` in
  `bbox_overlaps`) ``(N, 4)`` and ``(N, 4)`` -> ``(N,)``, the value of each pair ``(boxes1[i], boxes2[i])``;
* batched ``(B, N, 4)`` and ``(B, M, 4)`` -> ``(B, N, M)``, or aligned ``(B, N)``, as mmdetection's
  ``bbox_overlaps`` does (one batch dimension, the same B on both sides).

float64 if either input is float64, else float32 (integer boxes compute in float32). Coordinates beyond +-1e15
raise a `ValueError` (`edudet._validate.COORDINATE_LIMIT`), and so does an output above edudet's allocation limit.
`bbox_overlaps` takes mmcv's ``offset=1`` (x2, y2 inclusive pixels), as `box_iou` does (docs/conventions.md).

The formulas, per pair (a, b), with ``inter`` the intersection area, ``union = area(a) + area(b) - inter``,
C the smallest box enclosing both, ``c`` a box's centre, ``atan(w / h)`` its aspect angle:

* ``box_ioa``: ``inter / area(a)`` (mmcv's ``mode="iof"``); 0 where ``area(a) == 0``.
* ``distance_box_iou`` (DIoU, Zheng et al. 2020): ``iou - |c_a - c_b|^2 / (diag(C)^2 + eps)``.
* ``complete_box_iou`` (CIoU, same paper): ``diou - alpha v`` with
  ``v = 4 / pi^2 (atan(w_a / h_a) - atan(w_b / h_b))^2`` and ``alpha = v / (1 - iou + v + eps)``.
* ``bbox_overlaps`` (mmdetection's ``bbox_overlaps``): ``inter / max(union, eps)`` ("iou"),
  ``inter / max(area(a), eps)`` ("iof"), and ``iou - (max(area(C), eps) - max(union, eps)) / max(area(C), eps)``
  ("giou"): the eps clamps the denominators, so boxes smaller than eps get small values, not their true IoU.

Where torchvision gives NaN edudet defines a value: IoU 0 where the union is 0 (as `box_iou`), a penalty of 0
where a denominator is 0 (possible only with ``eps=0``), and the aspect angle of a box with ``w == h == 0`` (a
point) is 0 (``atan(w / h)`` is ``pi / 2`` for ``h == 0 < w``, as in torchvision).

Fast twins: ``kernels/iou_variants_numba.py``, ``iou_variants_cython.pyx`` and ``iou_variants_cuda.py``, one
pair kernel for every variant. Every backend gives the reference's bits except for CIoU, whose ``atan`` comes
from each backend's maths library (NumPy's, libm's, CUDA's): it may differ in the last bit or two.
"""
from __future__ import annotations

import numpy as np

from .._dispatch import Dispatcher
from .._validate import as_boxes, check_allocation, check_scalar, common_float_dtype

__all__ = ["distance_box_iou", "complete_box_iou", "box_ioa", "bbox_overlaps"]

# One code per formula, shared with the kernels (``kind`` argument of their pair loops).
IOA, DIOU, CIOU, MM_IOU, MM_IOF, MM_GIOU = range(6)
_BBOX_OVERLAPS_MODES = {"iou": MM_IOU, "iof": MM_IOF, "giou": MM_GIOU}
# Row chunks of about this many pairs keep the reference's (rows, M) temporaries at tens of MB.
_PAIRS_PER_CHUNK = 1 << 20


# --- the NumPy reference: one readable function per formula, on broadcastable (..., 4) boxes ---------------

def _area(boxes):
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _safe_divide(numerator, denominator):
    """numerator / denominator, and 0 where the denominator is not positive (never NaN, never a warning)."""
    numerator, denominator = np.broadcast_arrays(numerator, denominator)
    out = np.zeros(numerator.shape, dtype=numerator.dtype)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _intersection(a, b):
    w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    return w * h  # disjoint boxes overlap by 0, not by a negative amount


def _enclosing_size(a, b):
    """Width and height of the smallest box enclosing a and b (never negative for valid boxes)."""
    return (np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 0], b[..., 0]),
            np.maximum(a[..., 3], b[..., 3]) - np.minimum(a[..., 1], b[..., 1]))


def _iou(a, b):
    inter = _intersection(a, b)
    return _safe_divide(inter, _area(a) + _area(b) - inter)


def _ioa(a, b, eps):
    return _safe_divide(_intersection(a, b), _area(a))


def _distance_iou(a, b, eps):
    """DIoU: the IoU minus the squared centre distance over the squared diagonal of the enclosing box."""
    enclosing_w, enclosing_h = _enclosing_size(a, b)
    diagonal_sq = enclosing_w * enclosing_w + enclosing_h * enclosing_h + eps
    dx = (a[..., 0] + a[..., 2]) / 2 - (b[..., 0] + b[..., 2]) / 2
    dy = (a[..., 1] + a[..., 3]) / 2 - (b[..., 1] + b[..., 3]) / 2
    centre_distance_sq = dx * dx + dy * dy
    return _iou(a, b) - _safe_divide(centre_distance_sq, diagonal_sq)


def _aspect_angle(boxes):
    """atan(w / h) of each box: pi / 2 for a flat box (h == 0 < w), 0 for a point (w == h == 0)."""
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    ratio = np.where(w > 0, np.inf, 0).astype(boxes.dtype)
    np.divide(w, h, out=ratio, where=h > 0)
    return np.arctan(ratio)


def _complete_iou(a, b, eps):
    """CIoU: DIoU minus alpha * v, v measuring how far apart the two aspect ratios are (as an angle)."""
    iou = _iou(a, b)
    diou = _distance_iou(a, b, eps)
    angle_gap = _aspect_angle(a) - _aspect_angle(b)
    v = a.dtype.type(4 / np.pi ** 2) * (angle_gap * angle_gap)
    alpha = _safe_divide(v, 1 - iou + v + eps)  # the weight grows as the boxes overlap more
    return diou - alpha * v


def _mm_iou(a, b, eps):
    inter = _intersection(a, b)
    return _safe_divide(inter, np.maximum(_area(a) + _area(b) - inter, eps))


def _mm_iof(a, b, eps):
    return _safe_divide(_intersection(a, b), np.maximum(_area(a), eps))


def _mm_giou(a, b, eps):
    inter = _intersection(a, b)
    union = np.maximum(_area(a) + _area(b) - inter, eps)
    enclosing_w, enclosing_h = _enclosing_size(a, b)
    enclosing = np.maximum(enclosing_w * enclosing_h, eps)
    return _safe_divide(inter, union) - _safe_divide(enclosing - union, enclosing)


_FORMULAS = {IOA: _ioa, DIOU: _distance_iou, CIOU: _complete_iou, MM_IOU: _mm_iou, MM_IOF: _mm_iof,
             MM_GIOU: _mm_giou}


def overlaps_numpy(kind: int, boxes1: np.ndarray, boxes2: np.ndarray, eps) -> np.ndarray:
    """NumPy reference, pairwise: clean (N, 4), (M, 4) arrays of one float dtype -> (N, M), in row chunks."""
    formula = _FORMULAS[kind]
    n, m = boxes1.shape[0], boxes2.shape[0]
    out = np.empty((n, m), dtype=boxes1.dtype)
    step = max(1, _PAIRS_PER_CHUNK // max(m, 1))
    for start in range(0, n, step):
        # (rows, 1, 4) against (1, M, 4): every formula broadcasts to (rows, M)
        out[start:start + step] = formula(boxes1[start:start + step, None, :], boxes2[None, :, :], eps)
    return out


def overlaps_aligned_numpy(kind: int, boxes1: np.ndarray, boxes2: np.ndarray, eps) -> np.ndarray:
    """NumPy reference, aligned: clean (N, 4), (N, 4) arrays of one float dtype -> (N,)."""
    return np.ascontiguousarray(_FORMULAS[kind](boxes1, boxes2, eps), dtype=boxes1.dtype)


# Numba measured ahead of Cython here (`python benchmarks/run.py --only iou_variants`, 2-core machine,
# 2026-11-30: DIoU 50 x 50,000 float32 40 vs 99 ms, CIoU 60 vs 117 ms, IoA 15 vs 67 ms), so it is the default.
_MEASURED_PREFERENCE = ("numba", "cython", "numpy")
_overlaps = Dispatcher("iou_variants", reference=overlaps_numpy, preference=_MEASURED_PREFERENCE,
                       numba="iou_variants_numba:overlaps", cython="iou_variants_cython:overlaps",
                       cuda="iou_variants_cuda:overlaps")
_overlaps_aligned = Dispatcher("iou_variants_aligned", reference=overlaps_aligned_numpy,
                               preference=_MEASURED_PREFERENCE,
                               numba="iou_variants_numba:overlaps_aligned",
                               cython="iou_variants_cython:overlaps_aligned",
                               cuda="iou_variants_cuda:overlaps_aligned")


# --- the checked public layer -----------------------------------------------------------------------------

def _clean_batch(boxes, name: str):
    """(N, 4) or (B, N, 4) boxes -> (C-contiguous float array of the same shape), checked as `as_boxes` does."""
    array = np.asarray(boxes)
    if array.ndim not in (2, 3) or array.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) or (B, N, 4), got {tuple(array.shape)}")
    return as_boxes(array.reshape(-1, 4), name).reshape(array.shape)


def _inclusive_to_continuous(boxes: np.ndarray, offset: int) -> np.ndarray:
    """Boxes whose x2, y2 are inclusive pixels, as continuous boxes: a copy with x2 + offset, y2 + offset.

    Every width, overlap and enclosing width of the copy is then ``x2 - x1 + offset`` (mmcv's ``offset=1``
    formulas): the same numbers for integer coordinates, and within rounding of the added 1 otherwise."""
    shifted = boxes.astype(np.result_type(boxes.dtype, np.float32), copy=True)
    shifted[..., 2:] += offset
    return shifted


def _check_not_inverted(boxes: np.ndarray, name: str) -> None:
    flat = boxes.reshape(-1, 4)
    inverted = np.flatnonzero((flat[:, 2] < flat[:, 0]) | (flat[:, 3] < flat[:, 1]))
    if inverted.size:
        i = int(inverted[0])
        raise ValueError(f"{name} must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1; box "
                         f"{np.unravel_index(i, boxes.shape[:-1])} is {flat[i].tolist()}")


def _compute(kind: int, boxes1, boxes2, eps, aligned: bool, op: str, backend, offset: int = 0):
    if not isinstance(aligned, (bool, np.bool_)):
        raise TypeError(f"{op}: the aligned flag must be a bool, got {type(aligned).__name__}")
    eps = check_scalar(eps, "eps", low=0)
    offset = check_scalar(offset, "offset", low=0, high=1, integer=True)
    kernel = (_overlaps_aligned if aligned else _overlaps).get(backend)
    b1 = _clean_batch(boxes1, "boxes1")
    b2 = _clean_batch(boxes2, "boxes2")
    if offset:
        b1, b2 = _inclusive_to_continuous(b1, offset), _inclusive_to_continuous(b2, offset)
    if b1.ndim != b2.ndim or b1.shape[:-2] != b2.shape[:-2]:
        raise ValueError(f"boxes1 and boxes2 must both be (N, 4) or both (B, N, 4) with the same B; got "
                         f"{b1.shape} and {b2.shape}")
    if aligned and b1.shape[-2] != b2.shape[-2]:
        raise ValueError(f"aligned: boxes1 and boxes2 must hold as many boxes; got {b1.shape[-2]} and "
                         f"{b2.shape[-2]}")
    _check_not_inverted(b1, "boxes1")
    _check_not_inverted(b2, "boxes2")
    dtype = common_float_dtype(b1, b2)
    b1, b2 = b1.astype(dtype, copy=False), b2.astype(dtype, copy=False)
    eps = dtype(eps)  # the kernels compute in the boxes' dtype, eps included (as torch does)
    batch = b1.shape[:-2]
    n, m = b1.shape[-2], b2.shape[-2]
    if aligned:
        if n == 0:
            return np.zeros(batch + (0,), dtype=dtype)
        return kernel(kind, b1.reshape(-1, 4), b2.reshape(-1, 4), eps).reshape(batch + (n,))
    shape = batch + (n, m)
    check_allocation(shape, np.dtype(dtype).itemsize, f"{op}'s pairwise output (boxes1: {b1.shape}, "
                                                      f"boxes2: {b2.shape})")
    if n == 0 or m == 0:
        return np.zeros(shape, dtype=dtype)
    if not batch:
        return kernel(kind, b1, b2, eps)
    out = np.empty(shape, dtype=dtype)
    for k in range(batch[0]):
        out[k] = kernel(kind, b1[k], b2[k], eps)
    return out


def distance_box_iou(boxes1, boxes2, eps: float = 1e-7, aligned: bool = False,
                     backend: str | None = None) -> np.ndarray:
    """Distance IoU (DIoU, Zheng et al. 2020) of every pair of boxes, as torchvision's `distance_box_iou`.

    boxes1: (N, 4), boxes2: (M, 4) ``(x1, y1, x2, y2)`` -> (N, M); or (B, N, 4), (B, M, 4) -> (B, N, M);
    ``aligned=True``: (N, 4), (N, 4) -> (N,) (or (B, N)). ``diou = iou - d^2 / (c^2 + eps)`` with d the
    distance between the two centres and c the diagonal of the smallest box enclosing both; in [-1, 1].
    IoU 0 where the union is 0 (torchvision: NaN). `backend`: None (the fastest CPU one), "numpy", "numba",
    "cython" or "cuda"; every backend gives the reference's bits (cuda on a real GPU: within a few ulp, FMAs).
    """
    return _compute(DIOU, boxes1, boxes2, eps, aligned, "distance_box_iou", backend)


def complete_box_iou(boxes1, boxes2, eps: float = 1e-7, aligned: bool = False,
                     backend: str | None = None) -> np.ndarray:
    """Complete IoU (CIoU, Zheng et al. 2020) of every pair of boxes, as torchvision's `complete_box_iou`.

    Shapes as `distance_box_iou`. ``ciou = diou - alpha * v`` with
    ``v = 4 / pi^2 * (atan(w1 / h1) - atan(w2 / h2))^2`` and ``alpha = v / (1 - iou + v + eps)``.
    A flat box (h == 0 < w) has the angle pi / 2, a point (w == h == 0) the angle 0 (torchvision: NaN).
    Backends agree to the last bit or two (each one's ``atan``; bitwise on the development machine).
    """
    return _compute(CIOU, boxes1, boxes2, eps, aligned, "complete_box_iou", backend)


def box_ioa(boxes1, boxes2, aligned: bool = False, backend: str | None = None) -> np.ndarray:
    """Intersection over the area of the FIRST box, of every pair (mmcv's ``mode="iof"``).

    Shapes as `distance_box_iou`. ``ioa[i, j] = area(b1_i ∩ b2_j) / area(b1_i)`` in [0, 1]: 1 where b1_i
    lies inside b2_j, so it is not symmetric. A first box of zero area (or one whose area underflows to 0)
    gets 0 (mmdetection's ``bbox_overlaps(mode="iof")`` divides by ``max(area, eps)`` instead).
    """
    return _compute(IOA, boxes1, boxes2, 0.0, aligned, "box_ioa", backend)


def bbox_overlaps(boxes1, boxes2, mode: str = "iou", is_aligned: bool = False, eps: float = 1e-6,
                  backend: str | None = None, *, offset: int = 0) -> np.ndarray:
    """mmdetection's ``bbox_overlaps``: IoU, IoF or GIoU with eps-clamped denominators.

    Shapes as `distance_box_iou` (``is_aligned`` is its ``aligned``). `mode`: ``"iou"``:
    ``inter / max(union, eps)``; ``"iof"``: ``inter / max(area1, eps)``; ``"giou"``:
    ``iou - (max(area(C), eps) - max(union, eps)) / max(area(C), eps)``, C the enclosing box. So pairs whose
    union is below eps (tiny boxes) get ``inter / eps``, not their IoU: use `box_iou` / `box_ioa` for exact
    ratios. ``eps=0`` is allowed: a zero denominator then gives 0. `offset`: 0 (default) or 1, mmcv's
    ``bbox_overlaps(..., offset=1)``: x2, y2 are inclusive pixels, so every width (areas, overlaps, the
    enclosing box) is ``x2 - x1 + 1``, as `box_iou(..., offset=1)`; computed as ``offset=0`` on boxes with
    ``x2 + 1, y2 + 1`` (docs/conventions.md).
    """
    if not isinstance(mode, str) or mode not in _BBOX_OVERLAPS_MODES:
        raise ValueError(f"mode must be one of {tuple(_BBOX_OVERLAPS_MODES)}, got {mode!r}")
    return _compute(_BBOX_OVERLAPS_MODES[mode], boxes1, boxes2, eps, is_aligned, "bbox_overlaps", backend, offset)
