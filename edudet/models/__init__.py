"""edudet.models: NumPy forward passes of torchvision's detectors, on torchvision's weights.

``model = edudet.models.fasterrcnn_resnet50_fpn(weights="frcnn.npz")``; ``model([image])`` returns one
``{"boxes", "labels", "scores"}`` dict per image (plus ``"masks"`` for ``maskrcnn_resnet50_fpn``). Also
``fcos_resnet50_fpn`` and ``retinanet_resnet50_fpn``, the one-stage detectors, and the light
``fasterrcnn_resnet18_fpn`` / ``maskrcnn_resnet18_fpn`` (light.py) that ``shapes_detector()`` loads with the
weights shipped in the package (trained on `edudet.data.shapes` by ``tools/train_shapes.py``). The CPU zoo:
``fasterrcnn_mobilenet_v3_large_fpn`` and ``fasterrcnn_mobilenet_v3_large_320_fpn`` (mobilenet_v3.py: a
MobileNetV3-Large body with depthwise convolutions) and torchvision's v2 recipes ``fasterrcnn_resnet50_fpn_v2``,
``maskrcnn_resnet50_fpn_v2`` and ``retinanet_resnet50_fpn_v2`` (batch-normed FPN, box and mask heads, folded at
load; GroupNorm towers). Weights come from
``python -m edudet convert model.pth out.npz`` (the only step that needs torch) or ``model.save(path)``;
``edudet.models.load(path)`` reads them.

The architecture (detector.py): a `Detector` owns the transform, the backbone, the weights and the call;
`TwoStageDetector` (RPN + RoI heads: `FasterRCNN`, `MaskRCNN`) and `OneStageDetector` (one dense head:
`RetinaNet`, `FCOS`) each implement ``detect``, from FPN levels to detections. A backbone declares its output
names and strides (`edudet.strides.level_strides` checks them against the maps of every call; anchor sizes
are checked against them when a detector is built). Every part declares its layers once, in ``children``
(torchvision's names), and the expected keys (``state_shapes``) and the loading (``load_state``) follow.

Reading order: layers.py (convolution as a matrix product, folded batch norm), transform.py, resnet.py,
fpn.py, detector.py, rpn.py, roi_heads.py, faster_rcnn.py, mask_rcnn.py; then one_stage.py, retinanet.py,
fcos.py; light.py, mobilenet_v3.py; weights.py and trace.py are plumbing.

Adding a detector means writing its head and a builder. A one-stage detector whose head predicts a
class logit per location and four distances (decoded as FCOS does) on the ResNet-50-FPN P3..P7 backbone::

    from edudet.anchors import AnchorGenerator
    from edudet.models import OneStageDetector, register
    from edudet.models.fcos import linear_decode, resnet50_fpn_p3p7_backbone
    from edudet.models.layers import Conv2d
    from edudet.models.rpn import sigmoid
    from edudet.models.transform import IMAGENET_MEAN, IMAGENET_STD
    from edudet.models.weights import StateModule, load_weights

    class TinyHead(StateModule):                      # the head: its layers, under torchvision-style names
        outputs = ("cls_logits", "bbox_regression")

        def __init__(self, channels, num_classes):
            self.cls_logits = Conv2d(channels, num_classes, 3, padding=1)
            self.bbox_reg = Conv2d(channels, 4, 3, padding=1)

        def children(self):                           # declared once: keys and loading follow from it
            return {"classification_head.cls_logits": self.cls_logits,
                    "regression_head.bbox_reg": self.bbox_reg}

        def __call__(self, levels):                   # [(N, C, h, w)] -> {name: [one array per level]}
            return {"cls_logits": [self.cls_logits(x) for x in levels],
                    "bbox_regression": [self.bbox_reg(x, relu=True) for x in levels]}

    class Tiny(OneStageDetector):
        kind = "tiny"                                 # architecture: "tiny_resnet50_fpn"
        anchor_sizes_equal_strides = True             # one anchor of size = stride per level, checked

        def level_scores(self, outputs, level, image):
            return sigmoid(self.level_output(outputs, "cls_logits", level, image, self.num_classes))

        def decode(self, codes, anchors):
            return linear_decode(codes, anchors)

    DEFAULTS = dict(min_size=800, max_size=1333, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD,
                    score_thresh=0.2, nms_thresh=0.6, detections_per_img=100, topk_candidates=1000)

    def tiny_resnet50_fpn(weights=None, *, num_classes=91, seed=0, **kwargs):   # the builder
        backbone = resnet50_fpn_p3p7_backbone()
        anchors = AnchorGenerator([(s,) for s in backbone.strides], ((1.0,),) * len(backbone.strides))
        head = TinyHead(backbone.out_channels, num_classes)
        return load_weights(Tiny(backbone, head, anchors, num_classes, **{**DEFAULTS, **kwargs}), weights, seed)

    register("tiny_resnet50_fpn", tiny_resnet50_fpn, Tiny)   # so that `load` and `convert` know it

A two-stage detector subclasses `FasterRCNN` (or `TwoStageDetector`) the same way (`MaskRCNN` adds its mask
branch to the RoI heads and nothing else). tests/test_models_architecture.py runs this example.
"""
from __future__ import annotations

