"""The box head of Faster R-CNN (Ren et al., 2015): from proposals to labelled, scored detections.

Each proposal is pooled from its FPN level to a ``256 x 7 x 7`` grid (MultiScaleRoIAlign, sampling ratio
2), flattened, passed through two 1024-wide fully connected layers with ReLU (``TwoMLPHead``), then a
predictor gives class logits and per-class box deltas (``FastRCNNPredictor``). Post-processing
(torchvision's ``RoIHeads.postprocess_detections``): softmax over classes, decode each class's deltas
against the proposal (weights (10, 10, 5, 5)), clip to the image, drop the background class, keep
``score > score_thresh``, drop boxes with a side below 1e-2 px, NMS at `nms_thresh` separately per class,
keep the `detections_per_img` best. Mask R-CNN then runs its mask branch on those detections
(`mask_rcnn.MaskBranch`, set as ``mask_branch``), adding ``masks`` to each result.
"""
from __future__ import annotations

import numpy as np

from .._validate import check_scalar
from ..box_coder import BoxCoder
from ..ops import batched_nms, clip_boxes_to_image, remove_small_boxes
from ..poolers import MultiScaleRoIAlign
from .layers import Linear, softmax
from .trace import NULL_TRACE
from .weights import StateModule

__all__ = ["TwoMLPHead", "FastRCNNPredictor", "RoIHeads", "multiscale_roi_align"]


def multiscale_roi_align(featmap_names, output_size, sampling_ratio, featmap_strides=None):
    """The pooler: `edudet.MultiScaleRoIAlign` (FPN eq. 1 level mapping + RoIAlign per level); `featmap_strides`:
    None (each level's scale inferred as torchvision does) or the strides, checked against the maps at every call."""
    return MultiScaleRoIAlign(list(featmap_names), output_size, sampling_ratio, featmap_strides=featmap_strides)


class TwoMLPHead(StateModule):
    """``(K, C, 7, 7)`` pooled features -> ``(K, representation_size)``: flatten, fc6 + ReLU, fc7 + ReLU."""

    def __init__(self, in_channels: int, representation_size: int = 1024):
        self.fc6 = Linear(in_channels, representation_size)
        self.fc7 = Linear(representation_size, representation_size)

    def children(self):
        return {"fc6": self.fc6, "fc7": self.fc7}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # (K, C 7 7), also for K = 0
        return self.fc7(self.fc6(flat, relu=True), relu=True)


class FastRCNNPredictor(StateModule):
    """``(K, D)`` -> class logits ``(K, num_classes)`` and deltas ``(K, 4 num_classes)`` (class 0: background)."""

    def __init__(self, in_channels: int, num_classes: int):
        self.num_classes = num_classes
        self.cls_score = Linear(in_channels, num_classes)
        self.bbox_pred = Linear(in_channels, num_classes * 4)

    def children(self):
        return {"cls_score": self.cls_score, "bbox_pred": self.bbox_pred}

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cls_score(x), self.bbox_pred(x)


class RoIHeads(StateModule):
    """Features and proposals -> per image ``{"boxes": (K, 4) float32, "labels": (K,) int64, "scores": (K,) float32}``,
    in the resized image's pixels (see the module docstring for the rule)."""

    def __init__(self, box_roi_pool, box_head: TwoMLPHead, box_predictor: FastRCNNPredictor,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                 bbox_reg_weights=(10.0, 10.0, 5.0, 5.0)):
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.score_thresh = check_scalar(score_thresh, "score_thresh", low=0, high=1)
        self.nms_thresh = check_scalar(nms_thresh, "nms_thresh", low=0, high=1)
        self.detections_per_img = check_scalar(detections_per_img, "detections_per_img", low=1, integer=True)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.mask_branch = None  # Mask R-CNN sets a `mask_rcnn.MaskBranch`, run on the final detections

    def children(self):
        children = {"box_head": self.box_head, "box_predictor": self.box_predictor}
        if self.mask_branch is not None:
            children.update(self.mask_branch.children())
        return children

    def __call__(self, features, proposals: list[np.ndarray], image_sizes, trace=NULL_TRACE) -> list[dict]:
        with trace.stage("roi_heads.box_roi_pool") as stage:
            pooled = self.box_roi_pool(features, proposals, image_sizes)
            stage.add("box_features", pooled)
        with trace.stage("roi_heads.box_head") as stage:
            hidden = self.box_head(pooled)
            class_logits, box_regression = self.box_predictor(hidden)
            stage.add("representation", hidden)
            stage.add("class_logits", class_logits)
            stage.add("box_regression", box_regression)
        with trace.stage("roi_heads.postprocess") as stage:
            detections = self.postprocess_detections(class_logits, box_regression, proposals, image_sizes)
            stage.add("boxes", [d["boxes"] for d in detections])
        if self.mask_branch is not None:
            self.mask_branch(features, detections, image_sizes, trace)
        return detections

    def postprocess_detections(self, class_logits, box_regression, proposals, image_sizes) -> list[dict]:
        num_classes = class_logits.shape[1]
        counts = [p.shape[0] for p in proposals]
        all_proposals = np.concatenate(proposals) if proposals else np.zeros((0, 4), np.float32)
        if all_proposals.shape[0]:
            pred_boxes = self.box_coder.decode(box_regression, all_proposals).reshape(-1, num_classes, 4)
        else:
            pred_boxes = np.zeros((0, num_classes, 4), np.float32)
        pred_scores = softmax(class_logits, axis=-1)
        results = []
        starts = np.cumsum([0] + counts)
        for image, size in enumerate(image_sizes):
            boxes = pred_boxes[starts[image]: starts[image + 1]]
            scores = pred_scores[starts[image]: starts[image + 1]]
            boxes = clip_boxes_to_image(boxes.reshape(-1, 4), size).reshape(boxes.shape)
            labels = np.broadcast_to(np.arange(num_classes, dtype=np.int64), scores.shape)
            # class 0 is the background: every other class's prediction becomes a candidate of its own
            boxes = boxes[:, 1:].reshape(-1, 4)
            scores = scores[:, 1:].reshape(-1)
            labels = labels[:, 1:].reshape(-1)
            keep = np.nonzero(scores > np.float32(self.score_thresh))[0]  # float32, as torch compares
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = remove_small_boxes(boxes, 1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": np.ascontiguousarray(boxes[keep], np.float32),
                            "labels": np.ascontiguousarray(labels[keep], np.int64),
                            "scores": np.ascontiguousarray(scores[keep], np.float32)})
        return results
