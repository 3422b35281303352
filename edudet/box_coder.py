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
from typing import Sequence

import numpy as np

from ._validate import as_boxes, as_real_array, check_finite, check_scalar, common_float_dtype

__all__ = ["BoxCoder", "distance2bbox", "bbox2distance", "centerness_target"]

_DEFAULT_CLIP = math.log(1000.0 / 16)  # a box may grow at most 1000/16 = 62.5x its reference per decode


def _widths_heights_centres(boxes: np.ndarray):
    widths = boxes[:, 2] - boxes[:, 0]  # continuous coordinates: no "+1"
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    return widths, heights, ctr_x, ctr_y


class BoxCoder:
    """Encode boxes as ``(dx, dy, dw, dh)`` deltas against reference boxes, and decode them back.

    With weights ``(wx, wy, ww, wh)``, a box ``g`` against a reference ``p`` (sizes ``w, h``, centres
    ``x, y``) is ``dx = wx (g_x - p_x) / p_w``, ``dy = wy (g_y - p_y) / p_h``, ``dw = ww log(g_w / p_w)``,
    ``dh = wh log(g_h / p_h)``. Decoding inverts this, clamping ``dw, dh`` (after dividing by the weights)
    at ``bbox_xform_clip`` so that ``exp`` cannot overflow on a wild prediction. torchvision's Faster R-CNN
    uses weights (1, 1, 1, 1) in the RPN and (10, 10, 5, 5) in the box head.
    """

    def __init__(self, weights: Sequence[float], bbox_xform_clip: float = _DEFAULT_CLIP):
        if len(weights) != 4:
            raise ValueError(f"weights must be 4 numbers (wx, wy, ww, wh), got {weights!r}")
        self.weights = tuple(check_scalar(w, f"weights[{i}]", low=0, low_inclusive=False) for i, w in enumerate(weights))
        self.bbox_xform_clip = check_scalar(bbox_xform_clip, "bbox_xform_clip")

    def __repr__(self) -> str:
        return f"BoxCoder(weights={self.weights}, bbox_xform_clip={self.bbox_xform_clip:.4f})"

    def encode(self, reference_boxes, proposals):
        """Deltas that take each proposal to its reference (ground-truth) box.

        reference_boxes: (N, 4) targets, proposals: (N, 4) anchors or proposals, both ``(x1, y1, x2, y2)``
        (torchvision's argument order). Returns (N, 4) ``(dx, dy, dw, dh)``. Lists of per-image arrays are
        accepted too and give a list back.
        """
        if isinstance(reference_boxes, (list, tuple)):
            if not isinstance(proposals, (list, tuple)) or len(proposals) != len(reference_boxes):
                raise ValueError("reference_boxes and proposals must both be lists of the same length")
            return [self.encode(r, p) for r, p in zip(reference_boxes, proposals)]
        gt = as_boxes(reference_boxes, "reference_boxes")
        anchors = as_boxes(proposals, "proposals")
        if gt.shape[0] != anchors.shape[0]:
            raise ValueError(
                f"reference_boxes has {gt.shape[0]} boxes but proposals has {anchors.shape[0]}; they must match"
            )
        dtype = common_float_dtype(gt, anchors)
        gt, anchors = gt.astype(dtype, copy=False), anchors.astype(dtype, copy=False)
        wx, wy, ww, wh = (dtype(w) for w in self.weights)
        ex_w, ex_h, ex_x, ex_y = _widths_heights_centres(anchors)
        gt_w, gt_h, gt_x, gt_y = _widths_heights_centres(gt)
        with np.errstate(divide="ignore", invalid="ignore"):  # degenerate proposals give inf, as torchvision
            targets = np.stack(
                [
                    wx * (gt_x - ex_x) / ex_w,
                    wy * (gt_y - ex_y) / ex_h,
                    ww * np.log(gt_w / ex_w),
                    wh * np.log(gt_h / ex_h),
                ],
                axis=1,
            )
        return targets

    def decode_single(self, rel_codes, boxes) -> np.ndarray:
        """Boxes from deltas: rel_codes (N, 4k) against boxes (N, 4) -> (N, 4k) ``(x1, y1, x2, y2)`` groups."""
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
        widths, heights, ctr_x, ctr_y = _widths_heights_centres(refs)
        wx, wy, ww, wh = self.weights
        dx = codes[:, 0::4] / wx
        dy = codes[:, 1::4] / wy
        dw = np.minimum(codes[:, 2::4] / ww, self.bbox_xform_clip)
        dh = np.minimum(codes[:, 3::4] / wh, self.bbox_xform_clip)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        half_w = dtype(0.5) * (np.exp(dw) * widths[:, None])
        half_h = dtype(0.5) * (np.exp(dh) * heights[:, None])
        out = np.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h], axis=2)
        return out.reshape(codes.shape[0], -1)

    def decode(self, rel_codes, boxes) -> np.ndarray:
        """Boxes from deltas.

        rel_codes: (N, 4) or (N, 4k) (k classes), boxes: (N, 4) references (or a list of per-image
        arrays, concatenated). Returns (N, 4) for (N, 4) codes and (N, k, 4) for (N, 4k) codes, k > 1.
        """
        if isinstance(boxes, (list, tuple)):
            boxes = np.concatenate([as_boxes(b, "boxes") for b in boxes]) if len(boxes) else np.zeros((0, 4), np.float32)
        out = self.decode_single(rel_codes, boxes)
        return out if out.shape[1] == 4 else out.reshape(out.shape[0], -1, 4)


