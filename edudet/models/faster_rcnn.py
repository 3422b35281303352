"""Faster R-CNN with a ResNet-50-FPN backbone (Ren et al., 2015; Lin et al., 2017), inference in NumPy.

``fasterrcnn_resnet50_fpn`` takes torchvision's constructor keywords and defaults, and its weights by name,
so a torchvision checkpoint converted with ``python -m edudet convert`` gives the same detections.
``fasterrcnn_resnet50_fpn_v2`` is torchvision's improved recipe (Li et al., 2021, "Benchmarking Detection
Transfer Learning with Vision Transformers"), the same detector with different parts: batch norm after
every FPN conv, two 3x3 convs in the RPN head (``conv_depth=2``) and the ``FastRCNNConvFCHead`` box head.
"""
from __future__ import annotations

from .._validate import check_scalar
from ..anchors import AnchorGenerator
from ..strides import check_sizes_against_strides
from .detector import TwoStageDetector
from .fpn import BackboneWithFPN, FeaturePyramidNetwork, LastLevelMaxPool
from .resnet import resnet50_body
from .roi_heads import FastRCNNConvFCHead, FastRCNNPredictor, RoIHeads, TwoMLPHead, multiscale_roi_align
from .rpn import RegionProposalNetwork, RPNHead
from .transform import IMAGENET_MEAN, IMAGENET_STD, GeneralizedRCNNTransform
from .weights import load_weights

__all__ = ["FasterRCNN", "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2"]

# keywords torchvision's FasterRCNN takes that only matter for training: accepted, not used
_TRAINING_ONLY = {
    "rpn_pre_nms_top_n_train", "rpn_post_nms_top_n_train", "rpn_fg_iou_thresh", "rpn_bg_iou_thresh",
    "rpn_batch_size_per_image", "rpn_positive_fraction", "box_fg_iou_thresh", "box_bg_iou_thresh",
    "box_batch_size_per_image", "box_positive_fraction", "bbox_reg_weights", "trainable_backbone_layers",
    "progress",
}


