"""YOLO anchors (YOLOv3, Redmon and Farhadi, 2018; YOLOv5): a few fixed (w, h) pixel sizes per level.

Each level of stride ``s`` has ``A`` anchor sizes (clustered from the training boxes, given in pixels); the
cell ``(i, j)`` covers pixels ``[j * s, (j + 1) * s)`` and its anchors are centred on the cell's centre,
``((j + 0.5) * s, (i + 0.5) * s)``. That is where YOLO's decoded box sits when the network predicts 0:
YOLOv3 places the centre at ``(j + sigmoid(t_x)) * s`` and YOLOv5 at ``(j + 2 sigmoid(t_x) - 0.5) * s``,
both ``(j + 0.5) * s`` at ``t_x = 0``. mmdetection's ``YOLOAnchorGenerator`` writes the same centres as
``j * s + s / 2`` (a base anchor at ``(s / 2, s / 2)`` shifted by ``(j * s, i * s)``), which this module follows
step by step so that the values agree to the last bit, for any integer stride (8, 16, 32 and also 12, 24).
"""
from __future__ import annotations

import numpy as np

from .._validate import COORDINATE_LIMIT, as_image_size, check_allocation, check_scalar
from .grid import (as_levels, check_levels, check_strides_fit, feature_sizes, float_dtype, level_valid_flags,
                   stride_pairs)

__all__ = ["YOLOAnchorGenerator", "YOLOV3_STRIDES", "YOLOV3_BASE_SIZES"]

# YOLOv3's nine COCO anchors, (w, h) in pixels, finest level first (YOLOv5's P3-P5 defaults are the same);
# mmdetection's yolov3 config lists them coarsest first, with strides [32, 16, 8]
YOLOV3_STRIDES = (8, 16, 32)
YOLOV3_BASE_SIZES = (((10, 13), (16, 30), (33, 23)),
                     ((30, 61), (62, 45), (59, 119)),
                     ((116, 90), (156, 198), (373, 326)))


