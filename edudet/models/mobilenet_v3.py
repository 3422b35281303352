"""Faster R-CNN on MobileNetV3-Large (Howard et al., 2019): torchvision's CPU detectors, inference in NumPy.

MobileNetV3's body (torchvision's ``mobilenet_v3_large().features``, 17 modules) is a 3x3 stride-2 stem
(hardswish), 15 inverted residual blocks and a 1x1 conv to 960 channels (hardswish). A block widens its
input with a 1x1 conv ("expand", skipped when the width stays), filters each channel on its own with a
k x k depthwise conv (the block's stride), optionally reweights the channels by squeeze-and-excitation,
and narrows back with a 1x1 conv ("project", no activation); the input is added back when the shape stays.
The activation is ReLU in the first six blocks and hardswish after. Every batch norm is folded into its
conv when loaded.

The detector (torchvision's ``fasterrcnn_mobilenet_v3_large_fpn``, via ``_mobilenet_extractor``) takes the
outputs of two "stages": a stage ends before each block of stride 2, so the stages start at modules
0, 2, 4, 7, 13 and 16, and the last two (``returned_layers`` 4 and 5) are module 13's output (160
channels) and module 16's (960 channels). Both have stride 32: the FPN (256 channels) adds them at the
same size, then ``LastLevelMaxPool`` gives ``"pool"`` at stride 64. Every level carries five anchor
sizes (32 .. 512) times three aspect ratios, 15 anchors per location; the RoI pooler reads ``"0"``
and ``"1"``, which have the same scale, so FPN eq. 1 sends every box to ``"0"`` (as in torchvision).

``fasterrcnn_mobilenet_v3_large_320_fpn`` is the same network run on small images (``min_size=320``,
``max_size=640``) with 150 proposals kept before and after NMS. The weights cannot tell the two apart:
`load` reads the ``architecture`` that ``model.save`` and ``python -m edudet convert`` write, and a bare
torchvision state dict is taken for the 800-pixel model unless ``--architecture
fasterrcnn_mobilenet_v3_large_320_fpn`` (or the 320 builder) says otherwise.

Batch norm epsilon: 1e-5. torchvision's classification MobileNetV3 uses 0.001, but its detection builders
pass ``nn.BatchNorm2d`` (or ``FrozenBatchNorm2d`` with trained weights), whose default is 1e-5.
"""
from __future__ import annotations

import numpy as np

from .._dispatch import Dispatcher
from .._validate import check_allocation, check_scalar
from .faster_rcnn import FasterRCNN, check_bn_eps
from .fpn import BackboneWithFPN, FeaturePyramidNetwork, LastLevelMaxPool
from .layers import Conv2d, FrozenBatchNorm2d, relu_
from .weights import StateModule, load_weights

__all__ = ["hardswish", "hardsigmoid", "DepthwiseConv2d", "depthwise_conv2d_numpy", "SqueezeExcitation",
           "InvertedResidual", "MobileNetV3Body", "mobilenet_v3_large_fpn_backbone",
           "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn"]

# MobileNetV3-Large's blocks (the paper's Table 1, torchvision's order): input channels, kernel size,
# expanded channels, output channels, squeeze-excitation, activation ("RE" ReLU, "HS" hardswish), stride
LARGE_BLOCKS = [
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
]


