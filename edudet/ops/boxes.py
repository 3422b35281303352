"""Boxes: area, IoU, generalized IoU, format conversion, clipping, small-box removal.

Boxes are (N, 4) arrays in ``(x1, y1, x2, y2)`` format with ``0 <= x1 <= x2`` and ``0 <= y1 <= y2``
unless said otherwise; width is ``x2 - x1`` (no +1: continuous coordinates, as in torchvision).
float32 and float64 are preserved; integer boxes compute in float32.

The legacy pixel convention: `box_area`, `box_iou` and `generalized_box_iou` take ``offset=1`` for boxes whose
``x2, y2`` are inclusive pixel indices (maskrcnn-benchmark's ``TO_REMOVE = 1``, Detectron v1, old mmdetection,
mmcv's ``offset=1``): every width is then ``x2 - x1 + 1``, so [0, 0, 9, 9] covers 10 x 10 = 100 pixels
instead of the 81 of the default ``offset=0``. docs/conventions.md puts the conventions side by side.

Coordinates must lie in [-1e15, 1e15] (`edudet._validate.COORDINATE_LIMIT`; larger ones raise a `ValueError`
naming the argument): then no width, area, union or enclosing area can overflow, in float32 either, and every
backend gives the reference's values. Tiny boxes are fine too: where areas underflow to 0 (sides of 1e-30
in float32, 1e-300 in float64) a zero union gives IoU 0, never NaN and never a division by zero.

Fast twins live under `edudet.kernels`: `box_area`, `box_iou`, `generalized_box_iou` and `masks_to_boxes` in
``boxes_numba``, ``boxes_cython`` and ``boxes_cuda``; `box_convert` in ``boxes_numba``. The functions here are
the NumPy references a learner reads first (the ``*_numpy`` functions) and the checked layer in front of the
kernels.
"""
from __future__ import annotations

import numpy as np

from .._dispatch import Dispatcher
from .._validate import (COORDINATE_LIMIT, as_boxes, as_image_size, check_allocation, check_scalar,
                         common_float_dtype)

__all__ = [
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "box_convert",
    "clip_boxes_to_image",
    "remove_small_boxes",
    "masks_to_boxes",
]

_FORMATS = ("xyxy", "xywh", "cxcywh")
# The NumPy references work on row chunks of about this many pairs: their (rows, M, 2) temporaries then stay
# at tens of MB, whatever N and M (only the (N, M) output grows with them).
_PAIRS_PER_CHUNK = 1 << 20


def box_area(boxes, fmt: str = "xyxy", backend: str | None = None, *, offset: int = 0) -> np.ndarray:
    """Area of each box.

    boxes: (N, 4) in `fmt` (``'xyxy'``, ``'xywh'`` or ``'cxcywh'``, see `box_convert`). Returns (N,)
    ``(x2 - x1 + offset) * (y2 - y1 + offset)`` for xyxy and ``w * h`` for the other two, in the boxes'
    float dtype. `offset`: 0 (torchvision, continuous coordinates) or 1 (x2, y2 are inclusive pixels, as in
    maskrcnn-benchmark and Detectron v1: [0, 0, 9, 9] has area 100, not 81; xyxy only, see
    docs/conventions.md). `backend` (xyxy only): None (the fastest CPU one), "numpy", "numba", "cython" or
    "cuda"; every backend gives the same bits.
    """
    _check_format(fmt, "fmt")
    offset = _check_offset(offset, fmt)
    kernel = _box_area.get(backend)
    boxes = _clean_boxes(boxes, "boxes")
    if fmt != "xyxy":  # the size is stored: no subtraction, exactly as torchvision
        return boxes[:, 2] * boxes[:, 3]
    return kernel(boxes, offset)


