"""Rotated anchors: detectron2's ``RotatedAnchorGenerator`` (Rotated RPN, Ma et al. 2018, "Arbitrary-Oriented
Scene Text Detection via Rotation Proposals").

An anchor is a rotated box ``(cx, cy, w, h, angle)`` in the convention of `edudet.ops.rotated` (angle in
degrees, counter-clockwise on the screen with y pointing down, detectron2's). Each level has a few zero-centred
*cell* anchors ``(0, 0, w, h, angle)``, one for every (size, aspect ratio, angle), and every location of the
level's feature map shifts them to its centre. The order is the order a head's outputs are flattened in:
location by location (row-major: y outer, x inner), then the cell anchors of one location, sizes outer,
aspect ratios middle, angles inner.

A size ``s`` is the square root of the anchor's area and a ratio ``r`` is ``h / w``, so
``w = sqrt(s**2 / r)`` and ``h = r * w``, *not rounded* (torchvision's `AnchorGenerator`, and hence edudet's
by default, rounds half-sizes to integers); a location ``(i, j)`` of a level with stride ``t`` sits at
``((j + offset) * t, (i + offset) * t)``. Everything is computed in float64 and stored in `dtype`; in float32
that is detectron2's values exactly (it computes the cell anchors in float64 too, then stores float32).
`rotated_grid_anchors_numpy` is the readable grid step; ``kernels/rotated_anchors_numba.py`` fills the same
output in one pass without the float64 temporaries (bitwise-equal), picked by ``backend=`` like every op.

How this meets edudet's axis-aligned `AnchorGenerator`: at angle 0 an anchor ``(cx, cy, w, h, 0)`` is the
box ``(cx - w/2, cy - h/2, cx + w/2, cy + h/2)``; with ``AnchorGenerator(rounding=False, center_offset=offset)``
and the same strides the two give the same boxes (to float32 rounding: that one computes ``s / sqrt(r)`` in
float32), in another order per location (ratios outer, sizes inner there). With rounding (torchvision's
default) they agree only where every half-side is already an integer, e.g. ratio 1 with even sizes.
"""
from __future__ import annotations

import numpy as np

from ._dispatch import Dispatcher
from ._validate import COORDINATE_LIMIT, check_allocation, check_scalar

__all__ = ["RotatedAnchorGenerator", "rotated_cell_anchors", "rotated_grid_anchors_numpy"]


def rotated_cell_anchors(sizes, aspect_ratios, angles) -> np.ndarray:
    """(len(sizes) * len(aspect_ratios) * len(angles), 5) float64 zero-centred ``(0, 0, w, h, angle)``.

    Sizes outer, aspect ratios middle, angles inner; ``w = sqrt(size**2 / ratio)``, ``h = ratio * w`` (unrounded).
    Example: sizes (32,), ratios (0.5, 2), angles (0, 90) gives ``w = sqrt(1024 / 0.5) = 45.2548...``,
    ``h = 22.6274...`` at angles 0 and 90, then ``w = 22.6274...``, ``h = 45.2548...`` at 0 and 90.
    """
    size, ratio, angle = np.meshgrid(np.asarray(sizes, dtype=np.float64), np.asarray(aspect_ratios, dtype=np.float64),
                                     np.asarray(angles, dtype=np.float64), indexing="ij")  # sizes vary slowest
    width = np.sqrt(size ** 2.0 / ratio)  # area size**2 = w * h with h = ratio * w
    height = ratio * width
    zeros = np.zeros_like(width)
    return np.stack([zeros, zeros, width, height, angle], axis=-1).reshape(-1, 5)


def rotated_grid_anchors_numpy(cell_anchors: np.ndarray, feature_shape, stride: int, offset: float,
                               out: np.ndarray) -> np.ndarray:
    """One level's anchors: fills and returns `out`, (h * w * A, 5) float32/float64, the (A, 5) float64 cell
    anchors moved to every location.

    Location ``(i, j)`` (row-major, y outer) has centre ``((j + offset) * stride, (i + offset) * stride)``;
    its A anchors are consecutive, in the cell anchors' order.
    """
    h, w = feature_shape
    # offset * stride + j * stride in float64 (detectron2's float32 arange computes it so), one rounding to out
    centre_x = offset * stride + np.arange(w, dtype=np.float64) * stride
    centre_y = offset * stride + np.arange(h, dtype=np.float64) * stride
    xs, ys = np.meshgrid(centre_x, centre_y)  # "xy" indexing: rows are y, so x varies fastest
    shifts = np.zeros((h * w, 1, 5))
    shifts[:, 0, 0], shifts[:, 0, 1] = xs.reshape(-1), ys.reshape(-1)  # only the centre moves
    out[:] = (shifts + cell_anchors[None, :, :]).reshape(-1, 5)
    return out


_rotated_grid_anchors = Dispatcher("rotated_grid_anchors", reference=rotated_grid_anchors_numpy,
                                   numba="rotated_anchors_numba:rotated_grid_anchors")


