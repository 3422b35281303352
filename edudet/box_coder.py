"""Box coding: how a detector's regression outputs become boxes, and back.

Two conventions live here:

* R-CNN deltas (Girshick et al., 2014; torchvision's ``BoxCoder``): a box is described relative to a
  reference box (an anchor or a proposal) by the shift of its centre in units of the reference's size and
  the log of its size ratio, each scaled by a weight, ``(dx, dy, dw, dh)``.
* FCOS distances (Tian et al., 2019; mmdetection's ``distance2bbox``): a box is described from a point by
  its distances to the four sides ``(left, top, right, bottom)``.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from ._validate import COORDINATE_LIMIT, as_boxes, as_real_array, check_finite, check_scalar, common_float_dtype

__all__ = ["BoxCoder", "distance2bbox", "bbox2distance", "centerness_target"]

_DEFAULT_CLIP = math.log(1000.0 / 16)  # a box may grow at most 1000/16 = 62.5x its reference per decode


def _widths_heights_centres(boxes: np.ndarray, offset: int = 0):
    widths = boxes[:, 2] - boxes[:, 0]  # continuous coordinates (offset 0): no "+1"
    heights = boxes[:, 3] - boxes[:, 1]
    if offset:  # inclusive pixels (maskrcnn-benchmark's TO_REMOVE = 1): columns 0..9 are 10 wide
        widths += offset
        heights += offset
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    return widths, heights, ctr_x, ctr_y


def _log(x: np.ndarray) -> np.ndarray:
    """log, correctly rounded to x's dtype: NumPy's own float32 log is off by an ulp in ~7% of cases, while
    float64-then-round agrees with torch's float32 log in all but ~1 in 10,000."""
    return np.log(x, dtype=np.float64).astype(x.dtype, copy=False)


def _exp(x: np.ndarray) -> np.ndarray:
    """exp, rounded from float64 to x's dtype (agrees with torch's float32 exp in ~99% of cases, NumPy's ~60%)."""
    return np.exp(x, dtype=np.float64).astype(x.dtype, copy=False)


def _is_per_image_list(x) -> bool:
    """A list/tuple of (N_i, 4) arrays, one per image, as opposed to one (N, 4) box set written as nested lists."""
    return isinstance(x, (list, tuple)) and all(np.ndim(item) == 2 for item in x)