def _check_offset(offset, fmt: str = "xyxy") -> int:
    """0 or 1 (the pixel convention); 1 only for xyxy boxes, whose x2, y2 it reinterprets."""
    if type(offset) is not int or offset not in (0, 1):  # plain 0/1 skip check_scalar's ~5 us (box_area: ~2%)
        offset = check_scalar(offset, "offset", low=0, high=1, integer=True)
    if offset and fmt != "xyxy":
        raise ValueError(f"offset=1 (inclusive x2, y2) applies to fmt='xyxy' boxes only, got fmt={fmt!r}")
    return offset


def _areas(boxes: np.ndarray, offset: int = 0) -> np.ndarray:
    if offset:  # inclusive pixels: a box from column 0 to column 9 is 10 pixels wide
        return (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_area_numpy(boxes: np.ndarray, offset: int = 0) -> np.ndarray:
    """NumPy reference of `box_area` on clean (N, 4) xyxy boxes: `_areas` with one temporary less."""
    widths = np.subtract(boxes[:, 2], boxes[:, 0])
    heights = np.subtract(boxes[:, 3], boxes[:, 1])
    if offset:  # only here: the default path stays two subtractions and a product
        widths += offset
        heights += offset
    return np.multiply(widths, heights, out=widths)


def _clean_boxes(boxes, name: str) -> np.ndarray:
    """`as_boxes(boxes, name)`, with a fast path for input that is already a C-contiguous (N, 4) float array.

    For such an array one min and one max (no temporaries) prove every coordinate finite and within
    +-COORDINATE_LIMIT (a NaN makes both NaN); anything else, or a failure, goes through `as_boxes`, which
    gives its usual messages. Two reductions instead of isfinite and abs temporaries matter for the O(n) ops,
    whose whole cost is a few passes over the array.
    """
    if (isinstance(boxes, np.ndarray) and boxes.dtype.type in (np.float32, np.float64) and boxes.ndim == 2
            and boxes.shape[1] == 4 and boxes.flags.c_contiguous):
        if boxes.size == 0:
            return boxes
        if -COORDINATE_LIMIT <= boxes.min() and boxes.max() <= COORDINATE_LIMIT:
            return boxes
    return as_boxes(boxes, name)


def _box_inter_union(boxes1: np.ndarray, boxes2: np.ndarray, offset: int = 0):
    """(N, M) intersection and union areas of every pair (`offset` 1: x2, y2 are inclusive pixels)."""
    area1 = _areas(boxes1, offset)
    area2 = _areas(boxes2, offset)
    left_top = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    right_bottom = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    wh = right_bottom - left_top
    if offset:  # [0, 9] and [5, 14] share the pixels 5..9: 5 of them, not 9 - 5 = 4
        wh += offset
    wh = np.clip(wh, 0, None)  # disjoint boxes overlap by 0, not a negative amount
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


def box_iou_numpy(boxes1: np.ndarray, boxes2: np.ndarray, offset: int = 0) -> np.ndarray:
    """NumPy reference of `box_iou` on clean (N, 4) and (M, 4) arrays of one float dtype."""
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    for rows in _row_chunks(*out.shape):
        inter, union = _box_inter_union(boxes1[rows], boxes2, offset)
        out[rows] = _safe_divide(inter, union)
    return out


_box_area = Dispatcher("box_area", reference=box_area_numpy, numba="boxes_numba:box_area",
                       cython="boxes_cython:box_areas", cuda="boxes_cuda:box_areas")

_box_iou = Dispatcher(
    "box_iou",
    reference=box_iou_numpy,
    numba="boxes_numba:box_iou",
    cython="boxes_cython:box_iou",
    cuda="boxes_cuda:box_iou",
)


def _pair(boxes1, boxes2, op: str):
    """Both box sets in their common float dtype, after checking that the (N, M) output fits in memory."""
    b1 = _clean_boxes(boxes1, "boxes1")
    b2 = _clean_boxes(boxes2, "boxes2")
    dtype = common_float_dtype(b1, b2)
    check_allocation((b1.shape[0], b2.shape[0]), np.dtype(dtype).itemsize,
                     f"{op}'s (N, M) output (boxes1: N = {b1.shape[0]}, boxes2: M = {b2.shape[0]})")
    return b1.astype(dtype, copy=False), b2.astype(dtype, copy=False)


def box_iou(boxes1, boxes2, fmt: str = "xyxy", backend: str | None = None, *, offset: int = 0) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    boxes1: (N, 4), boxes2: (M, 4), both in `fmt` (``'xyxy'`` by default, or ``'xywh'``, ``'cxcywh'``).
    Returns (N, M) with ``iou[i, j] = area(b1_i ∩ b2_j) / area(b1_i ∪ b2_j)`` in [0, 1]; a pair whose
    union has zero area (two degenerate boxes, or boxes so tiny that their areas underflow to 0) gets 0,
    where torchvision gives NaN. float64 if either input is float64, else float32. Coordinates beyond
    +-1e15 raise a `ValueError`, and so does an (N, M) output above edudet's allocation limit (4 GiB by
    default, ``EDUDET_MAX_BYTES``): the message gives the sizes. xywh and cxcywh boxes are converted to
    xyxy first, so their areas can differ from torchvision's ``w * h`` in the last bit. `backend`: None (the
    fastest CPU one), "numpy", "numba", "cython" or "cuda". GPU arrays (numba device arrays, CuPy: anything
    with ``__cuda_array_interface__``, xyxy) go to the "cuda" backend and give a device array, with no host
    round trip: their structure is checked, their values are not (that would copy them to the host).
    `offset`: 0 (torchvision) or 1 (x2, y2 inclusive pixels, maskrcnn-benchmark's ``boxlist_iou``; xyxy
    only): widths and overlaps gain 1, so [0, 0, 9, 9] and [5, 5, 14, 14] give 25 / 175 = 0.1429 instead
    of 16 / 146 = 0.1096 (docs/conventions.md).
    """
    _check_format(fmt, "fmt")
    offset = _check_offset(offset, fmt)
    if is_device_array(boxes1) or is_device_array(boxes2):
        if fmt != "xyxy":
            raise ValueError(f"fmt must be 'xyxy' for GPU arrays, got {fmt!r}")
        return _box_iou.get(device_backend(backend, "box_iou"))(boxes1, boxes2, offset)
    kernel = _box_iou.get(backend)
    b1, b2 = _pair(boxes1, boxes2, "box_iou")
    if fmt != "xyxy":
        b1, b2 = _to_xyxy(b1, fmt), _to_xyxy(b2, fmt)
    if b1.shape[0] == 0 or b2.shape[0] == 0:
        return np.zeros((b1.shape[0], b2.shape[0]), dtype=b1.dtype)
    return kernel(b1, b2, offset)


def generalized_box_iou(boxes1, boxes2, backend: str | None = None, *, offset: int = 0) -> np.ndarray:
    """Generalized IoU (Rezatofighi et al., 2019) of every pair of boxes.

    boxes1: (N, 4), boxes2: (M, 4) ``(x1, y1, x2, y2)``. Returns (N, M) in [-1, 1], float64 if either
    input is float64, else float32: ``giou = iou - (area(C) - union) / area(C)`` with C the smallest box
    enclosing both. Where the union has zero area (degenerate boxes, or areas that underflow to 0) the IoU
    is 0, and where C has zero area (the same point twice) the penalty is 0; torchvision gives NaN for both.
    So two tiny disjoint boxes whose areas underflow but whose enclosing box does not get -1. Inverted
    boxes (``x2 < x1`` or ``y2 < y1``) raise a `ValueError`: their "areas" are meaningless here (GIoU could
    exceed IoU). Same coordinate bound and allocation check as `box_iou`; computed in row chunks, so the
    temporaries stay small. `offset`: 0 (torchvision) or 1 (x2, y2 inclusive pixels: every width, overlap
    and enclosing width gains 1, as mmcv's ``bbox_overlaps(mode="giou", offset=1)``; a box then needs only
    ``x2 >= x1 - 1``). `backend`: None (the fastest CPU one), "numpy", "numba", "cython" or "cuda"; same
    bits on each (cuda on a real GPU: within a few ulp, FMAs).
    """
    offset = _check_offset(offset)
    kernel = _generalized_box_iou_kernels.get(backend)
    b1, b2 = _pair(boxes1, boxes2, "generalized_box_iou")
    for boxes, name in ((b1, "boxes1"), (b2, "boxes2")):
        # with inclusive pixels x2 = x1 - 1 is an empty box (width 0), not an inverted one
        inverted = np.flatnonzero((boxes[:, 2] + offset < boxes[:, 0]) | (boxes[:, 3] + offset < boxes[:, 1]))
        if inverted.size:
            i = int(inverted[0])
            rule = "x2 >= x1 - 1 and y2 >= y1 - 1 (offset=1)" if offset else "x2 >= x1 and y2 >= y1"
            raise ValueError(f"{name} must be (x1, y1, x2, y2) with {rule}; box {i} is {boxes[i].tolist()}")
    if b1.shape[0] == 0 or b2.shape[0] == 0:
        return np.zeros((b1.shape[0], b2.shape[0]), dtype=b1.dtype)
    return kernel(b1, b2, offset)


def generalized_box_iou_numpy(boxes1: np.ndarray, boxes2: np.ndarray, offset: int = 0) -> np.ndarray:
    """NumPy reference of `generalized_box_iou` on clean (N, 4) and (M, 4) arrays of one float dtype."""
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    for rows in _row_chunks(*out.shape):
        out[rows] = _generalized_box_iou(boxes1[rows], boxes2, offset)
    return out


def _generalized_box_iou(b1: np.ndarray, b2: np.ndarray, offset: int = 0) -> np.ndarray:
    inter, union = _box_inter_union(b1, b2, offset)
    iou = _safe_divide(inter, union)
    enclosing_lt = np.minimum(b1[:, None, :2], b2[None, :, :2])
    enclosing_rb = np.maximum(b1[:, None, 2:], b2[None, :, 2:])
    wh = enclosing_rb - enclosing_lt
    if offset:
        wh += offset
    wh = np.clip(wh, 0, None)
    enclosing_area = wh[..., 0] * wh[..., 1]
    return iou - _safe_divide(enclosing_area - union, enclosing_area)


_generalized_box_iou_kernels = Dispatcher("generalized_box_iou", reference=generalized_box_iou_numpy,
                                          numba="boxes_numba:generalized_box_iou",
                                          cython="boxes_cython:generalized_box_iou",
                                          cuda="boxes_cuda:generalized_box_iou")


def is_device_array(array) -> bool:
    """True for a GPU array: ``__cuda_array_interface__`` (numba, CuPy) or numba's simulated device arrays."""
    return not isinstance(array, np.ndarray) and (hasattr(array, "__cuda_array_interface__")
                                                  or type(array).__name__ == "FakeCUDAArray")


