"""Rotated box coding: regression deltas ``(dx, dy, dw, dh, da)`` between rotated boxes, and back.

Boxes are (N, 5) ``(cx, cy, w, h, angle in degrees)`` (detectron2's convention, see `edudet.ops.rotated`).
The deltas are those of detectron2's ``Box2BoxTransformRotated`` (from Rotated/RRPN R-CNN): the R-CNN
deltas of the centre and size, plus the angle difference **in radians**, each times a weight::

    dx = wx * (cx' - cx) / w        dw = ww * log(w' / w)
    dy = wy * (cy' - cy) / h        dh = wh * log(h' / h)
    da = wa * radians(((angle' - angle + 180) mod 360) - 180)

Note that dx and dy are measured along the **image** axes, not along the box's own sides (as in detectron2;
a box turned by 90 degrees still divides its x shift by w). The angle difference is wrapped to
[-180, 180) degrees so that 170 -> -170 is a turn of +20 degrees, not -340.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .._validate import as_real_array, check_finite, check_scalar, common_float_dtype
from .rotated import as_rotated_boxes

__all__ = ["RotatedBoxCoder"]

_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)  # a box may grow at most 62.5x per decode (detectron2's)


def _wrap_degrees(angle: np.ndarray) -> np.ndarray:
    """Angles to [-180, 180) degrees (a floored modulo, as Python's and torch's ``%``)."""
    return (angle + 180.0) % 360.0 - 180.0


class RotatedBoxCoder:
    """Encode rotated boxes as deltas from reference boxes, and decode them (detectron2's semantics).

    ``weights = (wx, wy, ww, wh, wa)``, each > 0 (detectron2's RRPN uses (1, 1, 1, 1, 1) and its rotated
    ROI heads (10, 10, 5, 5, 1)); ``scale_clamp``: dw and dh are clamped to at most this before ``exp``
    (default ``log(1000 / 16)``). float32 and float64 are kept (float64 if either input is float64).
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0, 1.0),
                 scale_clamp: float = _DEFAULT_SCALE_CLAMP):
        if len(weights) != 5:
            raise ValueError(f"weights must hold 5 numbers (wx, wy, ww, wh, wa), got {len(weights)}")
        self.weights = tuple(check_scalar(w, f"weights[{k}]", low=0, low_inclusive=False)
                             for k, w in enumerate(weights))
        self.scale_clamp = check_scalar(scale_clamp, "scale_clamp")

    def __repr__(self) -> str:
        return f"RotatedBoxCoder(weights={self.weights}, scale_clamp={self.scale_clamp:.4f})"

    def get_deltas(self, src_boxes, target_boxes) -> np.ndarray:
        """(N, 5) deltas that turn each of `src_boxes` (N, 5) into the matching `target_boxes` (N, 5).

        Every width and height must be > 0 (a log of a ratio of sizes is taken). ``apply_deltas(get_deltas(
        src, target), src)`` gives `target` back (angles wrapped to [-180, 180)), unless dw or dh exceeds
        ``scale_clamp``.
        """
        src = as_rotated_boxes(src_boxes, "src_boxes")
        target = as_rotated_boxes(target_boxes, "target_boxes")
        if len(src) != len(target):
            raise ValueError(f"src_boxes has {len(src)} boxes but target_boxes has {len(target)}; they must match")
        for boxes, name in ((src, "src_boxes"), (target, "target_boxes")):
            if len(boxes) and float(np.min(boxes[:, 2:4])) <= 0:
                raise ValueError(f"{name} has a width or height of 0; box deltas need sizes > 0")
        dtype = common_float_dtype(src, target)
        src, target = src.astype(dtype, copy=False), target.astype(dtype, copy=False)
        wx, wy, ww, wh, wa = self.weights
        with np.errstate(over="ignore"):  # a ratio of sizes 1e-300 apart overflows to inf, as in torch
            deltas = np.stack([
                wx * (target[:, 0] - src[:, 0]) / src[:, 2],
                wy * (target[:, 1] - src[:, 1]) / src[:, 3],
                ww * np.log(target[:, 2] / src[:, 2]),
                wh * np.log(target[:, 3] / src[:, 3]),
                # degrees -> radians: the angle delta is on the same ~unit scale as the others
                _wrap_degrees(target[:, 4] - src[:, 4]) * (wa * math.pi / 180.0),
            ], axis=1)
        return deltas.astype(dtype, copy=False)

    def apply_deltas(self, deltas, boxes) -> np.ndarray:
        """(N, 5) rotated boxes: `deltas` (N, 5) applied to `boxes` (N, 5), the angle wrapped to [-180, 180).

        ``cx' = dx / wx * w + cx``, ``w' = exp(min(dw / ww, scale_clamp)) * w``, ``angle' = degrees(da / wa) +
        angle``; the same for y and h. Deltas must be finite.
        """
        boxes = as_rotated_boxes(boxes, "boxes")
        deltas = as_real_array(deltas, "deltas")
        if deltas.ndim != 2 or deltas.shape[1] != 5:
            raise ValueError(f"deltas must have shape (N, 5) (dx, dy, dw, dh, da), got {tuple(deltas.shape)}")
        if len(deltas) != len(boxes):
            raise ValueError(f"deltas has {len(deltas)} rows but boxes has {len(boxes)}; they must match")
        check_finite(deltas, "deltas")
        dtype = common_float_dtype(boxes, deltas) if deltas.dtype in (np.float32, np.float64) else boxes.dtype
        boxes, deltas = boxes.astype(dtype, copy=False), deltas.astype(dtype, copy=False)
        wx, wy, ww, wh, wa = self.weights
        dw = np.minimum(deltas[:, 2] / ww, self.scale_clamp)
        dh = np.minimum(deltas[:, 3] / wh, self.scale_clamp)
        with np.errstate(over="ignore"):
            out = np.stack([
                deltas[:, 0] / wx * boxes[:, 2] + boxes[:, 0],
                deltas[:, 1] / wy * boxes[:, 3] + boxes[:, 1],
                np.exp(dw) * boxes[:, 2],
                np.exp(dh) * boxes[:, 3],
                _wrap_degrees(deltas[:, 4] / wa * 180.0 / math.pi + boxes[:, 4]),
            ], axis=1)
        return out.astype(dtype, copy=False)