class FasterRCNN(TwoStageDetector):
    """Faster R-CNN: a backbone with ``out_channels``, an RPN on every level, a two-layer box head.

    Keyword arguments and defaults are torchvision's (``FasterRCNN``'s inference ones). Three more describe
    parts torchvision takes as objects: `anchor_sizes` (one tuple of sizes per FPN level, ``"pool"``
    included) and `aspect_ratios` (the same on every level) for its ``rpn_anchor_generator``, and
    `representation_size`, the width of ``TwoMLPHead``. The RoI pooler uses every backbone level but ``"pool"``
    (the body's levels); most of each level's anchor sizes must be at least the stride the backbone declares.
    `rpn_head` and `box_head`, as in torchvision, replace the default parts (None: ``RPNHead`` with one conv,
    ``TwoMLPHead``) by edudet objects: an `RPNHead` with one output per anchor of a location, a
    `TwoMLPHead` or `FastRCNNConvFCHead` whose width is `representation_size` (the predictor's input).
    """

    kind = "fasterrcnn"

    def __init__(self, backbone, num_classes: int = 91, *, min_size: int = 800, max_size: int = 1333,
                 image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, rpn_pre_nms_top_n_test: int = 1000,
                 rpn_post_nms_top_n_test: int = 1000, rpn_nms_thresh: float = 0.7, rpn_score_thresh: float = 0.0,
                 box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5, box_detections_per_img: int = 100,
                 anchor_sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=(0.5, 1.0, 2.0),
                 representation_size: int = 1024, rpn_head=None, box_head=None, **training_only):
        unknown = set(training_only) - _TRAINING_ONLY
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}")
        num_classes = check_scalar(num_classes, "num_classes", low=2, integer=True)
        # checked values replace the given ones: 0-d arrays unwrapped, so the saved JSON config reads as written
        rpn_nms_thresh, box_nms_thresh, rpn_score_thresh, box_score_thresh = (
            check_scalar(value, name, low=0, high=1)
            for name, value in (("rpn_nms_thresh", rpn_nms_thresh), ("box_nms_thresh", box_nms_thresh),
                                ("rpn_score_thresh", rpn_score_thresh), ("box_score_thresh", box_score_thresh)))
        rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test, box_detections_per_img = (
            check_scalar(value, name, low=1, integer=True)
            for name, value in (("rpn_pre_nms_top_n_test", rpn_pre_nms_top_n_test),
                                ("rpn_post_nms_top_n_test", rpn_post_nms_top_n_test),
                                ("box_detections_per_img", box_detections_per_img)))
        representation_size = check_scalar(representation_size, "representation_size", low=1, integer=True)
        transform = GeneralizedRCNNTransform(min_size, max_size, image_mean, image_std)
        min_size, max_size = transform.min_size, transform.max_size
        # the levels the RoIs are pooled from: the body's, not the extra block's ("pool")
        pooled = len(backbone.body.strides)
        levels, level_strides = backbone.out_names[:pooled], backbone.strides[:pooled]
        # plain lists of numbers (whole sizes as ints), so the saved JSON config reads as written
        anchor_sizes = [[float(s) if float(s) != int(s) else int(s) for s in sizes] for sizes in anchor_sizes]
        if len(anchor_sizes) != len(levels) + 1:
            raise ValueError(f"anchor_sizes must have one entry per FPN level ({len(levels) + 1} with 'pool'), "
                             f"got {len(anchor_sizes)}")
        check_sizes_against_strides(anchor_sizes, backbone.strides, what="anchor_sizes")
        aspect_ratios = [float(r) for r in aspect_ratios]
        config = dict(num_classes=num_classes, min_size=min_size, max_size=max_size,
                      image_mean=list(map(float, image_mean)), image_std=list(map(float, image_std)),
                      rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
                      rpn_nms_thresh=rpn_nms_thresh, rpn_score_thresh=rpn_score_thresh,
                      box_score_thresh=box_score_thresh, box_nms_thresh=box_nms_thresh,
                      box_detections_per_img=box_detections_per_img, anchor_sizes=anchor_sizes,
                      aspect_ratios=aspect_ratios, representation_size=representation_size)
        channels = backbone.out_channels
        # by default one size per level (32 px on P2 ... 512 px on P6), three aspect ratios everywhere
        anchor_generator = AnchorGenerator(anchor_sizes, (aspect_ratios,) * len(anchor_sizes))
        anchors_per_location = len(aspect_ratios) * len(anchor_sizes[0])
        if rpn_head is None:
            rpn_head = RPNHead(channels, anchors_per_location)
        if not isinstance(rpn_head, RPNHead):
            raise TypeError(f"rpn_head must be an edudet RPNHead, got {type(rpn_head).__name__}")
        if rpn_head.cls_logits.out_channels != anchors_per_location:
            raise ValueError(f"rpn_head predicts {rpn_head.cls_logits.out_channels} anchors per location, the anchor "
                             f"generator has {anchors_per_location}")
        rpn = RegionProposalNetwork(anchor_generator, rpn_head,
                                    rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test, rpn_nms_thresh, rpn_score_thresh)
        # the pooler infers each level's scale as torchvision does (``2 ** round(log2(h / H))``, H unpadded): its
        # `featmap_strides` check uses the same estimate, which refuses the declared strides of images thinner
        # than ~2 strides after resizing, so the declared strides are checked on the padded maps (`Detector`)
        box_roi_pool = multiscale_roi_align(levels, 7, 2)
        if box_head is None:
            box_head = TwoMLPHead(channels * 7 * 7, representation_size)
        if not isinstance(box_head, (TwoMLPHead, FastRCNNConvFCHead)):
            raise TypeError("box_head must be an edudet TwoMLPHead or FastRCNNConvFCHead, "
                            f"got {type(box_head).__name__}")
        if box_head.out_features != representation_size:
            raise ValueError(f"box_head gives {box_head.out_features} features per box but representation_size is "
                             f"{representation_size}")
        roi_heads = RoIHeads(box_roi_pool, box_head, FastRCNNPredictor(representation_size, num_classes),
                             box_score_thresh, box_nms_thresh, box_detections_per_img)
        super().__init__(backbone, rpn, roi_heads, transform, config)
        self.num_classes = num_classes
        self.feature_levels, self.feature_strides = levels, level_strides


def resnet50_fpn_backbone(bn_eps: float = 1e-5) -> BackboneWithFPN:
    """ResNet-50 C2..C5 -> FPN P2..P5 (256 channels) plus P6 by max-pooling (``"pool"``)."""
    body = resnet50_body(bn_eps=check_bn_eps(bn_eps))
    return BackboneWithFPN(body, FeaturePyramidNetwork(body.out_channels, 256, LastLevelMaxPool()))


