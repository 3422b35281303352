"""A light Mask R-CNN / Faster R-CNN for small images: ResNet-18 C2..C4, a 64-channel FPN, small heads.

The configuration of the shipped shapes detector (`shapes_detector`): torchvision's ``resnet18`` body
cut after ``layer3`` (strides 4, 8, 16; 64, 128, 256 channels; ``layer4`` would hold 3/4 of the weights and
sees more than a 256-pixel image needs), an FPN of 64 channels plus the max-pool level (stride 32),
anchors of 16, 32, 64, 128 px (one size per level, ratios 0.5, 1, 2: the shapes are 8-100 px), a
``TwoMLPHead`` of 256 and, for Mask R-CNN, two 64-channel mask convs and a 64-wide mask predictor.
Images are used at their size (``min_size = max_size = 256``). Everything else is torchvision's
``FasterRCNN`` / ``MaskRCNN`` inference, run by the same code as the ResNet-50 models.

`shapes_detector()` is that Mask R-CNN with the weights shipped in the package (trained on
`edudet.data.shapes` by ``tools/train_shapes.py``); `shapes_record()` is the JSON written with them
(data seeds, steps, and the mAP reached on 50 evaluation images).

`torchvision_model` builds the identical torchvision model (for training and for parity tests): it is
the one function here that imports torch, and only when called.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .faster_rcnn import FasterRCNN, check_bn_eps
from .fpn import BackboneWithFPN, FeaturePyramidNetwork, LastLevelMaxPool
from .mask_rcnn import MaskRCNN
from .resnet import resnet18_body
from .weights import load_npz, load_weights

__all__ = ["LIGHT_DEFAULTS", "SHAPES_WEIGHTS", "shapes_detector", "shapes_record", "resnet18_fpn_backbone",
           "fasterrcnn_resnet18_fpn", "maskrcnn_resnet18_fpn", "torchvision_model"]

# the constructor arguments that differ from torchvision's ResNet-50 detectors (sizes for 256-px images)
LIGHT_DEFAULTS = dict(
    min_size=256, max_size=256,
    anchor_sizes=[[16], [32], [64], [128]], aspect_ratios=[0.5, 1.0, 2.0],
    representation_size=256,
)
MASK_DEFAULTS = dict(mask_layers=[64, 64], mask_dim_reduced=64)
RETURNED_LAYERS = (1, 2, 3)
FPN_CHANNELS = 64
# the shipped weights (conv and linear weights in float16, ~7.5 MiB) and, next to them, their JSON record
SHAPES_WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "shapes_maskrcnn.npz"


def resnet18_fpn_backbone(returned_layers=RETURNED_LAYERS, out_channels: int = FPN_CHANNELS,
                          bn_eps: float = 1e-5) -> BackboneWithFPN:
    """ResNet-18 C2..C4 -> FPN P2..P4 (`out_channels`) plus the max-pool level ``"pool"``."""
    body = resnet18_body(returned_layers, check_bn_eps(bn_eps))
    return BackboneWithFPN(body, FeaturePyramidNetwork(body.out_channels, out_channels, LastLevelMaxPool()),
                           name="resnet18_fpn")


def fasterrcnn_resnet18_fpn(weights=None, *, num_classes: int = 4, seed: int = 0, bn_eps: float = 1e-5, **kwargs):
    """The light Faster R-CNN (see the module docstring); `weights` as for ``fasterrcnn_resnet50_fpn``."""
    config = {**LIGHT_DEFAULTS, **kwargs}
    return load_weights(FasterRCNN(resnet18_fpn_backbone(bn_eps=bn_eps), num_classes=num_classes, **config), weights,
                        seed)


def maskrcnn_resnet18_fpn(weights=None, *, num_classes: int = 4, seed: int = 0, bn_eps: float = 1e-5, **kwargs):
    """The light Mask R-CNN (see the module docstring); `weights` as for ``maskrcnn_resnet50_fpn``."""
    config = {**LIGHT_DEFAULTS, **MASK_DEFAULTS, **kwargs}
    return load_weights(MaskRCNN(resnet18_fpn_backbone(bn_eps=bn_eps), num_classes=num_classes, **config), weights,
                        seed)


def shapes_detector(**overrides):
    """The light Mask R-CNN with the shipped shapes weights: 4 classes (``edudet.data.CLASSES``).

    Keyword `overrides` replace constructor arguments, e.g. ``shapes_detector(box_score_thresh=0.5)``.
    """
    from . import load  # the package imports this module first: a top-level import would be circular

    if not SHAPES_WEIGHTS.exists():
        raise FileNotFoundError(f"the shipped weights {SHAPES_WEIGHTS} are missing from this installation; "
                                "reinstall edudet or run tools/train_shapes.py")
    return load(SHAPES_WEIGHTS, **overrides)


def shapes_record() -> dict:
    """What ``tools/train_shapes.py`` recorded with the shipped weights (seeds, steps, mAP)."""
    return json.loads(SHAPES_WEIGHTS.with_suffix(".json").read_text())


def torchvision_model(architecture: str = "maskrcnn_resnet18_fpn", num_classes: int = 4, weights=None, **kwargs):
    """The torchvision twin of `fasterrcnn_resnet18_fpn` / `maskrcnn_resnet18_fpn` (BatchNorm2d layers).

    weights: None (torchvision's random init) or an edudet ``.npz`` (e.g. `SHAPES_WEIGHTS`) loaded into it;
    only BatchNorm2d's ``num_batches_tracked`` training counters, which edudet files do not keep, stay as
    initialised. Keyword arguments are passed to torchvision's ``FasterRCNN`` / ``MaskRCNN`` (training ones
    included); the light sizes are fixed here, exactly as the edudet builders fix them. Needs torch.
    """
    from torchvision.models import resnet18
    from torchvision.models.detection import FasterRCNN, MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN as TorchBackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool as TorchLastLevelMaxPool

    if architecture not in ("fasterrcnn_resnet18_fpn", "maskrcnn_resnet18_fpn"):
        raise ValueError("architecture must be 'fasterrcnn_resnet18_fpn' or 'maskrcnn_resnet18_fpn', "
                         f"got {architecture!r}")
    widths = [64, 128, 256, 512]
    body = TorchBackboneWithFPN(
        resnet18(), {f"layer{i}": str(n) for n, i in enumerate(RETURNED_LAYERS)},
        [widths[i - 1] for i in RETURNED_LAYERS], FPN_CHANNELS, extra_blocks=TorchLastLevelMaxPool())
    names = [str(n) for n in range(len(RETURNED_LAYERS))]
    config = dict(LIGHT_DEFAULTS)
    representation = config.pop("representation_size")
    anchors = AnchorGenerator(tuple(tuple(s) for s in config.pop("anchor_sizes")),
                              (tuple(config.pop("aspect_ratios")),) * len(LIGHT_DEFAULTS["anchor_sizes"]))
    config.update(kwargs)
    common = dict(rpn_anchor_generator=anchors, box_roi_pool=MultiScaleRoIAlign(names, 7, 2),
                  box_head=TwoMLPHead(FPN_CHANNELS * 7 * 7, representation),
                  box_predictor=FastRCNNPredictor(representation, num_classes), **config)
    if architecture == "fasterrcnn_resnet18_fpn":
        model = FasterRCNN(body, None, **common)
    else:
        layers, reduced = MASK_DEFAULTS["mask_layers"], MASK_DEFAULTS["mask_dim_reduced"]
        model = MaskRCNN(body, None, mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
                         mask_head=MaskRCNNHeads(FPN_CHANNELS, layers, 1),
                         mask_predictor=MaskRCNNPredictor(layers[-1], reduced, num_classes), **common)
    if weights is not None:
        _load_into_torch(model, weights)
    return model


def _load_into_torch(model, path) -> None:
    import torch  # only when called: torch is never a run-time dependency

    state, _ = load_npz(path)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()},
                                                strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path} does not fit the torchvision model: missing {missing}, unexpected {unexpected}")