class YOLOAnchorGenerator:
    """YOLO anchors for a set of feature maps: per level (h * w * A, 4) ``(x1, y1, x2, y2)`` in pixels.

    strides: one per level, an int ``s`` or a ``(stride_w, stride_h)`` pair (mmdetection's order);
    base_sizes: one list per level of ``A`` anchor sizes, each ``(w, h)`` in pixels (or one number for a
    square); every level must have the same ``A`` (a YOLO head predicts ``A * (5 + classes)`` channels on
    each). Anchor ``a`` of location ``(i, j)`` is ``base_sizes[level][a]`` centred at
    ``(j * stride_w + center_offset * stride_w, i * stride_h + center_offset * stride_h)``; the order is
    location by location (row-major), then the anchors in the order `base_sizes` lists them.
    ``center_offset=0.5`` (the cell centre) is mmdetection's ``YOLOAnchorGenerator`` exactly.

    Example: ``YOLOAnchorGenerator([12], [[(10, 13)]]).grid_priors([(1, 2)])`` is
    ``[[[1, -0.5, 11, 12.5], [13, -0.5, 23, 12.5]]]``: centres (6, 6) and (18, 6).
    """

    def __init__(self, strides, base_sizes, center_offset: float = 0.5):
        self.strides = stride_pairs(strides)
        levels = as_levels(base_sizes, "base_sizes")
        if len(levels) != len(self.strides):
            raise ValueError(f"base_sizes describes {len(levels)} levels but strides {len(self.strides)}; "
                             "they must match")
        self.base_sizes = [self._sizes(level, f"base_sizes[{k}]") for k, level in enumerate(levels)]
        if len({len(sizes) for sizes in self.base_sizes}) > 1:
            raise ValueError(f"every level needs the same number of anchors (a YOLO head predicts the same channels "
                             f"on each), got {[len(sizes) for sizes in self.base_sizes]}")
        self.center_offset = check_scalar(center_offset, "center_offset", low=0, high=1)
        self.base_anchors = [self._base_anchors(sizes, stride) for sizes, stride in zip(self.base_sizes, self.strides)]

    @staticmethod
    def _sizes(level, name: str) -> list[tuple[float, float]]:
        sizes = []
        for a, size in enumerate(as_levels(level, name, "of (w, h) anchor sizes")):
            if isinstance(size, np.ndarray) and size.ndim == 1:
                size = tuple(size.tolist())
            if not isinstance(size, (list, tuple)):
                size = (size, size)  # mmdetection's _pair: one number is a square
            if len(size) != 2:
                raise ValueError(f"{name}[{a}] must be a (w, h) pair or one number, got {size!r}")
            sizes.append(tuple(check_scalar(v, f"{name}[{a}][{c}]", low=0, low_inclusive=False,
                                            high=COORDINATE_LIMIT) for c, v in enumerate(size)))
        if not sizes:
            raise ValueError(f"{name} must list at least one (w, h) anchor size")
        return sizes

    def _base_anchors(self, sizes, stride) -> np.ndarray:
        """(A, 4) float32 anchors of the cell at (0, 0): each size centred at ``center_offset * stride``."""
        x_center, y_center = self.center_offset * stride[0], self.center_offset * stride[1]
        # Python floats, then float32 (mmdetection's torch.Tensor), before any shift is added
        return np.array([(x_center - 0.5 * w, y_center - 0.5 * h, x_center + 0.5 * w, y_center + 0.5 * h)
                         for w, h in sizes], dtype=np.float32)

    def __repr__(self) -> str:
        return (f"YOLOAnchorGenerator(strides={self.strides}, base_sizes={self.base_sizes}, "
                f"center_offset={self.center_offset:g})")

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        """Anchors per location on each level (``A``, the same on every level)."""
        return [len(sizes) for sizes in self.base_sizes]

    def grid_priors(self, featmap_sizes, dtype=np.float32, image_size=None) -> list[np.ndarray]:
        """One (h * w * A, 4) ``(x1, y1, x2, y2)`` array per level, in `dtype` (float32 or float64).

        featmap_sizes: one ``(..., h, w)`` per level. Anchor ``(i, j, a)`` is ``base_anchors[a] + (j * stride_w,
        i * stride_h, j * stride_w, i * stride_h)``, the shift computed in `dtype`. image_size: optional
        ``(H, W)`` of the padded batch; when given, each level must be ``floor`` or ``ceil`` of it divided by
        its stride (``ValueError`` naming the level), which catches a stride list meant for other levels.
        """
        sizes = feature_sizes(featmap_sizes)
        check_levels(sizes, self.num_levels, "YOLOAnchorGenerator")
        if image_size is not None:
            check_strides_fit(as_image_size(image_size), sizes, self.strides)
        dtype = float_dtype(dtype)
        total = sum(h * w * len(base) for (h, w), base in zip(sizes, self.base_anchors))
        check_allocation((total, 4), np.dtype(dtype).itemsize,
                         f"YOLOAnchorGenerator's (N, 4) anchors (N = {total} over every level)")
        priors = []
        for k, ((h, w), (stride_w, stride_h), base) in enumerate(zip(sizes, self.strides, self.base_anchors)):
            reach = max(w * stride_w, h * stride_h) + float(np.abs(base).max())
            if reach > COORDINATE_LIMIT:
                raise ValueError(f"level {k}'s anchors reach {reach:.3g} px, beyond edudet's coordinate limit "
                                 f"{COORDINATE_LIMIT:.0e}")
            shift_x = np.arange(w, dtype=dtype) * dtype(stride_w)
            shift_y = np.arange(h, dtype=dtype) * dtype(stride_h)
            level = np.empty((h, w, len(base), 4), dtype=dtype)
            base = base.astype(dtype)
            # x depends on (column, anchor) only and y on (row, anchor): each computed once, then broadcast
            level[..., 0::2] = (shift_x[:, None, None] + base[None, :, 0::2])[None]
            level[..., 1::2] = (shift_y[:, None, None] + base[None, :, 1::2])[:, None]
            priors.append(level.reshape(-1, 4))
        return priors

    def __call__(self, featmap_sizes, dtype=np.float32, image_size=None) -> np.ndarray:
        """Every level's anchors in one (N, 4) array, level by level (the head's flattened order)."""
        priors = self.grid_priors(featmap_sizes, dtype, image_size)
        return np.concatenate(priors) if priors else np.empty((0, 4), dtype=float_dtype(dtype))

    def valid_flags(self, featmap_sizes, pad_shape) -> list[np.ndarray]:
        """One (h * w * A,) bool array per level: anchors whose cell starts inside the image's padded area.

        pad_shape: ``(pad_h, pad_w)`` of this image before it was batched with larger ones (mmdetection's
        ``img_meta["pad_shape"]``); level cells ``i < ceil(pad_h / stride_h)`` and ``j < ceil(pad_w / stride_w)``
        are valid (see `edudet.priors.valid_flags`).
        """
        sizes = feature_sizes(featmap_sizes)
        check_levels(sizes, self.num_levels, "YOLOAnchorGenerator")
        return level_valid_flags(sizes, pad_shape, self.strides, self.num_base_priors)