class BoxCoder:
    """Encode boxes as ``(dx, dy, dw, dh)`` deltas against reference boxes, and decode them back.

    With weights ``(wx, wy, ww, wh)``, a box ``g`` against a reference ``p`` (sizes ``w, h``, centres
    ``x, y``) is ``dx = wx (g_x - p_x) / p_w``, ``dy = wy (g_y - p_y) / p_h``, ``dw = ww log(g_w / p_w)``,
    ``dh = wh log(g_h / p_h)``. Decoding inverts this, clamping ``dw, dh`` (after dividing by the weights)
    at ``bbox_xform_clip`` so that ``exp`` cannot overflow on a wild prediction. torchvision's Faster R-CNN
    uses weights (1, 1, 1, 1) in the RPN and (10, 10, 5, 5) in the box head.

    Boxes (references, proposals, anchors) are coordinates and must lie in [-1e15, 1e15]; deltas are not
    coordinates and may be any finite value. Extreme but valid input never gives inf or NaN silently: where
    a delta or decoded coordinate overflows its dtype (torchvision returns the same inf) a `RuntimeWarning`
    names the first such row, and every edudet op refuses such boxes by name. Only zero-width or zero-height
    boxes in `encode` give torchvision's inf/NaN deltas without a warning (see there).

    `offset` is the pixel convention: 0 (torchvision, detectron2: continuous coordinates, ``w = x2 - x1``)
    or 1 (maskrcnn-benchmark's ``TO_REMOVE = 1``, Detectron v1: x2, y2 are inclusive pixels): sizes are
    then ``w = x2 - x1 + 1``, centres ``x1 + 0.5 w``, and decoding gives ``x2 = ctr + 0.5 w - 1``. A box
    coded with one convention must be decoded with the same one (docs/conventions.md has an example).
    """

    def __init__(self, weights: Sequence[float], bbox_xform_clip: float = _DEFAULT_CLIP, *, offset: int = 0):
        if not hasattr(weights, "__len__") or len(weights) != 4:
            raise ValueError(f"weights must be 4 numbers (wx, wy, ww, wh), got {weights!r}")
        self.weights = tuple(
            check_scalar(w, f"weights[{i}]", low=0, low_inclusive=False) for i, w in enumerate(weights)
        )
        self.bbox_xform_clip = check_scalar(bbox_xform_clip, "bbox_xform_clip")
        self.offset = check_scalar(offset, "offset", low=0, high=1, integer=True)

    def __repr__(self) -> str:
        convention = f", offset={self.offset}" if self.offset else ""
        return f"BoxCoder(weights={self.weights}, bbox_xform_clip={self.bbox_xform_clip:.4f}{convention})"

    def encode(self, reference_boxes, proposals):
        """Deltas that take each proposal to its reference (ground-truth) box.

        reference_boxes: (N, 4) targets, proposals: (N, 4) anchors or proposals, both ``(x1, y1, x2, y2)``
        (torchvision's argument order). Returns (N, 4) ``(dx, dy, dw, dh)`` in the promoted float dtype.
        Lists of per-image arrays are accepted too and give a list back. A zero-width or zero-height box
        gives inf or NaN deltas, as in torchvision (the RPN's all-zero targets of an image without ground
        truth rely on it): remove such boxes first (`remove_small_boxes`). Between boxes of positive size a
        delta that overflows (a proposal of side 1e-310 against a box 1e15 wide) is inf, with a `RuntimeWarning`.
        """
        if _is_per_image_list(reference_boxes):
            if not _is_per_image_list(proposals) or len(proposals) != len(reference_boxes):
                raise ValueError("reference_boxes and proposals must both be lists of the same length")
            return [self.encode(r, p) for r, p in zip(reference_boxes, proposals)]
        gt = as_boxes(reference_boxes, "reference_boxes")
        anchors = as_boxes(proposals, "proposals")
        if gt.shape[0] != anchors.shape[0]:
            raise ValueError(
                f"reference_boxes has {gt.shape[0]} boxes but proposals has {anchors.shape[0]}; they must match"
            )
        # Each set's sizes and centres are computed in its own dtype and only then promoted, and the weights
        # are rounded to the reference boxes' dtype first: torchvision's order, so mixed float32/float64
        # inputs give the same bits too.
        wx, wy, ww, wh = (gt.dtype.type(w) for w in self.weights)
        ex_w, ex_h, ex_x, ex_y = _widths_heights_centres(anchors, self.offset)
        gt_w, gt_h, gt_x, gt_y = _widths_heights_centres(gt, self.offset)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # degenerate boxes: inf/NaN
            targets = np.stack(
                [
                    wx * (gt_x - ex_x) / ex_w,
                    wy * (gt_y - ex_y) / ex_h,
                    ww * _log(gt_w / ex_w),
                    wh * _log(gt_h / ex_h),
                ],
                axis=1,
            )
        targets = targets.astype(common_float_dtype(gt, anchors), copy=False)
        positive = (ex_w > 0) & (ex_h > 0) & (gt_w > 0) & (gt_h > 0)
        overflowing = np.flatnonzero(positive & ~np.isfinite(targets).all(axis=1))
        if overflowing.size:
            i = int(overflowing[0])
            warnings.warn(f"encoding reference_boxes[{i}] = {gt[i].tolist()} against proposals[{i}] = "
                          f"{anchors[i].tolist()} overflows {targets.dtype} to inf/NaN deltas ({overflowing.size} "
                          f"row(s)): their sizes or positions are too far apart", RuntimeWarning, stacklevel=2)
        return targets

    def encode_single(self, reference_boxes, proposals) -> np.ndarray:
        """`encode` on one (N, 4) pair of arrays (torchvision's name for the single-tensor form)."""
        if _is_per_image_list(reference_boxes) or _is_per_image_list(proposals):
            raise TypeError("encode_single takes (N, 4) arrays; use encode for lists of per-image arrays")
        return self.encode(reference_boxes, proposals)

    def decode_single(self, rel_codes, boxes) -> np.ndarray:
        """Boxes from deltas: rel_codes (N, 4k) against boxes (N, 4) -> (N, 4k) ``(x1, y1, x2, y2)`` groups.

        rel_codes are not coordinates (any finite value); boxes are (within +-1e15). A decoded coordinate
        that overflows (|dx| near 1e23 in float32, or a huge `bbox_xform_clip`) is inf, as in torchvision,
        with a `RuntimeWarning` naming the row.
        """
        codes = as_real_array(rel_codes, "rel_codes")
        if codes.ndim != 2 or codes.shape[1] % 4 or codes.shape[1] == 0:
            raise ValueError(f"rel_codes must have shape (N, 4k), got {tuple(codes.shape)}")
        check_finite(codes, "rel_codes")
        refs = as_boxes(boxes, "boxes")
        if codes.shape[0] != refs.shape[0]:
            raise ValueError(f"rel_codes has {codes.shape[0]} rows but boxes has {refs.shape[0]}; they must match")
        dtype = codes.dtype.type if codes.dtype in (np.float32, np.float64) else np.float32
        codes = codes.astype(dtype, copy=False)
        refs = refs.astype(dtype, copy=False)  # torchvision computes in the codes' dtype
        widths, heights, ctr_x, ctr_y = _widths_heights_centres(refs, self.offset)
        wx, wy, ww, wh = self.weights
        dx = codes[:, 0::4] / wx
        dy = codes[:, 1::4] / wy
        dw = np.minimum(codes[:, 2::4] / ww, self.bbox_xform_clip)
        dh = np.minimum(codes[:, 3::4] / wh, self.bbox_xform_clip)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below, by row
            pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
            pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
            half_w = dtype(0.5) * (_exp(dw) * widths[:, None])
            half_h = dtype(0.5) * (_exp(dh) * heights[:, None])
            x2, y2 = pred_ctr_x + half_w, pred_ctr_y + half_h
            if self.offset:  # back to inclusive pixels: a box 10 wide starting at column 0 ends at column 9
                x2, y2 = x2 - dtype(self.offset), y2 - dtype(self.offset)
            out = np.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, x2, y2], axis=2)
        out = out.reshape(codes.shape[0], codes.shape[1])
        overflowing = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if overflowing.size:
            i = int(overflowing[0])
            largest = float(np.max(np.abs(codes[i])))
            warnings.warn(f"decoding rel_codes[{i}] (largest |delta| {largest:.3g}) against boxes[{i}] = "
                          f"{refs[i].tolist()} overflows {out.dtype} to inf/NaN ({overflowing.size} row(s), "
                          f"bbox_xform_clip = {self.bbox_xform_clip:.4g}): such deltas describe no usable box",
                          RuntimeWarning, stacklevel=2)
        return out

    def decode(self, rel_codes, boxes) -> np.ndarray:
        """Boxes from deltas.

        rel_codes: (N, 4) or (N, 4k) (k classes), boxes: (N, 4) references (or a list of per-image
        arrays, concatenated). Returns (N, 4) for (N, 4) codes and (N, k, 4) for (N, 4k) codes, k > 1.
        """
        if _is_per_image_list(boxes):
            boxes = [as_boxes(b, "boxes") for b in boxes]
            boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
        out = self.decode_single(rel_codes, boxes)
        return out if out.shape[1] == 4 else out.reshape(out.shape[0], out.shape[1] // 4, 4)


def _points(points) -> np.ndarray:
    return as_boxes(points, "points", width=2)


def _max_shape(max_shape) -> tuple[float, float]:
    """(height, width) from mmdetection's ``max_shape``, which may also be an ``(h, w, channels)`` shape."""
    try:
        height, width = max_shape[0], max_shape[1]
    except (TypeError, IndexError, KeyError):
        raise ValueError(f"max_shape must be (height, width), got {max_shape!r}") from None
    return (check_scalar(height, "max_shape[0]", low=0, low_inclusive=False),
            check_scalar(width, "max_shape[1]", low=0, low_inclusive=False))


def distance2bbox(points, distance, max_shape=None) -> np.ndarray:
    """Boxes from FCOS distances.

    points: (N, 2) ``(x, y)``; distance: (N, 4) ``(left, top, right, bottom)``. Returns (N, 4)
    ``(x - left, y - top, x + right, y + bottom)``, clipped to ``max_shape = (height, width)`` if given.
    """
    pts = _points(points)
    # distances are differences of two coordinates, so twice the coordinate bound
    dist = as_boxes(distance, "distance", limit=2 * COORDINATE_LIMIT)
    if pts.shape[0] != dist.shape[0]:
        raise ValueError(f"points has {pts.shape[0]} rows but distance has {dist.shape[0]}; they must match")
    dtype = common_float_dtype(pts, dist)
    pts, dist = pts.astype(dtype, copy=False), dist.astype(dtype, copy=False)
    boxes = np.stack(
        [pts[:, 0] - dist[:, 0], pts[:, 1] - dist[:, 1], pts[:, 0] + dist[:, 2], pts[:, 1] + dist[:, 3]], axis=1
    )
    if max_shape is not None:
        height, width = _max_shape(max_shape)
        np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    return boxes


def bbox2distance(points, bbox, max_dis: float | None = None, eps: float = 0.1) -> np.ndarray:
    """FCOS distances from points to box sides, the inverse of `distance2bbox`.

    points: (N, 2), bbox: (N, 4). Returns (N, 4) ``(x - x1, y - y1, x2 - x, y2 - y)``; with `max_dis`,
    clamped to ``[0, max_dis - eps]`` (mmdetection's convention for distribution-based heads).
    """
    pts = _points(points)
    boxes = as_boxes(bbox, "bbox")
    if pts.shape[0] != boxes.shape[0]:
        raise ValueError(f"points has {pts.shape[0]} rows but bbox has {boxes.shape[0]}; they must match")
    dtype = common_float_dtype(pts, boxes)
    pts, boxes = pts.astype(dtype, copy=False), boxes.astype(dtype, copy=False)
    dist = np.stack(
        [pts[:, 0] - boxes[:, 0], pts[:, 1] - boxes[:, 1], boxes[:, 2] - pts[:, 0], boxes[:, 3] - pts[:, 1]], axis=1
    )
    if max_dis is not None:
        max_dis = check_scalar(max_dis, "max_dis", low=0)
        eps = check_scalar(eps, "eps", low=0, high=max_dis)
        np.clip(dist, 0, max_dis - eps, out=dist)
    return dist


def centerness_target(bbox_targets) -> np.ndarray:
    """FCOS centerness of (N, 4) ``(left, top, right, bottom)`` targets.

    ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``: 1 at a box's centre, 0 on its edge
    (FCOS, eq. 3), as mmdetection's FCOS head computes it for positive points. A point on or outside an
    edge (any distance ``<= 0``) gets 0, where mmdetection would give 0, NaN or a meaningless value.
    """
    ltrb = as_boxes(bbox_targets, "bbox_targets", limit=2 * COORDINATE_LIMIT)  # distances: twice the bound
    left_right = ltrb[:, 0::2]
    top_bottom = ltrb[:, 1::2]
    lr_min, lr_max = left_right.min(axis=1), left_right.max(axis=1)
    tb_min, tb_max = top_bottom.min(axis=1), top_bottom.max(axis=1)
    ratio = np.zeros(ltrb.shape[0], dtype=ltrb.dtype)
    # a point on an edge (min 0) gives 0 by the formula; one outside the box (a negative distance) or in a
    # degenerate box (max 0) would give NaN or a meaningless positive product: 0 for both
    ok = (lr_min > 0) & (tb_min > 0)
    ratio[ok] = (lr_min[ok] / lr_max[ok]) * (tb_min[ok] / tb_max[ok])
    return np.sqrt(ratio)