def _per_level(values, name: str, num_levels: int, low=None, high=None, low_inclusive=True) -> tuple:
    """detectron2's broadcast rule: a flat list is every level's list; a list of one list is repeated."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, (list, tuple)) or len(values) == 0:
        raise TypeError(f"{name} must be a non-empty list of numbers, or of lists (one per level), got {values!r}")
    if not isinstance(values[0], (list, tuple, np.ndarray)):  # one list shared by every level
        values = [values] * num_levels
    elif len(values) == 1:
        values = list(values) * num_levels
    if len(values) != num_levels:
        raise ValueError(f"{name} gives {len(values)} levels but strides has {num_levels}; give one list per level, "
                         f"or one list for all")
    levels = []
    for i, level in enumerate(values):
        if isinstance(level, np.ndarray):
            level = level.tolist()
        if not isinstance(level, (list, tuple)) or len(level) == 0:
            raise ValueError(f"{name}[{i}] must be a non-empty list of numbers, got {level!r}")
        levels.append(tuple(check_scalar(v, f"{name}[{i}][{j}]", low=low, high=high, low_inclusive=low_inclusive)
                            for j, v in enumerate(level)))
    return tuple(levels)


class RotatedAnchorGenerator:
    """Rotated anchors for a set of feature maps, detectron2's ``RotatedAnchorGenerator`` (module docstring).

    sizes: anchor sizes (square roots of the areas), a list for every level or one list per level;
    aspect_ratios (``h / w``) and angles (degrees, counter-clockwise) follow the same rule; strides: one
    positive integer per level (input pixels per feature cell); offset in [0, 1): where a cell's anchors are
    centred, in strides (0.5: the cell's centre; detectron2's config default is 0).

    Note the broadcast rule differs from edudet's `AnchorGenerator` (torchvision's): here ``sizes=[32, 64]``
    means *both* sizes on every level; torchvision reads a flat list as one size per level.

    Example: ``RotatedAnchorGenerator(sizes=[32], aspect_ratios=[1.0], angles=[0, 45], strides=[16])`` on a
    1 x 2 map gives ``(8, 8, 32, 32, 0), (8, 8, 32, 32, 45), (24, 8, 32, 32, 0), (24, 8, 32, 32, 45)``.
    """

    def __init__(self, *, sizes, aspect_ratios, angles, strides, offset: float = 0.5):
        if isinstance(strides, np.ndarray):
            strides = strides.tolist()
        if not isinstance(strides, (list, tuple)) or len(strides) == 0:
            raise TypeError(f"strides must be a non-empty list with one stride per level, got {strides!r}")
        self.strides = tuple(check_scalar(s, f"strides[{i}]", low=1, high=COORDINATE_LIMIT, integer=True)
                             for i, s in enumerate(strides))
        levels = len(self.strides)
        self.sizes = _per_level(sizes, "sizes", levels, low=0, high=COORDINATE_LIMIT, low_inclusive=False)
        # beyond 1e30 (or below 1e-30) one side of any anchor exceeds every coordinate
        self.aspect_ratios = _per_level(aspect_ratios, "aspect_ratios", levels, low=1e-30, high=1e30)
        self.angles = _per_level(angles, "angles", levels, low=-COORDINATE_LIMIT, high=COORDINATE_LIMIT)
        self.offset = check_scalar(offset, "offset", low=0, high=1, high_inclusive=False)
        self.cell_anchors = [rotated_cell_anchors(s, r, a)
                             for s, r, a in zip(self.sizes, self.aspect_ratios, self.angles)]
        for i, cells in enumerate(self.cell_anchors):
            if not np.all(cells[:, 2:4] <= COORDINATE_LIMIT):
                raise ValueError(f"sizes[{i}] and aspect_ratios[{i}] give anchor sides beyond {COORDINATE_LIMIT:.0e} "
                                 f"(edudet's coordinate limit), e.g. {cells[np.argmax(cells[:, 2:4].max(axis=1))]}")

    def __repr__(self) -> str:
        return (f"RotatedAnchorGenerator(sizes={self.sizes}, aspect_ratios={self.aspect_ratios}, "
                f"angles={self.angles}, strides={self.strides}, offset={self.offset:g})")

    @property
    def num_cell_anchors(self) -> list[int]:
        """Anchors per location on each level, ``len(sizes[i]) * len(aspect_ratios[i]) * len(angles[i])``."""
        return [len(cells) for cells in self.cell_anchors]

    def __call__(self, feature_shapes, dtype=np.float32, backend: str | None = None) -> list[np.ndarray]:
        """One (h_i * w_i * A_i, 5) ``(cx, cy, w, h, angle)`` array per level, in `dtype` (float32 or float64).

        feature_shapes: one ``(..., h, w)`` per level (a feature map's ``.shape`` will do), as many as strides.
        `backend`: None (fastest CPU), "numpy" or "numba" fills the grid (the same values).
        """
        if isinstance(feature_shapes, np.ndarray) or not isinstance(feature_shapes, (list, tuple)):
            raise TypeError(f"feature_shapes must be a list of (..., h, w) shapes, "
                            f"got {type(feature_shapes).__name__}")
        if len(feature_shapes) != len(self.strides):
            raise ValueError(f"got {len(feature_shapes)} feature shapes but {len(self.strides)} strides; "
                             f"they must match")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        shapes = []
        for i, shape in enumerate(feature_shapes):
            shape = tuple(shape.shape if isinstance(shape, np.ndarray) else shape)
            if len(shape) < 2:
                raise ValueError(f"feature_shapes[{i}] must end in (h, w), got {shape!r}")
            h, w = (check_scalar(n, f"feature_shapes[{i}]", low=0, integer=True) for n in shape[-2:])
            if max(h, w, 1) * self.strides[i] > COORDINATE_LIMIT:
                raise ValueError(f"feature_shapes[{i}] = {(h, w)} at stride {self.strides[i]} puts anchor centres "
                                 f"beyond {COORDINATE_LIMIT:.0e} (edudet's coordinate limit)")
            check_allocation((h * w * len(self.cell_anchors[i]), 5), dtype.itemsize,
                             f"RotatedAnchorGenerator's level {i} anchors (h * w * A, 5) with (h, w) = {(h, w)}")
            shapes.append((h, w))
        kernel = _rotated_grid_anchors.get(backend)
        return [kernel(cells, shape, stride, self.offset, np.empty((shape[0] * shape[1] * len(cells), 5), dtype))
                for cells, shape, stride in zip(self.cell_anchors, shapes, self.strides)]