def resnet50_fpn_v2_backbone(bn_eps: float = 1e-5) -> BackboneWithFPN:
    """The v2 backbone: as `resnet50_fpn_backbone`, with a batch norm after every FPN conv (folded at load)."""
    bn_eps = check_bn_eps(bn_eps)
    body = resnet50_body(bn_eps=bn_eps)
    fpn = FeaturePyramidNetwork(body.out_channels, 256, LastLevelMaxPool(), batch_norm=True, bn_eps=bn_eps)
    return BackboneWithFPN(body, fpn, name="resnet50_fpn_v2")


def v2_two_stage_parts(backbone: BackboneWithFPN, bn_eps: float, kwargs: dict) -> dict:
    """The parts the v2 recipe changes in Faster and Mask R-CNN: the RPN head (two 3x3 convs) and the box head
    (four 3x3 convs of 256 with batch norm, then one FC of `representation_size`, 1024 by default)."""
    channels = backbone.out_channels
    sizes = kwargs.get("anchor_sizes", ((32,), (64,), (128,), (256,), (512,)))
    anchors_per_location = len(kwargs.get("aspect_ratios", (0.5, 1.0, 2.0))) * len(sizes[0])
    representation_size = check_scalar(kwargs.get("representation_size", 1024), "representation_size", low=1,
                                       integer=True)
    return dict(rpn_head=RPNHead(channels, anchors_per_location, conv_depth=2),
                box_head=FastRCNNConvFCHead((channels, 7, 7), (256, 256, 256, 256), (representation_size,),
                                            batch_norm=True, bn_eps=bn_eps))


def check_bn_eps(bn_eps) -> float:
    return float(check_scalar(bn_eps, "bn_eps", low=0, high=1))


def fasterrcnn_resnet50_fpn(weights=None, *, num_classes: int = 91, weights_backbone=None, seed: int = 0,
                            bn_eps: float = 1e-5, **kwargs) -> FasterRCNN:
    """Faster R-CNN ResNet-50-FPN with torchvision's keywords (``min_size=800``, ``box_score_thresh=0.05``, ...).

    weights: None (seeded random weights, torchvision's initialisation rules: for learning, not detecting),
    a path to an ``.npz`` written by ``model.save`` or ``python -m edudet convert``, or a mapping of
    torchvision parameter names to arrays/tensors. edudet downloads nothing, so `weights_backbone` must be
    None (the backbone comes with `weights`). `bn_eps`: the batch norms' epsilon, 1e-5 as torchvision's
    layers; torchvision runs its COCO_V1 Faster R-CNN, Mask R-CNN and RetinaNet weights with 0 (pass
    ``bn_eps=0``, or ``--bn-eps 0`` to ``python -m edudet convert``, for exactly its numbers).
    """
    if weights_backbone is not None:
        raise ValueError("weights_backbone must be None: edudet downloads nothing; pass full weights as weights=")
    return load_weights(FasterRCNN(resnet50_fpn_backbone(bn_eps), num_classes=num_classes, **kwargs), weights, seed)


def fasterrcnn_resnet50_fpn_v2(weights=None, *, num_classes: int = 91, weights_backbone=None, seed: int = 0,
                               bn_eps: float = 1e-5, **kwargs) -> FasterRCNN:
    """Faster R-CNN ResNet-50-FPN v2 (torchvision's ``fasterrcnn_resnet50_fpn_v2``): torchvision's keywords,
    weights and defaults; `weights`, `seed` as for `fasterrcnn_resnet50_fpn`. Every batch norm (backbone, FPN,
    box head) uses `bn_eps`, 1e-5 as torchvision's (its COCO_V1 v2 weights also run with 1e-5).
    """
    if weights_backbone is not None:
        raise ValueError("weights_backbone must be None: edudet downloads nothing; pass full weights as weights=")
    backbone = resnet50_fpn_v2_backbone(bn_eps)
    parts = v2_two_stage_parts(backbone, backbone.body.bn_eps, kwargs)
    return load_weights(FasterRCNN(backbone, num_classes=num_classes, **{**parts, **kwargs}), weights, seed)