def hardswish(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``x * clip(x + 3, 0, 6) / 6``, a piecewise approximation of ``x * sigmoid(x)`` (MobileNetV3, eq. 2).

    0 for ``x <= -3``, ``x`` for ``x >= 3``; rounded as PyTorch's CPU kernel (product first, then the division).
    `out` may be `x` itself (in place).
    """
    gate = x + np.float32(3)
    np.clip(gate, np.float32(0), np.float32(6), out=gate)
    return np.divide(np.multiply(x, gate, out=gate), np.float32(6), out=out)


def hardsigmoid(x: np.ndarray) -> np.ndarray:
    """``clip(x + 3, 0, 6) / 6``: 0 below -3, 1 above 3, linear between (the squeeze-excitation gate)."""
    gate = x + np.float32(3)
    np.clip(gate, np.float32(0), np.float32(6), out=gate)
    gate /= np.float32(6)
    return gate


class DepthwiseConv2d:
    """``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``: each channel convolved with its own ``k x k`` filter.

    ``torch.nn.Conv2d(C, C, k, stride, padding, dilation, groups=C)``: weights ``(C, 1, k, k)``, zero padding,
    ``H_out = (H + 2 padding - dilation (k - 1) - 1) // stride + 1``. No channel mixes with another, so there
    is no matrix product to hand to BLAS: the output is a sum of ``k * k`` shifted (strided, dilated) views of
    the padded input, each times its tap's per-channel weight (`depthwise_conv2d_numpy`; `backend=None` runs
    the fastest twin, ``"numpy"`` the reference). The kernels work channels-last, ``(N, H, W, C)``, where a
    pixel's channels are one vector: ``channels_last=True`` takes and returns that layout (MobileNetV3's body
    runs in it), otherwise the call transposes in and out. `activation` (None, ``"relu"``, ``"hardswish"``)
    is applied in the same pass. ``matrix`` ``(C, k k)`` and ``bias`` have `Conv2d`'s names, so
    `fold_batch_norm` folds a following batch norm into it the same way. `channels`, `kernel_size`, `stride`
    and `dilation` are integers >= 1, `padding` an integer >= 0; an empty batch gives an empty output.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                 bias: bool = True):
        channels = check_scalar(channels, "channels", low=1, integer=True)
        self.channels = self.in_channels = self.out_channels = channels
        self.kernel_size = check_scalar(kernel_size, "kernel_size", low=1, integer=True)
        self.stride = check_scalar(stride, "stride", low=1, integer=True)
        # negative padding would crop: the Numba kernel would, the reference could not (not torch's either)
        self.padding = check_scalar(padding, "padding", low=0, integer=True)
        self.dilation = check_scalar(dilation, "dilation", low=1, integer=True)
        self.has_bias = bias
        check_allocation((channels, self.kernel_size, self.kernel_size), 4,
                         "DepthwiseConv2d's (channels, k, k) filters (channels, kernel_size)")
        self.matrix = np.zeros((channels, self.kernel_size * self.kernel_size), np.float32)
        self.bias = np.zeros(channels, np.float32)

    def __repr__(self) -> str:
        return (f"DepthwiseConv2d({self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation})")

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """``weight`` ``(C, 1, k, k)`` (and ``bias``): torch's keys for a conv with ``groups=C``."""
        k = self.kernel_size
        return {"weight": (self.channels, 1, k, k), **({"bias": (self.channels,)} if self.has_bias else {})}

    def load_state(self, state) -> None:
        self.set_weight(state["weight"], state["bias"] if self.has_bias else None)

    def set_weight(self, weight: np.ndarray, bias: np.ndarray | None = None) -> None:
        """`weight` ``(C, 1, k, k)`` (or any shape of ``C k k`` values in that order), `bias` ``(C,)`` or None."""
        k = self.kernel_size
        weight = np.asarray(weight, np.float32)
        # the kernels read k * k taps and one bias per channel without bounds checks: the sizes are checked here
        if weight.size != self.channels * k * k:
            raise ValueError(f"weight must be ({self.channels}, 1, {k}, {k}) for {self!r}, got shape {weight.shape}")
        bias = np.zeros(self.channels, np.float32) if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        if bias.shape != (self.channels,):
            raise ValueError(f"bias must be ({self.channels},) for {self!r}, got shape {bias.shape}")
        self.matrix = np.ascontiguousarray(weight.reshape(self.channels, k * k))
        self.bias = bias

    def taps(self) -> np.ndarray:
        """``(k k, C)``: `matrix` transposed, one row of per-channel weights per tap (channels-last), kept until
        `matrix` is replaced (loading or folding a batch norm assigns a new array)."""
        if getattr(self, "_taps_of", None) is not self.matrix:
            self._taps = np.ascontiguousarray(self.matrix.T)
            self._taps_of = self.matrix
        return self._taps

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        span = self.dilation * (self.kernel_size - 1) + 1  # the input rows (columns) one output pixel sees
        return ((height + 2 * self.padding - span) // self.stride + 1,
                (width + 2 * self.padding - span) // self.stride + 1)

    def __call__(self, x: np.ndarray, backend: str | None = None, activation: str | None = None,
                 channels_last: bool = False) -> np.ndarray:
        x = np.asarray(x)
        code = ACTIVATIONS.get(activation)
        if code is None:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
        # the kernels index the filters by channel and read rows the sizes say exist: check both here, once
        layout = "(N, H, W, {})" if channels_last else "(N, {}, H, W)"
        if x.ndim != 4 or x.shape[3 if channels_last else 1] != self.channels:
            raise ValueError(f"x must be {layout.format(self.channels)} for this depthwise conv, got shape {x.shape}")
        height, width = x.shape[1:3] if channels_last else x.shape[2:]
        out_h, out_w = self.output_size(height, width)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"x of {height} x {width} pixels is smaller than the {self.kernel_size} x "
                             f"{self.kernel_size} filter (dilation {self.dilation}, padding {self.padding})")
        check_allocation((x.shape[0], self.channels, out_h, out_w), 4, "DepthwiseConv2d's (N, C, H_out, W_out) "
                         "output (x's N, padding, stride)")
        kernel = _depthwise.get(backend)
        if not channels_last:
            x = x.transpose(0, 2, 3, 1)
        out = kernel(np.ascontiguousarray(x, dtype=np.float32), self.taps(), self.bias, self.kernel_size,
                     self.stride, self.padding, self.dilation, out_h, out_w, code)
        return out if channels_last else np.ascontiguousarray(out.transpose(0, 3, 1, 2))


