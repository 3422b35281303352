"""NMS against torchvision: `nms` and `batched_nms` on every CPU backend, `soft_nms` and `nms_match` on their own.

Workloads are a detector's: boxes in an 800-px image with sides 8 to 200 px, random float32 scores, IoU
threshold 0.7 (an RPN's). torchvision's CPU `nms` tests each kept box against every later box (quadratic);
edudet's compiled kernels test only pairs that can overlap (a uniform grid), with index-for-index the same
result. The NumPy reference (quadratic, vectorised per kept box) runs on the smaller workloads only.

Two box layouts: uniform (boxes anywhere in the image) and clustered, as an RPN proposes them: tens of objects,
each with hundreds of jittered copies of its box whose scores fall with the jitter. Where OpenCV is installed,
`cv2.dnn.NMSBoxes` is a second peer: its rows name it in the op column and put its time in the torchvision
column (the harness has one peer column). OpenCV is not a dependency (`pip install opencv-python-headless`).
How `cv2.dnn.NMSBoxes(bboxes, scores, score_threshold, nms_threshold)` differs from `edudet.ops.nms`:
- boxes are (x, y, w, h) Python sequences (lists of 4 floats become `Rect2d`, doubles; ints would be `Rect`),
  so the (x1, y1, x2, y2) float32 arrays are converted outside the timing, and its IoU is computed in float64;
- its IoU has no +1: ``area = w * h`` (checked: (0, 0, 10, 10) and (5, 0, 10, 10) in (x, y, w, h) overlap by
  50 / 150 = 0.33 and both survive threshold 0.35; with +1 it would be 66 / 176 = 0.375);
- it first drops boxes whose score is not strictly above `score_threshold` (0.0 here: keeps every box of a
  positive score); then greedy, suppressing IoU > nms_threshold, as edudet and torchvision;
- it returns the kept indices in descending score order, as edudet. On these workloads the kept sets are
  equal (checked on 50 uniform draws); a pair whose float32 and float64 IoUs straddle the threshold could
  differ.
"""
from __future__ import annotations

import numpy as np
from harness import Case, random_boxes, torch_and_torchvision

import edudet
from edudet.ops.nms import batched_nms, nms, nms_match, soft_nms


def clustered_proposals(rng: np.random.Generator, n_objects: int, per_object: int, size: float = 800.0):
    """(n_objects * per_object, 4) float32 boxes and scores: jittered copies of a few objects' boxes.

    Each object is a box with sides 20..300 px; its copies move by up to 25% of the side and scale by up to
    +-30%, with a score of 0.3..1 that falls as they move away (what RPN proposals around an object look like).
    """
    wh = rng.uniform(20, 300, size=(n_objects, 2))
    xy = rng.uniform(0, size - wh)
    centers = np.repeat(xy + wh / 2, per_object, axis=0)
    sides = np.repeat(wh, per_object, axis=0)
    shift = rng.uniform(-0.25, 0.25, size=centers.shape)
    scale = rng.uniform(0.7, 1.3, size=sides.shape)
    c = centers + shift * sides
    half = sides * scale / 2
    boxes = np.clip(np.concatenate([c - half, c + half], axis=1), 0, size).astype(np.float32)
    scores = (0.3 + 0.7 * (1 - np.abs(shift).max(axis=1) / 0.25) * rng.uniform(0.8, 1.0, len(c)))
    return boxes, scores.astype(np.float32)


def opencv():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def cv2_nms(cv2, boxes: np.ndarray, scores: np.ndarray, iou_threshold: float):
    """A zero-argument call of cv2.dnn.NMSBoxes on the same boxes ((x, y, w, h) lists, built outside the timing)."""
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64).tolist()
    score_list = scores.astype(np.float64).tolist()
    return lambda: cv2.dnn.NMSBoxes(xywh, score_list, 0.0, iou_threshold)


def cases(quick: bool):
    torch, torchvision = torch_and_torchvision()
    rng = np.random.default_rng(0)
    cv2 = opencv()

    def cpu_backends(op):  # CUDA copies to the device: not a CPU race
        return [b for b in edudet.backends_for(op) if b != "cuda"]

    cpu = cpu_backends("nms")
    sizes = [2_000, 5_000] if quick else [20_000, 5_000]
    workloads = [(f"{n:,} boxes", random_boxes(rng, n), rng.random(n).astype(np.float32)) for n in sizes]
    objects, per_object = (10, 200) if quick else (40, 150)
    workloads.append((f"{objects * per_object:,} clustered boxes ({objects} objects)",
                      *clustered_proposals(rng, objects, per_object)))
    for label, boxes, scores in workloads:
        n = len(boxes)
        backends = [b for b in cpu if b != "numpy" or n <= 5_000]
        tv = None
        if torchvision is not None:
            tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
            tv = lambda tb=tb, ts=ts: torchvision.ops.nms(tb, ts, 0.7)  # noqa: E731
        edudet_calls = {be: (lambda b=boxes, s=scores, be=be: nms(b, s, 0.7, backend=be)) for be in backends}
        yield Case("nms", f"{label}, IoU 0.7, float32", edudet=edudet_calls, torchvision=tv,
                   repeat=2 if n > 10_000 else 5)
        if cv2 is not None:
            yield Case("nms (peer: cv2.dnn.NMSBoxes)", f"{label}, IoU 0.7, float32", edudet=edudet_calls,
                       torchvision=cv2_nms(cv2, boxes, scores, 0.7), repeat=2 if n > 10_000 else 5)

    n = 5_000 if quick else 20_000
    boxes, scores = random_boxes(rng, n), rng.random(n).astype(np.float32)
    idxs = rng.integers(0, 80, size=n)
    backends = [b for b in cpu_backends("batched_nms") if b != "numpy" or n <= 5_000]
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
                           for be in cpu_backends("soft_nms")},
                   torchvision=None, repeat=3)

    # mmdetection's test_cfg: drop scores <= 0.05, per-class NMS, keep the best 100; torchvision's equivalent is
    # the same three steps around its batched_nms
    n = 5_000 if quick else 20_000
    boxes, scores = random_boxes(rng, n), rng.random(n).astype(np.float32)
    idxs = rng.integers(0, 80, size=n)
    tv = None
    if torchvision is not None:
        tb, ts, ti = (torch.from_numpy(a) for a in (boxes, scores, idxs))

        def tv(tb=tb, ts=ts, ti=ti):
            candidates = torch.nonzero(ts > 0.05).squeeze(1)
            return candidates[torchvision.ops.batched_nms(tb[candidates], ts[candidates], ti[candidates], 0.5)][:100]
    yield Case("batched_nms + score_threshold, max_num", f"{n:,} boxes, 80 classes, score > 0.05, top 100, IoU 0.5",
               edudet={be: (lambda be=be: batched_nms(boxes, scores, idxs, 0.5, backend=be, score_threshold=0.05,
                                                      max_num=100))
                       for be in cpu_backends("batched_nms") if be != "numpy" or n <= 5_000},
               torchvision=tv)

    n = 1_000 if quick else 3_000
    dets = np.concatenate([random_boxes(rng, n), rng.random((n, 1)).astype(np.float32)], axis=1)
    yield Case("nms_match", f"{n:,} boxes, IoU 0.5, float32 (mmcv semantics; no torchvision op)",
               edudet={be: (lambda be=be: nms_match(dets, 0.5, backend=be)) for be in cpu_backends("nms_match")},
               torchvision=None, repeat=3)
