"""Anchors and points: the reference boxes and locations a detector's head predicts from.

An anchor-based head (Faster R-CNN's RPN, RetinaNet) places, at every location of every feature map,
a few boxes of fixed sizes and aspect ratios centred on that location; an anchor-free head (FCOS) places
one point. Both are a grid of shifts (``location * stride``) plus, for anchors, a small set of zero-centred
"cell" (base) anchors. Their order is the order the head's outputs are flattened in: level by level, then
location by location (row-major: y outer, x inner), then, for anchors, the anchors of one location.

`grid_anchors_numpy` is the readable reference of the grid step (base anchors + shifts, written level by level
into a preallocated output); its fast twins (`kernels/anchors_{numba,cython,cuda}`) fill the same output in one
pass without the per-level temporaries, and `AnchorGenerator(..., backend=)` picks one like every other op.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._dispatch import Dispatcher
from ._validate import COORDINATE_LIMIT, as_image_size, check_allocation, check_scalar
from .level_mapper import check_feature_shapes, check_strides

__all__ = ["AnchorGenerator", "grid_points", "grid_anchors_numpy"]


def _level_strides(image_size, feature_shapes, strides):
    """Per-level ``(stride_h, stride_w)``: the caller's (checked), else torchvision's ``H // h, W // w``."""
    shapes = check_feature_shapes(feature_shapes, image_size)
    if strides is not None:
        if isinstance(strides, np.ndarray) and strides.ndim >= 1:
            strides = strides.tolist()
        if not isinstance(strides, (list, tuple)):
            raise TypeError(f"strides must be a list with one stride per level, got {type(strides).__name__}")
        checked = check_strides(strides, shapes, image_size)
        return shapes, [(s, s) for s in checked]
    # integer division, not a power of two: an 800-px image with a 13-row P6 gets stride 61, as torchvision
    return shapes, [(image_size[0] // h, image_size[1] // w) for h, w in shapes]


def _shifts(shape, stride, dtype):
    """(h * w, 2) ``(x, y)`` offsets ``(j * stride_w, i * stride_h)`` of a level's locations, row-major."""
    (h, w), (stride_h, stride_w) = shape, stride
    shift_x = np.arange(w, dtype=np.int64) * stride_w
    shift_y = np.arange(h, dtype=np.int64) * stride_h
    xs, ys = np.meshgrid(shift_x, shift_y)  # "xy" indexing: rows are y, so x varies fastest
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1).astype(dtype)


def _float_dtype(dtype):
    """float32 or float64 as a NumPy scalar type; anything else is a TypeError naming `dtype`."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype.type


def _nested(values, name: str) -> tuple:
    """A list/tuple/array of numbers or of per-level lists as nested tuples (arrays become lists first)."""
    if isinstance(values, np.ndarray):
        if values.ndim == 0:
            raise TypeError(f"{name} must be a list (one entry per level), got a 0-d array")
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list (one entry per level), got {type(values).__name__}")
    return tuple(tuple(v.tolist()) if isinstance(v, np.ndarray) and v.ndim >= 1
                 else tuple(v) if isinstance(v, (list, tuple)) else v for v in values)


class AnchorGenerator:
    """Anchors for a set of feature maps: (A, 4) ``(x1, y1, x2, y2)``, A = sum of ``h_i * w_i * n_i``.

    ``sizes[i]`` and ``aspect_ratios[i]`` (height / width) describe level ``i``; a level has
    ``len(sizes[i]) * len(aspect_ratios[i])`` anchors per location, ratios outer, sizes inner. A base
    anchor of size ``s`` and ratio ``r`` is ``round([-w, -h, w, h] / 2)`` with ``h = s * sqrt(r)``,
    ``w = s / sqrt(r)`` (computed in float32, rounded half to even), and a location ``(i, j)`` shifts it by
    ``(j * stride_w, i * stride_h, j * stride_w, i * stride_h)`` with ``stride = image_size // feature_shape``.
    This is torchvision's ``AnchorGenerator`` (Faster R-CNN, Ren et al., 2015) exactly.

    ``rounding=False`` keeps the unrounded half-sizes and ``center_offset=0.5`` moves every anchor by half a
    stride, mmdetection's ``AnchorGenerator(center_offset=0.5)`` convention (its ``base_sizes`` being the
    strides and ``scales`` the sizes relative to them).

    Example: ``AnchorGenerator(((32,),), ((0.5, 1.0, 2.0),))`` has base anchors ``[-23, -11, 23, 11]``,
    ``[-16, -16, 16, 16]``, ``[-11, -23, 11, 23]``.
    """

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),), rounding: bool = True,
                 center_offset: float = 0.0):
        sizes = _nested(sizes, "sizes")
        if not sizes:
            raise ValueError("sizes must name at least one size per level, got ()")
        if not isinstance(sizes[0], tuple):  # torchvision's shorthand: one size per level
            sizes = tuple((s,) for s in sizes)
        aspect_ratios = _nested(aspect_ratios, "aspect_ratios")
        if not aspect_ratios:
            raise ValueError("aspect_ratios must not be empty")
        if not isinstance(aspect_ratios[0], tuple):  # one ratio set shared by every level
            aspect_ratios = (aspect_ratios,) * len(sizes)
        if len(aspect_ratios) != len(sizes):
            raise ValueError(
                f"sizes describes {len(sizes)} levels but aspect_ratios {len(aspect_ratios)}; they must match")
        self.sizes = tuple(
            tuple(check_scalar(s, f"sizes[{i}][{j}]", low=0, low_inclusive=False) for j, s in enumerate(level))
            for i, level in enumerate(sizes))
        self.aspect_ratios = tuple(
            # beyond 1e30 (or below 1e-30) a side exceeds any coordinate, or float32 overflows
            tuple(check_scalar(r, f"aspect_ratios[{i}][{j}]", low=0, low_inclusive=False, high=1e30)
                  for j, r in enumerate(level))
            for i, level in enumerate(aspect_ratios))
        for i, (s, r) in enumerate(zip(self.sizes, self.aspect_ratios)):
            if not s or not r:
                raise ValueError(f"level {i} needs at least one size and one aspect ratio")
        if not isinstance(rounding, (bool, np.bool_)):
            raise TypeError(f"rounding must be a bool, got {type(rounding).__name__}")
        self.rounding = bool(rounding)
        self.center_offset = check_scalar(center_offset, "center_offset", low=0, high=1)
        self.cell_anchors = [self.generate_anchors(s, r) for s, r in zip(self.sizes, self.aspect_ratios)]
        for i, base in enumerate(self.cell_anchors):
            # e.g. size 1e20, or ratio 1e40 (its sqrt overflows float32): refused like any huge coordinate
            if not np.all(np.abs(base) <= COORDINATE_LIMIT):
                largest = base[np.argmax(np.abs(base).max(axis=1))].tolist()
                raise ValueError(f"sizes[{i}] and aspect_ratios[{i}] give base anchors beyond +-{COORDINATE_LIMIT:.0e} "
                                 f"(edudet's coordinate limit), e.g. {largest}")
        # the kernels' inputs, built once: every level's base anchors stacked, and how many each level has
        self._base_anchors = np.ascontiguousarray(np.concatenate(self.cell_anchors), dtype=np.float32)
        self._base_counts = np.array([len(base) for base in self.cell_anchors], dtype=np.int64)
        self._cache: dict[tuple, np.ndarray] = {}  # `cached`: (image size, feature shapes) -> read-only anchors

    def __repr__(self) -> str:
        return (f"AnchorGenerator(sizes={self.sizes}, aspect_ratios={self.aspect_ratios}, "
                f"rounding={self.rounding}, center_offset={self.center_offset:g})")

    def generate_anchors(self, scales: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
        """(len(ratios) * len(scales), 4) zero-centred float32 base anchors, ratios outer, scales inner."""
        scales = np.asarray(scales, dtype=np.float32)
        ratios = np.asarray(aspect_ratios, dtype=np.float32)
        h_ratios = np.sqrt(ratios)
        w_ratios = np.float32(1) / h_ratios  # ratio = h / w with the area kept at size**2
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        base = np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2)
        # np.round rounds half to even like torch.round: 22.5 -> 22, not 23
        return np.round(base) if self.rounding else base

    def num_anchors_per_location(self) -> list[int]:
        """Anchors per location on each level, ``len(sizes[i]) * len(aspect_ratios[i])``."""
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def num_anchors_per_level(self, feature_shapes) -> list[int]:
        """Anchors on each level, ``h_i * w_i * num_anchors_per_location()[i]``."""
        return [int(tuple(shape)[-2]) * int(tuple(shape)[-1]) * n
                for shape, n in zip(feature_shapes, self.num_anchors_per_location())]

    def __call__(self, image_size, feature_shapes, strides=None, dtype=np.float32, num_images: int | None = None,
                 backend: str | None = None):
        """Anchors of one (padded) image: (A, 4) ``(x1, y1, x2, y2)`` in `dtype`, level by level.

        image_size: ``(H, W)``; feature_shapes: one ``(..., h, w)`` per level (each ``H / 2**k`` rounded
        down or up, else ``ValueError``); strides: optional per-level strides, checked against the shapes
        (``ValueError`` naming the level on a mismatch); by default ``H // h`` and ``W // w``.
        With ``num_images=n`` returns a list of n copies, like torchvision's one anchor set per image.
        `backend`: None (fastest CPU), "numpy", "numba", "cython" or "cuda" fills the grid (same values).
        """
        image_size = as_image_size(image_size)
        if not isinstance(feature_shapes, (list, tuple)):
            raise TypeError(f"feature_shapes must be a list of (h, w) pairs, got {type(feature_shapes).__name__}")
        if len(feature_shapes) != len(self.cell_anchors):
            raise ValueError(f"got {len(feature_shapes)} feature maps but the generator describes "
                             f"{len(self.cell_anchors)} levels (sizes / aspect_ratios); they must match")
        dtype = _float_dtype(dtype)
        shapes, level_strides = _level_strides(image_size, feature_shapes, strides)
        if num_images is not None:
            num_images = check_scalar(num_images, "num_images", low=0, integer=True)
        per_location = self.num_anchors_per_location()
        num_anchors = sum(h * w * n for (h, w), n in zip(shapes, per_location))
        copies = 1 if num_images is None else max(1, num_images)
        check_allocation((copies, num_anchors, 4), np.dtype(dtype).itemsize,
                         f"AnchorGenerator's anchors, (A, 4) per image (A = {num_anchors} over every level of "
                         f"feature_shapes) x num_images")
        kernel = _grid_anchors.get(backend)
        anchors = np.empty((num_anchors, 4), dtype=dtype)
        kernel(self._base_anchors, self._base_counts, np.array(shapes, dtype=np.int64).reshape(-1, 2),
               np.array(level_strides, dtype=np.int64).reshape(-1, 2), np.float32(self.center_offset), anchors)
        if num_images is None:
            return anchors
        return [anchors.copy() for _ in range(num_images)]

    _CACHE_SIZE = 8  # image sizes remembered by `cached` (a detector sees one padded size per input size)

    def cached(self, image_size, feature_shapes) -> np.ndarray:
        """``self(image_size, feature_shapes)`` (float32, torchvision's strides), computed once per
        (image size, feature shapes) and then reused: a detector asks for the same anchors on every forward
        pass of same-sized images, as torchvision's ``AnchorGenerator`` once cached them. The array is
        read-only (shared between calls); copy it to modify it. The oldest of `_CACHE_SIZE` entries goes first.
        """
        key = (tuple(int(s) for s in image_size),
               tuple(tuple(int(d) for d in tuple(shape)[-2:]) for shape in feature_shapes))
        anchors = self._cache.get(key)
        if anchors is None:
            anchors = self(image_size, feature_shapes)  # checks the shapes (on a miss only)
            anchors.flags.writeable = False
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = anchors
        return anchors


def grid_anchors_numpy(base_anchors: np.ndarray, base_counts: np.ndarray, feature_shapes: np.ndarray,
                       strides: np.ndarray, center_offset, out: np.ndarray) -> np.ndarray:
    """NumPy reference of the anchor grid: fills and returns `out`, (sum_l h_l * w_l * A_l, 4).

    base_anchors (sum_l A_l, 4) float32: every level's zero-centred base anchors, level after level;
    base_counts (L,) int64: A_l; feature_shapes (L, 2) int64: (h_l, w_l); strides (L, 2) int64:
    (stride_h, stride_w); center_offset: a float32 in [0, 1]; out: float32 or float64. Anchor
    ``(i, j, a)`` of level l is ``base[a] + (x, y, x, y)`` with ``x = j * stride_w + center_offset * stride_w``
    (and y alike), computed in float32 as torchvision does, then stored in out's dtype.
    """
    start, first_base = 0, 0
    for count, (h, w), stride in zip(base_counts, feature_shapes, strides):
        base = base_anchors[first_base:first_base + count]
        first_base += count
        shifts = _shifts((h, w), stride, np.float32)
        shifts = shifts + np.float32(center_offset) * np.array(stride[::-1], dtype=np.float32)
        shifts4 = np.concatenate([shifts, shifts], axis=1)  # (x, y, x, y)
        # every location (outer) with every base anchor (inner), as the head's outputs are laid out; the sum is
        # float32 (torchvision's), stored in out's dtype
        stop = start + h * w * count
        out[start:stop] = (shifts4[:, None, :] + base[None, :, :]).reshape(-1, 4)
        start = stop
    return out


_grid_anchors = Dispatcher(
    "grid_anchors",
    reference=grid_anchors_numpy,
    numba="anchors_numba:grid_anchors",
    cython="anchors_cython:grid_anchors",
    cuda="anchors_cuda:grid_anchors",
)


def grid_points(image_size, feature_shapes, strides=None, offset=0.5, dtype=np.float32) -> list[np.ndarray]:
    """The locations of an anchor-free head: one (h_i * w_i, 2) ``(x, y)`` array per level, row-major.

    A location ``(i, j)`` of a level with stride ``s`` sits at ``((j + offset) * s, (i + offset) * s)``:
    ``offset=0.5`` is the centre of its cell (mmdetection 3's ``MlvlPointGenerator``); ``offset="fcos"``
    gives ``(j * s + s // 2, i * s + s // 2)`` (the FCOS paper and mmdetection 2, equal to 0.5 for even
    strides); ``offset=0`` gives ``(j * s, i * s)``, torchvision's FCOS, which decodes from its anchors'
    centres. strides: optional, checked against the shapes (``ValueError`` naming the level); by default
    ``H // h`` and ``W // w`` as torchvision.
    """
    image_size = as_image_size(image_size)
    if not isinstance(feature_shapes, (list, tuple)):
        raise TypeError(f"feature_shapes must be a list of (h, w) pairs, got {type(feature_shapes).__name__}")
    dtype = _float_dtype(dtype)
    fcos = isinstance(offset, str)
    if fcos and offset != "fcos":
        raise ValueError(f"offset must be a number in [0, 1] or 'fcos', got {offset!r}")
    if not fcos:
        offset = check_scalar(offset, "offset", low=0, high=1)
    shapes, level_strides = _level_strides(image_size, feature_shapes, strides)
    num_points = sum(h * w for h, w in shapes)
    check_allocation((num_points, 2), np.dtype(dtype).itemsize,
                     f"grid_points' (P, 2) points (P = {num_points} over every level of feature_shapes)")
    points = []
    for shape, (stride_h, stride_w) in zip(shapes, level_strides):
        if fcos:
            pts = _shifts(shape, (stride_h, stride_w), np.int64) + np.array([stride_w // 2, stride_h // 2])
            points.append(pts.astype(dtype))
        else:
            h, w = shape
            xs = (np.arange(w, dtype=dtype) + dtype(offset)) * dtype(stride_w)
            ys = (np.arange(h, dtype=dtype) + dtype(offset)) * dtype(stride_h)
            gx, gy = np.meshgrid(xs, ys)
            points.append(np.stack([gx.reshape(-1), gy.reshape(-1)], axis=1))
    return points