def _points(points) -> np.ndarray:
    return as_boxes(points, "points", width=2)


def distance2bbox(points, distance, max_shape=None) -> np.ndarray:
    """Boxes from FCOS distances.

    points: (N, 2) ``(x, y)``; distance: (N, 4) ``(left, top, right, bottom)``. Returns (N, 4)
    ``(x - left, y - top, x + right, y + bottom)``, clipped to ``max_shape = (height, width)`` if given.
    """
    pts = _points(points)
    dist = as_boxes(distance, "distance")
    if pts.shape[0] != dist.shape[0]:
        raise ValueError(f"points has {pts.shape[0]} rows but distance has {dist.shape[0]}; they must match")
    dtype = common_float_dtype(pts, dist)
    pts, dist = pts.astype(dtype, copy=False), dist.astype(dtype, copy=False)
    boxes = np.stack(
        [pts[:, 0] - dist[:, 0], pts[:, 1] - dist[:, 1], pts[:, 0] + dist[:, 2], pts[:, 1] + dist[:, 3]], axis=1
    )
    if max_shape is not None:
        height, width = max_shape[0], max_shape[1]
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
        np.clip(dist, 0, max_dis - eps, out=dist)
    return dist


def centerness_target(bbox_targets) -> np.ndarray:
    """FCOS centerness of (N, 4) ``(left, top, right, bottom)`` targets.

    ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``: 1 at a box's centre, 0 on its edge
    (FCOS, eq. 3). A point with ``max(l, r) == 0`` or ``max(t, b) == 0`` gets 0 instead of NaN.
    """
    ltrb = as_boxes(bbox_targets, "bbox_targets")
    left_right = ltrb[:, 0::2]
    top_bottom = ltrb[:, 1::2]
    lr_max, tb_max = left_right.max(axis=1), top_bottom.max(axis=1)
    ratio = np.zeros(ltrb.shape[0], dtype=ltrb.dtype)
    ok = (lr_max > 0) & (tb_max > 0)
    ratio[ok] = (left_right.min(axis=1)[ok] / lr_max[ok]) * (top_bottom.min(axis=1)[ok] / tb_max[ok])
    return np.sqrt(np.clip(ratio, 0, None))
