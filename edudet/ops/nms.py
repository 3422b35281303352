"""Non-maximum suppression: greedy NMS, batched (per-category) NMS and Soft-NMS.

Boxes are (N, 4) arrays in ``(x1, y1, x2, y2)`` format, scores are (N,). A detector proposes many boxes
around each object; NMS keeps the highest-scoring box of each cluster and drops the boxes that overlap it
too much. The functions here are the NumPy references a learner reads first; the fast twins live in
`edudet.kernels` (``nms_numba``, ``nms_cython``, ``nms_cuda``) with the same signatures and the same
results, index for index.

IoU is computed exactly as torchvision's CPU kernel computes it, in the boxes' dtype: areas
``(x2 - x1) * (y2 - y1)``, intersection sides ``min(x2) - max(x1)`` clamped at 0,
``iou = inter / (area_i + area_j - inter)``, and the comparison ``iou > iou_threshold`` made in double
precision (a float32 IoU against a float64 threshold, as C++ promotes it). A pair that does not overlap
never suppresses, and a pair whose union is 0 has IoU 0: where torchvision divides 0 by 0 (two zero-area
boxes, or boxes so small that their areas underflow, e.g. sides of 1e-30 in float32 or 1e-300 in float64)
it gets NaN, and ``NaN > t`` is false, so edudet gives identical results without ever producing a NaN or
dividing by zero. Coordinates are limited to [-1e15, 1e15] (`edudet._validate.COORDINATE_LIMIT`; larger
ones raise a `ValueError` naming `boxes`), so no width, area or union can overflow, in float32 either.
"""
from __future__ import annotations

import math

import numpy as np

from .._dispatch import Dispatcher
from .._validate import as_boxes, as_int_labels, as_scores, check_scalar, common_float_dtype
from .boxes import device_backend, is_device_array

__all__ = ["nms", "batched_nms", "soft_nms"]


# ---------------------------------------------------------------------------------------------------------
# NumPy references (clean, C-contiguous float arrays in; the public functions below validate)
# ---------------------------------------------------------------------------------------------------------

def _areas(boxes: np.ndarray, offset: int = 0) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)


def _iou_one_to_many(box: np.ndarray, area, others: np.ndarray, other_areas: np.ndarray) -> np.ndarray:
    """IoU of one box with each of `others`, with torchvision's arithmetic; 0 wherever they do not overlap
    or their union is 0 (areas that underflow)."""
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    inter = w * h
    # (area + other_areas) - inter, in that order: float addition is not associative and we want
    # torchvision's exact rounding
    union = area + other_areas - inter
    iou = np.zeros_like(inter)
    np.divide(inter, union, out=iou, where=(w > 0) & (h > 0) & (union > 0))
    return iou


def _descending_order(scores: np.ndarray) -> np.ndarray:
    """Indices by decreasing score, ties by increasing index (torchvision sorts with a stable sort)."""
    return np.argsort(-scores, kind="stable")


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NumPy reference of `nms`: the greedy loop, one kept box against all later ones per step."""
    order = _descending_order(scores)
    sorted_boxes = boxes[order]
    areas = _areas(sorted_boxes)
    threshold = np.float64(iou_threshold)  # a float32 IoU is compared in double, as in C++
    suppressed = np.zeros(len(order), dtype=bool)
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        later = slice(rank + 1, None)
        iou = _iou_one_to_many(sorted_boxes[rank], areas[rank], sorted_boxes[later], areas[later])
        suppressed[later] |= iou > threshold
    return order[~suppressed].astype(np.int64)


def batched_nms_numpy(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NumPy reference of `batched_nms`: plain NMS inside each category, then one merge by score."""
    keep = np.zeros(len(scores), dtype=bool)
    # one sort groups the categories (a scan per category would be quadratic with many categories)
    by_category = np.argsort(idxs, kind="stable")
    sorted_idxs = idxs[by_category]
    for members in np.split(by_category, np.flatnonzero(sorted_idxs[1:] != sorted_idxs[:-1]) + 1):
        keep[members[nms_numpy(boxes[members], scores[members], iou_threshold)]] = True
    kept = np.flatnonzero(keep)
    return kept[_descending_order(scores[kept])].astype(np.int64)


