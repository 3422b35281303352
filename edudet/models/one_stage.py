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

from .._validate import check_scalar
from ..anchors import AnchorGenerator
from ..ops import batched_nms, clip_boxes_to_image
from ..strides import check_sizes_against_strides
from .detector import Detector
from .layers import Conv2d, GroupNorm
from .rpn import flatten_level, top_n_descending
from .transform import GeneralizedRCNNTransform
from .weights import StateModule

__all__ = ["OneStageDetector", "DenseHead", "HeadTower"]


class HeadTower(StateModule):
    """``(N, C, H, W)`` -> ``(N, C, H, W)``: `num_convs` times (3x3 conv, [GroupNorm(32)], ReLU), shared by all levels.

    Keys: with `group_norm` (FCOS) the torch ``Sequential`` of conv, norm, ReLU: ``{3 i}.{weight,bias}`` and
    ``{3 i + 1}.{weight,bias}``; without (RetinaNet v1's ``Conv2dNormActivation`` with no norm):
    ``{i}.0.{weight,bias}``.
    """

    def __init__(self, channels: int, num_convs: int = 4, group_norm: bool = False):
        self.convs = [Conv2d(channels, channels, 3, padding=1) for _ in range(num_convs)]
        self.norms = [GroupNorm(32, channels) for _ in range(num_convs)] if group_norm else None

    def children(self):
        if self.norms is None:
            return {f"{i}.0": conv for i, conv in enumerate(self.convs)}
        children = {}
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            children[f"{3 * i}"], children[f"{3 * i + 1}"] = conv, norm  # 3 i + 2 is the ReLU
        return children

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for i, conv in enumerate(self.convs):
            if self.norms is None:
                x = conv(x, relu=True)
            else:
                x = self.norms[i](conv(x), relu=True)
        return x


