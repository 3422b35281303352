"""Reference oracles: compare your detection code's output with edudet's reference and say what went wrong.

Each ``assert_*`` takes your result and the inputs, runs edudet's NumPy reference (which matches torchvision
index for index, or to a few ulps), and returns None when they agree. When they do not, it raises
``AssertionError`` with a message a person can act on: the first disagreement (which boxes, their IoU,
which rule), the values involved, and, when your result equals a known mistake exactly (``>=`` for ``>``,
ties visited in reversed order, the half-pixel shift of RoIAlign, (x, y, w, h) for (x1, y1, x2, y2), ...),
a line naming it.

Inputs and results may be NumPy arrays or anything NumPy can read through ``__array__``: torch tensors
(detached and copied to the CPU here), JAX arrays, lists. Invalid *inputs* (e.g. NaN boxes) raise
edudet's usual ``ValueError``/``TypeError``; a malformed *result* (wrong shape, out-of-range index) is an
``AssertionError``, since that is what is being tested. Needs only NumPy (no hypothesis).
"""
from __future__ import annotations

import numpy as np

from .._validate import as_boxes, as_scores, check_scalar

__all__ = ["assert_nms_equal", "assert_roi_align_close", "assert_boxes_close", "assert_matches_equal"]


# ----------------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------------
def _as_array(x, name: str) -> np.ndarray:
    """Any array-like as a NumPy array; torch tensors are detached and brought to the CPU first."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
    try:
        return np.asarray(x)
    except Exception as err:  # a device array NumPy cannot read, a ragged list, ...
        raise TypeError(f"{name} must be a NumPy array or have __array__ (a CPU torch tensor, a JAX array), "
                        f"got {type(x).__name__}: {err}") from None


def _num(value, digits: int = 4) -> str:
    """A number for a message: short, but exact enough to be looked up (0.9 for float32(0.9))."""
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.{digits}g}"


def _list(values, limit: int = 20) -> str:
    values = [int(v) for v in values]
    text = ", ".join(str(v) for v in values[:limit])
    return f"[{text}{', ...' if len(values) > limit else ''}] ({len(values)})"


def _box(b) -> str:
    return "(" + ", ".join(_num(v, 6) for v in b) + ")"


# ----------------------------------------------------------------------------------------------------------
# NMS
# ----------------------------------------------------------------------------------------------------------
def _pair_iou(boxes: np.ndarray, i: int) -> np.ndarray:
    """(N,) IoU of box i with every box, in the boxes' dtype with edudet's (= torchvision's) arithmetic;
    0 where they do not overlap (zero-area boxes included)."""
    from ..ops.nms import _areas, _iou_one_to_many

    areas = _areas(boxes)
    return _iou_one_to_many(boxes[i], areas[i], boxes, areas)


def _greedy_nms(boxes, scores, threshold, *, strict=True, ties="stable", offset=0, suppressed_suppress=False,
                sort=True) -> np.ndarray:
    """Greedy NMS with one switch per classic mistake (the defaults are the correct rule).

    strict: ``iou > t`` (else ``>=``); ties: "stable" (equal scores by increasing index) or "reversed"
    (``scores.argsort()[::-1]``); offset: 1 for the legacy ``x2 - x1 + 1`` sides; suppressed_suppress: a
    suppressed box still suppresses later ones; sort: False visits the boxes in input order.
    """
    n = len(scores)
    if not sort:
        order = np.arange(n)
    elif ties == "stable":
        order = np.argsort(-scores, kind="stable")
    else:
        order = np.argsort(scores, kind="stable")[::-1]
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for rank, i in enumerate(order):
        if suppressed[i] and not suppressed_suppress:
            continue
        if not suppressed[i]:
            keep.append(i)
        rest = order[rank + 1:]
        w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + offset
        h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + offset
        inter = np.where((w > 0) & (h > 0), w * h, 0)
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=(inter > 0) & (union > 0))
        over = iou > threshold if strict else iou >= threshold
        suppressed[rest[over]] = True
    return np.array(keep, dtype=np.int64)


def _nms_suspects(boxes, scores, threshold):
    """(hint, keep) of known NMS mistakes, checked against a wrong result in this order."""
    yield ("your keep equals greedy NMS with `iou >= iou_threshold`: NMS suppresses a box only when its IoU "
           "with a kept box is strictly greater than iou_threshold (`>`), as torchvision and edudet do",
           lambda: _greedy_nms(boxes, scores, threshold, strict=False))
    yield ("your keep equals greedy NMS that visits equal scores by decreasing index (a reversed sort such "
           "as `scores.argsort()[::-1]`, or an unstable sort): visit them by increasing index, with a stable "
           "sort (`np.argsort(-scores, kind=\"stable\")`, `torch.sort(scores, descending=True, stable=True)`)",
           lambda: _greedy_nms(boxes, scores, threshold, ties="reversed"))
    yield ("your keep equals greedy NMS where a suppressed box still suppresses later boxes: only kept boxes "
           "suppress (skip a box once it is suppressed)",
           lambda: _greedy_nms(boxes, scores, threshold, suppressed_suppress=True))
    yield ("your keep equals greedy NMS with the legacy `+ 1` in widths and heights (x2 - x1 + 1): edudet "
           "and torchvision use continuous coordinates, width = x2 - x1",
           lambda: _greedy_nms(boxes, scores, threshold, offset=1))
    yield ("your keep equals greedy NMS visiting the boxes in input order: sort them by decreasing score first",
           lambda: _greedy_nms(boxes, scores, threshold, sort=False))
    if boxes.dtype == np.float32:
        yield ("your keep equals NMS with IoU computed in float64: edudet and torchvision compute IoU in the "
               "boxes' dtype (float32) and compare it with the threshold in float64",
               lambda: _greedy_nms(boxes.astype(np.float64), scores, threshold))


def _check_keep(keep, n: int) -> np.ndarray:
    keep = _as_array(keep, "keep")
    if keep.dtype == np.bool_:
        raise AssertionError(f"keep is a boolean mask of shape {keep.shape}; NMS returns the indices of the kept "
                             f"boxes (np.flatnonzero(mask), ordered by decreasing score)")
    if keep.ndim != 1:
        raise AssertionError(f"keep must be a 1-D array of indices, got shape {keep.shape}")
    if keep.size and not np.issubdtype(keep.dtype, np.integer):
        raise AssertionError(f"keep must hold integer indices (torchvision returns int64), got dtype {keep.dtype}")
    keep = keep.astype(np.int64)
    if keep.size and (keep.min() < 0 or keep.max() >= n):
        bad = keep[(keep < 0) | (keep >= n)][0]
        raise AssertionError(f"keep holds index {bad}, outside [0, {n}) for {n} boxes")
    values, counts = np.unique(keep, return_counts=True)
    if np.any(counts > 1):
        raise AssertionError(f"keep lists box {values[counts > 1][0]} more than once: {_list(keep)}")
    return keep


def assert_nms_equal(keep, boxes, scores, iou_threshold: float, check_order: bool = True) -> None:
    """Check `keep`, your NMS's result, against edudet's greedy NMS (= ``torchvision.ops.nms``), index for index.

    keep: (K,) integer indices of the kept boxes; boxes: (N, 4) ``(x1, y1, x2, y2)``; scores: (N,).
    The rule: visiting boxes by decreasing score (equal scores by increasing index), a box is kept unless its
    IoU with an already kept box is strictly greater than `iou_threshold`; keep lists the kept boxes in that
    visiting order. IoU is computed in the boxes' dtype; boxes that do not overlap (zero-area ones included)
    never suppress each other. ``check_order=False`` compares the kept sets only.

    On a difference, raises AssertionError explaining the first box (in visiting order) that you and edudet
    treat differently: e.g. "box 3 was kept but box 1 (higher score 0.9, kept) overlaps it with IoU 0.62 >
    0.5", or "boxes 2 and 5 tie on score 0.7 ...: edudet visits equal scores by increasing index", plus the
    name of the mistake when your result equals it exactly.
    """
    from ..ops.nms import nms

    boxes = as_boxes(_as_array(boxes, "boxes"), "boxes")
    scores = as_scores(_as_array(scores, "scores"), len(boxes), "scores")
    threshold = check_scalar(iou_threshold, "iou_threshold", low=0)
    keep = _check_keep(keep, len(boxes))
    expected = nms(boxes, scores, threshold, backend="numpy")
    if np.array_equal(keep, expected) or (not check_order and set(keep.tolist()) == set(expected.tolist())):
        return
    header = (f"NMS result differs from edudet's reference (greedy NMS, iou_threshold={_num(threshold, 6)}, "
              f"{len(boxes)} boxes, {boxes.dtype}):")
    reason = _explain_nms(keep, expected, boxes, scores, threshold, check_order)
    lines = [header, "  " + reason]
    hint = next((h for h, variant in _nms_suspects(boxes, scores, threshold)
                 if np.array_equal(variant(), keep)), None) if set(keep.tolist()) != set(expected.tolist()) else None
    if hint:
        lines.append("  hint: " + hint + ".")
    lines += [f"  your keep:     {_list(keep)}", f"  edudet's keep: {_list(expected)}"]
    raise AssertionError("\n".join(lines))


def _explain_nms(keep, expected, boxes, scores, threshold, check_order) -> str:
    user, want = set(keep.tolist()), set(expected.tolist())
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    first = next((int(j) for j in order if (j in user) != (j in want)), None)
    if first is None:
        return _explain_order(keep, expected, scores)
    j = first
    iou = _pair_iou(boxes, j).astype(np.float64)
    earlier = [int(i) for i in order[:rank[j]]]

    def who(i):
        if scores[i] > scores[j]:
            return f"box {i} (higher score {_num(scores[i])}, kept)"
        return f"box {i} (same score {_num(scores[i])}, lower index, kept)"

    def iou_text(i):
        return _num(iou[i], 10 if abs(iou[i] - threshold) < 1e-4 else 4)

    def describe(*indices):
        return "".join(f"\n    box {i}: {_box(boxes[i])}, score {_num(scores[i])}" for i in indices)

    if j in user:  # you kept j; edudet suppressed it, because of the first kept box before it that overlaps it
        i = next(i for i in earlier if i in want and iou[i] > threshold)
        if scores[i] == scores[j]:
            text = (f"boxes {i} and {j} tie on score {_num(scores[j])} and overlap with IoU {iou_text(i)} > "
                    f"{_num(threshold)}: edudet keeps the lower index first (stable order), so box {i} is kept and "
                    f"suppresses box {j}; you kept both")
        else:
            text = (f"box {j} was kept but {who(i)} overlaps it with IoU {iou_text(i)} > {_num(threshold)}: "
                    f"it should have been suppressed")
        return text + _near_threshold(iou[i], threshold, boxes.dtype) + describe(i, j)

    # you dropped j; edudet kept it: look for the box that suppressed it in your code
    kept_by_you = sorted((i for i in user if i != j), key=lambda i: rank[i])
    tie = [i for i in kept_by_you if scores[i] == scores[j] and iou[i] > threshold]
    if tie:
        i = tie[0]
        return (f"boxes {j} and {i} tie on score {_num(scores[j])} and overlap with IoU {iou_text(i)} > "
                f"{_num(threshold)}: edudet keeps the lower index first (stable order), so box {j} is kept and "
                f"box {i} suppressed; you kept box {i} instead (looks like a reversed or unstable sort)"
                + describe(j, i))
    equal = [i for i in kept_by_you if rank[i] < rank[j] and iou[i] == threshold]
    if equal:
        i = equal[0]
        return (f"box {j} was suppressed but its IoU with {who(i)} is exactly {_num(threshold)} = iou_threshold: "
                f"a box is suppressed only when IoU > iou_threshold (strictly); looks like `>=` instead of `>`"
                + describe(i, j))
    near = [i for i in kept_by_you if rank[i] < rank[j] and threshold - 1e-6 < iou[i] <= threshold]
    if near:
        i = near[0]
        return (f"box {j} was suppressed but its IoU with {who(i)} is {iou_text(i)}, not above iou_threshold "
                f"{_num(threshold, 10)}" + _near_threshold(iou[i], threshold, boxes.dtype) + describe(i, j))
    area = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
    if area == 0:
        return (f"box {j} has zero area and was suppressed: its IoU with any box is 0 (edudet; torchvision "
                f"gets 0/0 = NaN, and NaN > t is false), so it is never suppressed" + describe(j))
    by_dropped = [i for i in earlier if i not in user and i not in want and iou[i] > threshold]
    if by_dropped:
        i = by_dropped[0]
        return (f"box {j} was suppressed, apparently by box {i} (IoU {iou_text(i)}), but box {i} was itself "
                f"suppressed: only kept boxes suppress" + describe(i, j))
    overlaps = [i for i in earlier if i in want]
    largest = max(overlaps, key=lambda i: iou[i]) if overlaps else None
    detail = (f" (the largest is IoU {iou_text(largest)} with box {largest})" if largest is not None
              else " (it is the first box visited)")
    return (f"box {j} (score {_num(scores[j])}) should be kept: no kept box with a higher score overlaps it with "
            f"IoU > {_num(threshold)}{detail}" + describe(j))


def _near_threshold(iou: float, threshold: float, dtype) -> str:
    if abs(iou - threshold) < 1e-6 * max(1.0, threshold):
        return (f" (an IoU this close to the threshold depends on rounding: edudet computes it in {dtype} as "
                f"(area_i + area_j) - inter, like torchvision, and compares it with the threshold in float64)")
    return ""


def _explain_order(keep, expected, scores) -> str:
    if len(keep) != len(expected):  # pragma: no cover - equal sets have equal lengths
        return "the kept sets differ"
    p = int(np.flatnonzero(keep != expected)[0])
    mine, theirs = int(keep[p]), int(expected[p])
    if scores[mine] == scores[theirs]:
        return (f"same boxes kept, in another order: boxes {theirs} and {mine} tie on score {_num(scores[mine])}: "
                f"edudet lists equal scores by increasing index (stable order), you list {mine} first "
                f"(pass check_order=False to compare the kept sets only)")
    if np.array_equal(np.sort(keep), keep):
        return ("same boxes kept, in another order: yours are sorted by index; NMS lists the kept boxes by "
                "decreasing score (pass check_order=False to compare the kept sets only)")
    return (f"same boxes kept, in another order: at position {p} you list box {mine} (score "
            f"{_num(scores[mine])}) but edudet lists box {theirs} (score {_num(scores[theirs])}); keep is ordered "
            f"by decreasing score (pass check_order=False to compare the kept sets only)")


# ----------------------------------------------------------------------------------------------------------
# RoIAlign
# ----------------------------------------------------------------------------------------------------------
def assert_roi_align_close(actual, input, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
                           aligned: bool = False, *, rtol: float = 1e-5, atol: float | None = None) -> None:
    """Check `actual`, your RoIAlign's (K, C, PH, PW) output, against ``edudet.ops.roi_align`` (= torchvision's).

    input: (N, C, H, W); boxes: (K, 5) ``[batch_index, x1, y1, x2, y2]`` or a list of N (K_i, 4) arrays;
    the other arguments as ``torchvision.ops.roi_align``. Values are compared as ``np.isclose``: atol
    defaults to ``1e-6 * max(1, max |input|)`` (a different summation order moves float32 sums by a few ulps).

    On a difference, raises AssertionError with the worst bin and, when your output matches edudet's with
    another setting for most RoIs that differ, that setting: ``aligned`` flipped (the half-pixel shift), another
    ``sampling_ratio``, ``spatial_scale`` not applied, max instead of average, or (x, y) swapped.
    """
    from ..ops.roi_align import as_feature_map, as_rois, roi_align

    fmap = as_feature_map(_as_array(input, "input"))
    boxes = [_as_array(b, f"boxes[{i}]") for i, b in enumerate(boxes)] if isinstance(boxes, (list, tuple)) \
        else _as_array(boxes, "boxes")
    batch_index, coords = as_rois(boxes, fmap.shape[0], fmap.dtype)
    rois = np.concatenate([batch_index[:, None].astype(fmap.dtype), coords], axis=1)
    args = dict(output_size=output_size, spatial_scale=spatial_scale, sampling_ratio=sampling_ratio, aligned=aligned)
    expected = roi_align(fmap, rois, **args, backend="numpy")
    actual = _as_array(actual, "actual")
    if actual.shape != expected.shape:
        raise AssertionError(f"RoIAlign output has shape {actual.shape}, expected {expected.shape} = (K RoIs, C "
                             f"channels, PH, PW) for {len(rois)} RoIs, {fmap.shape[1]} channels, "
                             f"output_size {expected.shape[2:]}")
    atol = 1e-6 * max(1.0, float(np.abs(fmap).max(initial=0))) if atol is None else float(atol)
    close = _close(actual, expected, rtol, atol)
    if close.all():
        return
    bad = ~close
    k, c, i, j = (int(v) for v in np.unravel_index(np.argmax(np.where(bad, np.abs(actual - expected), -1)),
                                                    actual.shape))
    bad_rois = np.flatnonzero(bad.reshape(len(rois), -1).any(axis=1))
    lines = [f"RoIAlign output differs from edudet's reference ({_args_text(args)}): {int(bad.sum())} of "
             f"{bad.size} values, in {len(bad_rois)} of {len(rois)} RoIs (rtol={rtol:g}, atol={atol:.3g}).",
             f"  worst: RoI {k} (image {int(batch_index[k])}, box {_box(coords[k])}), channel {c}, bin ({i}, {j}): "
             f"yours {_num(actual[k, c, i, j], 7)}, edudet {_num(expected[k, c, i, j], 7)}"]
    if not np.all(np.isfinite(actual)):
        lines.append("  your output holds NaN or inf (a bin with no samples is 0; check divisions by the count)")
    hint = _roi_align_hint(actual, fmap, rois, args, bad_rois, rtol, atol)
    if hint:
        lines.append("  " + hint)
    elif _at_border(coords[bad_rois], fmap.shape, args):
        lines.append("  every RoI that differs reaches within a pixel of the map's border or beyond it: check the "
                     "border rule (a sample more than 1 pixel outside the map counts 0; one within a pixel is "
                     "clamped to the border pixel)")
    raise AssertionError("\n".join(lines))


def _close(actual, expected, rtol, atol) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return np.isclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol)


def _args_text(args) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in args.items())


def _roi_align_hint(actual, fmap, rois, args, bad_rois, rtol, atol) -> str | None:
    from ..ops.roi_align import roi_align

    def explained(variant_args, transform=None, pool_mode="avg") -> int:
        try:
            variant = roi_align(fmap, rois if transform is None else transform(rois), **variant_args,
                                pool_mode=pool_mode, backend="numpy")
        except ValueError:
            return 0
        close = _close(actual, variant, rtol, atol).reshape(len(rois), -1).all(axis=1)
        return int(close[bad_rois].sum())

    aligned = args["aligned"]
    suspects = [
        (f"looks like aligned={not aligned} vs aligned={aligned}: a half-pixel shift. Your output matches edudet's "
         f"RoIAlign with aligned={not aligned}. aligned=True shifts the scaled box by -0.5 (box * spatial_scale - "
         f"0.5) so that pixel centres sit on integer indices (Detectron2's fix); aligned=False does not, and "
         f"makes every RoI at least 1 x 1 feature pixel", {**args, "aligned": not aligned}, None, "avg"),
        ("looks like spatial_scale was not applied: your output matches edudet's with spatial_scale=1 (scale the "
         "box corners from image to feature-map coordinates: box * spatial_scale)",
         {**args, "spatial_scale": 1.0}, None, "avg"),
        ("looks like spatial_scale was applied twice: your output matches edudet's with spatial_scale squared",
         {**args, "spatial_scale": args["spatial_scale"] ** 2}, None, "avg"),
        ("looks like the boxes were read as (y1, x1, y2, x2): boxes are (x1, y1, x2, y2), x along the width",
         args, lambda r: r[:, [0, 2, 1, 4, 3]], "avg"),
        ("looks like max pooling: RoIAlign averages the samples of a bin (pool_mode='avg')", args, None, "max"),
    ]
    for ratio in (-1, 1, 2, 3, 4):
        if ratio != args["sampling_ratio"] and not (ratio <= 0 and args["sampling_ratio"] <= 0):
            grid = "ceil(roi_size / output_size) samples per bin and axis" if ratio <= 0 else f"{ratio} x {ratio}"
            suspects.append((f"looks like another sampling grid: your output matches edudet's with sampling_ratio="
                             f"{ratio} ({grid}); sampling_ratio={args['sampling_ratio']} was asked for (<= 0 means "
                             f"adaptive: ceil(roi_size / output_size) per axis)",
                             {**args, "sampling_ratio": ratio}, None, "avg"))
    best, best_count = None, 0
    for text, variant_args, transform, pool_mode in suspects:
        count = explained(variant_args, transform, pool_mode)
        if count > best_count:
            best, best_count = text, count
        if best_count == len(bad_rois):  # explains every difference: no need to try the others
            break
    if best is None or best_count * 2 < len(bad_rois):
        return None
    return f"{best} (this explains {best_count} of the {len(bad_rois)} RoIs that differ)."


def _at_border(coords, shape, args) -> bool:
    if not len(coords):
        return False
    scaled = coords * args["spatial_scale"]
    height, width = shape[2], shape[3]
    return bool(np.all((scaled[:, 0] < 1) | (scaled[:, 1] < 1) | (scaled[:, 2] > width - 1)
                       | (scaled[:, 3] > height - 1)))


# ----------------------------------------------------------------------------------------------------------
# Boxes
# ----------------------------------------------------------------------------------------------------------
_COORDS = ("x1", "y1", "x2", "y2")


def assert_boxes_close(actual, expected, *, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Check (..., 4) ``(x1, y1, x2, y2)`` boxes `actual` against `expected`, as ``np.isclose``.

    For any box-valued result: decoded boxes, clipped boxes, anchors, converted formats. On a difference,
    raises AssertionError with the first box and coordinate that differ, and names the mistake when `actual`
    matches `expected` transformed: another box order, (x, y, w, h) or (cx, cy, w, h) instead of (x1, y1, x2, y2),
    (y1, x1, y2, x2), the legacy ``+ 1`` on x2 and y2, or a half-pixel shift.
    """
    actual = _as_array(actual, "actual")
    expected = _as_array(expected, "expected")
    if expected.ndim < 1 or expected.shape[-1] != 4:
        raise ValueError(f"expected must have shape (..., 4), got {expected.shape}")
    if actual.shape != expected.shape:
        raise AssertionError(f"boxes have shape {actual.shape}, expected {expected.shape}")
    if not np.issubdtype(actual.dtype, np.number) or actual.dtype == np.bool_:
        raise AssertionError(f"boxes must be numbers, got dtype {actual.dtype}")
    close = _close(actual, expected, rtol, atol)
    if close.all():
        return
    a, e = actual.reshape(-1, 4).astype(np.float64), expected.reshape(-1, 4).astype(np.float64)
    bad = ~close.reshape(-1, 4)
    row = int(np.flatnonzero(bad.any(axis=1))[0])
    col = int(np.flatnonzero(bad[row])[0])
    lines = [f"boxes differ: {int(bad.any(axis=1).sum())} of {len(a)} boxes (rtol={rtol:g}, atol={atol:g}).",
             f"  first: box {row}, {_COORDS[col]}: yours {_num(a[row, col], 7)}, expected {_num(e[row, col], 7)}",
             f"    yours:    {_box(a[row])}", f"    expected: {_box(e[row])}"]
    hint = _boxes_hint(a, e, rtol, atol)
    if hint:
        lines.append("  hint: " + hint + ".")
    raise AssertionError("\n".join(lines))


