"""NMS against torchvision: `nms` and `batched_nms` on every CPU backend, `soft_nms` on its own.

Workloads are a detector's: boxes in an 800-px image with sides 8 to 200 px, random float32 scores, IoU
threshold 0.7 (an RPN's). torchvision's CPU `nms` tests each kept box against every later box (quadratic);
edudet's compiled kernels test only pairs that can overlap (a uniform grid), with index-for-index the same
result. The NumPy reference (quadratic, vectorised per kept box) runs on the smaller workloads only.
"""
from __future__ import annotations

import numpy as np
from harness import Case, random_boxes, torch_and_torchvision

from edudet.ops.nms import _batched_nms, _nms, _soft_nms, batched_nms, nms, soft_nms


def cases(quick: bool):
    torch, torchvision = torch_and_torchvision()
    rng = np.random.default_rng(0)
    cpu = [b for b in _nms.backends if b != "cuda"]  # CUDA copies to the device: not a CPU race
    sizes = [2_000, 5_000] if quick else [20_000, 5_000]
    for n in sizes:
        boxes, scores = random_boxes(rng, n), rng.random(n).astype(np.float32)
        backends = [b for b in cpu if b != "numpy" or n <= 5_000]
        tv = None
        if torchvision is not None:
            tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
            tv = lambda tb=tb, ts=ts: torchvision.ops.nms(tb, ts, 0.7)  # noqa: E731
        yield Case("nms", f"{n:,} boxes, IoU 0.7, float32",
                   edudet={be: (lambda b=boxes, s=scores, be=be: nms(b, s, 0.7, backend=be)) for be in backends},
                   torchvision=tv, repeat=2 if n > 10_000 else 5)

    n = 5_000 if quick else 20_000
    boxes, scores = random_boxes(rng, n), rng.random(n).astype(np.float32)
    idxs = rng.integers(0, 80, size=n)
    backends = [b for b in _batched_nms.backends if b != "cuda" and (b != "numpy" or n <= 5_000)]
    tv = None
    if torchvision is not None:
        t = [torch.from_numpy(a) for a in (boxes, scores, idxs)]
        tv = lambda t=t: torchvision.ops.batched_nms(*t, 0.7)  # noqa: E731
    yield Case("batched_nms", f"{n:,} boxes, 80 classes, IoU 0.7, float32",
               edudet={be: (lambda be=be: batched_nms(boxes, scores, idxs, 0.7, backend=be)) for be in backends},
               torchvision=tv)

    n = 1_000 if quick else 3_000
    boxes, scores = random_boxes(rng, n), rng.random(n).astype(np.float32)
    for method in ("linear", "gaussian"):
        yield Case("soft_nms", f"{n:,} boxes, {method}, float32 (mmcv semantics; no torchvision op)",
                   edudet={be: (lambda be=be, m=method: soft_nms(boxes, scores, 0.3, 0.5, 1e-3, m, backend=be))
                           for be in _soft_nms.backends if be != "cuda"},
                   torchvision=None, repeat=3)
