"""Which FPN level a RoI is pooled from, and which stride a feature map has.

FPN (Lin et al., 2017, eq. 1) sends a RoI of area ``w * h`` to level
``k = floor(k0 + log2(sqrt(w h) / 224))`` with ``k0 = 4``: a 224-px box (an ImageNet-sized object) is
pooled from P4, one half that size from P3, and so on, clamped to the levels that exist.
mmdetection states the same rule through ``finest_scale = 56``: scale < 112 -> level 0 (P2),
< 224 -> 1, < 448 -> 2, else 3. With P2..P5 (k_min = 2) both give the same index, because
``floor(log2(s / 56)) = floor(4 + log2(s / 224)) - 2`` (up to where each adds its ``1e-6``: the two can
differ only for scales within about 1e-6 relative of a power of two times 56).

Strides are inferred from shapes (feature size / image size, rounded to a power of two), as torchvision's
``MultiScaleRoIAlign`` infers them. Strides a caller gives are checked against the shapes: mmdetection's
``featmap_strides=[8, 16, 32, 64]`` given for P2..P5 (true strides 4..32) halves every RoI toward the
top-left corner and trains silently to ~0.8% mAP; `check_strides` refuses it. maskrcnn-benchmark writes the
same information as ``POOLER_SCALES = (1/4, 1/8, 1/16, 1/32)`` (scale = 1 / stride); `check_scales` checks
those, and either check asks "did you pass scales (1/stride)?" (or strides) when it sees the other one.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._dispatch import Dispatcher
from ._validate import as_boxes, as_image_size, as_real_array, check_scalar

__all__ = ["LevelMapper", "map_roi_levels", "infer_scale", "infer_stride", "check_strides", "check_scales",
           "check_feature_shapes"]


class LevelMapper:
    """FPN eq. 1: (N, 4) ``(x1, y1, x2, y2)`` boxes -> (N,) int64 level index counted from `k_min`.

    ``level = clamp(floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps), k_min, k_max) - k_min``,
    computed in the boxes' float dtype as torchvision does (`eps` keeps exact powers of two, e.g. a 224-px
    box, from falling one level low through rounding).
    """

    def __init__(self, k_min: int, k_max: int, canonical_scale: int = 224, canonical_level: int = 4,
                 eps: float = 1e-6):
        self.k_min = check_scalar(k_min, "k_min", integer=True)
        self.k_max = check_scalar(k_max, "k_max", integer=True)
        if self.k_max < self.k_min:
            raise ValueError(f"k_max must be >= k_min, got k_min={self.k_min}, k_max={self.k_max}")
        self.s0 = check_scalar(canonical_scale, "canonical_scale", low=0, low_inclusive=False)
        self.lvl0 = check_scalar(canonical_level, "canonical_level")
        self.eps = check_scalar(eps, "eps", low=0)

    def __repr__(self) -> str:
        return (f"LevelMapper(k_min={self.k_min}, k_max={self.k_max}, canonical_scale={self.s0:g}, "
                f"canonical_level={self.lvl0:g})")

    def __call__(self, boxes, backend: str | None = None) -> np.ndarray:
        """(N, 4) boxes (or a list of per-image (N_i, 4) arrays) -> (N,) int64 levels counted from k_min.

        `backend`: None (fastest CPU), "numpy", "numba", "cython" or "cuda" (``edudet.kernels.level_mapping_*``).
        """
        if isinstance(boxes, (list, tuple)) and (not len(boxes) or np.ndim(boxes[0]) == 2):
            # torchvision takes a list of per-image (N_i, 4) boxes; a list of 4-number rows is one (N, 4) array
            boxes = (np.concatenate([as_boxes(b, f"boxes[{i}]") for i, b in enumerate(boxes)]) if len(boxes)
                     else np.zeros((0, 4), np.float32))
        kernel = _fpn_levels.get(backend)
        boxes = np.ascontiguousarray(as_boxes(boxes))
        _positive_in(boxes.dtype.type, self.s0, "canonical_scale")
        return kernel(boxes, self.k_min, self.k_max, self.s0, self.lvl0, self.eps)


def fpn_levels_numpy(boxes: np.ndarray, k_min: int, k_max: int, canonical_scale: float, canonical_level: float,
                     eps: float) -> np.ndarray:
    """NumPy reference of `LevelMapper`: clean (N, 4) float boxes -> (N,) int64 levels counted from k_min."""
    dtype = boxes.dtype.type
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):  # zero-area boxes: log2(0) = -inf -> k_min
        scale = np.sqrt(np.clip(area, 0, None))
        levels = np.floor(dtype(canonical_level)
                          + np.log2(scale / _positive_in(dtype, canonical_scale, "canonical_scale"))
                          + dtype(eps))
    levels = np.clip(levels, k_min, k_max)
    return levels.astype(np.int64) - k_min


def _positive_in(dtype, value: float, name: str):
    """`value` in the boxes' dtype, refused by name where it rounds to 0 (a zero-area box would give 0 / 0 =
    NaN, a level of INT64_MIN). One that rounds to inf is harmless: every box then maps to the lowest level."""
    with np.errstate(over="ignore"):
        cast = dtype(value)
    if not cast > 0:
        raise ValueError(f"{name}={value:g} is not a positive finite number in {np.dtype(dtype).name}; "
                         f"give a value the boxes' dtype can hold")
    return cast


def map_roi_levels(rois, num_levels: int, finest_scale: float = 56, backend: str | None = None) -> np.ndarray:
    """mmdetection's rule: (N, 4) boxes or (N, 5) ``[batch_index, x1, y1, x2, y2]`` rois -> (N,) int64.

    ``scale = sqrt(w h)``; level ``floor(log2(scale / finest_scale + 1e-6))`` clamped to
    ``[0, num_levels - 1]``: scale < 2 * finest_scale -> 0, < 4 * finest_scale -> 1, < 8 * -> 2, else 3.
    `backend`: None (fastest CPU), "numpy", "numba", "cython" or "cuda" (``edudet.kernels.level_mapping_*``).
    """
    kernel = _map_roi_levels.get(backend)
    array = as_real_array(rois, "rois")
    if array.ndim != 2 or array.shape[1] not in (4, 5):
        raise ValueError(f"rois must have shape (N, 4) or (N, 5), got {tuple(array.shape)}")
    boxes = np.ascontiguousarray(as_boxes(array[:, -4:], "rois"))
    num_levels = check_scalar(num_levels, "num_levels", low=1, integer=True)
    finest_scale = check_scalar(finest_scale, "finest_scale", low=0, low_inclusive=False)
    _positive_in(boxes.dtype.type, finest_scale, "finest_scale")
    return kernel(boxes, num_levels, finest_scale)


def map_roi_levels_numpy(boxes: np.ndarray, num_levels: int, finest_scale: float) -> np.ndarray:
    """NumPy reference of `map_roi_levels`: clean (N, 4) float boxes -> (N,) int64 levels in [0, num_levels)."""
    dtype = boxes.dtype.type
    scale = np.sqrt(np.clip((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 0, None))
    with np.errstate(divide="ignore"):
        levels = np.floor(np.log2(scale / _positive_in(dtype, finest_scale, "finest_scale") + dtype(1e-6)))
    return np.clip(levels, 0, num_levels - 1).astype(np.int64)


_fpn_levels = Dispatcher("fpn_levels", reference=fpn_levels_numpy, numba="level_mapping_numba:fpn_levels",
                         cython="level_mapping_cython:fpn_levels", cuda="level_mapping_cuda:fpn_levels")
_map_roi_levels = Dispatcher("map_roi_levels", reference=map_roi_levels_numpy,
                             numba="level_mapping_numba:map_roi_levels",
                             cython="level_mapping_cython:map_roi_levels", cuda="level_mapping_cuda:map_roi_levels")


def infer_scale(feature_shape: Sequence[int], image_shape: Sequence[int]) -> float:
    """The spatial scale (1 / stride) of a feature map: ``2 ** round(log2(feature_h / image_h))``.

    feature_shape: the map's ``(..., h, w)`` (only the last two entries are read); image_shape:
    ``(height, width)`` of the (padded) input. Like torchvision, the height decides; ties round half to even.
    """
    h = as_image_size(tuple(feature_shape)[-2:], "feature_shape")[0]
    image_h = as_image_size(image_shape, "image_shape")[0]
    approx = np.float32(h / image_h)  # torchvision rounds log2 of a float32 tensor
    return float(2.0 ** float(np.round(np.log2(approx))))


def infer_stride(feature_shape: Sequence[int], image_shape: Sequence[int]) -> int:
    """The stride of a feature map, ``1 / infer_scale(...)`` as an int (>= 1), e.g. 4 for P2."""
    return max(1, int(round(1.0 / infer_scale(feature_shape, image_shape))))


def check_feature_shapes(feature_shapes: Sequence[Sequence[int]], image_shape: Sequence[int],
                         names: Sequence[str] | None = None) -> list[tuple[int, int]]:
    """Check that every ``(..., h, w)`` feature shape is the image size divided by one power of two.

    ``h`` must be ``floor(H / 2**k)`` or ``ceil(H / 2**k)`` and ``w`` the same for ``W`` with the same ``k``
    (strided convolutions and ``max_pool2d(x, 1, 2)`` round up: 800 -> 13 at stride 64). Returns the
    ``(h, w)`` pairs; raises ``ValueError`` naming the level otherwise.
    """
    image_h, image_w = as_image_size(image_shape, "image_shape")
    if isinstance(feature_shapes, np.ndarray) or not isinstance(feature_shapes, (list, tuple)):
        raise TypeError(f"feature_shapes must be a list of (h, w) pairs, got {type(feature_shapes).__name__}")
    names = list(names) if names is not None else [f"level {i}" for i in range(len(feature_shapes))]
    out = []
    for name, shape in zip(names, feature_shapes):
        try:
            h, w = as_image_size(tuple(shape)[-2:], f"feature shape of {name}")
        except TypeError:
            raise ValueError(f"feature shape of {name} must be a (h, w) pair, got {shape!r}") from None
        for k in range(0, 64):
            div = 1 << k
            if h in (image_h // div, -(-image_h // div)) and w in (image_w // div, -(-image_w // div)):
                break
            if image_h // div == 0 and image_w // div == 0:
                k = None
                break
        else:  # pragma: no cover - images are smaller than 2**64
            k = None
        if k is None:
            raise ValueError(
                f"feature shape of {name} is {(h, w)}, which is not the image shape {(image_h, image_w)} divided "
                f"by a power of two (floor or ceil of H / 2**k and W / 2**k with the same k)"
            )
        out.append((h, w))
    return out


def check_strides(strides: Sequence[float], feature_shapes: Sequence[Sequence[int]],
                  image_shape: Sequence[int], names: Sequence[str] | None = None) -> list[int]:
    """Check caller-given strides against the strides the shapes imply; returns them as ints.

    Raises ``ValueError`` naming the level, the stride given and the stride inferred when they differ,
    e.g. ``featmap_strides=[8, 16, 32, 64]`` given for P2..P5 maps of an 800 x 1216 image (true 4..32).
    The inferred stride is `infer_stride`'s rounded power of two, so `image_shape` may be the unpadded size
    (as torchvision's poolers take it); `check_feature_shapes` is the stricter check for padded sizes.
    """
    strides = list(strides)
    if len(strides) != len(feature_shapes):
        raise ValueError(f"got {len(strides)} strides for {len(feature_shapes)} feature maps; they must match")
    names = list(names) if names is not None else [f"level {i}" for i in range(len(strides))]
    out = []
    for name, stride, shape in zip(names, strides, feature_shapes):
        stride = check_scalar(stride, f"stride of {name}", low=0, low_inclusive=False)
        inferred = infer_stride(shape, image_shape)
        if not math.isclose(stride, inferred):
            # a stride is >= 1; 0.25 is maskrcnn-benchmark's POOLER_SCALES entry for stride 4
            confusion = (f"; did you pass scales (1/stride)? Strides are {_as_strides_hint(strides)}"
                         if stride < 1 else "")
            raise ValueError(
                f"stride mismatch at {name}: stride {stride:g} was given but the feature shape "
                f"{tuple(shape)[-2:]} and image shape {tuple(image_shape)} imply stride {inferred}; "
                f"a wrong stride silently misplaces every RoI (pooled from the wrong region){confusion}"
            )
        out.append(int(inferred))
    return out


def check_scales(scales: Sequence[float], feature_shapes: Sequence[Sequence[int]],
                 image_shape: Sequence[int], names: Sequence[str] | None = None) -> list[float]:
    """Check caller-given spatial scales (1 / stride) against the shapes; returns them as floats.

    maskrcnn-benchmark's ``POOLER_SCALES = (0.25, 0.125, 0.0625, 0.03125)`` for P2..P5 is the same
    information as ``featmap_strides=[4, 8, 16, 32]``. Raises ``ValueError`` naming the level, the scale
    given and the scale inferred (`infer_scale`) when they differ; a scale above 1 (a stride given as a
    scale) gets "did you pass strides where scales (1/stride) are expected?".
    """
    scales = list(scales)
    if len(scales) != len(feature_shapes):
        raise ValueError(f"got {len(scales)} scales for {len(feature_shapes)} feature maps; they must match")
    names = list(names) if names is not None else [f"level {i}" for i in range(len(scales))]
    out = []
    for name, scale, shape in zip(names, scales, feature_shapes):
        scale = check_scalar(scale, f"scale of {name}", low=0, low_inclusive=False)
        inferred = infer_scale(shape, image_shape)
        if not math.isclose(scale, inferred):
            confusion = (f"; did you pass strides where scales (1/stride) are expected? Scales are "
                         f"[{', '.join(_scale_hint(s) for s in scales)}]" if scale > 1 else "")
            raise ValueError(
                f"scale mismatch at {name}: scale {scale:g} was given but the feature shape "
                f"{tuple(shape)[-2:]} and image shape {tuple(image_shape)} imply scale {inferred:g} "
                f"(1/{1 / inferred:g}); a wrong scale silently misplaces every RoI{confusion}"
            )
        out.append(float(inferred))
    return out


def _scale_hint(value) -> str:
    try:
        return f"1/{float(value):g}" if float(value) > 1 else f"{float(value):g}"
    except (TypeError, ValueError):
        return "?"


def _as_strides_hint(values) -> str:
    """'[4, 8]' for the strides that scales [0.25, 0.125] stand for (for an error message)."""
    try:
        return "[" + ", ".join(f"{1 / v:g}" if 0 < v < 1 else f"{v:g}" for v in map(float, values)) + "]"
    except (TypeError, ValueError):
        return "1 / scale"
