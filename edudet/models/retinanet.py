"""RetinaNet with a ResNet-50-FPN backbone (Lin et al., 2017, "Focal Loss"), torchvision's ``retinanet_resnet50_fpn``.

Backbone as FCOS's (torchvision v1): ResNet-50 C3..C5 -> FPN P3..P5 plus P6, P7 from P5
(``LastLevelP6P7(256, 256)``). Nine anchors per location: sizes ``s, s 2^(1/3), s 2^(2/3)`` (truncated to
integers) with ``s = 32 .. 512`` on P3 .. P7, times aspect ratios 0.5, 1, 2. Head, shared by the levels:
two towers of four (3x3 conv, ReLU) without normalisation (v1), then a 3x3 conv with ``9 K`` class logits
(bias at the focal-loss prior ``-log(99)``) and one with ``9 x 4`` box deltas.

Inference (torchvision's ``RetinaNet.postprocess_detections``): per level, ``sigmoid`` scores of every
(anchor, class) pair ``> score_thresh``, the `topk_candidates` best, decoded with ``BoxCoder((1, 1, 1, 1))``
against their anchors and clipped; then per-class NMS at `nms_thresh` and the `detections_per_img` best.

``retinanet_resnet50_fpn_v2`` (torchvision's improved recipe) differs in two parts: P6 comes from C5, not P5
(``LastLevelP6P7(2048, 256)``), and each tower conv is followed by ``GroupNorm(32)`` (computed per image, not
foldable). Its GIoU loss changes training only: inference decodes with the same ``BoxCoder((1, 1, 1, 1))``.
The backbone's FPN has no norm (unlike Faster/Mask R-CNN v2's).
"""
from __future__ import annotations

import numpy as np

from ..anchors import AnchorGenerator
from .._validate import check_scalar
from ..box_coder import BoxCoder
from .faster_rcnn import check_bn_eps
from .fcos import resnet50_fpn_p3p7_backbone
from .fpn import BackboneWithFPN, FeaturePyramidNetwork, LastLevelP6P7
from .layers import Conv2d
from .one_stage import DenseHead, HeadTower, OneStageDetector, check_one_stage_arguments
from .resnet import resnet50_body
from .rpn import sigmoid_
from .transform import IMAGENET_MEAN, IMAGENET_STD
from .weights import load_weights

__all__ = ["RetinaNet", "RetinaNetHead", "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2",
           "retinanet_anchor_generator"]

_TRAINING_ONLY = {"fg_iou_thresh", "bg_iou_thresh", "trainable_backbone_layers", "progress"}


def retinanet_anchor_generator():
    """torchvision's RetinaNet anchors: 3 octave scales x 3 aspect ratios on each of P3 .. P7."""
    sizes = tuple((s, int(s * 2 ** (1.0 / 3)), int(s * 2 ** (2.0 / 3))) for s in (32, 64, 128, 256, 512))
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


