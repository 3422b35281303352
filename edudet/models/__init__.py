"""edudet.models: NumPy forward passes of torchvision's detectors, on torchvision's weights.

``model = edudet.models.fasterrcnn_resnet50_fpn(weights="frcnn.npz")``; ``model([image])`` returns one
``{"boxes", "labels", "scores"}`` dict per image (plus ``"masks"`` for ``maskrcnn_resnet50_fpn``). Also
``fcos_resnet50_fpn`` and ``retinanet_resnet50_fpn``, the one-stage detectors, and the light
``fasterrcnn_resnet18_fpn`` / ``maskrcnn_resnet18_fpn`` (light.py) that ``shapes_detector()`` loads with the
weights shipped in the package (trained on `edudet.data.shapes` by ``tools/train_shapes.py``). Weights come from
``python -m edudet convert model.pth out.npz`` (the only step that needs torch) or ``model.save(path)``;
``edudet.models.load(path)`` reads them.

Reading order: layers.py (convolution as a matrix product, folded batch norm), transform.py, resnet.py,
fpn.py, rpn.py, roi_heads.py, generalized_rcnn.py, faster_rcnn.py, mask_rcnn.py; then one_stage.py,
retinanet.py, fcos.py; light.py; weights.py and trace.py are plumbing.
"""
from __future__ import annotations

from .faster_rcnn import FasterRCNN, fasterrcnn_resnet50_fpn
from .fcos import FCOS, fcos_resnet50_fpn
from .generalized_rcnn import GeneralizedRCNN
from .light import fasterrcnn_resnet18_fpn, maskrcnn_resnet18_fpn, shapes_detector, shapes_record
from .mask_rcnn import MaskRCNN, maskrcnn_resnet50_fpn
from .retinanet import RetinaNet, retinanet_resnet50_fpn
from .trace import Trace, trace
from .weights import load_npz

__all__ = ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "fcos_resnet50_fpn", "retinanet_resnet50_fpn",
           "fasterrcnn_resnet18_fpn", "maskrcnn_resnet18_fpn", "shapes_detector", "shapes_record",
           "FasterRCNN", "MaskRCNN", "FCOS", "RetinaNet", "GeneralizedRCNN", "load", "trace", "Trace",
           "architecture_of", "num_classes_of"]

_BUILDERS = {"fasterrcnn_resnet50_fpn": fasterrcnn_resnet50_fpn, "maskrcnn_resnet50_fpn": maskrcnn_resnet50_fpn,
             "fcos_resnet50_fpn": fcos_resnet50_fpn, "retinanet_resnet50_fpn": retinanet_resnet50_fpn,
             "fasterrcnn_resnet18_fpn": fasterrcnn_resnet18_fpn, "maskrcnn_resnet18_fpn": maskrcnn_resnet18_fpn}


def architecture_of(state) -> str:
    """Which detector of `_BUILDERS` a torchvision-named state dict belongs to, from its keys."""
    if "head.regression_head.bbox_ctrness.weight" in state:
        return "fcos_resnet50_fpn"
    if any(key.startswith("head.classification_head.") for key in state):
        return "retinanet_resnet50_fpn"
    # ResNet-18's basic blocks have two convs; ResNet-50's bottlenecks have a third
    backbone = ("resnet18_fpn" if "backbone.body.layer1.0.conv2.weight" in state
                and "backbone.body.layer1.0.conv3.weight" not in state else "resnet50_fpn")
    if any(key.startswith("roi_heads.mask_predictor.") for key in state):
        return f"maskrcnn_{backbone}"
    return f"fasterrcnn_{backbone}"


def num_classes_of(state, architecture: str) -> int | None:
    """The number of classes the weights were trained for (None when the classifier is missing)."""
    if architecture in ("fcos_resnet50_fpn", "retinanet_resnet50_fpn"):
        weight = state.get("head.classification_head.cls_logits.weight")
        anchors = 1 if architecture == "fcos_resnet50_fpn" else 9
        return None if weight is None or weight.ndim != 4 else int(weight.shape[0]) // anchors
    weight = state.get("roi_heads.box_predictor.cls_score.weight")
    return None if weight is None or weight.ndim != 2 else int(weight.shape[0])


def load(path, **overrides):
    """A model from an ``.npz`` written by ``model.save`` or ``python -m edudet convert``.

    The file names its detector and constructor arguments (a file without them is recognised from its
    keys, `architecture_of`, and `num_classes` read from the classifier's shape); keyword `overrides`
    replace them, e.g. ``load(path, box_score_thresh=0.3)`` (``score_thresh`` for RetinaNet and FCOS).
    """
    state, config = load_npz(path)
    config = dict(config)
    architecture = config.pop("architecture", None) or architecture_of(state)
    if not isinstance(architecture, str) or architecture not in _BUILDERS:
        raise ValueError(f"{str(path)!r} holds a {architecture!r} model; this edudet knows {sorted(_BUILDERS)}")
    builder = _BUILDERS[architecture]
    if "num_classes" not in config and num_classes_of(state, architecture) is not None:
        config["num_classes"] = num_classes_of(state, architecture)
    config.update(overrides)
    try:
        return builder(state, **config)
    except (TypeError, ValueError) as err:  # name the file: the weights or the arguments it records are wrong
        raise type(err)(f"{str(path)!r} does not load as {architecture}: {err}") from None