def device_backend(backend, op: str) -> str:
    """The backend for GPU-array input: "cuda" (None means it too); any other name is a ValueError."""
    if backend not in (None, "cuda"):
        raise ValueError(f"{op}: GPU arrays need backend='cuda' (or None), got {backend!r}")
    return "cuda"


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


def box_convert_numpy(boxes: np.ndarray, in_fmt: str, out_fmt: str) -> np.ndarray:
    """NumPy reference of `box_convert` on a clean (N, 4) float array: a new C-contiguous (N, 4) array."""
    if in_fmt == out_fmt:
        return boxes.copy()
    return np.ascontiguousarray(_from_xyxy(_to_xyxy(boxes, in_fmt), out_fmt))


_box_convert = Dispatcher("box_convert", reference=box_convert_numpy, numba="boxes_numba:box_convert")


def box_convert(boxes, in_fmt: str, out_fmt: str, backend: str | None = None) -> np.ndarray:
    """Convert (N, 4) boxes between ``'xyxy'``, ``'xywh'`` and ``'cxcywh'``.

    xyxy: corners ``(x1, y1, x2, y2)``; xywh: top-left corner and size ``(x1, y1, w, h)``;
    cxcywh: centre and size ``(cx, cy, w, h)``. Any conversion passes through xyxy, as torchvision's does.
    Returns a new (N, 4) array in the boxes' float dtype. `backend`: None (the fastest CPU one), "numpy" or
    "numba" (one pass over the rows, no temporaries); every backend gives the same bits.
    """
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    kernel = _box_convert.get(backend)
    boxes = _clean_boxes(boxes, "boxes")
    return kernel(boxes, in_fmt, out_fmt)


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