# the kernels' activation codes (kernels/depthwise_numba.py: RELU, HARDSWISH)
ACTIVATIONS = {None: 0, "relu": 1, "hardswish": 2}


def depthwise_conv2d_numpy(x: np.ndarray, taps: np.ndarray, bias: np.ndarray, kernel_size: int, stride: int,
                           padding: int, dilation: int, out_h: int, out_w: int, activation: int = 0) -> np.ndarray:
    """The reference, channels-last: x ``(N, H, W, C)``, taps ``(k k, C)``, bias ``(C,)`` ->
    ``(N, out_h, out_w, C)`` float32; `activation` one of `ACTIVATIONS`' codes.

    Pad with zeros, start from the bias, then add the ``k * k`` taps: tap ``(dy, dx)`` of output pixel
    ``(y, x)`` reads padded pixel ``(stride y + dilation dy, stride x + dilation dx)``, so one tap for every
    output pixel at once is a strided view of the padded map, times the tap's per-channel weights.
    """
    k, s, p, d = kernel_size, stride, padding, dilation
    n, h, w, c = x.shape
    padded = np.zeros((n, h + 2 * p, w + 2 * p, c), np.float32)
    padded[:, p:p + h, p:p + w] = x
    out = np.empty((n, out_h, out_w, c), np.float32)
    out[...] = bias
    product = np.empty_like(out)
    for dy in range(k):
        for dx in range(k):
            top, left = d * dy, d * dx
            tap = padded[:, top: top + s * (out_h - 1) + 1: s, left: left + s * (out_w - 1) + 1: s]
            np.multiply(tap, taps[dy * k + dx], out=product)
            out += product
    return _activate(out, _ACTIVATION_NAMES[activation])


_ACTIVATION_NAMES = {code: name for name, code in ACTIVATIONS.items()}

# the Numba twin adds the same products in the same order, a pixel's channels as one vector, skipping the
# zero padding, and applies the activation before it writes the pixel
_depthwise = Dispatcher("depthwise_conv2d", reference=depthwise_conv2d_numpy,
                        numba="depthwise_numba:depthwise_conv2d")


