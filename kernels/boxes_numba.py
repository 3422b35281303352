"""Numba twins of `edudet.ops.boxes`: box_iou, generalized_box_iou, box_area, box_convert, masks_to_boxes, pair IoU.

Stable public names (all ``@njit(cache=True)``: callable from Python and from a user's own ``@njit`` code):

``iou_xyxy(a, b) -> float``  (``inline="always"``)
    IoU of two boxes, each a length-4 array (a row ``boxes[i]`` is fine) ``(x1, y1, x2, y2)`` of one float
    dtype; the result has that dtype; 0 where the union is not positive. No checks at all.
``iou_xyxy_offset(a, b, offset) -> float``  (``inline="always"``)
    the same with the pixel convention `offset` (0, or 1: x2, y2 inclusive, every width ``x2 - x1 + 1``).
``box_area(boxes, offset=0) -> (N,)``
    ``(x2 - x1 + offset) * (y2 - y1 + offset)`` of each row of an (N, 4) array.
``box_convert(boxes, in_fmt, out_fmt) -> (N, 4)``
    between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"`` (a new array, also when the formats are equal).
``box_iou(boxes1, boxes2, offset=0) -> (N, M)``
    IoU of every pair; 0 where the union is not positive (torchvision: NaN).
``generalized_box_iou(boxes1, boxes2, offset=0) -> (N, M)``
    GIoU of every pair; IoU 0 where the union is 0 and penalty 0 where the enclosing box has area 0.
``masks_to_boxes(masks) -> (N, 4) float32``
    (N, H, W) C-contiguous uint8 or bool masks -> the min/max column and row of each mask's nonzero pixels
    ``(x1, y1, x2, y2)``; [0, 0, 0, 0] for an empty mask (torchvision's).

`offset` (0 or 1, not checked here: `edudet.ops` checks it) is added to every width and height, intersection
and enclosing box included, in the boxes' dtype: ``w = (x2 - x1) + offset``, as the reference.

Input: (N, 4) C-contiguous float32 or float64 arrays ``(x1, y1, x2, y2)``; two box sets must share one dtype;
the result has that dtype. Every pair is computed in the NumPy reference's order,
``inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))``, ``union = area1 + area2 - inter``,
``iou = inter / union`` (no fastmath, no reassociation): results are bitwise those of `edudet.ops`.

What each entry checks (a ``ValueError`` naming the argument): every array entry checks structure (2-D with 4
columns, C-contiguous, a float dtype, both sets of one dtype); `box_iou` and `generalized_box_iou` also scan
their boxes for NaN and inf (O(N + M) against O(N M) work). Not checked, being `edudet.ops`' job: the
coordinate bound of 1e15 (finite coordinates beyond it give inf areas and IoU 0, never NaN, never a crash),
inverted boxes (``x2 < x1``: GIoU is then meaningless), and, in `box_area` and `box_convert` (O(n) work, where
a scan would cost as much as the op), NaN and inf, which propagate to the output.

Example (user code)::

    from numba import njit
    from edudet.kernels.boxes_numba import box_iou, iou_xyxy

    @njit
    def best_overlap(gt, anchors):          # (G, 4), (A, 4) float32, C-contiguous
        return box_iou(gt, anchors).max(), iou_xyxy(gt[0], anchors[0])

Why `box_iou` is faster than the reference: the reference builds four (N, M, 2) temporaries; here each pair is
a few register operations written straight into the output. The second set is split into coordinate columns
(structure of arrays) with its areas precomputed, so the inner loop over it is unit-stride and SIMD
vectorises; the output is cut into row segments that `prange` spreads over every core whichever of N or M is
the larger (small matrices stay on one core).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

# columns per parallel task: long enough to keep the SIMD loop busy, short enough to balance the cores
_SEGMENT = 8192
# below this many pairs one core is faster than waking the others
_PARALLEL_MIN_PAIRS = 65536


# --- structural checks (decided at compile time from the array types, so they cost nothing) -------------------

def _same_dtype(a, b):
    return a.dtype == b.dtype


@overload(_same_dtype)
def _same_dtype_numba(a, b):
    same = a.dtype == b.dtype
    return lambda a, b: same


def _is_float(a):
    return a.dtype.kind == "f"


@overload(_is_float)
def _is_float_numba(a):
    floating = isinstance(a.dtype, types.Float)
    return lambda a: floating


def _byte_masks(masks):
    return masks.view(np.uint8)


@overload(_byte_masks)
def _byte_masks_numba(masks):
    """(N, H, W) C-contiguous uint8/bool masks as uint8; anything else a ValueError naming masks. Decided at
    typing time (like `_dimension_guard`), so the rest of the entry is typed with a clean 3-D array."""
    ndim, layout, dtype = (getattr(masks, attr, None) for attr in ("ndim", "layout", "dtype"))
    if ndim == 3 and layout == "C" and (dtype == types.uint8 or isinstance(dtype, types.Boolean)):
        return lambda masks: masks.view(np.uint8)
    if ndim != 3:
        message = "masks must have shape (N, H, W)"
    elif layout != "C":
        message = "masks must be C-contiguous (np.ascontiguousarray)"
    else:
        message = "masks must be uint8 or bool"

    def refuse(masks):
        if masks.size >= 0:  # always true, known at run time only: keeps the typed return reachable
            raise ValueError(message)
        return np.zeros((0, 1, 1), dtype=np.uint8)
    return refuse


def _dimension_guard(name, ndim):
    """A function f(array) for njit code: the array itself if it has `ndim` dimensions, else a ValueError naming
    `name`. Chosen at typing time, so that the rest of an entry is typed with arrays of the right rank (an
    if-statement would still type the rest with the wrong rank and fail with a TypingError instead)."""
    def guard(array):
        return array

    @overload(guard)
    def guard_numba(array):
        if getattr(array, "ndim", None) == ndim:
            return lambda array: array
        message = f"{name} must have shape (N, 4)" if ndim == 2 else f"{name} must have shape (N,)"

        # `size >= 0` is always true but known only at run time; it keeps the return reachable, so that the rest of the entry is typed
        # with a (placeholder) array of the right rank
        def refuse_matrix(array):
            if array.size >= 0:
                raise ValueError(message)
            return np.empty((0, 4), dtype=np.float64)

        def refuse_vector(array):
            if array.size >= 0:
                raise ValueError(message)
            return np.empty(0, dtype=np.float64)
        return refuse_matrix if ndim == 2 else refuse_vector

    return guard


_matrix_boxes = _dimension_guard("boxes", 2)
_matrix_boxes1 = _dimension_guard("boxes1", 2)
_matrix_boxes2 = _dimension_guard("boxes2", 2)
_vector_scores = _dimension_guard("scores", 1)
_vector_idxs = _dimension_guard("idxs", 1)


@njit(cache=True)
def _check_box_pair(boxes1, boxes2):
    if boxes1.ndim != 2 or boxes1.shape[1] != 4:
        raise ValueError("boxes1 must have shape (N, 4)")
    if boxes2.ndim != 2 or boxes2.shape[1] != 4:
        raise ValueError("boxes2 must have shape (M, 4)")
    if not boxes1.flags.c_contiguous:
        raise ValueError("boxes1 must be C-contiguous (np.ascontiguousarray)")
    if not boxes2.flags.c_contiguous:
        raise ValueError("boxes2 must be C-contiguous (np.ascontiguousarray)")
    if not _is_float(boxes1):
        raise ValueError("boxes1 must be float32 or float64")
    if not _same_dtype(boxes1, boxes2):
        raise ValueError("boxes1 and boxes2 must have the same dtype")
    if not _all_finite(boxes1):
        raise ValueError("boxes1 contains NaN or inf")
    if not _all_finite(boxes2):
        raise ValueError("boxes2 contains NaN or inf")


@njit(cache=True)
def _check_one(boxes):
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError("boxes must have shape (N, 4)")
    if not boxes.flags.c_contiguous:
        raise ValueError("boxes must be C-contiguous (np.ascontiguousarray)")
    if not _is_float(boxes):
        raise ValueError("boxes must be float32 or float64")


@njit(cache=True)
def _all_finite(array):
    """True iff no entry is NaN or inf (x - x is 0 for a finite x, NaN otherwise)."""
    acc = array.dtype.type(0)
    for value in array.flat:  # any layout: the entry's contiguity check runs first, but numba types all of it
        acc += value - value
    return acc == 0


# --- the scalar building block ----------------------------------------------------------------------------

@njit(inline="always", cache=True)
def iou_xyxy(a, b):
    """IoU of boxes a and b, two length-4 ``(x1, y1, x2, y2)`` arrays of one float dtype; 0 if the union is 0."""
    zero = a.dtype.type(0)
    w = max(min(a[2], b[2]) - max(a[0], b[0]), zero)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), zero)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > zero else zero


@njit(inline="always", cache=True)
def iou_xyxy_offset(a, b, offset):
    """`iou_xyxy` with the pixel convention: `offset` 1 makes x2, y2 inclusive (every width x2 - x1 + 1)."""
    zero = a.dtype.type(0)
    one = a.dtype.type(offset)
    w = max(min(a[2], b[2]) - max(a[0], b[0]) + one, zero)
    h = max(min(a[3], b[3]) - max(a[1], b[1]) + one, zero)
    inter = w * h
    union = (a[2] - a[0] + one) * (a[3] - a[1] + one) + (b[2] - b[0] + one) * (b[3] - b[1] + one) - inter
    return inter / union if union > zero else zero


# --- box_area and box_convert ------------------------------------------------------------------------------

@njit(cache=True)
def _areas(boxes, offset=0):
    n = boxes.shape[0]
    out = np.empty(n, dtype=boxes.dtype)
    if offset == 0:  # the default convention keeps its two-subtraction loop
        for i in range(n):
            out[i] = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        return out
    one = boxes.dtype.type(offset)
    for i in range(n):
        out[i] = (boxes[i, 2] - boxes[i, 0] + one) * (boxes[i, 3] - boxes[i, 1] + one)
    return out


@njit(cache=True)
def box_area(boxes, offset=0):
    """(N, 4) xyxy boxes -> (N,) areas ``(x2 - x1 + offset) * (y2 - y1 + offset)`` (values not checked)."""
    boxes = _matrix_boxes(boxes)
    _check_one(boxes)
    return _areas(boxes, offset)


@njit(cache=True)
def _format_code(fmt):
    """0, 1, 2 for "xyxy", "xywh", "cxcywh" (compared once, outside the row loop); -1 for anything else."""
    if fmt == "xyxy":
        return 0
    if fmt == "xywh":
        return 1
    if fmt == "cxcywh":
        return 2
    return -1


@njit(cache=True)
def box_convert(boxes, in_fmt, out_fmt):
    """(N, 4) boxes in `in_fmt` -> a new (N, 4) array in `out_fmt`, the reference's arithmetic row by row."""
    boxes = _matrix_boxes(boxes)
    _check_one(boxes)
    source = _format_code(in_fmt)
    target = _format_code(out_fmt)
    if source < 0 or target < 0:
        raise ValueError("in_fmt and out_fmt must be 'xyxy', 'xywh' or 'cxcywh'")
    out = np.empty(boxes.shape, dtype=boxes.dtype)
    if source == target:
        out[:] = boxes
        return out
    half = boxes.dtype.type(0.5)
    two = boxes.dtype.type(2)
    for i in range(boxes.shape[0]):
        a = boxes[i, 0]
        b = boxes[i, 1]
        c = boxes[i, 2]
        d = boxes[i, 3]
        if source == 1:  # (x, y, w, h)
            x1, y1, x2, y2 = a, b, a + c, b + d
        elif source == 2:  # (cx, cy, w, h)
            x1, y1, x2, y2 = a - half * c, b - half * d, a + half * c, b + half * d
        else:
            x1, y1, x2, y2 = a, b, c, d
        if target == 1:
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = x1, y1, x2 - x1, y2 - y1
        elif target == 2:
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = (x1 + x2) / two, (y1 + y2) / two, x2 - x1, y2 - y1
        else:
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = x1, y1, x2, y2
    return out


