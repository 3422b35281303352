"""Mask R-CNN with a ResNet-50-FPN backbone (He et al., 2017), torchvision's ``maskrcnn_resnet50_fpn``, in NumPy.

Faster R-CNN plus a mask branch run on the final detections (inference does not use the proposals):
each detection box is pooled from its FPN level to ``256 x 14 x 14`` (MultiScaleRoIAlign, sampling ratio
2), four 3x3 convs of 256 with ReLU (``MaskRCNNHeads``), a 2x2 stride-2 transposed conv + ReLU to
``28 x 28`` and a 1x1 conv with one logit map per class (``MaskRCNNPredictor``). The mask of a detection is
``sigmoid`` of its own class's map (``maskrcnn_inference``), ``(K, 1, 28, 28)``; the transform then pastes
it into the original image with `edudet.ops.paste_masks_in_image`, giving ``masks`` ``(K, 1, H, W)`` float32
probabilities in each result (threshold at 0.5 for a binary mask).

``maskrcnn_resnet50_fpn_v2``: Faster R-CNN v2 (`faster_rcnn.fasterrcnn_resnet50_fpn_v2`) plus this branch
with a batch norm after each of the four mask-head convs (folded into them at load).
"""
from __future__ import annotations

import numpy as np

from .._validate import check_scalar
from ..poolers import MultiScaleRoIAlign
from .faster_rcnn import FasterRCNN, resnet50_fpn_backbone, resnet50_fpn_v2_backbone, v2_two_stage_parts
from .layers import Conv2d, ConvTranspose2d, FrozenBatchNorm2d, relu_
from .roi_heads import conv_small_maps, multiscale_roi_align
from .rpn import sigmoid
from .weights import StateModule, load_weights

__all__ = ["MaskRCNN", "MaskRCNNHeads", "MaskRCNNPredictor", "maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2"]


class MaskRCNNHeads(StateModule):
    """``(K, C, 14, 14)`` pooled features -> ``(K, layers[-1], 14, 14)``: 3x3 conv + ReLU per entry of `layers`.

    Keys ``{i}.0.{weight,bias}`` (torchvision's ``MaskRCNNHeads``; pre-0.13 ``mask_fcn{i + 1}`` renamed on load).
    With `batch_norm` (v2: 3x3 conv + batch norm + ReLU) the convs have no bias and the norms are ``{i}.1.*``,
    folded into the convs at load.
    """

    def __init__(self, in_channels: int, layers=(256, 256, 256, 256), batch_norm: bool = False,
                 bn_eps: float = 1e-5):
        self.batch_norm, self.bn_eps = bool(batch_norm), float(bn_eps)
        self.convs = []
        for width in layers:
            self.convs.append(Conv2d(in_channels, width, 3, padding=1, bias=not self.batch_norm))
            in_channels = width
        self.out_channels = in_channels

    def children(self):
        children = {}
        for i, conv in enumerate(self.convs):
            children[f"{i}.0"] = conv
            if self.batch_norm:
                children[f"{i}.1"] = FrozenBatchNorm2d(conv, self.bn_eps)
        return children

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for conv in self.convs:
            x = conv_small_maps(conv, x, relu=True)  # all detections' 14 x 14 maps in one product per conv
        return x


