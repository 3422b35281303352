"""A feature level's stride: how many input pixels one of its cells spans, the one rule every part uses.

A backbone level of stride ``s`` computed from a (padded) image of side ``H`` has ``floor(H / s)`` cells (a
"valid" convolution or pooling) or ``ceil(H / s)`` (a padded stride-2 convolution, ``max_pool2d(x, 1, 2)``:
800 px -> 13 cells at stride 64). `level_strides` is that rule: a backbone *declares* its strides and they
are checked against the shapes it produced (``ValueError`` naming the level otherwise); with no declaration
the stride is the power of two the shapes imply. Anchors, FCOS points and targets, and RoI poolers all need
this number; inferring it separately in each (``H // h``, ``2 ** round(log2(h / H))``, ...) splits one meaning
over several places, the hole through which mmdetection's wrong ``featmap_strides`` lists train silently.

`grid_steps` is torchvision's anchor spacing, ``(H // h, W // w)``, a different quantity: equal to the stride
when ``H`` is a multiple of it, else a little less (800 px at stride 64: 13 cells, spaced 61 px apart).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._validate import as_image_size, check_scalar

__all__ = ["level_strides", "grid_steps"]


def _shapes(feature_shapes) -> list[tuple[int, int]]:
    """Each ``(..., h, w)`` as an ``(h, w)`` pair of positive ints."""
    if isinstance(feature_shapes, np.ndarray) or not isinstance(feature_shapes, (list, tuple)):
        raise TypeError(f"feature_shapes must be a list of (..., h, w) shapes, one per level, "
                        f"got {type(feature_shapes).__name__}")
    pairs = []
    for i, shape in enumerate(feature_shapes):
        try:
            pairs.append(as_image_size(tuple(shape)[-2:], f"feature_shapes[{i}]"))
        except TypeError:
            raise ValueError(f"feature_shapes[{i}] must end in (h, w), got {shape!r}") from None
    return pairs


def _fits(side: int, cells: int, stride: int) -> bool:
    """Whether `cells` is ``floor(side / stride)`` or ``ceil(side / stride)``."""
    return cells in (side // stride, -(-side // stride))


def level_strides(image_size, feature_shapes, strides=None) -> list[int]:
    """One int stride per level: the declared `strides`, checked, or the power of two the shapes imply.

    image_size: ``(H, W)`` of the padded batch the features were computed from; feature_shapes: one
    ``(..., h, w)`` per level; strides: None, or one positive integer per level (a backbone's declaration).
    A stride ``s`` fits a level when ``h`` is ``floor(H / s)`` or ``ceil(H / s)`` and ``w`` likewise for ``W``.
    A declared stride that does not fit raises ``ValueError`` naming the level, the stride, the shapes and the
    stride they imply. Without a declaration the level's stride is the power of two that fits; when several
    fit (a map of one or two cells: ``H = 33, h = 2`` fits 16 and 32) the one nearest ``H / h`` in log scale,
    ``2 ** round(log2(H / h))`` (torchvision's pooler rule), so declare strides where maps are that small.

    Example: ``level_strides((800, 1216), [(200, 304), (13, 19)])`` is ``[4, 64]``;
    ``level_strides((800, 1216), [(200, 304)], strides=[8])`` raises (200 rows at stride 8 need 100).
    """
    height, width = as_image_size(image_size)
    shapes = _shapes(feature_shapes)
    if strides is None:
        return [_implied_stride(height, width, h, w, i) for i, (h, w) in enumerate(shapes)]
    if isinstance(strides, np.ndarray):
        strides = strides.tolist()
    if isinstance(strides, (str, bytes)) or not isinstance(strides, (list, tuple)):
        raise TypeError(f"strides must be a list with one stride per level, got {type(strides).__name__}")
    if len(strides) != len(shapes):
        raise ValueError(f"got {len(strides)} strides for {len(shapes)} feature levels; they must match "
                         "(one declared stride per level)")
    out = []
    for i, (stride, (h, w)) in enumerate(zip(strides, shapes)):
        stride = check_scalar(stride, f"strides[{i}]", low=1, integer=True)
        if not (_fits(height, h, stride) and _fits(width, w, stride)):
            implied = _implied_stride(height, width, h, w, i, raise_if_none=False)
            raise ValueError(
                f"stride mismatch at level {i}: stride {stride} was declared but the level is {h} x {w} cells for "
                f"a {height} x {width} image, which needs {-(-height // stride)} x {-(-width // stride)} (or "
                f"{height // stride} x {width // stride}) at stride {stride}"
                + (f"; the shapes imply stride {implied}" if implied else "")
                + ". A wrong stride silently misplaces every anchor, point and pooled RoI of that level")
        out.append(stride)
    return out


def _implied_stride(height: int, width: int, h: int, w: int, level: int, raise_if_none: bool = True):
    """The power of two that fits ``(h, w)`` (see `level_strides`), else ValueError (or None)."""
    candidates = []
    for k in range(64):
        stride = 1 << k
        if _fits(height, h, stride) and _fits(width, w, stride):
            candidates.append(stride)
        if height // stride == 0 and width // stride == 0:  # every larger stride gives the same 1 x 1 map
            break
    if not candidates:
        if not raise_if_none:
            return None
        raise ValueError(f"feature level {level} is {h} x {w} cells, which is not the {height} x {width} image "
                         "divided by a power of two (floor or ceil of H / 2**k and W / 2**k with the same k); "
                         "declare its stride")
    # torchvision's rule, 2 ** round(log2(H / h)), decides between the strides that fit
    return min(candidates, key=lambda s: (abs(math.log2(s) - math.log2(height / h)), s))


def grid_steps(image_size, feature_shapes, strides=None) -> list[tuple[int, int]]:
    """Per level ``(step_h, step_w)``: torchvision's anchor spacing ``(H // h, W // w)``, after `level_strides`
    has checked the shapes (and the declared `strides`, if given).

    Equal to the stride when ``H`` is a multiple of it; an 800 x 1216 image's 13 x 19 P6 (stride 64) has
    steps (61, 64). torchvision's ``AnchorGenerator`` places anchors with these steps, so parity with it
    needs them; the stride itself (`level_strides`) is what sizes, points and pooling scales relate to.
    """
    height, width = as_image_size(image_size)
    level_strides(image_size, feature_shapes, strides)
    return [(height // h, width // w) for h, w in _shapes(feature_shapes)]


def check_sizes_against_strides(sizes: Sequence[Sequence[float]], strides: Sequence[int], *,
                                equal: bool = False, what: str = "anchor_generator") -> None:
    """Check per-level anchor `sizes` against a backbone's declared `strides` (``ValueError`` naming the level).

    One entry of `sizes` per level, else the anchors would be laid on the wrong maps. With `equal` (FCOS,
    whose box codes are in units of the anchor's size) every level's single size must be its stride;
    otherwise (RetinaNet, an RPN) most of a level's sizes (more than half; the one size of a one-size level)
    must be at least its stride, or neighbouring anchors leave gaps that no anchor covers (sizes meant for
    P2..P6 on a P3..P7 backbone fail here). A few smaller sizes beside larger ones are extra choices:
    torchvision's MobileNetV3 Faster R-CNN puts sizes 32..512 on every level, stride 64 included.
    """
    sizes = [tuple(level) for level in sizes]
    strides = list(strides)
    if len(sizes) != len(strides):
        raise ValueError(f"{what} describes {len(sizes)} levels but the backbone has {len(strides)} "
                         f"(strides {strides}); they must match, one entry of sizes per level")
    for i, (level, stride) in enumerate(zip(sizes, strides)):
        if equal and tuple(float(s) for s in level) != (float(stride),):
            raise ValueError(f"{what} level {i} has sizes {level} but the backbone declares stride {stride} there; "
                             f"FCOS needs one anchor of size = stride per level (its codes are in units of the "
                             f"anchor size): sizes {[(s,) for s in strides]}")
        if not equal and 2 * sum(size >= stride for size in level) <= len(level):
            raise ValueError(f"{what} level {i} has an anchor of size {min(level):g} below the backbone's stride "
                             f"{stride} there: anchors {stride} px apart that small leave gaps no anchor covers "
                             f"(sizes for other levels? the declared strides are {strides})")