SOFT_NMS_METHODS = {"naive": 0, "linear": 1, "gaussian": 2}  # mmcv's codes, shared by every backend


def _compact_like_swap_with_last(dropped: np.ndarray) -> np.ndarray:
    """Positions, in their new order, of the survivors after mmcv's "move the last box into the hole".

    mmcv drops a box at position p by moving the last live box into p (and re-examining p). The survivors
    that sit before the new end stay where they are; the holes there, in increasing order, are filled by the
    survivors beyond the new end taken from the back. This order decides later ties, so it is kept.
    """
    n_kept = len(dropped) - int(dropped.sum())
    positions = np.arange(n_kept)
    holes = np.flatnonzero(dropped[:n_kept])
    movers = n_kept + np.flatnonzero(~dropped[n_kept:])
    positions[holes] = movers[::-1]
    return positions


def soft_nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, sigma: float,
                   score_threshold: float, method: int, offset: int):
    """NumPy reference of `soft_nms` (`method` is a code of `SOFT_NMS_METHODS`); returns (dets, keep)."""
    dtype = boxes.dtype.type
    # mmcv's kernel takes its thresholds as C floats: they are compared in the boxes' dtype
    threshold, sigma, min_score = dtype(iou_threshold), dtype(sigma), dtype(score_threshold)
    boxes, scores = boxes.copy(), scores.copy()
    areas = _areas(boxes, offset)
    index = np.arange(len(scores), dtype=np.int64)
    dets = np.empty((len(scores), 5), dtype=dtype)
    live = len(scores)  # boxes at positions [0, live) are still in play
    i = 0
    while i < live:
        # the earliest position holding the highest score (mmcv scans with a strict '<')
        best = i + int(np.argmax(scores[i:live]))
        for array in (boxes, scores, areas, index):
            array[[i, best]] = array[[best, i]]
        dets[i, :4], dets[i, 4] = boxes[i], scores[i]

        rest = slice(i + 1, live)
        iou = _soft_iou_one_to_many(boxes[i], areas[i], boxes[rest], areas[rest], offset)
        if method == 0:  # naive: hard suppression
            weight = np.where(iou >= threshold, dtype(0), dtype(1))
        elif method == 1:  # linear: decay by the overlap, above the threshold only
            weight = np.where(iou >= threshold, dtype(1) - iou, dtype(1))
        else:  # gaussian: decay every box by exp(-iou^2 / sigma)
            # the exponent in the dtype (as mmcv), exp in double with the C library's exp (math.exp, as the
            # compiled kernels call it; NumPy's own exp differs in the last bit), rounded once to the dtype
            exponent = -(iou * iou) / sigma
            weight = np.array([math.exp(v) for v in exponent.tolist()], dtype=np.float64).astype(dtype)
        scores[rest] *= weight
        dropped = scores[rest] < min_score
        survivors = i + 1 + _compact_like_swap_with_last(dropped)
        for array in (boxes, scores, areas, index):
            array[i + 1: i + 1 + len(survivors)] = array[survivors]
        live = i + 1 + len(survivors)
        i += 1
    return dets[:live].copy(), index[:live].copy()


def _soft_iou_one_to_many(box, area, others, other_areas, offset):
    """mmcv's IoU (sides ``min - max + offset`` clamped at 0); 0 where the union is not positive."""
    w = np.maximum(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]) + offset, 0)
    h = np.maximum(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]) + offset, 0)
    inter = (w * h).astype(box.dtype, copy=False)
    union = area + other_areas - inter
    iou = np.zeros_like(inter)
    np.divide(inter, union, out=iou, where=union > 0)
    return iou


_nms = Dispatcher("nms", reference=nms_numpy, numba="nms_numba:nms", cython="nms_cython:nms",
                  cuda="nms_cuda:nms")
