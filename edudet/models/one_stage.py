"""The one-stage detector's skeleton (RetinaNet, FCOS): transform -> backbone -> dense head -> per-level filter -> NMS.

A dense head predicts, at every location of every FPN level, a score per class for each of its A anchors
(A = 1 for FCOS's single "anchor" per point) and a box code. Inference (torchvision's
``RetinaNet.postprocess_detections`` and ``FCOS.postprocess_detections``): on each level separately, keep the
(location, class) scores ``> score_thresh``, then the `topk_candidates` highest of those, decode their box
codes against their anchors and clip them to the image; pool all levels and run NMS separately per class
(``batched_nms`` at `nms_thresh`) and keep the `detections_per_img` best. A (location, class) pair is a
candidate of its own, so one location can give detections of several classes.
"""
from __future__ import annotations

import numpy as np

from .generalized_rcnn import GeneralizedRCNN
from .layers import Conv2d, GroupNorm
from .rpn import flatten_level, top_n_descending
from .trace import Trace, current_trace
from .weights import StateModule

__all__ = ["OneStageDetector", "HeadTower"]


class HeadTower(StateModule):
    """``(N, C, H, W)`` -> ``(N, C, H, W)``: `num_convs` times (3x3 conv, [GroupNorm(32)], ReLU), shared by all levels.

    Keys: with `group_norm` (FCOS) the torch ``Sequential`` of conv, norm, ReLU: ``{3 i}.{weight,bias}`` and
    ``{3 i + 1}.{weight,bias}``; without (RetinaNet v1's ``Conv2dNormActivation`` with no norm):
    ``{i}.0.{weight,bias}``.
    """

    def __init__(self, channels: int, num_convs: int = 4, group_norm: bool = False):
        self.convs = [Conv2d(channels, channels, 3, padding=1) for _ in range(num_convs)]
        self.norms = [GroupNorm(32, channels) for _ in range(num_convs)] if group_norm else None

    def _names(self):
        for i, conv in enumerate(self.convs):
            if self.norms is None:
                yield f"{i}.0", conv, None
            else:
                yield f"{3 * i}", conv, (f"{3 * i + 1}", self.norms[i])

    def state_shapes(self):
        shapes = {}
        for name, conv, norm in self._names():
            shapes[f"{name}.weight"], shapes[f"{name}.bias"] = conv.weight_shape, (conv.out_channels,)
            if norm is not None:
                shapes[f"{norm[0]}.weight"] = shapes[f"{norm[0]}.bias"] = (norm[1].num_channels,)
        return shapes

    def load_state(self, state):
        for name, conv, norm in self._names():
            conv.set_weight(state[f"{name}.weight"], state[f"{name}.bias"])
            if norm is not None:
                norm[1].set_weight(state[f"{norm[0]}.weight"], state[f"{norm[0]}.bias"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for i, conv in enumerate(self.convs):
            if self.norms is None:
                x = conv(x, relu=True)
            else:
                x = self.norms[i](conv(x), relu=True)
        return x


class OneStageDetector(GeneralizedRCNN):
    """``model(images)`` -> one ``{"boxes": (K, 4) float32, "labels": (K,) int64, "scores": (K,) float32}`` per image.

    images: a list of ``(3, H, W)`` float arrays in [0, 1] or ``(H, W, 3)`` uint8 arrays. Boxes are
    ``(x1, y1, x2, y2)`` in each original image's pixels, sorted by decreasing score.
    ``model(images, trace=True)`` returns ``(detections, trace)``. Subclasses give the head and the two
    rules that differ: `level_scores` (class scores per anchor) and `decode` (codes -> boxes).
    """

    def __init__(self, backbone, head, anchor_generator, transform, score_thresh: float, nms_thresh: float,
                 detections_per_img: int, topk_candidates: int, config=None):
        super().__init__(backbone, None, None, transform, config)
        self.head, self.anchor_generator = head, anchor_generator
        self.score_thresh, self.nms_thresh = float(score_thresh), float(nms_thresh)
        self.detections_per_img, self.topk_candidates = int(detections_per_img), int(topk_candidates)

    def children(self):
        return {"backbone": self.backbone, "head": self.head}

    # the two rules a detector defines -------------------------------------------------------------------
    def level_scores(self, outputs: dict, level: int, image: int) -> np.ndarray:
        """(H W A, num_classes) float32 scores of one level of one image."""
        raise NotImplementedError

    def decode(self, codes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """(K, 4) box codes against (K, 4) anchors -> (K, 4) boxes."""
        raise NotImplementedError

    # the forward pass ------------------------------------------------------------------------------------
    def __call__(self, images, trace: bool | Trace = False):
        recorder = Trace() if trace is True else trace if isinstance(trace, Trace) else current_trace()
        with recorder.stage("transform") as stage:
            batch, image_sizes, original_sizes = self.transform(images)
            stage.add("images", batch)
        with recorder.stage("backbone.body") as stage:
            body_features = self.backbone.body(batch)
            stage.add("C", body_features)
        with recorder.stage("backbone.fpn") as stage:
            features = list(self.backbone.fpn(body_features).values())
            stage.add("P", features)
        del body_features
        with recorder.stage("head") as stage:
            outputs = self.head(features)
            for name, value in outputs.items():
                stage.add(name, value)
        with recorder.stage("anchors") as stage:
            shapes = [f.shape[-2:] for f in features]
            anchors = self.anchor_generator(tuple(batch.shape[-2:]), shapes)
            stage.add("anchors", anchors)
            counts = self.anchor_generator.num_anchors_per_level(shapes)
            level_anchors = np.split(anchors, np.cumsum(counts)[:-1])
        with recorder.stage("postprocess") as stage:
            detections = self.postprocess_detections(outputs, level_anchors, image_sizes)
            stage.add("boxes", [d["boxes"] for d in detections])
        with recorder.stage("transform.postprocess") as stage:
            detections = self.transform.postprocess(detections, image_sizes, original_sizes)
            stage.add("boxes", [d["boxes"] for d in detections])
        return (detections, recorder) if trace is True else detections

    def level_codes(self, outputs: dict, level: int, image: int) -> np.ndarray:
        """(H W A, 4) box codes of one level of one image, in the anchors' order."""
        return flatten_level(outputs["bbox_regression"][level][image: image + 1], 4)[0]

    def postprocess_detections(self, outputs: dict, level_anchors: list[np.ndarray], image_sizes) -> list[dict]:
        from ..ops import batched_nms, clip_boxes_to_image

        results = []
        for image, size in enumerate(image_sizes):
            boxes, scores, labels = [], [], []
            for level, anchors in enumerate(level_anchors):
                level_scores = self.level_scores(outputs, level, image)
                num_classes = level_scores.shape[1]
                flat = level_scores.reshape(-1)  # (anchor, class) pairs, class fastest
                # a float32 tensor against a Python float compares in float32 in torch
                candidates = np.nonzero(flat > np.float32(self.score_thresh))[0]
                best = top_n_descending(flat[candidates], min(self.topk_candidates, candidates.shape[0]))
                candidates = candidates[best]
                anchor_index, label = candidates // num_classes, candidates % num_classes
                codes = self.level_codes(outputs, level, image)[anchor_index]
                decoded = self.decode(codes, anchors[anchor_index]) if len(candidates) else np.zeros((0, 4), np.float32)
                boxes.append(clip_boxes_to_image(decoded, size))
                scores.append(flat[candidates])
                labels.append(label.astype(np.int64))
            boxes, scores, labels = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": np.ascontiguousarray(boxes[keep], np.float32),
                            "labels": np.ascontiguousarray(labels[keep], np.int64),
                            "scores": np.ascontiguousarray(scores[keep], np.float32)})
        return results


def check_one_stage_arguments(num_classes, score_thresh, nms_thresh, detections_per_img, topk_candidates):
    """The shared keyword checks of RetinaNet and FCOS (ValueError naming the argument)."""
    from .._validate import check_scalar

    num_classes = check_scalar(num_classes, "num_classes", low=1, integer=True)
    check_scalar(score_thresh, "score_thresh", low=0, high=1)
    check_scalar(nms_thresh, "nms_thresh", low=0, high=1)
    check_scalar(detections_per_img, "detections_per_img", low=1, integer=True)
    check_scalar(topk_candidates, "topk_candidates", low=1, integer=True)
    return num_classes

