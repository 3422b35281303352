"""ResNet-50 and ResNet-18 as detection backbones (He et al., 2016), torchvision's layouts, inference only.

The stem (7x7 conv, stride 2, then a 3x3 max-pool, stride 2) is followed by four stages of blocks whose
outputs C2..C5 have strides 4, 8, 16, 32. ResNet-50 stacks 3, 4, 6, 3 bottlenecks (C2..C5: 256, 512,
1024, 2048 channels): 1x1 (reduce) -> 3x3 -> 1x1 (expand 4x) plus a shortcut, the stage's stride on the
3x3 conv ("ResNet v1.5", as torchvision). ResNet-18 stacks 2, 2, 2, 2 basic blocks (64, 128, 256, 512
channels): two 3x3 convs plus a shortcut. Every batch norm is folded into its conv when loaded.
"""
from __future__ import annotations

import numpy as np

from .layers import Conv2d, FrozenBatchNorm2d, max_pool2d, relu_
from .weights import StateModule

__all__ = ["BasicBlock", "Bottleneck", "ResNetBody", "resnet18_body", "resnet50_body"]


def conv_bn_children(block, conv_names) -> dict[str, object]:
    """torchvision's keys of a block's bias-free convs, each followed by the batch norm folded into it:
    ``conv{i}``, ``bn{i}`` and, for a projection shortcut, ``downsample.0`` (conv), ``downsample.1`` (norm)."""
    children = {}
    for name in conv_names:
        conv = getattr(block, name)
        children[name], children[name.replace("conv", "bn")] = conv, FrozenBatchNorm2d(conv, block.bn_eps)
    if block.downsample is not None:
        children["downsample.0"] = block.downsample
        children["downsample.1"] = FrozenBatchNorm2d(block.downsample, block.bn_eps)
    return children


class BasicBlock(StateModule):
    """``(N, C_in, H, W)`` -> ``(N, width, H / stride, W / stride)``: ``relu(conv2(conv1 x) + shortcut x)``."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, bn_eps: float = 1e-5):
        self.bn_eps = bn_eps
        self.conv1 = Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.conv2 = Conv2d(width, width, 3, padding=1, bias=False)
        self.downsample = (Conv2d(in_channels, width, 1, stride=stride, bias=False)
                           if stride != 1 or in_channels != width else None)

    def children(self):
        return conv_bn_children(self, ("conv1", "conv2"))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.conv2(self.conv1(x, relu=True))
        out += x if self.downsample is None else self.downsample(x)
        return relu_(out)


class Bottleneck(StateModule):
    """``(N, C_in, H, W)`` -> ``(N, 4 width, H / stride, W / stride)``: ``relu(conv3(conv2(conv1 x)) + shortcut x)``."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, bn_eps: float = 1e-5):
        self.bn_eps = bn_eps
        out_channels = width * self.expansion
        self.conv1 = Conv2d(in_channels, width, 1, bias=False)
        self.conv2 = Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.conv3 = Conv2d(width, out_channels, 1, bias=False)
        # the shortcut needs a projection when the shape changes (first block of a stage)
        self.downsample = (Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
                           if stride != 1 or in_channels != out_channels else None)

    def children(self):
        return conv_bn_children(self, ("conv1", "conv2", "conv3"))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.conv1(x, relu=True)
        out = self.conv2(out, relu=True)
        out = self.conv3(out)
        out += x if self.downsample is None else self.downsample(x)
        return relu_(out)


class ResNetBody(StateModule):
    """``(N, 3, H, W)`` normalised images -> ``[C2, C3, C4, C5]`` (the outputs of ``layer1..layer4``).

    `returned_layers` picks which stages' outputs are returned (torchvision's ``returned_layers``: RetinaNet
    and FCOS use ``(2, 3, 4)``, i.e. C3..C5); the stages after the last one are neither built nor run, and
    have no weights (torchvision's ``IntermediateLayerGetter`` drops them too).

    torchvision's key names: ``conv1``, ``bn1``, ``layer{1..4}.{block}.conv{1,2,3}`` / ``bn{1,2,3}`` /
    ``downsample.{0,1}``. The classifier (``fc``) is not part of a detection backbone.
    """

    def __init__(self, blocks_per_stage=(3, 4, 6, 3), widths=(64, 128, 256, 512), returned_layers=(1, 2, 3, 4),
                 block=Bottleneck, bn_eps: float = 1e-5):
        self.returned_layers = tuple(int(i) for i in returned_layers)
        if not self.returned_layers or not all(1 <= i <= len(widths) for i in self.returned_layers):
            raise ValueError(f"returned_layers must be stage numbers in [1, {len(widths)}], got {returned_layers}")
        self.bn_eps = float(bn_eps)  # the batch norms' epsilon, used when folding them at load
        self.conv1 = Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.stages: list[list[StateModule]] = []
        in_channels = 64
        last = max(self.returned_layers)
        for stage, (blocks, width) in enumerate(zip(blocks_per_stage[:last], widths[:last])):
            stride = 1 if stage == 0 else 2  # layer1 follows the max-pool, which already halved the size
            stage_blocks = []
            for b in range(blocks):
                stage_blocks.append(block(in_channels, width, stride if b == 0 else 1, self.bn_eps))
                in_channels = width * block.expansion
            self.stages.append(stage_blocks)
        self.out_channels = [widths[i - 1] * block.expansion for i in self.returned_layers]
        # the stem halves twice (conv, max-pool), every later stage once: layer i has stride 2 ** (i + 1)
        self.strides = [2 ** (i + 1) for i in self.returned_layers]

    def children(self):
        children = {"conv1": self.conv1, "bn1": FrozenBatchNorm2d(self.conv1, self.bn_eps)}
        for s, blocks in enumerate(self.stages, start=1):
            children.update({f"layer{s}.{b}": block for b, block in enumerate(blocks)})
        return children

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        x = self.conv1(x, relu=True)
        x = max_pool2d(x, 3, stride=2, padding=1)
        outputs = []
        for number, blocks in enumerate(self.stages, start=1):
            for block in blocks:
                x = block(x)
            if number in self.returned_layers:
                outputs.append(x)
        return outputs


def resnet50_body(returned_layers=(1, 2, 3, 4), bn_eps: float = 1e-5) -> ResNetBody:
    """ResNet-50's convolutional body: 3, 4, 6, 3 bottlenecks of widths 64, 128, 256, 512."""
    return ResNetBody((3, 4, 6, 3), (64, 128, 256, 512), returned_layers, bn_eps=bn_eps)


def resnet18_body(returned_layers=(1, 2, 3, 4), bn_eps: float = 1e-5) -> ResNetBody:
    """ResNet-18's convolutional body: 2, 2, 2, 2 basic blocks of widths 64, 128, 256, 512."""
    return ResNetBody((2, 2, 2, 2), (64, 128, 256, 512), returned_layers, block=BasicBlock, bn_eps=bn_eps)