def masks_to_boxes(masks, backend: str | None = None) -> np.ndarray:
    """The tight box around each mask's nonzero pixels, as torchvision's `masks_to_boxes`.

    masks: (N, H, W), bool or any real dtype (nonzero = inside). Returns (N, 4) float32
    ``(x1, y1, x2, y2)`` = (smallest column, smallest row, largest column, largest row) holding a nonzero
    pixel: pixel indices, so a one-pixel mask at row 2, column 5 gives [5, 2, 5, 2] (the box is in the
    inclusive-pixel convention: its area as pixels is ``box_area(boxes, offset=1)``, docs/conventions.md).
    An empty (all-zero) mask gives [0, 0, 0, 0], as torchvision does. N = 0 gives (0, 4); H = 0 or W = 0
    gives N rows of zeros (torchvision returns (0, 4) there, losing the N). NaN in float masks raises a
    `ValueError`. `backend`: None (the fastest CPU one), "numpy", "numba", "cython" or "cuda"; the same
    values on each.
    """
    kernel = _masks_to_boxes.get(backend)
    masks = _clean_masks(masks)
    if masks.shape[0] == 0 or masks.shape[1] == 0 or masks.shape[2] == 0:
        return np.zeros((masks.shape[0], 4), dtype=np.float32)
    return kernel(masks)


