"""Region Proposal Network (Ren et al., 2015): objectness and box deltas for every anchor, filtered to proposals.

The head runs on every FPN level with shared weights: a 3x3 conv + ReLU, then two 1x1 convs giving, per
location, one objectness logit and four ``(dx, dy, dw, dh)`` deltas for each of its A anchors. Filtering
(torchvision's ``RegionProposalNetwork.filter_proposals``, inference): on each level keep the
`pre_nms_top_n` highest logits, decode them against their anchors (BoxCoder weights (1, 1, 1, 1)), clip to
the image, drop boxes with a side below `min_size` (1e-3 px), keep ``sigmoid(logit) >= score_thresh``,
run NMS at `nms_thresh` separately per level, and keep the `post_nms_top_n` best of all levels.
"""
from __future__ import annotations

import numpy as np

from .._validate import check_scalar
from ..box_coder import BoxCoder
from ..ops import batched_nms, remove_small_boxes
from .layers import Conv2d
from .trace import NULL_TRACE
from .weights import StateModule

__all__ = ["RPNHead", "RegionProposalNetwork", "sigmoid", "clip_per_image"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow warnings for very negative logits."""
    with np.errstate(over="ignore"):
        return np.float32(1) / (np.float32(1) + np.exp(-x))


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """`sigmoid` in place (the same operations, so the same bits), for large fresh arrays; returns `x`."""
    with np.errstate(over="ignore"):
        np.negative(x, out=x)
        np.exp(x, out=x)
        x += np.float32(1)
        return np.reciprocal(x, out=x)


class RPNHead(StateModule):
    """Levels ``(N, C, H_l, W_l)`` -> per level objectness ``(N, A, H_l, W_l)`` and deltas ``(N, 4A, H_l, W_l)``.

    `conv_depth` 3x3 conv + ReLU layers come first (torchvision's ``conv_depth``: 1, or 2 in the v2 models).
    Keys: ``conv.{i}.0.{weight,bias}`` for each of them, ``cls_logits.{weight,bias}``, ``bbox_pred.{weight,bias}``.
    """

    def __init__(self, in_channels: int, num_anchors: int, conv_depth: int = 1):
        conv_depth = check_scalar(conv_depth, "conv_depth", low=1, integer=True)
        self.convs = [Conv2d(in_channels, in_channels, 3, padding=1) for _ in range(conv_depth)]
        self.cls_logits = Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = Conv2d(in_channels, num_anchors * 4, 1)

    @property
    def conv(self) -> Conv2d:
        """The first 3x3 conv (the only one of the v1 head)."""
        return self.convs[0]

    def children(self):
        return {**{f"conv.{i}.0": conv for i, conv in enumerate(self.convs)},
                "cls_logits": self.cls_logits, "bbox_pred": self.bbox_pred}

    def __call__(self, features: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        logits, deltas = [], []
        for feature in features:
            hidden = feature
            for conv in self.convs:
                hidden = conv(hidden, relu=True)
            logits.append(self.cls_logits(hidden))
            deltas.append(self.bbox_pred(hidden))
        return logits, deltas


def flatten_level(output: np.ndarray, values_per_anchor: int) -> np.ndarray:
    """``(N, A C, H, W)`` -> ``(N, H W A, C)``: locations row-major, anchors inner, as the anchors are listed."""
    n, channels, h, w = output.shape
    anchors = channels // values_per_anchor
    return output.reshape(n, anchors, values_per_anchor, h, w).transpose(0, 3, 4, 1, 2).reshape(
        n, h * w * anchors, values_per_anchor)


def top_n_descending(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` largest entries of each row of `scores` ((..., M) -> (..., n)), largest first
    (``torch.topk``); ties keep the lower index first, also at the n-th place (``torch.topk`` leaves
    which of several equal scores it keeps unspecified)."""
    if n >= scores.shape[-1]:
        return np.argsort(-scores, axis=-1, kind="stable")
    if n <= 0:
        return np.zeros((*scores.shape[:-1], 0), np.int64)
    # the n-th largest value of each row: every larger score is in, and the lowest-index equal ones fill up
    kth = -np.partition(-scores, n - 1, axis=-1)[..., n - 1: n]
    above = scores > kth
    equal = scores == kth
    room = n - above.sum(axis=-1, keepdims=True)
    chosen = above | (equal & (np.cumsum(equal, axis=-1) <= room))
    part = np.nonzero(chosen.reshape(-1, scores.shape[-1]))[1].reshape(*scores.shape[:-1], n)  # ascending
    # order the chosen few by (score desc, index asc): a stable sort of the ascending indices by score
    order = np.argsort(-np.take_along_axis(scores, part, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1)


def clip_per_image(boxes: np.ndarray, starts, image_sizes) -> None:
    """Clip, in place, rows ``starts[i]:starts[i + 1]`` of `boxes` (N, 4) to ``image_sizes[i]`` = (height, width):
    `edudet.ops.clip_boxes_to_image` for rows grouped by image (x to [0, width], y to [0, height])."""
    for start, stop, (height, width) in zip(starts[:-1], starts[1:], image_sizes):
        rows = boxes[start:stop]
        np.clip(rows[:, 0::2], 0, width, out=rows[:, 0::2])
        np.clip(rows[:, 1::2], 0, height, out=rows[:, 1::2])


class RegionProposalNetwork(StateModule):
    """Features -> proposals: per image ``(K, 4)`` float32 ``(x1, y1, x2, y2)`` boxes and ``(K,)`` scores.

    See the module docstring for the filtering rule. `anchor_generator` is an `edudet.AnchorGenerator`.
    """

    def __init__(self, anchor_generator, head: RPNHead, pre_nms_top_n: int = 1000, post_nms_top_n: int = 1000,
                 nms_thresh: float = 0.7, score_thresh: float = 0.0, min_size: float = 1e-3):
        self.anchor_generator, self.head = anchor_generator, head
        self.pre_nms_top_n = check_scalar(pre_nms_top_n, "pre_nms_top_n", low=1, integer=True)
        self.post_nms_top_n = check_scalar(post_nms_top_n, "post_nms_top_n", low=1, integer=True)
        self.nms_thresh = check_scalar(nms_thresh, "nms_thresh", low=0, high=1)
        self.score_thresh = check_scalar(score_thresh, "score_thresh", low=0, high=1)
        self.min_size = check_scalar(min_size, "min_size", low=0)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))

    def children(self):
        return {"head": self.head}

    def __call__(self, batch_shape, image_sizes, features: list[np.ndarray], trace=NULL_TRACE):
        with trace.stage("rpn.head") as stage:
            logits, deltas = self.head(features)
            stage.add("objectness", logits)
            stage.add("deltas", deltas)
        with trace.stage("rpn.anchors") as stage:
            anchors = self.anchor_generator.cached(tuple(batch_shape), [f.shape[-2:] for f in features])
            stage.add("anchors", anchors)
        with trace.stage("rpn.filter_proposals") as stage:
            proposals, scores = self.filter_proposals(anchors, logits, deltas, image_sizes)
            stage.add("proposals", proposals)
        return proposals, scores

    def select_top_n(self, logits: list[np.ndarray], deltas: list[np.ndarray]):
        """Per level, the `pre_nms_top_n` best anchors of every image: ``(N, K)`` indices into all anchors,
        ``(N, K)`` logits, ``(N, K, 4)`` deltas and ``(K,)`` level of each (every image has the same K)."""
        picked, picked_logits, picked_deltas, levels = [], [], [], []
        offset = 0
        for level, (level_logits, level_deltas) in enumerate(zip(logits, deltas)):
            scores = flatten_level(level_logits, 1)[:, :, 0]  # (N, H W A), as the anchors are listed
            best = top_n_descending(scores, min(self.pre_nms_top_n, scores.shape[1]))  # (N, n)
            picked.append(best + offset)
            picked_logits.append(np.take_along_axis(scores, best, axis=1))
            # only the chosen deltas are gathered (not the whole level flattened): entry h w A of anchor a at
            # location l is channel group a, pixel l of the (N, 4 A, H, W) map
            n, channels, h, w = level_deltas.shape
            anchors = channels // 4
            by_anchor = level_deltas.reshape(n, anchors, 4, h * w)
            picked_deltas.append(by_anchor[np.arange(n)[:, None], best % anchors, :, best // anchors])  # (N, n, 4)
            levels.append(np.full(best.shape[1], level, np.int64))
            offset += scores.shape[1]
        return (np.concatenate(picked, axis=1), np.concatenate(picked_logits, axis=1),
                np.concatenate(picked_deltas, axis=1), np.concatenate(levels))

    def filter_proposals(self, anchors: np.ndarray, logits, deltas, image_sizes):
        """Every image at once: one decode, one clip, one NMS (per image and level: each pair is its own
        category, so boxes of different images never suppress each other), then split per image."""
        num_images = len(image_sizes)
        # decoding only the chosen anchors gives the same boxes as decoding all, for a fraction of the work
        index, chosen_logits, chosen_deltas, levels = self.select_top_n(logits, deltas)
        per_image = index.shape[1]
        boxes = self.box_coder.decode(chosen_deltas.reshape(-1, 4), anchors[index.reshape(-1)])
        scores = sigmoid(chosen_logits.reshape(-1))
        clip_per_image(boxes, range(0, (num_images + 1) * per_image, per_image), image_sizes)  # image after image
        image = np.repeat(np.arange(num_images), per_image)
        # remove_small_boxes (sides compared in float32), then scores >= score_thresh (a legacy choice kept by
        # torchvision; a tensor-vs-Python-float comparison happens in float32)
        keep = remove_small_boxes(boxes, self.min_size)
        keep = keep[scores[keep] >= np.float32(self.score_thresh)]
        boxes, scores, image = boxes[keep], scores[keep], image[keep]
        category = image * len(logits) + np.tile(levels, num_images)[keep]
        keep = batched_nms(boxes, scores, category, self.nms_thresh)  # by score, ties by index: per image as alone
        all_boxes, all_scores = [], []
        for i in range(num_images):
            mine = keep[image[keep] == i][: self.post_nms_top_n]
            all_boxes.append(np.ascontiguousarray(boxes[mine], np.float32))
            all_scores.append(np.ascontiguousarray(scores[mine], np.float32))
        return all_boxes, all_scores
