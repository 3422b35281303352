"""Boxes: area, IoU, generalized IoU, format conversion, clipping, small-box removal.

Boxes are (N, 4) arrays in ``(x1, y1, x2, y2)`` format with ``0 <= x1 <= x2`` and ``0 <= y1 <= y2``
unless said otherwise; width is ``x2 - x1`` (no +1: continuous coordinates, as in torchvision).
float32 and float64 are preserved; integer boxes compute in float32.

Coordinates must lie in [-1e15, 1e15] (`edudet._validate.COORDINATE_LIMIT`; larger ones raise a `ValueError`
naming the argument): then no width, area, union or enclosing area can overflow, in float32 either, and every
backend gives the reference's values. Tiny boxes are fine too: where areas underflow to 0 (sides of 1e-30
in float32, 1e-300 in float64) a zero union gives IoU 0, never NaN and never a division by zero.

`box_iou` has fast twins under `edudet.kernels` (``boxes_numba``, ``boxes_cython``, ``boxes_cuda``);
the functions here are the NumPy reference a learner reads first.
"""
from __future__ import annotations

import numpy as np

from .._dispatch import Dispatcher
from .._validate import as_boxes, as_image_size, check_allocation, check_scalar, common_float_dtype

__all__ = [
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "box_convert",
    "clip_boxes_to_image",
    "remove_small_boxes",
]

_FORMATS = ("xyxy", "xywh", "cxcywh")
# The NumPy references work on row chunks of about this many pairs: their (rows, M, 2) temporaries then stay
# at tens of MB, whatever N and M (only the (N, M) output grows with them).
_PAIRS_PER_CHUNK = 1 << 20


def box_area(boxes, fmt: str = "xyxy") -> np.ndarray:
    """Area of each box.

    boxes: (N, 4) in `fmt` (``'xyxy'``, ``'xywh'`` or ``'cxcywh'``, see `box_convert`). Returns (N,)
    ``(x2 - x1) * (y2 - y1)`` for xyxy and ``w * h`` for the other two, in the boxes' float dtype.
    """
    _check_format(fmt, "fmt")
    boxes = as_boxes(boxes)
    if fmt != "xyxy":  # the size is stored: no subtraction, exactly as torchvision
        return boxes[:, 2] * boxes[:, 3]
    return _box_area(boxes)


def _box_area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _box_inter_union(boxes1: np.ndarray, boxes2: np.ndarray):
    """(N, M) intersection and union areas of every pair."""
    area1 = _box_area(boxes1)
    area2 = _box_area(boxes2)
    left_top = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    right_bottom = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    wh = np.clip(right_bottom - left_top, 0, None)  # disjoint boxes overlap by 0, not a negative amount
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return inter, union


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, and 0 where the denominator is not positive (zero-area pairs: 0, never NaN)."""
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _row_chunks(n: int, m: int):
    """Slices of the rows 0..n, each holding about `_PAIRS_PER_CHUNK` of the n x m pairs."""
    step = max(1, _PAIRS_PER_CHUNK // max(m, 1))
    return [slice(start, start + step) for start in range(0, n, step)]


def box_iou_numpy(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """NumPy reference of `box_iou` on clean (N, 4) and (M, 4) arrays of one float dtype."""
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    for rows in _row_chunks(*out.shape):
        inter, union = _box_inter_union(boxes1[rows], boxes2)
        out[rows] = _safe_divide(inter, union)
    return out


_box_iou = Dispatcher(
    "box_iou",
    reference=box_iou_numpy,
    numba="boxes_numba:box_iou",
    cython="boxes_cython:box_iou",
    cuda="boxes_cuda:box_iou",
)


def _pair(boxes1, boxes2, op: str):
    """Both box sets in their common float dtype, after checking that the (N, M) output fits in memory."""
    b1 = as_boxes(boxes1, "boxes1")
    b2 = as_boxes(boxes2, "boxes2")
    dtype = common_float_dtype(b1, b2)
    check_allocation((b1.shape[0], b2.shape[0]), np.dtype(dtype).itemsize,
                     f"{op}'s (N, M) output (boxes1: N = {b1.shape[0]}, boxes2: M = {b2.shape[0]})")
    return b1.astype(dtype, copy=False), b2.astype(dtype, copy=False)


def box_iou(boxes1, boxes2, fmt: str = "xyxy", backend: str | None = None) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    boxes1: (N, 4), boxes2: (M, 4), both in `fmt` (``'xyxy'`` by default, or ``'xywh'``, ``'cxcywh'``).
    Returns (N, M) with ``iou[i, j] = area(b1_i ∩ b2_j) / area(b1_i ∪ b2_j)`` in [0, 1]; a pair whose
    union has zero area (two degenerate boxes, or boxes so tiny that their areas underflow to 0) gets 0,
    where torchvision gives NaN. float64 if either input is float64, else float32. Coordinates beyond
    +-1e15 raise a `ValueError`, and so does an (N, M) output above edudet's allocation limit (4 GiB by
    default, ``EDUDET_MAX_BYTES``): the message gives the sizes. xywh and cxcywh boxes are converted to
    xyxy first, so their areas can differ from torchvision's ``w * h`` in the last bit. `backend`: None (the
    fastest CPU one), "numpy", "numba", "cython" or "cuda".
    """
    _check_format(fmt, "fmt")
    kernel = _box_iou.get(backend)
    b1, b2 = _pair(boxes1, boxes2, "box_iou")
    if fmt != "xyxy":
        b1, b2 = _to_xyxy(b1, fmt), _to_xyxy(b2, fmt)
    if b1.shape[0] == 0 or b2.shape[0] == 0:
        return np.zeros((b1.shape[0], b2.shape[0]), dtype=b1.dtype)
    return kernel(b1, b2)


