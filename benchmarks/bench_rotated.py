"""Rotated boxes: `box_iou_rotated`, `nms_rotated`, `batched_nms_rotated`, `roi_align_rotated` and
`RotatedAnchorGenerator`, every CPU backend.

torchvision has no rotated op, so the baseline (the "torchvision ms" column, and the ratio) is edudet's own
vectorised NumPy reference (`edudet.ops.rotated`); the row's workload says so. Workloads are an oriented
detector's: centres in an 800-px image, sides 8 to 200 px, angles uniform in [-180, 180) degrees, float32.
"""
from __future__ import annotations

import numpy as np
from harness import Case

from edudet.ops.roi_align_rotated import _roi_align_rotated, roi_align_rotated
from edudet.rotated_anchors import RotatedAnchorGenerator, _rotated_grid_anchors
from edudet.ops.rotated import (
    _batched_nms_rotated,
    _box_iou_rotated,
    _nms_rotated,
    batched_nms_rotated,
    box_iou_rotated,
    nms_rotated,
)

BASELINE = "baseline: edudet's NumPy reference (no torchvision op)"


def random_rotated_boxes(rng: np.random.Generator, n: int, size: float = 800.0, min_side: float = 8.0,
                         max_side: float = 200.0) -> np.ndarray:
    """(n, 5) float32 ``(cx, cy, w, h, angle in degrees)`` boxes centred in a `size` x `size` image."""
    centres = rng.uniform(0, size, (n, 2))
    sides = rng.uniform(min_side, max_side, (n, 2))
    return np.column_stack([centres, sides, rng.uniform(-180, 180, n)]).astype(np.float32)


def _fast(dispatcher):
    return [b for b in dispatcher.backends if b not in ("numpy", "cuda")]  # CUDA copies to the device


def cases(quick: bool):
    rng = np.random.default_rng(0)
    for n, m in ([(500, 500)] if quick else [(1000, 1000), (100, 20_000)]):
        boxes1, boxes2 = random_rotated_boxes(rng, n), random_rotated_boxes(rng, m)
        yield Case("box_iou_rotated", f"{n:,} x {m:,} float32; {BASELINE}",
                   edudet={be: (lambda be=be, a=boxes1, b=boxes2: box_iou_rotated(a, b, backend=be))
                           for be in _fast(_box_iou_rotated)},
                   torchvision=lambda a=boxes1, b=boxes2: box_iou_rotated(a, b, backend="numpy"), repeat=3)

    n = 500 if quick else 2_000
    boxes, scores = random_rotated_boxes(rng, n), rng.random(n).astype(np.float32)
    yield Case("nms_rotated", f"{n:,} boxes, IoU 0.5, float32; {BASELINE}",
               edudet={be: (lambda be=be: nms_rotated(boxes, scores, 0.5, backend=be)) for be in _fast(_nms_rotated)},
               torchvision=lambda: nms_rotated(boxes, scores, 0.5, backend="numpy"), repeat=2)
    idxs = rng.integers(0, 15, size=n)
    yield Case("batched_nms_rotated", f"{n:,} boxes, 15 classes, IoU 0.5, float32; {BASELINE}",
               edudet={be: (lambda be=be: batched_nms_rotated(boxes, scores, idxs, 0.5, backend=be))
                       for be in _fast(_batched_nms_rotated)},
               torchvision=lambda: batched_nms_rotated(boxes, scores, idxs, 0.5, backend="numpy"), repeat=2)

    k = 100 if quick else 500
    features = rng.standard_normal((1, 64 if quick else 256, 100, 136)).astype(np.float32)
    rois = np.column_stack([np.zeros(k), random_rotated_boxes(rng, k, size=540.0)])
    yield Case("roi_align_rotated", f"{k} RoIs, {features.shape[1]}x100x136 -> 7x7, scale 1/4, sampling 2; {BASELINE}",
               edudet={be: (lambda be=be: roi_align_rotated(features, rois, 7, 0.25, 2, backend=be))
                       for be in _fast(_roi_align_rotated)},
               torchvision=lambda: roi_align_rotated(features, rois, 7, 0.25, 2, backend="numpy"), repeat=2)

    # detectron2's RRPN anchors on an FPN: one size per level, 3 ratios x 7 angles (its default angles)
    generator = RotatedAnchorGenerator(sizes=[[32], [64], [128], [256], [512]], aspect_ratios=[0.5, 1.0, 2.0],
                                       angles=[-90, -60, -30, 0, 30, 60, 90], strides=[4, 8, 16, 32, 64])
    shapes = [(100, 152), (50, 76), (25, 38), (13, 19), (7, 10)] if quick else \
        [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]
    count = sum(h * w for h, w in shapes) * 21
    yield Case("RotatedAnchorGenerator", f"{count:,} anchors (5 FPN levels, 3 ratios x 7 angles), float32; {BASELINE}",
               edudet={be: (lambda be=be: generator(shapes, backend=be)) for be in _fast(_rotated_grid_anchors)},
               torchvision=lambda: generator(shapes, backend="numpy"))