# --- box_iou -----------------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _row_iou(ax1, ay1, ax2, ay2, area1, bx1, by1, bx2, by2, area2, out, one):
    """IoU of one box against a run of columns. A loop from 0 over its own slices (rather than over a
    start..stop range of the full arrays) and numpy's error model (no ZeroDivisionError branch) are what
    let LLVM vectorise it."""
    # +0 of the boxes' dtype (a bare 0.0 literal would promote float32 to float64); not area1 - area1, which
    # is NaN for an infinite area
    zero = out.dtype.type(0)
    for j in range(out.shape[0]):
        w = max(min(ax2, bx2[j]) - max(ax1, bx1[j]) + one, zero)
        h = max(min(ay2, by2[j]) - max(ay1, by1[j]) + one, zero)
        inter = w * h
        union = area1 + area2[j] - inter
        out[j] = inter / union if union > zero else zero


@njit(cache=True)
def _columns(boxes2, offset):
    """boxes2 as four unit-stride coordinate columns plus its areas."""
    return (np.ascontiguousarray(boxes2[:, 0]), np.ascontiguousarray(boxes2[:, 1]),
            np.ascontiguousarray(boxes2[:, 2]), np.ascontiguousarray(boxes2[:, 3]), _areas(boxes2, offset))


@njit(cache=True, parallel=True)
def _box_iou_parallel(boxes1, boxes2, offset):
    n = boxes1.shape[0]
    m = boxes2.shape[0]
    out = np.empty((n, m), dtype=boxes1.dtype)
    one = boxes1.dtype.type(offset)
    area1 = _areas(boxes1, offset)
    bx1, by1, bx2, by2, area2 = _columns(boxes2, offset)
    segments = (m + _SEGMENT - 1) // _SEGMENT
    for task in prange(n * segments):
        i = task // segments
        start = (task % segments) * _SEGMENT
        stop = min(start + _SEGMENT, m)
        _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i],
                 bx1[start:stop], by1[start:stop], bx2[start:stop], by2[start:stop], area2[start:stop],
                 out[i, start:stop], one)
    return out


