"""The IoU family against torchvision: `distance_box_iou` and `complete_box_iou` on every CPU backend, and
`box_ioa` (no torchvision twin: its edudet backends only).

Workloads: anchor matching's shape (50 ground-truth boxes against many anchors, float32) and a square
1,000 x 1,000 case; torchvision builds a dozen (N, M) temporaries, so the shapes stay below box_iou's.
"""
from __future__ import annotations

import numpy as np
from harness import Case, random_boxes, torch_and_torchvision

from edudet import ops
from edudet.ops.iou_variants import _overlaps


def cases(quick: bool):
    torch, torchvision = torch_and_torchvision()
    rng = np.random.default_rng(0)
    backends = [b for b in _overlaps.backends if b != "cuda"]  # CUDA copies to the device: not a CPU race
    shapes = [(50, 5_000), (200, 200)] if quick else [(50, 50_000), (1_000, 1_000)]
    for name in ("distance_box_iou", "complete_box_iou"):
        ours = getattr(ops, name)
        for n, m in shapes:
            a, b = random_boxes(rng, n), random_boxes(rng, m)
            tv = None
            if torchvision is not None:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                tv = lambda ta=ta, tb=tb, f=getattr(torchvision.ops, name): f(ta, tb)  # noqa: E731
            yield Case(
                name,
                f"{n} x {m:,} float32",
                edudet={be: (lambda a=a, b=b, be=be, f=ours: f(a, b, backend=be)) for be in backends},
                torchvision=tv,
            )
    n, m = shapes[0]
    a, b = random_boxes(rng, n), random_boxes(rng, m)
    yield Case(
        "box_ioa",
        f"{n} x {m:,} float32",
        edudet={be: (lambda be=be: ops.box_ioa(a, b, backend=be)) for be in backends},
        torchvision=None,
    )
