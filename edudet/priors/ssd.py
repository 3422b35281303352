"""SSD's default boxes (Liu et al., 2016, section 2.2 "Choosing scales and aspect ratios for default boxes").

Feature map ``k`` of ``m`` gets a scale ``s_k`` (a fraction of the image side) and, at every location, the
boxes ``(w, h) = (s_k, s_k)``, ``(s'_k, s'_k)`` with ``s'_k = sqrt(s_k * s_{k+1})``, then for every aspect
ratio ``r`` of that map the pair ``(s_k * sqrt(r), s_k / sqrt(r))`` and its transpose. A location
``(i, j)`` of an ``f_h x f_w`` map is centred at ``((j + 0.5) / f_w, (i + 0.5) / f_h)`` of the image, or,
with a ``step``, at ``((j + 0.5) * step / W, (i + 0.5) * step / H)``: SSD300's 38 x 38 map with step 8
spans 304 px of a 300 px image, so its centres are not those of an even 38-cell split.
"""
from __future__ import annotations

import math

import numpy as np

from .._validate import COORDINATE_LIMIT, as_image_size, check_allocation, check_scalar
from .grid import as_levels, feature_sizes, float_dtype

__all__ = ["DefaultBoxGenerator"]


class DefaultBoxGenerator:
    """SSD default boxes for a set of feature maps: (A, 4) ``(x1, y1, x2, y2)`` in pixels, A = sum h_k w_k n_k.

    aspect_ratios: one list per feature map (e.g. ``[[2], [2, 3], ...]``); map ``k`` has
    ``n_k = 2 + 2 * len(aspect_ratios[k])`` boxes per location, in this order: ``(s_k, s_k)``,
    ``(s'_k, s'_k)``, then for each ratio ``r`` ``(s_k sqrt(r), s_k / sqrt(r))`` and ``(s_k / sqrt(r),
    s_k sqrt(r))`` (as ``(w, h)``). scales: ``m + 1`` fractions of the image side, the last one only used for
    ``s'_m``; by default ``s_k = min_ratio + (max_ratio - min_ratio) * k / (m - 1)`` for ``k = 0 .. m - 1``
    followed by 1.0 (``[min_ratio, max_ratio]`` when ``m <= 1``). steps: optional pixel step per map,
    placing centres at ``(j + 0.5) * step / W`` instead of ``(j + 0.5) / f_w``. clip: clamp every ``w`` and
    ``h`` to ``[0, 1]`` (the box sizes, not the corners: a box at the border still reaches outside the image).

    This is torchvision's ``DefaultBoxGenerator`` exactly (same boxes, same float32 arithmetic, in float32 or
    float64): SSD300 VGG16 uses ``aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]]``,
    ``scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]``, ``steps=[8, 16, 32, 64, 100, 300]``;
    SSDlite320 uses ``[[2, 3]] * 6`` with ``min_ratio=0.2, max_ratio=0.95``.

    Example: ``DefaultBoxGenerator([[2]], scales=[0.5, 0.5])((100, 100), [(1, 1)])`` has the boxes
    ``[25, 25, 75, 75]`` twice, then ``[14.64, 32.32, 85.36, 67.68]`` and ``[32.32, 14.64, 67.68, 85.36]``.
    """

    def __init__(self, aspect_ratios, min_ratio: float = 0.15, max_ratio: float = 0.9, scales=None, steps=None,
                 clip: bool = True):
        levels = as_levels(aspect_ratios, "aspect_ratios")
        # beyond 1e30 (or below 1e-30) sqrt(ratio) times a scale leaves any image, or overflows float32
        self.aspect_ratios = tuple(
            tuple(check_scalar(r, f"aspect_ratios[{k}][{i}]", low=1e-30, high=1e30)
                  for i, r in enumerate(as_levels(level, f"aspect_ratios[{k}]", "of aspect ratios (w / h)")))
            for k, level in enumerate(levels))
        num_levels = len(self.aspect_ratios)
        if scales is None:
            min_ratio = check_scalar(min_ratio, "min_ratio", low=0, low_inclusive=False, high=COORDINATE_LIMIT)
            max_ratio = check_scalar(max_ratio, "max_ratio", low=0, low_inclusive=False, high=COORDINATE_LIMIT)
            if num_levels > 1:
                # the SSD paper's linear spacing (its k runs 1..m); the written order of operations keeps
                # torchvision's rounding
                spread = max_ratio - min_ratio
                scales = [min_ratio + spread * k / (num_levels - 1.0) for k in range(num_levels)] + [1.0]
            else:
                scales = [min_ratio, max_ratio]
        else:
            scales = as_levels(scales, "scales", "of fractions of the image side")
            if len(scales) != num_levels + 1:
                raise ValueError(f"scales must have len(aspect_ratios) + 1 = {num_levels + 1} entries (one per "
                                 f"feature map, plus s_(m+1) for the last map's sqrt(s_m * s_(m+1)) box), "
                                 f"got {len(scales)}")
            scales = [check_scalar(s, f"scales[{k}]", low=0, low_inclusive=False, high=COORDINATE_LIMIT)
                      for k, s in enumerate(scales)]
        self.scales = tuple(scales)
        if steps is not None:
            steps = as_levels(steps, "steps", "with one pixel step per feature map")
            if len(steps) != num_levels:
                raise ValueError(f"steps must have one entry per feature map ({num_levels}, as aspect_ratios), "
                                 f"got {len(steps)}")
            steps = tuple(check_scalar(s, f"steps[{k}]", low=0, low_inclusive=False, high=COORDINATE_LIMIT)
                          for k, s in enumerate(steps))
        self.steps = steps
        if not isinstance(clip, (bool, np.bool_)):
            raise TypeError(f"clip must be a bool, got {type(clip).__name__}")
        self.clip = bool(clip)
        self.wh_pairs = [self._wh_pairs(k) for k in range(num_levels)]

    def _wh_pairs(self, k: int) -> np.ndarray:
        """(n_k, 2) float32 ``(w, h)`` of map k's boxes as fractions of the image, unclipped."""
        s_k = self.scales[k]
        s_prime_k = math.sqrt(s_k * self.scales[k + 1])  # the extra square box between this scale and the next
        pairs = [(s_k, s_k), (s_prime_k, s_prime_k)]
        for ratio in self.aspect_ratios[k]:
            # ratio = w / h at area s_k ** 2 (torchvision's and the paper's a_r), then its transpose
            w, h = s_k * math.sqrt(ratio), s_k / math.sqrt(ratio)
            pairs += [(w, h), (h, w)]
        # computed in Python floats, stored in float32 whatever the output dtype, as torchvision
        return np.array(pairs, dtype=np.float32)

    def __repr__(self) -> str:
        return (f"DefaultBoxGenerator(aspect_ratios={self.aspect_ratios}, clip={self.clip}, scales={self.scales}, "
                f"steps={self.steps})")

    def num_anchors_per_location(self) -> list[int]:
        """Boxes per location of each map, ``2 + 2 * len(aspect_ratios[k])``."""
        return [2 + 2 * len(ratios) for ratios in self.aspect_ratios]

    def _levels(self, image_size, feature_shapes):
        """Checked ``(H, W)``, ``(h, w)`` per map and ``(f_h, f_w)``: how many cells span the image."""
        image_size = as_image_size(image_size)
        shapes = feature_sizes(feature_shapes, "feature_shapes")
        if len(shapes) != len(self.aspect_ratios):
            raise ValueError(f"got {len(shapes)} feature maps but the generator describes {len(self.aspect_ratios)} "
                             "(aspect_ratios); they must match")
        if self.steps is None:
            cells = [(float(h), float(w)) for h, w in shapes]
        else:
            cells = [(image_size[0] / step, image_size[1] / step) for step in self.steps]
        for k, ((h, w), (f_h, f_w), pairs) in enumerate(zip(shapes, cells, self.wh_pairs)):
            if h and w:
                # the farthest corner: the last centre plus half the largest box, in pixels
                half = float(np.abs(np.clip(pairs, 0, 1) if self.clip else pairs).max()) / 2
                reach = max(((h - 0.5) / f_h + half) * image_size[0], ((w - 0.5) / f_w + half) * image_size[1])
                if reach > COORDINATE_LIMIT:
                    raise ValueError(f"feature map {k}'s default boxes reach {reach:.3g} px, beyond edudet's "
                                     f"coordinate limit {COORDINATE_LIMIT:.0e} (scales, steps or image_size too large)")
        return image_size, shapes, cells

    def _grid(self, image_size, feature_shapes, dtype):
        """Per map ``(h, w, xs (w,), ys (h,), wh (n_k, 2))`` in `dtype`: the separable parts of its boxes.

        Centres are ``(arange + 0.5) / f`` in float32 with ``f`` rounded to float32 first and the sizes are
        clamped in float32, then cast to `dtype`: bit for bit torchvision's ``_grid_default_boxes``.
        """
        image_size, shapes, cells = self._levels(image_size, feature_shapes)
        dtype = float_dtype(dtype)
        per_location = self.num_anchors_per_location()
        total = sum(h * w * n for (h, w), n in zip(shapes, per_location))
        check_allocation((total, 4), np.dtype(dtype).itemsize,
                         f"DefaultBoxGenerator's (A, 4) boxes (A = {total} over every feature map)")
        levels = []
        for (h, w), (f_h, f_w), pairs in zip(shapes, cells, self.wh_pairs):
            xs = (np.arange(w, dtype=np.float32) + np.float32(0.5)) / np.float32(f_w)
            ys = (np.arange(h, dtype=np.float32) + np.float32(0.5)) / np.float32(f_h)
            wh = np.clip(pairs, np.float32(0), np.float32(1)) if self.clip else pairs
            levels.append((h, w, xs.astype(dtype), ys.astype(dtype), wh.astype(dtype)))
        return image_size, np.empty((total, 4), dtype=dtype), levels

    def default_boxes(self, image_size, feature_shapes, dtype=np.float32) -> np.ndarray:
        """(A, 4) ``(cx, cy, w, h)`` as fractions of the image: the boxes before conversion to pixels.

        Ordered map by map, location by location (row-major), box by box; torchvision's
        ``_grid_default_boxes``.
        """
        _, out, levels = self._grid(image_size, feature_shapes, dtype)
        start = 0
        for h, w, xs, ys, wh in levels:
            stop = start + h * w * len(wh)
            level = out[start:stop].reshape(h, w, len(wh), 4)  # a view: written in place
            level[..., 0] = xs[None, :, None]
            level[..., 1] = ys[:, None, None]
            level[..., 2:] = wh
            start = stop
        return out

    def __call__(self, image_size, feature_shapes, dtype=np.float32, num_images: int | None = None):
        """Default boxes of one (padded) image: (A, 4) ``(x1, y1, x2, y2)`` in pixels, in `dtype`.

        image_size: ``(H, W)`` of the padded batch; feature_shapes: one ``(..., h, w)`` per map (any sizes:
        SSD's maps are not the image divided by a power of two). A box is ``(cx - w / 2, cy - h / 2,
        cx + w / 2, cy + h / 2)`` of `default_boxes`, times ``(W, H, W, H)``. With ``num_images=n`` returns
        a list of n copies, like torchvision's one set per image.
        """
        if num_images is not None:
            num_images = check_scalar(num_images, "num_images", low=0, integer=True)
        (height, width), out, levels = self._grid(image_size, feature_shapes, dtype)
        dtype = out.dtype.type
        start = 0
        for h, w, xs, ys, wh in levels:
            stop = start + h * w * len(wh)
            level = out[start:stop].reshape(h, w, len(wh), 4)
            half_w, half_h = dtype(0.5) * wh[:, 0], dtype(0.5) * wh[:, 1]
            # x depends on (column, box) only and y on (row, box): compute each once, broadcast over the other
            level[..., 0] = ((xs[:, None] - half_w) * dtype(width))[None]
            level[..., 2] = ((xs[:, None] + half_w) * dtype(width))[None]
            level[..., 1] = ((ys[:, None] - half_h) * dtype(height))[:, None]
            level[..., 3] = ((ys[:, None] + half_h) * dtype(height))[:, None]
            start = stop
        if num_images is None:
            return out
        return [out.copy() for _ in range(num_images)]