@njit(cache=True)
def _box_iou_serial(boxes1, boxes2, offset):
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    one = boxes1.dtype.type(offset)
    area1 = _areas(boxes1, offset)
    bx1, by1, bx2, by2, area2 = _columns(boxes2, offset)
    for i in range(boxes1.shape[0]):
        _row_iou(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], area1[i], bx1, by1, bx2, by2, area2, out[i],
                 one)
    return out


@njit(cache=True)
def box_iou(boxes1, boxes2, offset=0):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) IoU (see the module docstring)."""
    boxes1 = _matrix_boxes1(boxes1)
    boxes2 = _matrix_boxes2(boxes2)
    _check_box_pair(boxes1, boxes2)
    # waking the thread pool costs more than a small matrix takes on one core
    if boxes1.shape[0] * boxes2.shape[0] < _PARALLEL_MIN_PAIRS:
        return _box_iou_serial(boxes1, boxes2, offset)
    return _box_iou_parallel(boxes1, boxes2, offset)


# --- generalized_box_iou -----------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _row_giou(i, boxes1, area1, boxes2, area2, out, one):
    zero = out.dtype.type(0)
    ax1 = boxes1[i, 0]
    ay1 = boxes1[i, 1]
    ax2 = boxes1[i, 2]
    ay2 = boxes1[i, 3]
    for j in range(boxes2.shape[0]):
        w = max(min(ax2, boxes2[j, 2]) - max(ax1, boxes2[j, 0]) + one, zero)
        h = max(min(ay2, boxes2[j, 3]) - max(ay1, boxes2[j, 1]) + one, zero)
        inter = w * h
        union = area1[i] + area2[j] - inter
        iou = inter / union if union > zero else zero
        ew = max(max(ax2, boxes2[j, 2]) - min(ax1, boxes2[j, 0]) + one, zero)
        eh = max(max(ay2, boxes2[j, 3]) - min(ay1, boxes2[j, 1]) + one, zero)
        enclosing = ew * eh
        out[i, j] = iou - ((enclosing - union) / enclosing if enclosing > zero else zero)


@njit(cache=True, parallel=True)
def _giou_parallel(boxes1, area1, boxes2, area2, out, one):
    for i in prange(boxes1.shape[0]):
        _row_giou(i, boxes1, area1, boxes2, area2, out, one)


@njit(cache=True)
def generalized_box_iou(boxes1, boxes2, offset=0):
    """(N, 4), (M, 4) boxes of one float dtype -> (N, M) generalized IoU (see the module docstring)."""
    boxes1 = _matrix_boxes1(boxes1)
    boxes2 = _matrix_boxes2(boxes2)
    _check_box_pair(boxes1, boxes2)
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    one = boxes1.dtype.type(offset)
    area1 = _areas(boxes1, offset)
    area2 = _areas(boxes2, offset)
    if boxes1.shape[0] * boxes2.shape[0] < _PARALLEL_MIN_PAIRS or boxes1.shape[0] < 2:
        for i in range(boxes1.shape[0]):
            _row_giou(i, boxes1, area1, boxes2, area2, out, one)
    else:
        _giou_parallel(boxes1, area1, boxes2, area2, out, one)
    return out


# --- masks_to_boxes ----------------------------------------------------------------------------------------
# One pass over each mask, OR-ing every row into a "columns seen" accumulator and into a "row seen" flag: the
# loop has no branch, so it vectorises. When a row is a whole number of 8-byte words it runs on uint64 words
# (8 pixels per OR); x1 and x2 are then the first and last nonzero bytes of the accumulator. One read of the
# mask, where np.any per axis (the reference, torchvision) reads it twice.

@njit(cache=True)
def _store_box(out, columns, y1, y2):
    """out = (x1, y1, x2, y2) from the (W,) byte accumulator of the columns seen, or zeros for y1 < 0."""
    if y1 < 0:  # an empty mask: torchvision's [0, 0, 0, 0]
        out[:] = 0
        return
    x1 = 0
    while columns[x1] == 0:
        x1 += 1
    x2 = columns.shape[0] - 1
    while columns[x2] == 0:
        x2 -= 1
    out[0], out[1], out[2], out[3] = x1, y1, x2, y2


@njit(cache=True)
def _mask_box_words(words, width, out):
    """One mask as (H, W / 8) uint64 words (W a multiple of 8)."""
    seen = np.zeros(words.shape[1], dtype=np.uint64)
    y1, y2 = -1, -1
    for y in range(words.shape[0]):
        hit = np.uint64(0)
        for x in range(words.shape[1]):
            value = words[y, x]
            seen[x] |= value
            hit |= value
        if hit != 0:
            if y1 < 0:
                y1 = y
            y2 = y
    _store_box(out, seen.view(np.uint8), y1, y2)


@njit(cache=True)
def _mask_box_bytes(mask, out):
    """One (H, W) uint8 mask, any W."""
    seen = np.zeros(mask.shape[1], dtype=np.uint8)
    y1, y2 = -1, -1
    for y in range(mask.shape[0]):
        hit = 0
        for x in range(mask.shape[1]):
            value = mask[y, x]
            seen[x] |= value
            hit |= value
        if hit != 0:
            if y1 < 0:
                y1 = y
            y2 = y
    _store_box(out, seen, y1, y2)


@njit(cache=True)
def _mask_box(masks, k, out):
    height, width = masks.shape[1], masks.shape[2]
    if width % 8 == 0:
        _mask_box_words(masks[k].reshape(height * width).view(np.uint64).reshape(height, width // 8), width, out)
    else:
        _mask_box_bytes(masks[k], out)


@njit(cache=True)
def masks_to_boxes(masks):
    """(N, H, W) C-contiguous uint8 (0/1) or bool masks -> (N, 4) float32 boxes (see the module docstring).

    One core: the op reads memory once and does almost nothing else, and on a busy machine a second thread
    made it 4x slower (waiting at the join), never faster."""
    pixels = _byte_masks(masks)  # bool and uint8 alike: one byte per pixel
    out = np.zeros((pixels.shape[0], 4), dtype=np.float32)
    if pixels.size == 0:
        return out
    for k in range(pixels.shape[0]):
        _mask_box(pixels, k, out[k])
    return out