def _boxes_hint(a, e, rtol, atol) -> str | None:
    width, height = e[:, 2] - e[:, 0], e[:, 3] - e[:, 1]
    suspects = [
        ("your boxes look like (x, y, w, h): edudet's boxes are (x1, y1, x2, y2), with x2 = x + w",
         np.stack([e[:, 0], e[:, 1], width, height], axis=1)),
        ("your boxes look like (cx, cy, w, h): edudet's boxes are (x1, y1, x2, y2) (ops.box_convert converts)",
         np.stack([e[:, 0] + width / 2, e[:, 1] + height / 2, width, height], axis=1)),
        ("your boxes look like (y1, x1, y2, x2): edudet's boxes are (x1, y1, x2, y2), x along the width",
         e[:, [1, 0, 3, 2]]),
        ("your x2 and y2 are 1 more than expected: the legacy `+ 1` pixel convention (width = x2 - x1 + 1); "
         "edudet and torchvision use continuous coordinates", e + [0, 0, 1, 1]),
        ("your x2 and y2 are 1 less than expected: the legacy pixel convention (x2 = x1 + width - 1); edudet "
         "and torchvision use continuous coordinates (x2 = x1 + width)", e - [0, 0, 1, 1]),
        ("your boxes are shifted by +0.5 px: a half-pixel offset (pixel centres vs pixel corners)", e + 0.5),
        ("your boxes are shifted by -0.5 px: a half-pixel offset (pixel centres vs pixel corners)", e - 0.5),
    ]
    for text, variant in suspects:
        if _close(a, variant, rtol, atol).all():
            return text
    if len(a) > 1 and _close(np.array(sorted(a.tolist())), np.array(sorted(e.tolist())), rtol, atol).all():
        return "the same boxes in another order (sort both if order does not matter)"
    return None


