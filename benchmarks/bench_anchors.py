"""Anchors, matching and targets against torchvision.

The headline case is Faster R-CNN's RPN target step for one 800 x 1216 image: generate the 242,991 FPN
anchors (5 levels, 3 ratios), IoU against 50 ground truths, Matcher(0.7, 0.3, low-quality) -- torchvision's
three calls against edudet's `AnchorGenerator` + the fused `Matcher.match_boxes`. Parts are timed alone too,
and FCOS target assignment (no torchvision equivalent: mmdetection's rule) on every backend.
"""
from __future__ import annotations

import numpy as np
from harness import Case, random_boxes, torch_and_torchvision

from edudet import AnchorGenerator, Matcher, fcos_targets
from edudet.anchors import _grid_anchors
from edudet.matcher import _match_boxes
from edudet.targets import _fcos_assign

SIZES = ((32,), (64,), (128,), (256,), (512,))
RATIOS = ((0.5, 1.0, 2.0),) * 5


def cases(quick: bool):
    torch, _ = torch_and_torchvision()
    rng = np.random.default_rng(0)
    height, width = (256, 384) if quick else (800, 1216)
    shapes = [(-(-height // 2 ** k), -(-width // 2 ** k)) for k in range(2, 7)]
    # sides 16 .. 600 px; capped by the image so the --quick image (256 x 384) can hold them
    gt = random_boxes(rng, 50, height, width, min_side=16.0, max_side=min(600.0, height, width))
    generator = AnchorGenerator(SIZES, RATIOS)
    anchors = generator((height, width), shapes)
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    backends = [b for b in _match_boxes.backends if b != "cuda"]  # CUDA copies to the device: not a CPU race
    workload = f"{height}x{width}, {anchors.shape[0]:,} anchors x 50 gt"

    tv_all = tv_anchors = tv_match = None
    if torch is not None:
        from torchvision.models.detection._utils import Matcher as TvMatcher
        from torchvision.models.detection.anchor_utils import AnchorGenerator as TvAnchorGenerator
        from torchvision.models.detection.image_list import ImageList
        from torchvision.ops import box_iou

        tv_generator, tv_matcher = TvAnchorGenerator(SIZES, RATIOS), TvMatcher(0.7, 0.3, True)
        images = ImageList(torch.zeros(1, 3, height, width), [(height, width)])
        maps = [torch.zeros(1, 1, h, w) for h, w in shapes]
        tv_gt, tv_anchor_tensor = torch.from_numpy(gt), torch.from_numpy(anchors)

        def tv_all():
            return tv_matcher(box_iou(tv_gt, tv_generator(images, maps)[0]))

        def tv_anchors():
            return tv_generator(images, maps)

        def tv_match():
            return tv_matcher(box_iou(tv_gt, tv_anchor_tensor))

    yield Case(
        "anchors+iou+matcher", workload,
        edudet={be: (lambda be=be: matcher.match_boxes(gt, generator((height, width), shapes), backend=be))
                for be in backends},
        torchvision=tv_all, repeat=5,
    )
    yield Case(
        "AnchorGenerator", f"{height}x{width}, 5 levels x 3 ratios",
        edudet={be: (lambda be=be: generator((height, width), shapes, backend=be))
                for be in _grid_anchors.backends if be != "cuda"},
        torchvision=tv_anchors,
    )
    yield Case(
        "iou+matcher", workload,
        edudet={be: (lambda be=be: matcher.match_boxes(gt, anchors, backend=be)) for be in backends},
        torchvision=tv_match, repeat=5,
    )

    fcos_shapes = [(-(-height // 2 ** k), -(-width // 2 ** k)) for k in range(3, 8)]
    labels = rng.integers(0, 80, gt.shape[0])
    fcos_backends = [b for b in _fcos_assign.backends if b != "cuda"]
    yield Case(
        "fcos_targets", f"{height}x{width}, {sum(h * w for h, w in fcos_shapes):,} points x 50 gt, center sampling",
        edudet={be: (lambda be=be: fcos_targets(gt, labels, (height, width), fcos_shapes, 80, center_sampling=True,
                                                norm_on_bbox=True, backend=be)) for be in fcos_backends},
        torchvision=None, repeat=3, notes="mmdetection's FCOSHead.get_targets rule; torchvision has none",
    )
