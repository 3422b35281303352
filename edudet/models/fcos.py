"""FCOS with a ResNet-50-FPN backbone (Tian et al., 2019), torchvision's ``fcos_resnet50_fpn``, inference in NumPy.

Backbone: ResNet-50 C3..C5 -> FPN P3..P5 plus P6 = conv3x3/2(P5) and P7 = conv3x3/2(relu(P6))
(``LastLevelP6P7(256, 256)``), strides 8 .. 128. Head, shared by the five levels: two towers of four
(3x3 conv, GroupNorm(32), ReLU); the classification tower ends in a 3x3 conv giving one logit per class
(its bias starts at the focal-loss prior, ``-log(99)``), the regression tower in a 3x3 conv giving four
distances passed through ReLU (so they are never negative) and a 3x3 conv giving the centerness logit.

Inference (torchvision's ``FCOS.postprocess_detections``), per level: score of (location, class)
``sqrt(sigmoid(cls) * sigmoid(centerness))``, keep ``> score_thresh``, the `topk_candidates` best, decode,
clip; then per-class NMS over all levels and the `detections_per_img` best.

Decoding, exactly as torchvision: a location's "anchor" is the stride-sized square whose centre is
``(j * stride_w, i * stride_h)`` (``AnchorGenerator`` with sizes 8 .. 128 and ratio 1, shifted by
``location * stride``, where ``stride = padded image size // feature size`` per axis: an 800 x 1216 input
has a 13 x 19 P6 whose strides are 61 and 64); ``BoxLinearCoder(normalize_by_size=True)`` multiplies the
four predicted distances by the anchor's width and height (= the level's nominal stride, 8 .. 128),
``box = (cx - l w, cy - t h, cx + r w, cy + b h)``.

Where this differs from mmdetection's FCOS (for the lessons and for porting weights):

- points: mmdetection 2 puts location ``(i, j)`` at ``(j * s + s // 2, i * s + s // 2)``, mmdetection 3 at
  ``((j + 0.5) s, (i + 0.5) s)``; torchvision at ``(j * s, i * s)`` (`edudet.grid_points` has all three as
  ``offset="fcos"``, ``0.5`` and ``0``). A torchvision-trained head regresses from the cell's corner.
- ``norm_on_bbox``: mmdetection (with ``norm_on_bbox=True``) scales the distances by the stride inside the
  head (``relu(x) * stride``) and decodes in pixels; torchvision returns ``relu(x)`` and scales by the
  anchor size in the coder. Same product when the strides are powers of two; for P6 / P7 on an image
  whose size is not a multiple of 128 torchvision's anchor *centre* uses the integer stride ``H // h``
  while its *scale* uses the nominal 64 / 128.
- regress ranges: mmdetection assigns objects to levels by ``max(l, t, r, b)`` in (-1, 64), (64, 128),
  (128, 256), (256, 512), (512, inf); torchvision by ``4 s < max(l, t, r, b) < 8 s`` (P3 from 0, P7 to inf)
  with centre sampling radius 1.5 s: training-only differences; inference is as above.
- no ``scale`` per level (mmdetection's learnable ``Scale``) and the centerness branch on the regression
  tower (mmdetection: ``centerness_on_reg=True`` in FCOS v2 configs, on the classification tower in v1).
"""
from __future__ import annotations

import numpy as np

from ..anchors import AnchorGenerator
from .faster_rcnn import check_bn_eps
from .fpn import BackboneWithFPN, FeaturePyramidNetwork, LastLevelP6P7
from .layers import Conv2d
from .one_stage import DenseHead, OneStageDetector, check_one_stage_arguments
from .resnet import resnet50_body
from .rpn import sigmoid
from .transform import IMAGENET_MEAN, IMAGENET_STD
from .weights import load_weights

__all__ = ["FCOS", "FCOSHead", "fcos_resnet50_fpn", "linear_decode"]

_TRAINING_ONLY = {"center_sampling_radius", "trainable_backbone_layers", "progress"}


