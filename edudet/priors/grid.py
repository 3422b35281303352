"""The grid every prior generator shares: feature sizes, (w, h) strides, dtypes and `valid_flags`.

A level of ``h x w`` locations is read row-major (y outer, x inner), so location ``(i, j)`` is entry
``i * w + j``; with ``A`` priors per location, prior ``a`` of it is entry ``(i * w + j) * A + a``.
"""
from __future__ import annotations

import numpy as np

from .._validate import check_allocation, check_scalar
from ..strides import _fits

__all__ = ["valid_flags"]


def float_dtype(dtype):
    """float32 or float64 as a NumPy scalar type; anything else is a TypeError naming `dtype`."""
    if dtype is None:  # np.dtype(None) would silently mean float64
        raise TypeError("dtype must be float32 or float64, got None")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype.type


def as_levels(values, name: str, what: str = "with one entry per level") -> list:
    """A list/tuple (or array) as a list; anything else is a TypeError ("{name} must be a list {what}")."""
    if isinstance(values, np.ndarray) and values.ndim >= 1:
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list {what}, got {type(values).__name__}")
    return list(values)


def feature_size(size, name: str) -> tuple[int, int]:
    """One ``(..., h, w)`` as an ``(h, w)`` pair of ints >= 0 (an empty map gives no priors)."""
    try:
        h, w = tuple(size)[-2:]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must end in (h, w), got {size!r}") from None
    return (check_scalar(h, f"{name} height", low=0, integer=True),
            check_scalar(w, f"{name} width", low=0, integer=True))


def feature_sizes(featmap_sizes, name: str = "featmap_sizes") -> list[tuple[int, int]]:
    """Each level's ``(..., h, w)`` as an ``(h, w)`` pair of ints >= 0."""
    return [feature_size(size, f"{name}[{i}]") for i, size in enumerate(as_levels(featmap_sizes, name))]


def stride_pairs(strides, name: str = "strides") -> list[tuple[int, int]]:
    """One ``(stride_w, stride_h)`` pair of positive ints per level; an int ``s`` means ``(s, s)``.

    The order is mmdetection's (``_pair(stride)``, width first), the opposite of a feature size's ``(h, w)``.
    Any integer stride works: 8, 16, 32 and also 12, 24 or 7.
    """
    pairs = []
    for i, stride in enumerate(as_levels(strides, name)):
        if isinstance(stride, np.ndarray) and stride.ndim == 1:
            stride = tuple(stride.tolist())
        if isinstance(stride, (list, tuple)):
            if len(stride) != 2:
                raise ValueError(f"{name}[{i}] must be an int or a (stride_w, stride_h) pair, got {stride!r}")
            pairs.append((check_scalar(stride[0], f"{name}[{i}][0] (stride_w)", low=1, integer=True),
                          check_scalar(stride[1], f"{name}[{i}][1] (stride_h)", low=1, integer=True)))
        else:
            s = check_scalar(stride, f"{name}[{i}]", low=1, integer=True)
            pairs.append((s, s))
    return pairs


def check_levels(sizes, num_levels: int, what: str) -> None:
    if len(sizes) != num_levels:
        raise ValueError(f"got {len(sizes)} feature maps but the {what} describes {num_levels} levels "
                         "(one stride per level); they must match")


def check_strides_fit(image_size, sizes, strides) -> None:
    """Refuse a level whose ``(h, w)`` is not ``floor`` or ``ceil`` of ``image_size / stride`` (`level_strides`'
    rule, per axis): a stride list meant for other levels would silently misplace every prior."""
    height, width = image_size
    for i, ((h, w), (stride_w, stride_h)) in enumerate(zip(sizes, strides)):
        if not (_fits(height, h, stride_h) and _fits(width, w, stride_w)):
            raise ValueError(
                f"stride mismatch at level {i}: strides[{i}] is (w {stride_w}, h {stride_h}) but the level is "
                f"{h} x {w} cells for a {height} x {width} image, which needs {-(-height // stride_h)} x "
                f"{-(-width // stride_w)} (or {height // stride_h} x {width // stride_w}) at that stride")


def valid_flags(featmap_size, valid_size, num_base_priors: int = 1) -> np.ndarray:
    """(h * w * num_base_priors,) bool: which priors of one ``h x w`` level sit inside its valid region.

    featmap_size: ``(h, w)`` of the (batch-padded) feature map; valid_size: ``(valid_h, valid_w)``, at most
    ``(h, w)``: the cells covering the image's own padded area. Location ``(i, j)`` is valid when
    ``i < valid_h`` and ``j < valid_w``; each location's flag is repeated for its `num_base_priors` priors,
    in the generators' order (location outer, prior inner). mmdetection's ``single_level_valid_flags``.

    Example: ``valid_flags((2, 3), (1, 2))`` is ``[True, True, False, False, False, False]``.
    """
    h, w = feature_size(featmap_size, "featmap_size")
    valid_h, valid_w = feature_size(valid_size, "valid_size")
    if valid_h > h or valid_w > w:
        raise ValueError(f"valid_size {(valid_h, valid_w)} must not exceed featmap_size {(h, w)}")
    num_base_priors = check_scalar(num_base_priors, "num_base_priors", low=1, integer=True)
    check_allocation((h, w, num_base_priors), 1, "valid_flags' (h * w * num_base_priors,) flags")
    flags = np.zeros((h, w, num_base_priors), dtype=bool)
    flags[:valid_h, :valid_w] = True
    return flags.reshape(-1)


def level_valid_flags(featmap_sizes, pad_shape, strides, num_base_priors) -> list[np.ndarray]:
    """`valid_flags` of every level: the image's ``pad_shape`` covers ``ceil(pad / stride)`` cells of each.

    pad_shape: ``(pad_h, pad_w)`` (or mmdetection 2's ``(pad_h, pad_w, channels)``) of one image inside a
    batch padded to the largest image; its cells beyond the feature map are capped at the map's size.
    """
    try:
        pad_h, pad_w = tuple(pad_shape)[:2]
        if len(tuple(pad_shape)) not in (2, 3):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"pad_shape must be (pad_h, pad_w) or (pad_h, pad_w, channels), got {pad_shape!r}") from None
    pad_h = check_scalar(pad_h, "pad_shape[0]", low=0, integer=True)
    pad_w = check_scalar(pad_w, "pad_shape[1]", low=0, integer=True)
    flags = []
    for (h, w), (stride_w, stride_h), count in zip(featmap_sizes, strides, num_base_priors):
        # a cell is valid when it starts inside the image's padded area: ceil, as mmdetection
        valid = (min(-(-pad_h // stride_h), h), min(-(-pad_w // stride_w), w))
        flags.append(valid_flags((h, w), valid, count))
    return flags
