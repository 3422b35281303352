"""Points of an anchor-free head (FCOS, ATSS, YOLOX, RTMDet): one prior per feature location.

Location ``(i, j)`` of a level with strides ``(stride_w, stride_h)`` sits at ``((j + offset) * stride_w,
(i + offset) * stride_h)``: ``offset=0.5`` is the centre of the pixels the cell covers (mmdetection 3's
default), ``offset=0`` its top-left pixel (YOLOX's grid). The strides can be any integers, not only
powers of two: a 12-px stride puts points at 6, 18, 30, ...
"""
from __future__ import annotations

import numpy as np

from .._validate import COORDINATE_LIMIT, as_image_size, check_allocation, check_scalar
from .grid import check_levels, check_strides_fit, feature_sizes, float_dtype, level_valid_flags, stride_pairs

__all__ = ["MlvlPointGenerator"]


class MlvlPointGenerator:
    """Multi-level points: per level (h * w, 2) ``(x, y)`` in pixels, or (h * w, 4) ``(x, y, stride_w, stride_h)``.

    strides: one per level, an int ``s`` or a ``(stride_w, stride_h)`` pair (mmdetection's order);
    offset: in [0, 1], the point's place within its cell in units of the stride. ``(j + offset) * stride`` is
    computed in float32 (torch's default dtype, as mmdetection) and then cast to the requested dtype; points
    are row-major (y outer, x inner). mmdetection's ``MlvlPointGenerator`` exactly.

    Example: ``MlvlPointGenerator([12]).grid_priors([(2, 2)], with_stride=True)`` is
    ``[[[6, 6, 12, 12], [18, 6, 12, 12], [6, 18, 12, 12], [18, 18, 12, 12]]]``.
    """

    def __init__(self, strides, offset: float = 0.5):
        self.strides = stride_pairs(strides)
        self.offset = check_scalar(offset, "offset", low=0, high=1)

    def __repr__(self) -> str:
        return f"MlvlPointGenerator(strides={self.strides}, offset={self.offset:g})"

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        """One point per location on every level."""
        return [1] * len(self.strides)

    def grid_priors(self, featmap_sizes, dtype=np.float32, with_stride: bool = False,
                    image_size=None) -> list[np.ndarray]:
        """One (h * w, 2) array per level, or (h * w, 4) with `with_stride` (the level's strides appended).

        featmap_sizes: one ``(..., h, w)`` per level. image_size: optional ``(H, W)`` of the padded batch;
        when given, each level must be ``floor`` or ``ceil`` of it divided by its stride (``ValueError``
        naming the level), which catches a stride list meant for other levels.
        """
        sizes = feature_sizes(featmap_sizes)
        check_levels(sizes, self.num_levels, "MlvlPointGenerator")
        if image_size is not None:
            check_strides_fit(as_image_size(image_size), sizes, self.strides)
        if not isinstance(with_stride, (bool, np.bool_)):
            raise TypeError(f"with_stride must be a bool, got {type(with_stride).__name__}")
        dtype = float_dtype(dtype)
        columns = 4 if with_stride else 2
        total = sum(h * w for h, w in sizes)
        check_allocation((total, columns), np.dtype(dtype).itemsize,
                         f"MlvlPointGenerator's (P, {columns}) points (P = {total} over every level)")
        offset = np.float32(self.offset)
        priors = []
        for k, ((h, w), (stride_w, stride_h)) in enumerate(zip(sizes, self.strides)):
            if max(w * stride_w, h * stride_h) > COORDINATE_LIMIT:
                raise ValueError(f"level {k}'s points reach {max(w * stride_w, h * stride_h):.3g} px, beyond "
                                 f"edudet's coordinate limit {COORDINATE_LIMIT:.0e}")
            xs = ((np.arange(w, dtype=np.float32) + offset) * np.float32(stride_w)).astype(dtype)
            ys = ((np.arange(h, dtype=np.float32) + offset) * np.float32(stride_h)).astype(dtype)
            level = np.empty((h, w, columns), dtype=dtype)
            level[..., 0] = xs[None, :]
            level[..., 1] = ys[:, None]
            if with_stride:
                level[..., 2], level[..., 3] = stride_w, stride_h
            priors.append(level.reshape(-1, columns))
        return priors

    def __call__(self, featmap_sizes, dtype=np.float32, with_stride: bool = False, image_size=None) -> np.ndarray:
        """Every level's points in one (P, 2) (or (P, 4)) array, level by level."""
        priors = self.grid_priors(featmap_sizes, dtype, with_stride, image_size)
        if priors:
            return np.concatenate(priors)
        return np.empty((0, 4 if with_stride else 2), dtype=float_dtype(dtype))

    def valid_flags(self, featmap_sizes, pad_shape) -> list[np.ndarray]:
        """One (h * w,) bool array per level: points whose cell starts inside the image's padded area.

        pad_shape: ``(pad_h, pad_w)`` of this image before it was batched with larger ones; cells
        ``i < ceil(pad_h / stride_h)`` and ``j < ceil(pad_w / stride_w)`` are valid (mmdetection's rule).
        """
        sizes = feature_sizes(featmap_sizes)
        check_levels(sizes, self.num_levels, "MlvlPointGenerator")
        return level_valid_flags(sizes, pad_shape, self.strides, self.num_base_priors)