class DenseHead(StateModule):
    """Levels ``(N, C, H_l, W_l)`` -> ``{"cls_logits": [(N, A K, H_l, W_l)], "bbox_regression": [(N, 4 A, H_l, W_l)]}``.

    The part RetinaNet's and FCOS's heads share: a classification tower ending in a 3x3 conv with ``A K``
    logits and a regression tower ending in a 3x3 conv with ``4 A`` box codes, one array per level.
    Keys: ``classification_head.conv.*`` / ``cls_logits.*``, ``regression_head.conv.*`` / ``bbox_reg.*``
    (torchvision's ``RetinaNetHead`` and ``FCOSHead``). A subclass adds its own convs in `_convs` and its
    per-level outputs in `_level_outputs`.
    """

    outputs = ("cls_logits", "bbox_regression")

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, num_convs: int = 4,
                 group_norm: bool = False):
        self.num_classes = num_classes
        self.classification_tower = HeadTower(in_channels, num_convs, group_norm)
        self.cls_logits = Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        self.regression_tower = HeadTower(in_channels, num_convs, group_norm)
        self.bbox_reg = Conv2d(in_channels, num_anchors * 4, 3, padding=1)

    def children(self):
        return {"classification_head.conv": self.classification_tower, "regression_head.conv": self.regression_tower,
                "classification_head.cls_logits": self.cls_logits, "regression_head.bbox_reg": self.bbox_reg}

    def _level_outputs(self, feature: np.ndarray) -> dict[str, np.ndarray]:
        """One level's arrays, one per name in `outputs`."""
        # the small box codes first: the regression tower then never runs beside this level's class logits
        # (RetinaNet's P3 has 819 x 100 x 152 of them, 50 MB), which keeps the peak memory down
        codes = self.bbox_reg(self.regression_tower(feature))
        return {"cls_logits": self.cls_logits(self.classification_tower(feature)), "bbox_regression": codes}

    def __call__(self, features: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
        outputs = {name: [] for name in self.outputs}
        for feature in features:
            for name, value in self._level_outputs(feature).items():
                outputs[name].append(value)
        return outputs


class OneStageDetector(Detector):
    """``model(images)`` -> one ``{"boxes": (K, 4) float32, "labels": (K,) int64, "scores": (K,) float32}`` per image.

    images: a list of ``(3, H, W)`` float arrays in [0, 1] or ``(H, W, 3)`` uint8 arrays. Boxes are
    ``(x1, y1, x2, y2)`` in each original image's pixels, sorted by decreasing score.
    ``model(images, trace=True)`` returns ``(detections, trace)``. The transform, backbone and weights are
    `Detector`'s; `detect` runs the head, the anchors and the filter above. Subclasses give the head
    and the two rules that differ: `level_scores` (class scores per anchor) and `decode` (codes -> boxes).
    `anchor_sizes_equal_strides`: whether each level's one anchor must be as large as its stride (FCOS);
    otherwise a level's smallest anchor must be at least its stride (`edudet.strides.check_sizes_against_strides`).
    """

    anchor_sizes_equal_strides = False

    def __init__(self, backbone, head, anchor_generator, num_classes: int, *, min_size: int, max_size: int,
                 image_mean, image_std, score_thresh: float, nms_thresh: float, detections_per_img: int,
                 topk_candidates: int):
        transform = GeneralizedRCNNTransform(min_size, max_size, image_mean, image_std)
        min_size, max_size = transform.min_size, transform.max_size
        config = dict(num_classes=num_classes, min_size=min_size, max_size=max_size,
                      image_mean=list(map(float, image_mean)), image_std=list(map(float, image_std)),
                      score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
                      topk_candidates=topk_candidates)
        check_sizes_against_strides(anchor_generator.sizes, backbone.strides, equal=self.anchor_sizes_equal_strides)
        super().__init__(backbone, transform, config)
        self.head, self.anchor_generator, self.num_classes = head, anchor_generator, num_classes
        self.score_thresh, self.nms_thresh = float(score_thresh), float(nms_thresh)
        self.detections_per_img, self.topk_candidates = int(detections_per_img), int(topk_candidates)

    def children(self):
        return {"backbone": self.backbone, "head": self.head}

    @classmethod
    def num_classes_in(cls, state):
        # cls_logits has A K rows and bbox_reg 4 A (A anchors per location): K from the weights alone
        logits = state.get("head.classification_head.cls_logits.weight")
        codes = state.get("head.regression_head.bbox_reg.weight")
        if logits is None or codes is None or np.ndim(logits) != 4 or np.ndim(codes) != 4:
            return None
        anchors = int(np.shape(codes)[0]) // 4
        return int(np.shape(logits)[0]) // anchors if anchors else None

    # the two rules a detector defines -------------------------------------------------------------------
    def level_scores(self, outputs: dict, level: int, image: int) -> np.ndarray:
        """(H W A, num_classes) float32 scores of one level of one image."""
        raise NotImplementedError

    def decode(self, codes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """(K, 4) box codes against (K, 4) anchors -> (K, 4) boxes."""
        raise NotImplementedError

    # the forward pass ------------------------------------------------------------------------------------
    def detect(self, batch, image_sizes, features, recorder):
        """FPN levels -> detections in the resized images' pixels: head, anchors, postprocess."""
        features = list(features.values())  # a dense head runs on every level alike, in order
        with recorder.stage("head") as stage:
            outputs = self.head(features)
            for name, value in outputs.items():
                stage.add(name, value)
        with recorder.stage("anchors") as stage:
            shapes = [f.shape[-2:] for f in features]
            anchors = self.anchor_generator.cached(tuple(batch.shape[-2:]), shapes)  # once per input size
            stage.add("anchors", anchors)
            counts = self.anchor_generator.num_anchors_per_level(shapes)
            level_anchors = np.split(anchors, np.cumsum(counts)[:-1])
        with recorder.stage("postprocess") as stage:
            detections = self.postprocess_detections(outputs, level_anchors, image_sizes)
            stage.add("boxes", [d["boxes"] for d in detections])
        return detections

    @staticmethod
    def level_output(outputs: dict, name: str, level: int, image: int, values_per_anchor: int) -> np.ndarray:
        """(H W A, values_per_anchor): head output `name` of one level of one image, in the anchors' order."""
        return flatten_level(outputs[name][level][image: image + 1], values_per_anchor)[0]

    def level_codes(self, outputs: dict, level: int, image: int) -> np.ndarray:
        """(H W A, 4) box codes of one level of one image, in the anchors' order."""
        return self.level_output(outputs, "bbox_regression", level, image, 4)

    def _level_candidates(self, outputs: dict, level: int, image: int):
        """The best `topk_candidates` (anchor, class) pairs of one level of one image whose score passes
        `score_thresh`, by (score desc, index asc) as ``torch.topk``: (indices into the level's ``(H W A) K``
        scores, their scores, K).

        The scores are made a band of feature rows at a time (`level_scores` on row slices of the head's
        outputs): RetinaNet's P3 alone has 12.4M anchor-class pairs, 50 MB of float32 scores at once. The best
        passing pairs overall are among the best of each band, so only those meet in the final pick.
        """
        logits = outputs["cls_logits"][level]
        height, per_row = logits.shape[-2], logits.shape[-1] * logits.shape[1]  # scores per feature row: W A K
        rows = max(1, _TOP_N_CHUNK // max(1, per_row))
        picks, pick_scores, num_classes = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)], 1
        for y0 in range(0, height, rows):
            band = {name: [a[:, :, y0: y0 + rows] if i == level else a for i, a in enumerate(arrays)]
                    for name, arrays in outputs.items()}
            level_scores = self.level_scores(band, level, image)
            num_classes = level_scores.shape[1]
            flat = level_scores.reshape(-1)  # (anchor, class) pairs, class fastest
            # a float32 tensor against a Python float compares in float32 in torch
            passing = np.flatnonzero(flat > np.float32(self.score_thresh))
            if passing.size > self.topk_candidates:  # the band's best passing ones, back in index order
                passing = np.sort(passing[top_n_descending(flat[passing], self.topk_candidates)])
            picks.append(y0 * per_row + passing)
            pick_scores.append(flat[passing])
        candidates, candidate_scores = np.concatenate(picks), np.concatenate(pick_scores)  # ascending indices
        order = top_n_descending(candidate_scores, min(self.topk_candidates, candidates.size))
        return candidates[order], candidate_scores[order], num_classes

    def postprocess_detections(self, outputs: dict, level_anchors: list[np.ndarray], image_sizes) -> list[dict]:
        results = []
        for image, size in enumerate(image_sizes):
            boxes, scores, labels = [], [], []
            for level, anchors in enumerate(level_anchors):
                candidates, candidate_scores, num_classes = self._level_candidates(outputs, level, image)
                anchor_index, label = candidates // num_classes, candidates % num_classes
                codes = self.level_codes(outputs, level, image)[anchor_index]
                decoded = self.decode(codes, anchors[anchor_index]) if len(candidates) else np.zeros((0, 4), np.float32)
                boxes.append(clip_boxes_to_image(decoded, size))
                scores.append(candidate_scores)
                labels.append(label.astype(np.int64))
            boxes, scores, labels = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": np.ascontiguousarray(boxes[keep], np.float32),
                            "labels": np.ascontiguousarray(labels[keep], np.int64),
                            "scores": np.ascontiguousarray(scores[keep], np.float32)})
        return results


