"""Box ops against torchvision: `box_iou`, `generalized_box_iou`, `box_area`, `box_convert`, `masks_to_boxes` on
every CPU backend.

The headline workload is anchor matching's shape: 50 ground-truth boxes against 200,000 anchors of an
800-px image (sides 8..200 px), float32. A square 1,000 x 1,000 case shows the other aspect ratio. The O(n)
ops (`box_area`, `box_convert`) include edudet's input validation (one min and one max over the boxes);
torchvision validates nothing there. `masks_to_boxes` runs on instance masks of a 512 x 512 image: one
noisy rectangle each (sides 1..110 px), some empty, bool.
"""
from __future__ import annotations

import numpy as np
from harness import Case, random_boxes, torch_and_torchvision

import edudet
from edudet import ops


def cases(quick: bool):
    torch, torchvision = torch_and_torchvision()
    rng = np.random.default_rng(0)
    def cpu_backends(op):  # CUDA copies to the device: not a CPU race
        return [b for b in edudet.backends_for(op) if b != "cuda"]

    backends = cpu_backends("box_iou")
    iou_shapes = [(50, 20_000), (200, 200)] if quick else [(50, 200_000), (1_000, 1_000)]
    for n, m in iou_shapes:
        a, b = random_boxes(rng, n), random_boxes(rng, m)
        tv = None
        if torchvision is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            tv = lambda ta=ta, tb=tb: torchvision.ops.box_iou(ta, tb)  # noqa: E731
        yield Case(
            "box_iou",
            f"{n} x {m:,} float32",
            edudet={be: (lambda a=a, b=b, be=be: ops.box_iou(a, b, backend=be)) for be in backends},
            torchvision=tv,
        )

    n, m = (100, 200) if quick else (1_000, 1_000)
    a, b = random_boxes(rng, n), random_boxes(rng, m)
    tv = None
    if torchvision is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        tv = lambda ta=ta, tb=tb: torchvision.ops.generalized_box_iou(ta, tb)  # noqa: E731
    yield Case("generalized_box_iou", f"{n:,} x {m:,} float32",
               edudet={be: (lambda be=be: ops.generalized_box_iou(a, b, backend=be))
                       for be in cpu_backends("generalized_box_iou")},
               torchvision=tv)

    n = 20_000 if quick else 200_000
    boxes = random_boxes(rng, n)
    t = torch.from_numpy(boxes) if torch is not None else None
    yield Case(
        "box_area",
        f"{n:,} float32",
        edudet={be: (lambda be=be: ops.box_area(boxes, backend=be)) for be in cpu_backends("box_area")},
        torchvision=(lambda: torchvision.ops.box_area(t)) if t is not None else None,
    )
    yield Case(
        "box_convert",
        f"{n:,} xyxy->cxcywh",
        edudet={be: (lambda be=be: ops.box_convert(boxes, "xyxy", "cxcywh", backend=be))
                for be in cpu_backends("box_convert")},
        torchvision=(lambda: torchvision.ops.box_convert(t, "xyxy", "cxcywh")) if t is not None else None,
    )

    n, side = (10, 256) if quick else (50, 512)
    masks = np.zeros((n, side, side), dtype=bool)
    for k in range(n - n // 10):  # the last tenth stays empty
        y, x = rng.integers(0, side - 110, 2)
        h, w = rng.integers(1, 111, 2)
        masks[k, y:y + h, x:x + w] = rng.random((h, w)) < 0.7
    tm = torch.from_numpy(masks) if torch is not None else None
    yield Case(
        "masks_to_boxes",
        f"{n} x {side} x {side} bool",
        edudet={be: (lambda be=be: ops.masks_to_boxes(masks, backend=be)) for be in cpu_backends("masks_to_boxes")},
        torchvision=(lambda: torchvision.ops.masks_to_boxes(tm)) if tm is not None else None,
    )