def _clean_masks(masks) -> np.ndarray:
    """(N, H, W) masks as a C-contiguous uint8 array of 0/1 (a bool input is viewed, not copied)."""
    if isinstance(masks, (list, tuple)):
        masks = np.asarray(masks)
    if not isinstance(masks, np.ndarray):
        raise TypeError(f"masks must be a NumPy array (N, H, W), got {type(masks).__name__}")
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {masks.shape}")
    if masks.dtype == np.bool_:
        return np.ascontiguousarray(masks).view(np.uint8)
    if not (np.issubdtype(masks.dtype, np.integer) or np.issubdtype(masks.dtype, np.floating)):
        raise TypeError(f"masks must be bool or a real dtype, got {masks.dtype}")
    if np.issubdtype(masks.dtype, np.floating) and np.isnan(masks).any():
        raise ValueError("masks contains NaN: a pixel must be zero (outside) or nonzero (inside)")
    return np.ascontiguousarray(masks != 0).view(np.uint8)  # != keeps a Fortran input's layout


def masks_to_boxes_numpy(masks: np.ndarray) -> np.ndarray:
    """NumPy reference of `masks_to_boxes` on clean, nonempty (N, H, W) uint8 0/1 masks -> (N, 4) float32."""
    height, width = masks.shape[1:]
    rows = np.any(masks, axis=2)  # (N, H): which rows hold a pixel of the mask
    columns = np.any(masks, axis=1)  # (N, W): which columns do
    # argmax finds the first True; on the reversed axis it finds the last one, counted from the end
    y1 = rows.argmax(axis=1)
    y2 = height - 1 - rows[:, ::-1].argmax(axis=1)
    x1 = columns.argmax(axis=1)
    x2 = width - 1 - columns[:, ::-1].argmax(axis=1)
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)
    boxes[~rows.any(axis=1)] = 0  # an empty mask: argmax gave 0 and H - 1; torchvision's [0, 0, 0, 0]
    return boxes


_masks_to_boxes = Dispatcher("masks_to_boxes", reference=masks_to_boxes_numpy, numba="boxes_numba:masks_to_boxes",
                             cython="boxes_cython:masks_to_boxes", cuda="boxes_cuda:masks_to_boxes")
