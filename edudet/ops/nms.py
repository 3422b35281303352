"""Non-maximum suppression: greedy NMS, batched (per-category) NMS, Soft-NMS and mmcv's `nms_match`.

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

Conventions a learner meets when comparing libraries, all selectable here: ``offset=1`` (legacy inclusive
pixels: ``w = x2 - x1 + 1``, maskrcnn-benchmark, Detectron v1, mmcv ``offset=1``) on `nms`, `batched_nms`
and `soft_nms`; mmcv's ``score_threshold`` (keep ``score > t`` before NMS) and ``max_num`` (the best k
after) on `nms` and `batched_nms`; and `nms_match`, whose rule is ``iou >= t`` (not ``>``).
"""
from __future__ import annotations

import math

import numpy as np

from .._dispatch import Dispatcher
from .._validate import as_boxes, as_int_labels, as_scores, check_coordinates, check_scalar, common_float_dtype
from .boxes import device_backend, is_device_array

__all__ = ["nms", "batched_nms", "soft_nms", "nms_match"]


# ---------------------------------------------------------------------------------------------------------
# NumPy references (clean, C-contiguous float arrays in; the public functions below validate)
# ---------------------------------------------------------------------------------------------------------

def _areas(boxes: np.ndarray, offset: int = 0) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)


def _iou_one_to_many(box: np.ndarray, area, others: np.ndarray, other_areas: np.ndarray,
                     offset: int = 0) -> np.ndarray:
    """IoU of one box with each of `others`, with torchvision's arithmetic; 0 wherever they do not overlap
    or their union is 0 (areas that underflow). `offset` 1: inclusive pixels (sides ``min - max + 1``)."""
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]) + offset
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]) + offset
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


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, offset: int = 0) -> np.ndarray:
    """NumPy reference of `nms`: the greedy loop, one kept box against all later ones per step."""
    order = _descending_order(scores)
    sorted_boxes = boxes[order]
    areas = _areas(sorted_boxes, offset)
    threshold = np.float64(iou_threshold)  # a float32 IoU is compared in double, as in C++
    suppressed = np.zeros(len(order), dtype=bool)
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        later = slice(rank + 1, None)
        iou = _iou_one_to_many(sorted_boxes[rank], areas[rank], sorted_boxes[later], areas[later], offset)
        suppressed[later] |= iou > threshold
    return order[~suppressed].astype(np.int64)


def batched_nms_numpy(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, iou_threshold: float,
                      offset: int = 0) -> np.ndarray:
    """NumPy reference of `batched_nms`: plain NMS inside each category, then one merge by score."""
    keep = np.zeros(len(scores), dtype=bool)
    # one sort groups the categories (a scan per category would be quadratic with many categories)
    by_category = np.argsort(idxs, kind="stable")
    sorted_idxs = idxs[by_category]
    for members in np.split(by_category, np.flatnonzero(sorted_idxs[1:] != sorted_idxs[:-1]) + 1):
        keep[members[nms_numpy(boxes[members], scores[members], iou_threshold, offset)]] = True
    kept = np.flatnonzero(keep)
    return kept[_descending_order(scores[kept])].astype(np.int64)


def nms_match_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list:
    """NumPy reference of `nms_match`: greedy NMS that also records whom each kept box suppressed.

    Returns a list of int64 arrays, one per kept box in decreasing score order: the kept box's index, then
    the indices of the boxes it suppressed, by decreasing score. mmcv's rule, which differs from `nms`:
    a box is matched when ``iou >= iou_threshold`` (not ``>``), compared in the boxes' dtype (mmcv: float32
    only, the threshold a C float); sides are clamped at 0, so at threshold 0 even disjoint boxes match; a
    pair whose union is 0 never matches (mmcv: 0 / 0 = NaN, and NaN >= t is false).
    """
    order = _descending_order(scores)
    sorted_boxes = boxes[order]
    areas = _areas(sorted_boxes)
    threshold = boxes.dtype.type(iou_threshold)
    suppressed = np.zeros(len(order), dtype=bool)
    groups = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        later = rank + 1 + np.flatnonzero(~suppressed[rank + 1:])  # only boxes not yet suppressed
        others = sorted_boxes[later]
        box = sorted_boxes[rank]
        w = np.maximum(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0)
        h = np.maximum(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0)
        inter = w * h
        union = areas[rank] + areas[later] - inter
        iou = np.full_like(inter, -1)  # -1: "no IoU" (a zero union), below every threshold >= 0
        np.divide(inter, union, out=iou, where=union != 0)
        matched = later[iou >= threshold]
        suppressed[matched] = True
        groups.append(order[np.concatenate(([rank], matched))].astype(np.int64))
    return groups


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
_nms_match = Dispatcher("nms_match", reference=nms_match_numpy, numba="nms_numba:nms_match",
                        cython="nms_cython:nms_match", cuda="nms_cuda:nms_match")
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