class RetinaNetHead(DenseHead):
    """Levels ``(N, C, H_l, W_l)`` -> ``{"cls_logits": [(N, A K, H_l, W_l)], "bbox_regression": [(N, 4 A, H_l, W_l)]}``.

    Keys: ``classification_head.conv.{i}.0.*`` / ``cls_logits.*``, ``regression_head.conv.{i}.0.*`` /
    ``bbox_reg.*`` (torchvision's ``RetinaNetHead``; the pre-0.13 ``conv.{2 i}`` names are renamed on load).
    The towers have no normalisation (v1), or with `group_norm` (v2) a ``GroupNorm(32)`` after each conv
    (`NormalizedHeadTower`: keys ``conv.{i}.0.weight``, ``conv.{i}.1.{weight,bias}``).
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, num_convs: int = 4,
                 group_norm: bool = False):
        super().__init__(in_channels, num_anchors, num_classes, num_convs, group_norm=False)
        if group_norm:
            self.classification_tower = NormalizedHeadTower(in_channels, num_convs)
            self.regression_tower = NormalizedHeadTower(in_channels, num_convs)


class NormalizedHeadTower(HeadTower):
    """`HeadTower` with ``GroupNorm(32)`` in torchvision's ``Conv2dNormActivation`` layout (RetinaNet v2):
    conv ``{i}.0.weight`` without bias (the norm's shift replaces it), norm ``{i}.1.{weight,bias}``.

    FCOS's head has the same layers as a plain ``Sequential`` (``{3 i}``, ``{3 i + 1}``, convs with bias).
    """

    def __init__(self, channels: int, num_convs: int = 4):
        super().__init__(channels, num_convs, group_norm=True)
        self.convs = [Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(num_convs)]

    def children(self):
        children = {}
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            children[f"{i}.0"], children[f"{i}.1"] = conv, norm
        return children


class RetinaNet(OneStageDetector):
    """RetinaNet: a backbone with ``out_channels``, nine anchors per location, the head above.

    Keyword arguments and defaults are torchvision's ``RetinaNet`` (``score_thresh=0.05``,
    ``nms_thresh=0.5``, ``detections_per_img=300``, ``topk_candidates=1000``). The anchor generator needs one
    entry of sizes per backbone level, most of each level's sizes at least the level's stride.
    """

    kind = "retinanet"

    def __init__(self, backbone, num_classes: int = 91, *, min_size: int = 800, max_size: int = 1333,
                 image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, anchor_generator=None, head=None,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 300,
                 topk_candidates: int = 1000, **training_only):
        anchor_generator = anchor_generator if anchor_generator is not None else retinanet_anchor_generator()
        num_classes, score_thresh, nms_thresh, detections_per_img, topk_candidates = check_one_stage_arguments(
            training_only, _TRAINING_ONLY, num_classes, score_thresh, nms_thresh, detections_per_img, topk_candidates,
            anchor_generator)
        if head is None:
            head = RetinaNetHead(backbone.out_channels, anchor_generator.num_anchors_per_location()[0], num_classes)
        super().__init__(backbone, head, anchor_generator, num_classes, min_size=min_size, max_size=max_size,
                         image_mean=image_mean, image_std=image_std, score_thresh=score_thresh,
                         nms_thresh=nms_thresh, detections_per_img=detections_per_img,
                         topk_candidates=topk_candidates)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))

    def level_scores(self, outputs, level, image):
        logits = self.level_output(outputs, "cls_logits", level, image, self.num_classes)
        if np.shares_memory(logits, outputs["cls_logits"][level]):  # a view (1 x 1 level): never touch the head's
            logits = logits.copy()
        return sigmoid_(logits)  # in place: P3's scores alone are 50 MB

    def decode(self, codes, anchors):
        return self.box_coder.decode_single(codes, anchors)


def retinanet_resnet50_fpn(weights=None, *, num_classes: int = 91, weights_backbone=None, seed: int = 0,
                           bn_eps: float = 1e-5, **kwargs) -> RetinaNet:
    """RetinaNet ResNet-50-FPN (v1) with torchvision's keywords; `weights` as for `fcos_resnet50_fpn`, `bn_eps`
    as for `fasterrcnn_resnet50_fpn` (0 for torchvision's COCO_V1 weights)."""
    if weights_backbone is not None:
        raise ValueError("weights_backbone must be None: edudet downloads nothing; pass full weights as weights=")
    return load_weights(RetinaNet(resnet50_fpn_p3p7_backbone(bn_eps), num_classes=num_classes, **kwargs), weights,
                        seed)


def resnet50_fpn_p3p7_v2_backbone(bn_eps: float = 1e-5) -> BackboneWithFPN:
    """ResNet-50 C3..C5 -> FPN P3..P5 plus P6 from C5 and P7 (``LastLevelP6P7(2048, 256)``): RetinaNet v2's."""
    body = resnet50_body(returned_layers=(2, 3, 4), bn_eps=check_bn_eps(bn_eps))
    fpn = FeaturePyramidNetwork(body.out_channels, 256, LastLevelP6P7(body.out_channels[-1], 256))
    return BackboneWithFPN(body, fpn, name="resnet50_fpn_v2")


def retinanet_resnet50_fpn_v2(weights=None, *, num_classes: int = 91, weights_backbone=None, seed: int = 0,
                              bn_eps: float = 1e-5, **kwargs) -> RetinaNet:
    """RetinaNet ResNet-50-FPN v2 (torchvision's ``retinanet_resnet50_fpn_v2``): GroupNorm head towers, P6 from
    C5; keywords, `weights` and `bn_eps` (1e-5 as torchvision, also for its COCO v2 weights) as for
    `retinanet_resnet50_fpn`."""
    if weights_backbone is not None:
        raise ValueError("weights_backbone must be None: edudet downloads nothing; pass full weights as weights=")
    num_classes = check_scalar(num_classes, "num_classes", low=1, integer=True)
    backbone = resnet50_fpn_p3p7_v2_backbone(bn_eps)
    if "head" not in kwargs:
        anchors = kwargs.get("anchor_generator")
        anchors = retinanet_anchor_generator() if anchors is None else anchors
        if isinstance(anchors, AnchorGenerator):  # otherwise RetinaNet names the wrong argument
            kwargs["head"] = RetinaNetHead(backbone.out_channels, anchors.num_anchors_per_location()[0], num_classes,
                                           group_norm=True)
    return load_weights(RetinaNet(backbone, num_classes=num_classes, **kwargs), weights, seed)