# ----------------------------------------------------------------------------------------------------------
# Matching
# ----------------------------------------------------------------------------------------------------------
def assert_matches_equal(matches, gt_boxes, boxes, high_threshold: float, low_threshold: float,
                         allow_low_quality_matches: bool = False) -> None:
    """Check (N,) `matches`, your matcher's result, against ``edudet.Matcher`` (= torchvision's ``Matcher``).

    gt_boxes: (G, 4), boxes (anchors or proposals): (N, 4), ``(x1, y1, x2, y2)``. The rule: with v the best
    IoU of box n over the ground truths (ties: the lowest gt index), match n to that gt if ``v >=
    high_threshold``, -2 (ignored) if ``low_threshold <= v < high_threshold``, -1 (background) if ``v <
    low_threshold``; with `allow_low_quality_matches`, every box whose IoU with some gt equals that gt's best
    IoU over all boxes (ties included) gets its own best gt back. IoU and comparisons in the boxes' dtype
    (float64 if either is float64, else float32).

    On a difference, raises AssertionError naming the first box that differs, its IoUs and the rule it falls under.
    """
    from ..matcher import Matcher
    from ..ops.boxes import box_iou

    gt = as_boxes(_as_array(gt_boxes, "gt_boxes"), "gt_boxes")
    preds = as_boxes(_as_array(boxes, "boxes"), "boxes")
    matcher = Matcher(high_threshold, low_threshold, allow_low_quality_matches)
    expected = matcher.match_boxes(gt, preds, backend="numpy")
    matches = _as_array(matches, "matches")
    if matches.shape != expected.shape:
        raise AssertionError(f"matches has shape {matches.shape}, expected {expected.shape} (one entry per box)")
    if matches.size and not np.issubdtype(matches.dtype, np.integer):
        raise AssertionError(f"matches must hold integers (gt index, -1 or -2), got dtype {matches.dtype}")
    if np.array_equal(matches, expected):
        return
    n = int(np.flatnonzero(matches != expected)[0])
    got, want = int(matches[n]), int(expected[n])
    dtype = np.float64 if np.float64 in (gt.dtype, preds.dtype) else np.float32
    quality = box_iou(gt.astype(dtype), preds.astype(dtype), backend="numpy")
    column = quality[:, n]
    best_gt, best = int(np.argmax(column)), column.max()
    high, low = dtype(matcher.high_threshold), dtype(matcher.low_threshold)
    ious = ", ".join(f"gt {g}: {_num(v)}" for g, v in enumerate(column[:8])) + (", ..." if len(column) > 8 else "")
    lines = [f"matches differ from edudet's Matcher (high_threshold={_num(high, 6)}, low_threshold={_num(low, 6)}, "
             f"allow_low_quality_matches={matcher.allow_low_quality_matches}): "
             f"{int((matches != expected).sum())} of {len(expected)} boxes.",
             f"  first: box {n} {_box(preds[n])}: yours {got}, edudet {want}; its IoUs: {ious}"]
    gt_best = quality.max(axis=1)
    ties_gt = [g for g in range(len(gt)) if column[g] == gt_best[g]]
    if want >= 0 and best >= high:
        rule = f"its best IoU {_num(best)} (gt {best_gt}) is >= high_threshold {_num(high)}: matched to gt {best_gt}"
        if got == BETWEEN and best == high:
            rule += "; an IoU equal to high_threshold is a match (>=), not 'between'"
    elif want >= 0:
        rule = (f"its best IoU {_num(best)} is below high_threshold, but it ties the best IoU of gt "
                f"{ties_gt[0]} over all boxes ({_num(gt_best[ties_gt[0]])}): a low-quality match, and it gets its "
                f"own best gt, {best_gt}" + (f" (not gt {got}, the gt whose best it ties)" if got in ties_gt else "")
                + "; every box tied at a gt's best IoU gets one (ties included)")
    elif want == BETWEEN:
        rule = (f"its best IoU {_num(best)} is in [low_threshold, high_threshold): -2 (BETWEEN_THRESHOLDS, ignored)"
                + ("; an IoU equal to low_threshold is not background (background is IoU < low_threshold)"
                   if best == low else ""))
    else:
        rule = f"its best IoU {_num(best)} is below low_threshold {_num(low)}: -1 (BELOW_LOW_THRESHOLD, background)"
    if want >= 0 and got >= 0 and column[got] == column[want] and got != want and want == best_gt:
        rule += f"; gts {want} and {got} tie at IoU {_num(best)}: the lowest gt index wins (argmax's first)"
    if {got, want} == {BELOW, BETWEEN}:
        rule += "; note -1 is background (below low_threshold) and -2 is ignored (between the thresholds)"
    if dtype == np.float32 and (best == high or best == low) and float(best) != float(matcher.high_threshold) \
            and float(best) != float(matcher.low_threshold):
        rule += (f"; the IoU equals the float32 threshold: comparisons are made in float32, as torchvision makes "
                 f"them")
    lines.append("  rule: " + rule + ".")
    raise AssertionError("\n".join(lines))


BELOW, BETWEEN = -1, -2