def _offset(value) -> int:
    return check_scalar(value, "offset", low=0, high=1, integer=True)


def _selection(score_threshold, max_num):
    """The validated keyword options of `nms`/`batched_nms`: (score_threshold or None, max_num or None)."""
    if score_threshold is not None:
        score_threshold = check_scalar(score_threshold, "score_threshold")
    if max_num is not None:
        max_num = check_scalar(max_num, "max_num", low=-1, integer=True)
        if max_num == -1:
            max_num = None
    return score_threshold, max_num


def _select_run_truncate(run, scores, score_threshold, max_num, *arrays):
    """Drop the boxes scoring <= score_threshold, run `run` on the others, keep the best `max_num` after NMS."""
    candidates = None
    if score_threshold is not None:
        # a Python float against the scores' dtype, as NumPy (and torch, and mmcv) compare a weak scalar; one
        # beyond float32's range (1e300) compares as +-inf there: nothing (or everything) passes, silently
        with np.errstate(over="ignore"):
            candidates = np.flatnonzero(scores > score_threshold)
        scores = scores[candidates]
        arrays = tuple(array[candidates] for array in arrays)
    keep = run(*arrays, scores) if len(scores) else np.zeros(0, dtype=np.int64)
    if candidates is not None:
        keep = candidates[keep]
    if max_num is not None:
        keep = keep[:max_num]  # already by decreasing score: the best max_num
    return keep