# the class scores of a level are made this many at a time (a band of feature rows), not all at once
_TOP_N_CHUNK = 1 << 20


def check_one_stage_arguments(training_only, allowed, num_classes, score_thresh, nms_thresh, detections_per_img,
                              topk_candidates, anchor_generator):
    """The shared keyword checks of RetinaNet and FCOS (TypeError / ValueError naming the argument).

    Returns the checked `(num_classes, score_thresh, nms_thresh, detections_per_img, topk_candidates)`.
    """
    unknown = set(training_only) - allowed
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}")
    num_classes = check_scalar(num_classes, "num_classes", low=1, integer=True)
    score_thresh = check_scalar(score_thresh, "score_thresh", low=0, high=1)
    nms_thresh = check_scalar(nms_thresh, "nms_thresh", low=0, high=1)
    detections_per_img = check_scalar(detections_per_img, "detections_per_img", low=1, integer=True)
    topk_candidates = check_scalar(topk_candidates, "topk_candidates", low=1, integer=True)
    if not isinstance(anchor_generator, AnchorGenerator):
        raise TypeError("anchor_generator must be an edudet.AnchorGenerator, "
                        f"got {type(anchor_generator).__name__}")
    return num_classes, score_thresh, nms_thresh, detections_per_img, topk_candidates