_batched_nms = Dispatcher("batched_nms", reference=batched_nms_numpy, numba="nms_numba:batched_nms",
                          cython="nms_cython:batched_nms", cuda="nms_cuda:batched_nms")
_soft_nms = Dispatcher("soft_nms", reference=soft_nms_numpy, numba="nms_numba:soft_nms",
                       cython="nms_cython:soft_nms")


# ---------------------------------------------------------------------------------------------------------
# Public functions: validate once, then call the chosen kernel
# ---------------------------------------------------------------------------------------------------------

def _boxes_and_scores(boxes, scores):
    boxes = as_boxes(boxes, "boxes")
    scores = as_scores(scores, boxes.shape[0], "scores")
    return boxes, scores


def _iou_threshold(value) -> float:
    return check_scalar(value, "iou_threshold", low=0)


def nms(boxes, scores, iou_threshold: float, backend: str | None = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    boxes: (N, 4) ``(x1, y1, x2, y2)``; scores: (N,). Returns (K,) int64 indices of the kept boxes in
    decreasing score order. Visiting boxes by decreasing score, a box is kept unless its IoU with an
    already kept box is strictly greater than `iou_threshold`. Equal scores are visited by increasing
    index, so the result is index-for-index that of ``torchvision.ops.nms`` (whose CPU kernel sorts with a
    stable sort). Boxes of zero area never suppress and are never suppressed.

    `backend`: None (the fastest CPU one), "numpy", "numba", "cython" or "cuda". The CPU kernels skip pairs
    that cannot overlap with a uniform grid of cells; the CUDA kernel computes 64 x 64 blocks of
    suppression bitmasks (the scheme of the GPU kernels of Faster R-CNN and torchvision), scanned on the host.
    GPU arrays (``__cuda_array_interface__``) go to "cuda" and give a device array of indices; their
    structure is checked, their values are not (that would copy them to the host).
    """
    if is_device_array(boxes) or is_device_array(scores):  # GPU in, GPU out: structure checked, values not
        return _nms.get(device_backend(backend, "nms"))(boxes, scores, _iou_threshold(iou_threshold))
    kernel = _nms.get(backend)
    boxes, scores = _boxes_and_scores(boxes, scores)
    threshold = _iou_threshold(iou_threshold)
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return kernel(boxes, scores, threshold)


def batched_nms(boxes, scores, idxs, iou_threshold: float, backend: str | None = None) -> np.ndarray:
    """Non-maximum suppression done independently per category.

    boxes: (N, 4) ``(x1, y1, x2, y2)``; scores: (N,); idxs: (N,) integer category (or image) of each box.
    Returns (K,) int64 indices of the kept boxes in decreasing score order (ties by increasing index):
    the union of `nms` run on each category alone, so boxes of different categories never suppress each
    other. Same result as ``torchvision.ops.batched_nms``.

    The coordinate-offset trick: torchvision (for small inputs) shifts every box by
    ``idx * (max_coordinate + 1)`` so that categories land in disjoint regions and one plain NMS call does
    the job. It is neat, but the shifted coordinates are large: in float32 they lose low-order bits (at
    80 categories of an 800-px image, coordinates near 64,000 are rounded to 1/256 px), so an IoU near the
    threshold can flip, and negative coordinates or idxs break the separation. edudet runs the greedy
    loop per category instead (inside the kernel, one category after another), which computes every IoU
    from the original coordinates; torchvision does the same for large inputs (more than 1000 boxes on the
    CPU), and there the kept sets agree exactly. One difference in order: torchvision merges those
    per-category results with an unstable sort, so kept boxes with exactly equal scores can come out in
    another order there; edudet always lists equal scores by increasing index.
    """
    if is_device_array(boxes) or is_device_array(scores) or is_device_array(idxs):
        return _batched_nms.get(device_backend(backend, "batched_nms"))(boxes, scores, idxs,
                                                                       _iou_threshold(iou_threshold))
    kernel = _batched_nms.get(backend)
    boxes, scores = _boxes_and_scores(boxes, scores)
    idxs = as_int_labels(idxs, boxes.shape[0], "idxs")
    threshold = _iou_threshold(iou_threshold)
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return kernel(boxes, scores, idxs, threshold)


def soft_nms(boxes, scores, iou_threshold: float = 0.3, sigma: float = 0.5, score_threshold: float = 1e-3,
             method: str = "linear", offset: int = 0, backend: str | None = None):
    """Soft-NMS: decay the scores of overlapping boxes instead of dropping them (Bodla et al., 2017).

    boxes: (N, 4) ``(x1, y1, x2, y2)``; scores: (N,). Returns ``(dets, keep)``: dets (K, 5)
    ``(x1, y1, x2, y2, score)`` with the decayed scores, in the order the boxes were selected, and keep
    (K,) int64 indices of those boxes in the input. Repeatedly the highest-scoring remaining box is
    selected and every remaining box's score is multiplied by a weight of its IoU with it:
    ``1 - iou`` if ``iou >= iou_threshold`` else 1 (``"linear"``), ``exp(-iou**2 / sigma)``
    (``"gaussian"``, `iou_threshold` unused) or 0 if ``iou >= iou_threshold`` (``"naive"``, hard NMS);
    a box whose score falls below `score_threshold` is dropped.

    Semantics of ``mmcv.ops.soft_nms``: its CPU kernel compares with ``>=`` and in the boxes' dtype (its
    thresholds are C floats), keeps the first-selected box even when its own score is below
    `score_threshold` (the score test happens only after a decay), and drops a box by moving the last
    live box into its slot, which decides how later ties are broken; all of that is reproduced here.
    Areas are ``(x2 - x1 + offset) * (y2 - y1 + offset)``: mmcv's default ``offset=0`` (continuous
    coordinates, as torchvision); ``offset=1`` is the legacy pixel-inclusive convention of the original
    Soft-NMS code. Where mmcv divides 0 by 0 (two zero-area boxes) and gets NaN, edudet uses IoU 0.
    float32 and float64 are computed in their own dtype (mmcv: float32 only); the gaussian weight
    ``exp(-iou**2 / sigma)`` takes its exponent in the dtype and ``exp`` in double, rounded once to the dtype
    (mmcv calls ``expf``; for float32 the numba backend does too, as LLVM turns one into the other: the
    weights of those can differ from the other backends' by one float32 ulp, rarely).
    """
    if not isinstance(method, str):  # a list or array would not even hash
        raise TypeError(f"method must be a string, one of {list(SOFT_NMS_METHODS)}, got {type(method).__name__}")
    if method not in SOFT_NMS_METHODS:
        raise ValueError(f"method must be one of {list(SOFT_NMS_METHODS)}, got {method!r}")
    kernel = _soft_nms.get(backend)
    boxes, scores = _boxes_and_scores(boxes, scores)
    dtype = common_float_dtype(boxes, scores)
    boxes, scores = boxes.astype(dtype, copy=False), scores.astype(dtype, copy=False)
    threshold = _iou_threshold(iou_threshold)
    sigma = check_scalar(sigma, "sigma", low=0, low_inclusive=False)
    if method == "gaussian" and not dtype(sigma) > 0:  # it divides by sigma in the dtype: 1e-300 is 0 in float32
        raise ValueError(f"sigma={sigma:g} rounds to 0 in {np.dtype(dtype).name}; give a value that dtype can hold")
    score_threshold = check_scalar(score_threshold, "score_threshold", low=0)
    offset = check_scalar(offset, "offset", low=0, high=1, integer=True)
    if boxes.shape[0] == 0:
        return np.zeros((0, 5), dtype=dtype), np.zeros(0, dtype=np.int64)
    return kernel(boxes, scores, threshold, sigma, score_threshold, SOFT_NMS_METHODS[method], offset)
