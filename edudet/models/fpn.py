"""Feature Pyramid Network (Lin et al., 2017): one 256-channel map per stride, each seeing the whole image.

Top-down: the coarsest backbone map C5 goes through a 1x1 "lateral" conv; every finer level adds its own
lateral to the coarser result upsampled 2x (nearest), and a 3x3 conv smooths each sum into P_k. An extra
block then adds coarser levels: Faster R-CNN's ``LastLevelMaxPool`` (P6 = P5 subsampled by 2) or
RetinaNet/FCOS's ``LastLevelP6P7`` (two more stride-2 convs). torchvision's ``FeaturePyramidNetwork`` and
``BackboneWithFPN`` key names (``fpn.inner_blocks.{i}.0``, ``fpn.layer_blocks.{i}.0``, ``body.*``).
The v2 models (``fasterrcnn_resnet50_fpn_v2``, ``maskrcnn_resnet50_fpn_v2``) follow every FPN conv with a
batch norm (``norm_layer=BatchNorm2d``): the convs lose their bias, the norms are ``{i}.1`` and are folded
into the convs at load, so the forward pass is the same code.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .layers import Conv2d, FrozenBatchNorm2d, interpolate_nearest, relu_
from .weights import StateModule

__all__ = ["FeaturePyramidNetwork", "LastLevelMaxPool", "LastLevelP6P7", "BackboneWithFPN"]


class LastLevelMaxPool(StateModule):
    """Adds ``"pool"`` = ``max_pool2d(P_last, kernel_size=1, stride=2)``: every other pixel of the last level."""

    names = ("pool",)  # the levels it adds, each twice the stride of the one before

    def __call__(self, results: list[np.ndarray], inputs: list[np.ndarray], names: list[str]):
        return results + [np.ascontiguousarray(results[-1][:, :, ::2, ::2])], names + ["pool"]


class LastLevelP6P7(StateModule):
    """Adds ``"p6"`` = conv3x3/2(P5 or C5) and ``"p7"`` = conv3x3/2(relu(P6)) (RetinaNet, FCOS)."""

    names = ("p6", "p7")

    def __init__(self, in_channels: int, out_channels: int):
        self.p6 = Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.p7 = Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
        self.use_p5 = in_channels == out_channels  # torchvision's rule: P5 when the widths allow it

    def children(self):
        return {"p6": self.p6, "p7": self.p7}

    def __call__(self, results, inputs, names):
        p6 = self.p6(results[-1] if self.use_p5 else inputs[-1])
        p7 = self.p7(relu_(p6.copy()))
        return results + [p6, p7], names + ["p6", "p7"]


class FeaturePyramidNetwork(StateModule):
    """``[C2..C5]`` (N, C_i, H_i, W_i) -> OrderedDict ``{"0": P2, ..., "3": P5, + extra}``, each (N, 256, H_i, W_i).

    ``P5 = smooth(lateral(C5))``, ``P_k = smooth(lateral(C_k) + nearest_upsample(inner_{k+1}, size of C_k))``.
    `batch_norm`: each conv is followed by a batch norm of epsilon `bn_eps` (v2; keys ``{i}.1.*``, folded).
    """

    def __init__(self, in_channels_list, out_channels: int = 256, extra_blocks: StateModule | None = None,
                 batch_norm: bool = False, bn_eps: float = 1e-5):
        # torchvision's Conv2dNormActivation drops the conv's bias when a norm follows (the norm's shift replaces it)
        bias = not batch_norm
        self.inner_blocks = [Conv2d(c, out_channels, 1, bias=bias) for c in in_channels_list]
        self.layer_blocks = [Conv2d(out_channels, out_channels, 3, padding=1, bias=bias) for _ in in_channels_list]
        self.extra_blocks = extra_blocks
        self.out_channels = out_channels
        self.batch_norm, self.bn_eps = bool(batch_norm), float(bn_eps)

    def children(self):
        children = {}
        for kind, convs in (("inner_blocks", self.inner_blocks), ("layer_blocks", self.layer_blocks)):
            for i, conv in enumerate(convs):
                children[f"{kind}.{i}.0"] = conv
                if self.batch_norm:  # after its conv: loading folds it into the conv's weights
                    children[f"{kind}.{i}.1"] = FrozenBatchNorm2d(conv, self.bn_eps)
        if self.extra_blocks is not None:
            children["extra_blocks"] = self.extra_blocks
        return children

    def __call__(self, inputs: list[np.ndarray], names: list[str] | None = None) -> "OrderedDict[str, np.ndarray]":
        names = list(names) if names is not None else [str(i) for i in range(len(inputs))]
        last_inner = self.inner_blocks[-1](inputs[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for i in range(len(inputs) - 2, -1, -1):
            lateral = self.inner_blocks[i](inputs[i])
            lateral += interpolate_nearest(last_inner, lateral.shape[-2:])
            last_inner = lateral
            results.insert(0, self.layer_blocks[i](last_inner))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, inputs, names)
        return OrderedDict(zip(names, results))


class BackboneWithFPN(StateModule):
    """A backbone body (returning C2..C5) followed by an FPN: ``(N, 3, H, W)`` -> OrderedDict of P levels.

    It declares what it returns: `out_names` (``"0"``, ``"1"``, ... for the body's levels, then the extra
    block's, e.g. ``"pool"``), their `strides` (the body's, then each extra level twice the one before) and
    `out_channels`. The detectors check anchor sizes against those strides, and
    `edudet.strides.level_strides` checks the strides against the maps of every forward pass.
    """

    def __init__(self, body, fpn: FeaturePyramidNetwork, name: str = "resnet50_fpn"):
        self.body, self.fpn, self.name = body, fpn, name
        self.out_channels = fpn.out_channels
        extra = tuple(getattr(fpn.extra_blocks, "names", ()))
        self.out_names = [str(i) for i in range(len(body.strides))] + list(extra)
        self.strides = list(body.strides) + [body.strides[-1] * 2 ** (i + 1) for i in range(len(extra))]

    def children(self):
        return {"body": self.body, "fpn": self.fpn}

    def __call__(self, images: np.ndarray) -> "OrderedDict[str, np.ndarray]":
        return self.fpn(self.body(images))