def generalized_box_iou(boxes1, boxes2) -> np.ndarray:
    """Generalized IoU (Rezatofighi et al., 2019) of every pair of boxes.

    boxes1: (N, 4), boxes2: (M, 4) ``(x1, y1, x2, y2)``. Returns (N, M) in [-1, 1], float64 if either
    input is float64, else float32: ``giou = iou - (area(C) - union) / area(C)`` with C the smallest box
    enclosing both. Where the union has zero area (degenerate boxes, or areas that underflow to 0) the IoU
    is 0, and where C has zero area (the same point twice) the penalty is 0; torchvision gives NaN for both.
    So two tiny disjoint boxes whose areas underflow but whose enclosing box does not get -1. Inverted
    boxes (``x2 < x1`` or ``y2 < y1``) raise a `ValueError`: their "areas" are meaningless here (GIoU could
    exceed IoU). Same coordinate bound and allocation check as `box_iou`; computed in row chunks, so the
    temporaries stay small.
    """
    b1, b2 = _pair(boxes1, boxes2, "generalized_box_iou")
    for boxes, name in ((b1, "boxes1"), (b2, "boxes2")):
        inverted = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
        if inverted.size:
            i = int(inverted[0])
            raise ValueError(f"{name} must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1; box {i} is "
                             f"{boxes[i].tolist()}")
    out = np.empty((b1.shape[0], b2.shape[0]), dtype=b1.dtype)
    for rows in _row_chunks(*out.shape):
        out[rows] = _generalized_box_iou(b1[rows], b2)
    return out


def _generalized_box_iou(b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    inter, union = _box_inter_union(b1, b2)
    iou = _safe_divide(inter, union)
    enclosing_lt = np.minimum(b1[:, None, :2], b2[None, :, :2])
    enclosing_rb = np.maximum(b1[:, None, 2:], b2[None, :, 2:])
    wh = np.clip(enclosing_rb - enclosing_lt, 0, None)
    enclosing_area = wh[..., 0] * wh[..., 1]
    return iou - _safe_divide(enclosing_area - union, enclosing_area)


def _check_format(fmt, name: str) -> None:
    if not isinstance(fmt, str) or fmt not in _FORMATS:
        raise ValueError(f"{name} must be one of {_FORMATS}, got {fmt!r}")


def _to_xyxy(boxes: np.ndarray, fmt: str) -> np.ndarray:
    a, b, c, d = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    if fmt == "xywh":  # (x, y, w, h): top-left corner and size
        return np.stack([a, b, a + c, b + d], axis=1)
    if fmt == "cxcywh":  # (cx, cy, w, h): centre and size; 0.5 * w is exact, so either half is the same
        return np.stack([a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d], axis=1)
    return boxes


def _from_xyxy(boxes: np.ndarray, fmt: str) -> np.ndarray:
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    if fmt == "xywh":
        return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    if fmt == "cxcywh":
        return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)
    return boxes


def box_convert(boxes, in_fmt: str, out_fmt: str) -> np.ndarray:
    """Convert (N, 4) boxes between ``'xyxy'``, ``'xywh'`` and ``'cxcywh'``.

    xyxy: corners ``(x1, y1, x2, y2)``; xywh: top-left corner and size ``(x1, y1, w, h)``;
    cxcywh: centre and size ``(cx, cy, w, h)``. Any conversion passes through xyxy, as torchvision's does.
    """
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    boxes = as_boxes(boxes)
    if in_fmt == out_fmt:
        return boxes.copy()
    return np.ascontiguousarray(_from_xyxy(_to_xyxy(boxes, in_fmt), out_fmt))


def clip_boxes_to_image(boxes, size) -> np.ndarray:
    """Clip (N, 4) ``(x1, y1, x2, y2)`` boxes to an image of ``size = (height, width)``.

    x coordinates are clamped to [0, width], y to [0, height] (the image's continuous extent). Returns a
    new (N, 4) array in the boxes' float dtype.
    """
    boxes = as_boxes(boxes)
    height, width = as_image_size(size, "size")
    out = boxes.copy()
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out


def remove_small_boxes(boxes, min_size: float) -> np.ndarray:
    """Indices of the boxes large enough to keep.

    boxes: (N, 4) ``(x1, y1, x2, y2)``. Returns (K,) int64 indices, ascending, of the boxes with
    ``x2 - x1 >= min_size`` and ``y2 - y1 >= min_size``; the comparison is made in the boxes' dtype, as
    torchvision's. `min_size` must be >= 0.
    """
    boxes = as_boxes(boxes)
    min_size = check_scalar(min_size, "min_size", low=0)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return np.flatnonzero((widths >= min_size) & (heights >= min_size)).astype(np.int64)