def nms(boxes, scores, iou_threshold: float, backend: str | None = None, *, offset: int = 0,
        score_threshold: float | None = None, max_num: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    boxes: (N, 4) ``(x1, y1, x2, y2)``; scores: (N,). Returns (K,) int64 indices of the kept boxes in
    decreasing score order. Visiting boxes by decreasing score, a box is kept unless its IoU with an
    already kept box is strictly greater than `iou_threshold`. Equal scores are visited by increasing
    index, so the result is index-for-index that of ``torchvision.ops.nms`` (whose CPU kernel sorts with a
    stable sort). Boxes of zero area never suppress and are never suppressed.

    `offset` (keyword): 0 (default, torchvision) treats coordinates as continuous, ``w = x2 - x1``; 1 is the
    legacy inclusive-pixel convention of maskrcnn-benchmark, Detectron (v1) and mmcv's ``offset=1``:
    ``w = x2 - x1 + 1`` and intersection sides ``min(x2) - max(x1) + 1``. For [0, 0, 9, 9] and
    [5, 5, 14, 14] the IoU is 4*4 / (81 + 81 - 16) = 16 / 146 = 0.110 with offset 0 but 5*5 / (100 + 100 - 25)
    = 25 / 175 = 0.143 with offset 1 (a box [0, 0, 9, 9] covers pixels 0..9, 10 x 10 of them), so at
    ``iou_threshold=0.12`` the second box survives with offset 0 and is suppressed with offset 1.
    `score_threshold` (keyword, default None: keep all): boxes whose score is not strictly greater are
    dropped before NMS (mmcv's ``scores > score_threshold``, compared in the scores' dtype; mmcv skips this
    when its threshold is 0, its default). `max_num` (keyword, None or -1: all): keep at most the
    `max_num` best boxes after NMS (mmcv treats 0 as "all" too; here 0 keeps none).

    `backend`: None (the fastest CPU one), "numpy", "numba", "cython" or "cuda". The CPU kernels skip pairs
    that cannot overlap with a uniform grid of cells; the CUDA kernel computes 64 x 64 blocks of
    suppression bitmasks (the scheme of the GPU kernels of Faster R-CNN and torchvision), scanned on the host.
    GPU arrays (``__cuda_array_interface__``) go to "cuda" and give a device array of indices; their
    structure is checked, their values are not (that would copy them to the host); `score_threshold` is
    not accepted for them (filter on the GPU first).
    """
    threshold, offset = _iou_threshold(iou_threshold), _offset(offset)
    score_threshold, max_num = _selection(score_threshold, max_num)
    if is_device_array(boxes) or is_device_array(scores):  # GPU in, GPU out: structure checked, values not
        if score_threshold is not None:
            raise ValueError("score_threshold is not supported for GPU arrays: filter the boxes on the GPU first")
        keep = _nms.get(device_backend(backend, "nms"))(boxes, scores, threshold, offset)
        return keep if max_num is None else keep[:max_num]
    kernel = _nms.get(backend)
    boxes, scores = _boxes_and_scores(boxes, scores)
    return _select_run_truncate(lambda b, s: kernel(b, s, threshold, offset), scores, score_threshold, max_num,
                                boxes)


def batched_nms(boxes, scores, idxs, iou_threshold: float, backend: str | None = None, *, offset: int = 0,
                score_threshold: float | None = None, max_num: int | None = None) -> np.ndarray:
    """Non-maximum suppression done independently per category.

    boxes: (N, 4) ``(x1, y1, x2, y2)``; scores: (N,); idxs: (N,) integer category (or image) of each box.
    Returns (K,) int64 indices of the kept boxes in decreasing score order (ties by increasing index):
    the union of `nms` run on each category alone, so boxes of different categories never suppress each
    other. Same result as ``torchvision.ops.batched_nms``; zero boxes give an empty int64 array, as there.
    `offset`, `score_threshold` and `max_num` (keyword-only) as in `nms`: the score filter comes first, and
    `max_num` keeps the best boxes over all categories after NMS (mmcv's ``batched_nms`` with
    ``nms_cfg=dict(max_num=...)``; multiclass detectors such as mmdetection's ``multiclass_nms`` drop
    ``score <= score_thr`` the same way).

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
    threshold, offset = _iou_threshold(iou_threshold), _offset(offset)
    score_threshold, max_num = _selection(score_threshold, max_num)
    if is_device_array(boxes) or is_device_array(scores) or is_device_array(idxs):
        if score_threshold is not None:
            raise ValueError("score_threshold is not supported for GPU arrays: filter the boxes on the GPU first")
        keep = _batched_nms.get(device_backend(backend, "batched_nms"))(boxes, scores, idxs, threshold, offset)
        return keep if max_num is None else keep[:max_num]
    kernel = _batched_nms.get(backend)
    boxes, scores = _boxes_and_scores(boxes, scores)
    idxs = as_int_labels(idxs, boxes.shape[0], "idxs")
    return _select_run_truncate(lambda b, i, s: kernel(b, s, i, threshold, offset), scores, score_threshold,
                                max_num, boxes, idxs)


def nms_match(dets, iou_threshold: float, backend: str | None = None) -> list:
    """mmcv's ``nms_match``: greedy NMS that returns, for each kept box, the boxes it suppressed.

    dets: (N, 5) ``(x1, y1, x2, y2, score)``, float32 or float64. Returns a list of (1 + M_k,) int64 arrays,
    one per kept box by decreasing score (ties by increasing index): the kept box's index followed by the
    indices of the boxes it suppressed, by decreasing score. The groups partition the N boxes, and their
    first entries are the boxes plain NMS keeps at that threshold with ``>=``. Zero boxes give ``[]``.
    Used by the ISR-P sampler (Cao et al., "Prime Sample Attention", 2020) to rank boxes inside each group.

    Semantics of ``mmcv.ops.nms_match`` exactly (its CPU kernel), which differ from `nms` in three ways:
    a box is suppressed when ``iou >= iou_threshold`` (``nms``: ``>``), compared in the boxes' dtype; the
    intersection sides are clamped at 0 so at ``iou_threshold=0`` every remaining box joins the first
    group; there is no `offset`. A pair whose union is 0 never matches (mmcv divides 0 by 0, NaN >= t is
    false). mmcv computes float32 only and sorts with an unstable sort; edudet computes float64 in float64
    and visits equal scores by increasing index.

    `backend`: None (the fastest CPU one), "numpy", "numba", "cython" or "cuda" (host arrays in; the
    suppression bits on the GPU, with `nms`'s bitmask kernel, and the grouping scan on the host).
    """
    dets = as_boxes(dets, "dets", width=5, limit=None)
    threshold = _iou_threshold(iou_threshold)
    kernel = _nms_match.get(backend)
    boxes, scores = dets[:, :4], dets[:, 4]
    check_coordinates(boxes, "dets[:, :4]")  # the score column is no coordinate: any finite score is fine
    if dets.shape[0] == 0:
        return []
    return kernel(np.ascontiguousarray(boxes), np.ascontiguousarray(scores), threshold)


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
    offset = _offset(offset)
    if boxes.shape[0] == 0:
        return np.zeros((0, 5), dtype=dtype), np.zeros(0, dtype=np.int64)
    return kernel(boxes, scores, threshold, sigma, score_threshold, SOFT_NMS_METHODS[method], offset)