def bias_activation_numpy(out: np.ndarray, bias: np.ndarray, activation: int = 0) -> np.ndarray:
    """The reference: ``out`` ``(M, C)`` float32 (a channels-last map's pixels) ``+= bias``, then the
    activation (one of `ACTIVATIONS`' codes), in place."""
    out += bias
    return _activate(out, _ACTIVATION_NAMES[activation])


# the twin does both in one pass over the map (the NumPy version makes one for the bias and four for hardswish)
_bias_activation = Dispatcher("bias_activation", reference=bias_activation_numpy,
                              numba="depthwise_numba:bias_activation")


def _activate(x: np.ndarray, activation: str | None) -> np.ndarray:
    if activation == "relu":
        return relu_(x)
    if activation == "hardswish":
        return hardswish(x, out=x)
    return x


class ConvNormActivation(StateModule):
    """A conv (plain or depthwise, no bias), its batch norm (folded into it) and an activation, channels-last.

    torchvision's ``Conv2dNormActivation`` keys: ``0.weight`` (the conv), ``1.{weight,bias,running_*}`` (the norm).
    `activation`: ``"relu"``, ``"hardswish"`` or None. Padding is ``(k - 1) // 2`` ("same" at stride 1).
    Maps are ``(N, H, W, C)`` in and out, except that a full k x k conv (only the stem) reads the
    ``(N, C, H, W)`` images as they come.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 activation: str | None = None, depthwise: bool = False, bn_eps: float = 1e-5):
        padding = (kernel_size - 1) // 2
        if kernel_size == 1 and stride != 1:  # MobileNetV3 has none; the channels-last path assumes stride 1
            raise ValueError(f"a 1x1 ConvNormActivation must have stride 1, got stride {stride}")
        self.conv = (DepthwiseConv2d(in_channels, kernel_size, stride, padding, bias=False) if depthwise
                     else Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False))
        self.norm = FrozenBatchNorm2d(self.conv, bn_eps)
        self.activation = activation
        self.out_channels = out_channels

    def children(self):
        return {"0": self.conv, "1": self.norm}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        conv, code = self.conv, ACTIVATIONS[self.activation]
        if isinstance(conv, DepthwiseConv2d):
            return conv(x, activation=self.activation, channels_last=True)
        if conv.kernel_size == 1 and conv.stride == 1:
            # a 1x1 conv: every pixel's channel vector times the weight matrix, one product for the whole map
            n, h, w, c = x.shape
            out = np.matmul(x.reshape(n * h * w, c), conv.matrix.T)
            _bias_activation.get(None)(out, conv.bias, code)
            return out.reshape(n, h, w, conv.out_channels)
        out = conv(x).transpose(0, 2, 3, 1)  # im2col in (N, C, H, W), then one copy to channels-last
        return _activate(np.ascontiguousarray(out), self.activation)


class SqueezeExcitation(StateModule):
    """``(N, H, W, C)`` -> same shape: every channel scaled by a gate in [0, 1] computed from the whole map.

    ``gate = hardsigmoid(fc2(relu(fc1(mean over H, W of x))))`` with 1x1 convs ``fc1`` (C -> S) and ``fc2``
    (S -> C) (Hu et al., 2018, with MobileNetV3's hard gate); keys ``fc1.{weight,bias}``, ``fc2.{weight,bias}``.
    """

    def __init__(self, channels: int, squeeze_channels: int):
        self.fc1 = Conv2d(channels, squeeze_channels, 1)
        self.fc2 = Conv2d(squeeze_channels, channels, 1)

    def children(self):
        return {"fc1": self.fc1, "fc2": self.fc2}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        pooled = x.mean(axis=(1, 2), dtype=np.float32)  # (N, C): one number per channel
        # on a 1 x 1 map the 1x1 convs are plain matrix products
        hidden = relu_(pooled @ self.fc1.matrix.T + self.fc1.bias)
        gate = hardsigmoid(hidden @ self.fc2.matrix.T + self.fc2.bias)
        x *= gate[:, None, None, :]  # in place: in a block, x is always the depthwise conv's fresh output
        return x


def squeeze_channels(channels: int) -> int:
    """torchvision's ``_make_divisible(channels // 4, 8)``: a quarter, rounded to a multiple of 8, never
    below 8 nor more than 10% under the quarter."""
    quarter = channels // 4
    rounded = max(8, int(quarter + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * quarter else rounded


class InvertedResidual(StateModule):
    """``(N, H, W, C_in)`` -> ``(N, H / stride, W / stride, C_out)``: expand 1x1, depthwise k x k, [SE], project 1x1.

    The input is added to the result when ``stride == 1`` and ``C_in == C_out``. Keys ``block.{i}.*`` in
    that order (the expand conv is absent, and the indices shift, when ``expanded == C_in``).
    """

    def __init__(self, in_channels: int, kernel_size: int, expanded: int, out_channels: int, use_se: bool,
                 activation: str, stride: int, bn_eps: float = 1e-5):
        act = "hardswish" if activation == "HS" else "relu"
        self.layers: list[StateModule] = []
        if expanded != in_channels:
            self.layers.append(ConvNormActivation(in_channels, expanded, 1, activation=act, bn_eps=bn_eps))
        self.layers.append(ConvNormActivation(expanded, expanded, kernel_size, stride, act, depthwise=True,
                                              bn_eps=bn_eps))
        if use_se:
            self.layers.append(SqueezeExcitation(expanded, squeeze_channels(expanded)))
        self.layers.append(ConvNormActivation(expanded, out_channels, 1, bn_eps=bn_eps))
        self.use_residual = stride == 1 and in_channels == out_channels
        self.stride, self.out_channels = stride, out_channels

    def children(self):
        return {f"block.{i}": layer for i, layer in enumerate(self.layers)}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = x
        for layer in self.layers:
            out = layer(out)
        if self.use_residual:
            out += x
        return out


class MobileNetV3Body(StateModule):
    """``(N, 3, H, W)`` normalised images -> the outputs of the `returned_layers` stages (stride 32: 160, 960 ch).

    Modules ``0`` (stem), ``1``..``15`` (inverted residuals), ``16`` (1x1 conv to 960 channels, hardswish):
    torchvision's ``features`` keys. A stage is a run of modules ending before the next stride-2 block;
    stages 0..5 start at modules 0, 2, 4, 7, 13, 16, and stage ``i``'s output is the output of the module
    it starts with, as ``_mobilenet_extractor`` returns it (the default ``(4, 5)``: modules 13 and 16).
    Modules after the last returned one are neither built nor loaded. Inside, the maps are channels-last
    ``(N, H, W, C)`` (the depthwise convs vectorise over channels, the 1x1 convs are one product per map);
    the returned outputs are transposed back to ``(N, C, H, W)`` for the FPN.
    """

    def __init__(self, blocks=LARGE_BLOCKS, returned_layers=(4, 5), bn_eps: float = 1e-5):
        self.bn_eps = float(bn_eps)  # the batch norms' epsilon, used when folding them at load
        modules: list[StateModule] = [ConvNormActivation(3, blocks[0][0], 3, 2, "hardswish", bn_eps=self.bn_eps)]
        modules += [InvertedResidual(*config, bn_eps=self.bn_eps) for config in blocks]
        last_in = blocks[-1][3]
        modules.append(ConvNormActivation(last_in, 6 * last_in, 1, activation="hardswish", bn_eps=self.bn_eps))
        # torchvision's stage rule: module 0, every block of stride 2, and the last module
        starts = ([0] + [i for i, m in enumerate(modules) if isinstance(m, InvertedResidual) and m.stride > 1]
                  + [len(modules) - 1])
        self.returned_layers = tuple(int(check_scalar(i, "returned_layers", low=0, high=len(starts) - 1, integer=True))
                                     for i in returned_layers)
        if not self.returned_layers:
            raise ValueError(f"returned_layers must name at least one stage in [0, {len(starts) - 1}]")
        self.return_modules = [starts[i] for i in self.returned_layers]
        self.modules = modules[: max(self.return_modules) + 1]
        self.out_channels = [modules[i].out_channels for i in self.return_modules]
        # stride after module i: the stem's 2 times every stride-2 block up to it
        stride_after = np.cumprod([2] + [getattr(m, "stride", 1) for m in modules[1:]])
        self.strides = [int(stride_after[i]) for i in self.return_modules]

    def children(self):
        return {str(i): module for i, module in enumerate(self.modules)}

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        outputs = []
        for i, module in enumerate(self.modules):
            x = module(x)  # the stem takes (N, 3, H, W) and returns channels-last
            if i in self.return_modules:
                outputs.append(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return outputs


def mobilenet_v3_large_fpn_backbone(bn_eps: float = 1e-5, name: str = "mobilenet_v3_large_fpn") -> BackboneWithFPN:
    """MobileNetV3-Large modules 13 and 16 (both stride 32) -> FPN ``"0"``, ``"1"`` (256 ch) + ``"pool"`` (stride 64).

    Declared `strides`: ``[32, 32, 64]``. `name` makes the detector's `architecture`.
    """
    body = MobileNetV3Body(bn_eps=check_bn_eps(bn_eps))
    return BackboneWithFPN(body, FeaturePyramidNetwork(body.out_channels, 256, LastLevelMaxPool()), name=name)


# torchvision's builder: five sizes on each of the three levels, three ratios: 15 anchors per location
MOBILENET_DEFAULTS = dict(anchor_sizes=[[32, 64, 128, 256, 512]] * 3, aspect_ratios=[0.5, 1.0, 2.0],
                          rpn_score_thresh=0.05)
MOBILENET_320_DEFAULTS = dict(MOBILENET_DEFAULTS, min_size=320, max_size=640, rpn_pre_nms_top_n_test=150,
                              rpn_post_nms_top_n_test=150)


def _build(name: str, defaults: dict, weights, num_classes, weights_backbone, seed, bn_eps, kwargs) -> FasterRCNN:
    if weights_backbone is not None:
        raise ValueError("weights_backbone must be None: edudet downloads nothing; pass full weights as weights=")
    backbone = mobilenet_v3_large_fpn_backbone(bn_eps, name)
    return load_weights(FasterRCNN(backbone, num_classes=num_classes, **{**defaults, **kwargs}), weights, seed)


def fasterrcnn_mobilenet_v3_large_fpn(weights=None, *, num_classes: int = 91, weights_backbone=None, seed: int = 0,
                                      bn_eps: float = 1e-5, **kwargs) -> FasterRCNN:
    """Faster R-CNN MobileNetV3-Large-FPN with torchvision's keywords and defaults (``min_size=800``,
    ``rpn_score_thresh=0.05``, anchors 32..512 on every level); keyword `kwargs` override them
    (``FasterRCNN``'s, e.g. ``box_score_thresh``; ``trainable_backbone_layers`` is accepted and unused).

    weights: None (seeded random weights), a path to an ``.npz`` or a mapping of torchvision names to arrays,
    as for ``fasterrcnn_resnet50_fpn``; `weights_backbone` must be None (edudet downloads nothing).
    """
    return _build("mobilenet_v3_large_fpn", MOBILENET_DEFAULTS, weights, num_classes, weights_backbone, seed,
                  bn_eps, kwargs)


def fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, *, num_classes: int = 91, weights_backbone=None,
                                          seed: int = 0, bn_eps: float = 1e-5, **kwargs) -> FasterRCNN:
    """The same network for small images: ``min_size=320``, ``max_size=640``, 150 proposals before and after
    NMS (torchvision's ``fasterrcnn_mobilenet_v3_large_320_fpn``); arguments as `fasterrcnn_mobilenet_v3_large_fpn`."""
    return _build("mobilenet_v3_large_320_fpn", MOBILENET_320_DEFAULTS, weights, num_classes, weights_backbone,
                  seed, bn_eps, kwargs)