def linear_decode(distances: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(K, 4) ``(l, t, r, b)`` in anchor units + (K, 4) anchors -> (K, 4) boxes, float32.

    ``box = (cx - l w, cy - t h, cx + r w, cy + b h)`` with the anchor's centre ``(cx, cy)`` and size
    ``(w, h)`` (torchvision's ``BoxLinearCoder(normalize_by_size=True).decode``).
    """
    anchors = anchors.astype(distances.dtype, copy=False)
    half = distances.dtype.type(0.5)
    centre_x = half * (anchors[:, 0] + anchors[:, 2])
    centre_y = half * (anchors[:, 1] + anchors[:, 3])
    width, height = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    return np.stack([centre_x - distances[:, 0] * width, centre_y - distances[:, 1] * height,
                     centre_x + distances[:, 2] * width, centre_y + distances[:, 3] * height], axis=1)


class FCOSHead(DenseHead):
    """Levels ``(N, C, H_l, W_l)`` -> ``{"cls_logits": [(N, A K, H_l, W_l)], "bbox_regression": [(N, 4 A, H_l, W_l)],
    "bbox_ctrness": [(N, A, H_l, W_l)]}`` (one array per level; distances already through ReLU).

    Keys: ``classification_head.conv.*`` / ``cls_logits.*``, ``regression_head.conv.*`` / ``bbox_reg.*`` /
    ``bbox_ctrness.*`` (torchvision's ``FCOSHead``).
    """

    outputs = ("cls_logits", "bbox_regression", "bbox_ctrness")

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, num_convs: int = 4):
        super().__init__(in_channels, num_anchors, num_classes, num_convs, group_norm=True)
        self.bbox_ctrness = Conv2d(in_channels, num_anchors, 3, padding=1)

    def children(self):
        return {**super().children(), "regression_head.bbox_ctrness": self.bbox_ctrness}

    def _level_outputs(self, feature):
        hidden = self.regression_tower(feature)  # shared by the distances and the centerness
        return {"cls_logits": self.cls_logits(self.classification_tower(feature)),
                "bbox_regression": self.bbox_reg(hidden, relu=True), "bbox_ctrness": self.bbox_ctrness(hidden)}


class FCOS(OneStageDetector):
    """FCOS: a backbone with ``out_channels``, one point per location, the head above (see the module docstring).

    Keyword arguments and defaults are torchvision's ``FCOS`` (``score_thresh=0.2``, ``nms_thresh=0.6``,
    ``detections_per_img=100``, ``topk_candidates=1000``); `anchor_generator` may be an
    `edudet.AnchorGenerator` with one anchor per location, of size = the level's declared stride (by default
    the backbone's strides, 8 .. 128).
    """

    kind = "fcos"
    anchor_sizes_equal_strides = True

    def __init__(self, backbone, num_classes: int = 91, *, min_size: int = 800, max_size: int = 1333,
                 image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, anchor_generator=None, head=None,
                 score_thresh: float = 0.2, nms_thresh: float = 0.6, detections_per_img: int = 100,
                 topk_candidates: int = 1000, **training_only):
        if anchor_generator is None:
            # one stride-sized square per location: its centre is the FCOS point, its size the unit of the codes
            anchor_generator = AnchorGenerator([(s,) for s in backbone.strides], ((1.0,),) * len(backbone.strides))
        num_classes, score_thresh, nms_thresh, detections_per_img, topk_candidates = check_one_stage_arguments(
            training_only, _TRAINING_ONLY, num_classes, score_thresh, nms_thresh, detections_per_img, topk_candidates,
            anchor_generator)
        if anchor_generator.num_anchors_per_location()[0] != 1:
            raise ValueError("anchor_generator must place one anchor per location for FCOS, got "
                             f"{anchor_generator.num_anchors_per_location()[0]}")
        if head is None:
            head = FCOSHead(backbone.out_channels, 1, num_classes)
        super().__init__(backbone, head, anchor_generator, num_classes, min_size=min_size, max_size=max_size,
                         image_mean=image_mean, image_std=image_std, score_thresh=score_thresh,
                         nms_thresh=nms_thresh, detections_per_img=detections_per_img,
                         topk_candidates=topk_candidates)

    def level_scores(self, outputs, level, image):
        logits = self.level_output(outputs, "cls_logits", level, image, self.num_classes)
        centerness = self.level_output(outputs, "bbox_ctrness", level, image, 1)
        # the geometric mean of class probability and centerness (torchvision's inference score)
        return np.sqrt(sigmoid(logits) * sigmoid(centerness))

    def decode(self, codes, anchors):
        return linear_decode(codes, anchors)


def resnet50_fpn_p3p7_backbone(bn_eps: float = 1e-5) -> BackboneWithFPN:
    """ResNet-50 C3..C5 -> FPN P3..P5 (256 channels) plus P6, P7 from P5 (``LastLevelP6P7(256, 256)``)."""
    body = resnet50_body(returned_layers=(2, 3, 4), bn_eps=check_bn_eps(bn_eps))
    return BackboneWithFPN(body, FeaturePyramidNetwork(body.out_channels, 256, LastLevelP6P7(256, 256)))


def fcos_resnet50_fpn(weights=None, *, num_classes: int = 91, weights_backbone=None, seed: int = 0,
                      bn_eps: float = 1e-5, **kwargs) -> FCOS:
    """FCOS ResNet-50-FPN with torchvision's keywords (``min_size=800``, ``score_thresh=0.2``, ...).

    weights: None (seeded random weights with torchvision's initialisation rules), a path to an ``.npz``
    (``model.save`` or ``python -m edudet convert``), or a mapping of torchvision names to arrays/tensors.
    `weights_backbone` must be None: edudet downloads nothing. `bn_eps` as for `fasterrcnn_resnet50_fpn`
    (torchvision runs its FCOS COCO weights with the default 1e-5).
    """
    if weights_backbone is not None:
        raise ValueError("weights_backbone must be None: edudet downloads nothing; pass full weights as weights=")
    return load_weights(FCOS(resnet50_fpn_p3p7_backbone(bn_eps), num_classes=num_classes, **kwargs), weights, seed)