from .detector import Detector, TwoStageDetector
from .faster_rcnn import FasterRCNN, fasterrcnn_resnet50_fpn, fasterrcnn_resnet50_fpn_v2
from .fcos import FCOS, fcos_resnet50_fpn
from .light import fasterrcnn_resnet18_fpn, maskrcnn_resnet18_fpn, shapes_detector, shapes_record
from .mobilenet_v3 import fasterrcnn_mobilenet_v3_large_320_fpn, fasterrcnn_mobilenet_v3_large_fpn
from .mask_rcnn import MaskRCNN, maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2
from .one_stage import OneStageDetector
from .retinanet import RetinaNet, retinanet_resnet50_fpn, retinanet_resnet50_fpn_v2
from .trace import Trace, trace
from .weights import load_npz

__all__ = ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "fcos_resnet50_fpn", "retinanet_resnet50_fpn",
           "fasterrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2",
           "fasterrcnn_resnet18_fpn", "maskrcnn_resnet18_fpn", "shapes_detector", "shapes_record",
           "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn",
           "Detector", "TwoStageDetector", "OneStageDetector", "FasterRCNN", "MaskRCNN", "FCOS", "RetinaNet",
           "GeneralizedRCNN", "load", "register", "trace", "Trace", "architecture_of", "num_classes_of",
           "ARCHITECTURES"]

GeneralizedRCNN = TwoStageDetector  # torchvision's name for the two-stage skeleton (earlier edudet's too)

# architecture name (a detector's `kind` + "_" + its backbone's name) -> (builder, detector class)
ARCHITECTURES: dict[str, tuple] = {}


def register(architecture: str, builder, detector_class) -> None:
    """Make `load` and ``python -m edudet convert`` know a detector: its name, builder and class."""
    if not (isinstance(architecture, str) and callable(builder) and isinstance(detector_class, type)
            and issubclass(detector_class, Detector)):
        raise TypeError("register(architecture: str, builder: callable, detector_class: a Detector subclass)")
    ARCHITECTURES[architecture] = (builder, detector_class)


for _builder, _class in ((fasterrcnn_resnet50_fpn, FasterRCNN), (maskrcnn_resnet50_fpn, MaskRCNN),
                         (fcos_resnet50_fpn, FCOS), (retinanet_resnet50_fpn, RetinaNet),
                         (fasterrcnn_resnet18_fpn, FasterRCNN), (maskrcnn_resnet18_fpn, MaskRCNN),
                         (fasterrcnn_mobilenet_v3_large_fpn, FasterRCNN),
                         (fasterrcnn_mobilenet_v3_large_320_fpn, FasterRCNN),
                         (fasterrcnn_resnet50_fpn_v2, FasterRCNN), (maskrcnn_resnet50_fpn_v2, MaskRCNN),
                         (retinanet_resnet50_fpn_v2, RetinaNet)):
    register(_builder.__name__, _builder, _class)


def architecture_of(state) -> str:
    """Which registered detector a torchvision-named state dict belongs to, from its keys."""
    if "head.regression_head.bbox_ctrness.weight" in state:
        return "fcos_resnet50_fpn"
    if any(key.startswith("head.classification_head.") for key in state):
        # v2's towers put a GroupNorm after each conv: Conv2dNormActivation's second entry
        return ("retinanet_resnet50_fpn_v2" if "head.classification_head.conv.0.1.weight" in state
                else "retinanet_resnet50_fpn")
    if "backbone.body.1.block.0.0.weight" in state:  # MobileNetV3's first inverted residual (ResNets: layer1)
        # the 320 variant has the same weights: only the saved `architecture` (or --architecture) tells it apart
        return "fasterrcnn_mobilenet_v3_large_fpn"
    # ResNet-18's basic blocks have two convs; ResNet-50's bottlenecks have a third
    backbone = ("resnet18_fpn" if "backbone.body.layer1.0.conv2.weight" in state
                and "backbone.body.layer1.0.conv3.weight" not in state else "resnet50_fpn")
    if "roi_heads.box_head.0.0.weight" in state:  # v2's FastRCNNConvFCHead (v1's TwoMLPHead has fc6, fc7)
        backbone = "resnet50_fpn_v2"
    if any(key.startswith("roi_heads.mask_predictor.") for key in state):
        return f"maskrcnn_{backbone}"
    return f"fasterrcnn_{backbone}"


def num_classes_of(state, architecture: str) -> int | None:
    """The number of classes the weights were trained for (None when the classifier is missing), read the
    way the architecture's detector class reads it (`Detector.num_classes_in`)."""
    return ARCHITECTURES[architecture][1].num_classes_in(state)


def load(path, **overrides):
    """A model from an ``.npz`` written by ``model.save`` or ``python -m edudet convert``.

    The file names its detector and constructor arguments (a file without them is recognised from its
    keys, `architecture_of`, and `num_classes` read from the classifier's shape); keyword `overrides`
    replace them, e.g. ``load(path, box_score_thresh=0.3)`` (``score_thresh`` for RetinaNet and FCOS).
    """
    state, config = load_npz(path)
    config = dict(config)
    architecture = config.pop("architecture", None) or architecture_of(state)
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise ValueError(f"{str(path)!r} holds a {architecture!r} model; this edudet knows {sorted(ARCHITECTURES)}")
    builder = ARCHITECTURES[architecture][0]
    if "num_classes" not in config and num_classes_of(state, architecture) is not None:
        config["num_classes"] = num_classes_of(state, architecture)
    config.update(overrides)
    try:
        return builder(state, **config)
    except (TypeError, ValueError) as err:  # name the file: the weights or the arguments it records are wrong
        raise type(err)(f"{str(path)!r} does not load as {architecture}: {err}") from None