class MaskRCNNPredictor(StateModule):
    """``(K, C, 14, 14)`` -> ``(K, 1, 28, 28)`` logits of each row's own class (`labels`), or all
    ``(K, num_classes, 28, 28)`` when `labels` is None.

    ``conv5_mask`` (2x2 transposed conv, stride 2) + ReLU, then the 1x1 ``mask_fcn_logits``. Inference needs one
    class per detection, so only that row of the 1x1 conv is applied: the same numbers as the full
    conv followed by a selection, for ``1 / num_classes`` of its work.
    """

    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int):
        self.num_classes = num_classes
        self.conv5_mask = ConvTranspose2d(in_channels, dim_reduced, 2)
        self.mask_fcn_logits = Conv2d(dim_reduced, num_classes, 1)

    def children(self):
        return {"conv5_mask": self.conv5_mask, "mask_fcn_logits": self.mask_fcn_logits}

    def __call__(self, x: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        if labels is None:
            return self.mask_fcn_logits(self.conv5_mask(x, relu=True))
        # The transposed conv writes pixel (i, j)'s 2 x 2 block of outputs; laying those blocks out as a
        # (K, D, 56, 56) image is a shuffle of D channels whose inner axis has stride 2, slower than the
        # product itself. The class row is applied first, per tap (dy, dx), on the unshuffled blocks, so only
        # the one-channel logits are shuffled: the same sums as `conv5_mask` then the class row of the 1x1 conv.
        upsample = self.conv5_mask
        count, channels, h, w = x.shape
        s = upsample.kernel_size
        blocks = np.matmul(upsample.matrix, x.reshape(count, channels, h * w))  # (K, D s s, h w): rows (o, dy, dx)
        blocks += np.repeat(upsample.bias, s * s)[:, None]
        relu_(blocks)
        rows = self.mask_fcn_logits.matrix[labels]  # (K, D): each detection's class row
        d = upsample.out_channels
        logits = np.matmul(rows[:, None, :], blocks.reshape(count, d, s * s * h * w))[:, 0]  # (K, (dy, dx, i, j))
        logits += self.mask_fcn_logits.bias[labels][:, None]
        # tap (dy, dx) of pixel (i, j) is output pixel (s i + dy, s j + dx)
        logits = logits.reshape(count, s, s, h, w).transpose(0, 3, 1, 4, 2)
        return np.ascontiguousarray(logits).reshape(count, 1, h * s, w * s)


class MaskBranch(StateModule):
    """Detections -> ``(K, 1, 28, 28)`` mask probabilities per image (pool, head, predictor, own class)."""

    def __init__(self, mask_roi_pool, mask_head: MaskRCNNHeads, mask_predictor: MaskRCNNPredictor):
        self.mask_roi_pool, self.mask_head, self.mask_predictor = mask_roi_pool, mask_head, mask_predictor

    def children(self):
        return {"mask_head": self.mask_head, "mask_predictor": self.mask_predictor}

    def __call__(self, features, detections: list[dict], image_sizes, trace) -> None:
        with trace.stage("roi_heads.mask_roi_pool") as stage:
            pooled = self.mask_roi_pool.pool_model_features(features, [d["boxes"] for d in detections], image_sizes,
                                                            reuse=True)  # the pooler's arrays: read at once below
            stage.add("mask_features", pooled)
        with trace.stage("roi_heads.mask_head") as stage:
            hidden = self.mask_head(pooled)
            labels = np.concatenate([d["labels"] for d in detections])
            logits = self.mask_predictor(hidden, labels)
            probabilities = sigmoid(logits)
            stage.add("mask_probs", probabilities)
        start = 0
        for d in detections:
            d["masks"] = probabilities[start: start + len(d["labels"])]
            start += len(d["labels"])


class MaskRCNN(FasterRCNN):
    """Mask R-CNN: `FasterRCNN` plus the mask branch (see the module docstring); results gain ``masks``.

    Keyword arguments and defaults are torchvision's ``MaskRCNN``: Faster R-CNN's, and `mask_roi_pool`,
    `mask_head`, `mask_predictor` (None: the standard 14 x 14 pooler, convs of widths `mask_layers` (four of
    256), a `mask_dim_reduced`-wide predictor (256); or edudet objects of those kinds).
    """

    kind = "maskrcnn"

    def __init__(self, backbone, num_classes: int = 91, *, mask_roi_pool=None, mask_head=None, mask_predictor=None,
                 mask_layers=(256, 256, 256, 256), mask_dim_reduced: int = 256, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        if isinstance(mask_layers, (str, bytes)) or not hasattr(mask_layers, "__len__") or len(mask_layers) == 0:
            raise ValueError(f"mask_layers must be a non-empty list of positive widths, got {mask_layers!r}")
        mask_layers = [check_scalar(w, f"mask_layers[{i}]", low=1, integer=True) for i, w in enumerate(mask_layers)]
        mask_dim_reduced = check_scalar(mask_dim_reduced, "mask_dim_reduced", low=1, integer=True)
        self.config.update(mask_layers=mask_layers, mask_dim_reduced=mask_dim_reduced)
        if mask_roi_pool is None:
            mask_roi_pool = multiscale_roi_align(self.feature_levels, 14, 2)
        if not isinstance(mask_roi_pool, MultiScaleRoIAlign):
            raise TypeError(f"mask_roi_pool must be an edudet.MultiScaleRoIAlign, got {type(mask_roi_pool).__name__}")
        if mask_head is None:
            mask_head = MaskRCNNHeads(backbone.out_channels, mask_layers)
        if not isinstance(mask_head, MaskRCNNHeads):
            raise TypeError(f"mask_head must be an edudet MaskRCNNHeads, got {type(mask_head).__name__}")
        if mask_predictor is None:
            mask_predictor = MaskRCNNPredictor(mask_head.out_channels, mask_dim_reduced, self.num_classes)
        if not isinstance(mask_predictor, MaskRCNNPredictor):
            raise TypeError(f"mask_predictor must be an edudet MaskRCNNPredictor, got {type(mask_predictor).__name__}")
        self.roi_heads.mask_branch = MaskBranch(mask_roi_pool, mask_head, mask_predictor)


def maskrcnn_resnet50_fpn(weights=None, *, num_classes: int = 91, weights_backbone=None, seed: int = 0,
                          bn_eps: float = 1e-5, **kwargs) -> MaskRCNN:
    """Mask R-CNN ResNet-50-FPN with torchvision's keywords; `weights`, `bn_eps` as for `fasterrcnn_resnet50_fpn`."""
    if weights_backbone is not None:
        raise ValueError("weights_backbone must be None: edudet downloads nothing; pass full weights as weights=")
    return load_weights(MaskRCNN(resnet50_fpn_backbone(bn_eps), num_classes=num_classes, **kwargs), weights, seed)


def maskrcnn_resnet50_fpn_v2(weights=None, *, num_classes: int = 91, weights_backbone=None, seed: int = 0,
                             bn_eps: float = 1e-5, **kwargs) -> MaskRCNN:
    """Mask R-CNN ResNet-50-FPN v2 (torchvision's ``maskrcnn_resnet50_fpn_v2``): the parts of
    `fasterrcnn_resnet50_fpn_v2` and a mask head with batch norm; keywords as `maskrcnn_resnet50_fpn`'s."""
    if weights_backbone is not None:
        raise ValueError("weights_backbone must be None: edudet downloads nothing; pass full weights as weights=")
    backbone = resnet50_fpn_v2_backbone(bn_eps)
    bn_eps = backbone.body.bn_eps
    parts = v2_two_stage_parts(backbone, bn_eps, kwargs)
    mask_layers = kwargs.get("mask_layers", (256, 256, 256, 256))
    if isinstance(mask_layers, (str, bytes)) or not hasattr(mask_layers, "__len__") or len(mask_layers) == 0:
        raise ValueError(f"mask_layers must be a non-empty list of positive widths, got {mask_layers!r}")
    mask_layers = [check_scalar(w, f"mask_layers[{i}]", low=1, integer=True) for i, w in enumerate(mask_layers)]
    parts["mask_head"] = MaskRCNNHeads(backbone.out_channels, mask_layers, batch_norm=True, bn_eps=bn_eps)
    return load_weights(MaskRCNN(backbone, num_classes=num_classes, **{**parts, **kwargs}), weights, seed)
