"""Hypothesis strategies for detection data: valid by construction, nasty on request, shrinking to small boxes.

Every strategy draws NumPy arrays in edudet's (and torchvision's) conventions: boxes are (N, 4)
``(x1, y1, x2, y2)`` with ``x2 >= x1`` and ``y2 >= y1``, x along the width; an image size is
``(height, width)``. Turn them into torch tensors with ``torch.from_numpy`` if your code wants those.

The switches of `boxes` (every box strategy passes them on):

- ``degenerate=True``: some boxes have zero width and/or zero height (zero area);
- ``out_of_image=True``: boxes may start before 0 and end beyond the image;
- ``duplicates=True``: some boxes are exact copies of others (IoU 1, and ties everywhere);
- ``extreme=True``: coordinates and sides may be huge (up to ``COORDINATE_LIMIT = 1e15`` in magnitude, the
  largest edudet accepts: beyond it edudet refuses the input, so a test comparing with edudet cannot use
  them), tiny (1e-300 in float64, 1e-40 in float32, whose areas underflow to 0) or subnormal. Extreme boxes
  ignore `image_size`. ``extreme=None`` (the default) means False unless pytest runs with
  ``--edudet-extreme`` or the environment sets ``EDUDET_EXTREME=1``.

Shrinking: a failing example shrinks towards fewer boxes, sides of 1 at the origin ((0, 0, 1, 1)), scores of
0.5, threshold 0.5, ordinary (not extreme) values: the counterexample hypothesis reports is small enough
to check by hand. `minimal_example` runs that search outside a test (e.g. in a notebook).

`rotated_boxes` draws (N, 5) ``(cx, cy, w, h, angle)`` rows in the convention of `edudet.ops.rotated` (angle in
degrees, counter-clockwise on the screen), with the same switches.

This module needs hypothesis (``pip install "edudet[testing]"``); the oracles in `edudet.testing` do not.
"""
from __future__ import annotations

import math
import random
from typing import NamedTuple

import numpy as np

try:
    from hypothesis import HealthCheck, Phase, find, given, seed, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "edudet.testing.strategies needs hypothesis: pip install \"edudet[testing]\" (or pip install hypothesis). "
        "The oracles (edudet.testing.assert_nms_equal, ...) work without it."
    ) from err

from .._validate import COORDINATE_LIMIT
from . import _config

__all__ = [
    "boxes", "rotated_boxes", "boxes_and_scores", "scores", "category_ids", "detections", "iou_thresholds",
    "nms_cases", "NMSCase", "rois",
    "feature_maps", "roi_align_cases", "RoIAlignCase", "image_sizes_and_feature_shapes", "Pyramid",
    "gt_and_anchors", "draw_examples", "minimal_example",
]

DEFAULT_IMAGE_SIZE = (100, 100)
DEFAULT_STRIDES = (4, 8, 16, 32, 64)
# shrink targets come first: hypothesis shrinks sampled_from towards its first element
_TIE_SCORES = (0.5, 0.25, 0.75)
_NICE_THRESHOLDS = (0.5, 0.0, 1.0, 0.7, 0.3)


# ----------------------------------------------------------------------------------------------------------
# Argument checks: done when a strategy is built, so a typo fails at once and not inside a draw
# ----------------------------------------------------------------------------------------------------------
def _count_range(value, name: str, low: int = 0) -> tuple[int, int]:
    """An int n (exactly n) or a pair (min, max) -> (min, max)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a (min, max) pair, got {value!r}")
        lo, hi = value
    else:
        lo = hi = value
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int or a (min, max) pair of ints, got {value!r}")
    lo, hi = int(lo), int(hi)
    if lo < low or hi < lo:
        raise ValueError(f"{name} must satisfy {low} <= min <= max, got {value!r}")
    return lo, hi


def _dtypes(dtype, name: str = "dtype") -> tuple:
    """np.float32 / np.float64 (or their names), or a sequence of them to draw from."""
    options = dtype if isinstance(dtype, (tuple, list)) else (dtype,)
    out = []
    for option in options:
        try:
            kind = np.dtype(option).type
        except TypeError:
            raise TypeError(f"{name} must be np.float32 or np.float64, got {option!r}") from None
        if kind not in (np.float32, np.float64):
            raise ValueError(f"{name} must be np.float32 or np.float64, got {np.dtype(option)}")
        out.append(kind)
    if not out:
        raise ValueError(f"{name} must name at least one dtype")
    return tuple(out)


def _image_size(image_size) -> tuple[int, int]:
    try:
        h, w = image_size
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be a (height, width) pair, got {image_size!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"image_size must hold two positive ints (height, width), got {image_size!r}")
    return int(h), int(w)


def _flag(value, name: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool{' or None' if allow_none else ''}, got {value!r}")
    return bool(value)


def _limit(dtype) -> float:
    """The largest coordinate of `dtype` that edudet accepts (COORDINATE_LIMIT, rounded down to the dtype)."""
    value = dtype(COORDINATE_LIMIT)
    if float(value) > COORDINATE_LIMIT:
        value = np.nextafter(value, dtype(0))
    return float(value)


def _tiny(dtype) -> tuple[float, float]:
    """(smallest subnormal, smallest normal) of `dtype`."""
    info = np.finfo(dtype)
    return float(info.smallest_subnormal), float(info.smallest_normal)


# ----------------------------------------------------------------------------------------------------------
# Boxes
# ----------------------------------------------------------------------------------------------------------
def _interval(draw, extent: int, dtype, zero: bool, out_of_image: bool, kind: str) -> tuple:
    """One axis of a box: (low, high) in `dtype`, ``high >= low``, ``high > low`` unless `zero`."""
    if kind == "normal":
        if out_of_image:
            side = 0.0 if zero else draw(st.floats(1.0, 2.0 * extent))
            low = draw(st.floats(-float(extent), 2.0 * extent))
        else:
            side = 0.0 if zero else draw(st.floats(min(1.0, extent), float(extent)))
            low = draw(st.floats(0.0, extent - side))
        top = math.inf if out_of_image else float(extent)
    elif kind in ("tiny", "subnormal"):
        smallest, normal = _tiny(dtype)
        upper = {np.float64: 1e-300, np.float32: 1e-37}[dtype] if kind == "tiny" else normal
        # float32's tiny values are normal float64 numbers: drawn in float64, they round to float32 subnormals
        subnormal = dtype == np.float64
        side = 0.0 if zero else draw(st.floats(smallest, upper, allow_subnormal=subnormal))
        low = draw(st.floats(-upper, upper, allow_subnormal=subnormal))
        top = math.inf
    else:  # "huge": anywhere in [-limit, limit], with any side up to the full 2 * limit
        limit = _limit(dtype)
        side = 0.0 if zero else draw(st.floats(1.0, 2.0 * limit))
        low = draw(st.floats(-limit, limit))
        top = limit
    lo = dtype(low)
    hi = dtype(min(low + side, top))
    if zero:
        hi = lo
    elif hi <= lo:  # the side was lost to rounding at this magnitude: the next representable value
        if np.nextafter(lo, dtype(np.inf)) > top:
            lo = np.nextafter(lo, dtype(-np.inf))
        hi = np.nextafter(lo, dtype(np.inf))
    return lo, hi


def _one_box(draw, dtype, image_size, degenerate, out_of_image, kinds) -> list:
    height, width = image_size
    # zero sides are drawn as a rare choice, so that shrinking moves towards boxes with an area
    zero_w = degenerate and draw(st.integers(0, 3)) == 3
    zero_h = degenerate and draw(st.integers(0, 3)) == 3
    x1, x2 = _interval(draw, width, dtype, zero_w, out_of_image, draw(st.sampled_from(kinds)))
    y1, y2 = _interval(draw, height, dtype, zero_h, out_of_image, draw(st.sampled_from(kinds)))
    return [x1, y1, x2, y2]


def _draw_boxes(draw, count_range, dtypes, image_size, degenerate, out_of_image, duplicates, extreme):
    dtype = draw(st.sampled_from(dtypes))
    extreme = _config.extreme_default() if extreme is None else extreme
    kinds = ("normal", "tiny", "subnormal", "huge") if extreme else ("normal",)
    one_box = st.composite(lambda d: _one_box(d, dtype, image_size, degenerate, out_of_image, kinds))()
    low, high = count_range
    # a list of boxes (hypothesis shrinks lists by deleting elements: fast, and towards few boxes) ...
    rows = draw(st.lists(one_box, min_size=min(low, 1) if duplicates else low, max_size=high))
    if duplicates and rows:  # ... then copies (source, position) of some of them, a list too
        copy = st.tuples(st.integers(0, len(rows) - 1), st.integers(0, high))
        for source, position in draw(st.lists(copy, min_size=max(0, low - len(rows)), max_size=high - len(rows))):
            rows.insert(min(position, len(rows)), list(rows[source]))
    return np.array(rows, dtype=dtype).reshape(len(rows), 4)


def boxes(n=(0, 12), dtype=np.float32, image_size=DEFAULT_IMAGE_SIZE, degenerate: bool = False,
          out_of_image: bool = False, duplicates: bool = False, extreme: bool | None = None):
    """(N, 4) ``(x1, y1, x2, y2)`` boxes of `dtype`, valid by construction (``x2 >= x1``, ``y2 >= y1``).

    n: an int, or a (min, max) range of N (default 0 to 12: empty input included). dtype: np.float32,
    np.float64, or a sequence of both to draw from. image_size: (height, width); unless `out_of_image`,
    boxes lie inside it with sides of at least 1 (or of 0, with `degenerate`). Switches (module docstring):
    `degenerate` (zero area), `out_of_image`, `duplicates` (exact copies), `extreme` (huge / tiny /
    subnormal, within edudet's 1e15 limit; None: the session default). Every coordinate is finite and
    within [-1e15, 1e15]: every box drawn is accepted by edudet. Shrinks to (0, 0, 1, 1) boxes.
    """
    args = (_count_range(n, "n"), _dtypes(dtype), _image_size(image_size), _flag(degenerate, "degenerate"),
            _flag(out_of_image, "out_of_image"), _flag(duplicates, "duplicates"),
            _flag(extreme, "extreme", allow_none=True))
    return st.composite(lambda draw: _draw_boxes(draw, *args))()


# the angles a rotated-box test most needs (axis-aligned, the diagonal, a half turn), 0 first: shrinks to it
_NICE_ANGLES = (0.0, 90.0, 45.0, -45.0, -90.0, 180.0, 30.0)


def _centre_and_side(draw, extent: int, dtype, zero: bool, out_of_image: bool, kind: str) -> tuple:
    """One axis of a rotated box before rotation: (centre, side) in `dtype`, side > 0 unless `zero`."""
    if kind == "normal":
        if out_of_image:
            side = 0.0 if zero else draw(st.floats(1.0, 2.0 * extent))
            centre = draw(st.floats(-float(extent), 2.0 * extent))
        else:  # the unrotated box inside the image: its centre at least half a side from each edge
            side = 0.0 if zero else draw(st.floats(min(1.0, extent), float(extent)))
            centre = draw(st.floats(side / 2, extent - side / 2))
    elif kind in ("tiny", "subnormal"):
        smallest, normal = _tiny(dtype)
        upper = {np.float64: 1e-300, np.float32: 1e-37}[dtype] if kind == "tiny" else normal
        subnormal = dtype == np.float64  # float32's tiny values are drawn as normal float64 numbers
        side = 0.0 if zero else draw(st.floats(smallest, upper, allow_subnormal=subnormal))
        centre = draw(st.floats(-upper, upper, allow_subnormal=subnormal))
    else:  # "huge": the centre anywhere in [-limit, limit], a side up to the limit (w and h are checked too)
        limit = _limit(dtype)
        side = 0.0 if zero else draw(st.floats(1.0, limit))
        centre = draw(st.floats(-limit, limit))
    side = dtype(side)
    if not zero and side == 0:  # below the dtype's smallest subnormal: the smallest positive side instead
        side = np.nextafter(dtype(0), dtype(1))
    return dtype(centre), side


def _angle(draw, dtype, extreme: bool):
    choices = [st.sampled_from(_NICE_ANGLES), st.floats(-180.0, 180.0)]
    if extreme:  # any angle edudet accepts (it rotates by cos and sin: modulo 360), and tiny ones
        choices += [st.floats(-_limit(dtype), _limit(dtype)), st.floats(-1e-30, 1e-30)]
    return dtype(draw(st.one_of(*choices)))


def _one_rotated_box(draw, dtype, image_size, degenerate, out_of_image, extreme, kinds) -> list:
    height, width = image_size
    zero_w = degenerate and draw(st.integers(0, 3)) == 3
    zero_h = degenerate and draw(st.integers(0, 3)) == 3
    cx, w = _centre_and_side(draw, width, dtype, zero_w, out_of_image, draw(st.sampled_from(kinds)))
    cy, h = _centre_and_side(draw, height, dtype, zero_h, out_of_image, draw(st.sampled_from(kinds)))
    return [cx, cy, w, h, _angle(draw, dtype, extreme)]


def _draw_rotated_boxes(draw, count_range, dtypes, image_size, degenerate, out_of_image, duplicates, extreme):
    dtype = draw(st.sampled_from(dtypes))
    extreme = _config.extreme_default() if extreme is None else extreme
    kinds = ("normal", "tiny", "subnormal", "huge") if extreme else ("normal",)
    one_box = st.composite(lambda d: _one_rotated_box(d, dtype, image_size, degenerate, out_of_image, extreme,
                                                      kinds))()
    low, high = count_range
    rows = draw(st.lists(one_box, min_size=min(low, 1) if duplicates else low, max_size=high))
    if duplicates and rows:  # copies (source, position) of some rows, as in `boxes`
        copy = st.tuples(st.integers(0, len(rows) - 1), st.integers(0, high))
        for source, position in draw(st.lists(copy, min_size=max(0, low - len(rows)), max_size=high - len(rows))):
            rows.insert(min(position, len(rows)), list(rows[source]))
    return np.array(rows, dtype=dtype).reshape(len(rows), 5)


def rotated_boxes(n=(0, 12), dtype=np.float32, image_size=DEFAULT_IMAGE_SIZE, degenerate: bool = False,
                  out_of_image: bool = False, duplicates: bool = False, extreme: bool | None = None):
    """(N, 5) rotated boxes ``(cx, cy, w, h, angle)`` of `dtype`, valid for `edudet.ops.rotated` by construction.

    The convention of `edudet.ops.rotated` (detectron2's): centre, width (along x before rotation), height,
    and the angle in **degrees**, counter-clockwise as seen on the screen (y down); ``w, h >= 0``.
    n: an int or a (min, max) range (default 0 to 12). dtype: np.float32, np.float64 or a sequence of both.
    image_size: (height, width); unless `out_of_image`, the centre lies in the image and the *unrotated*
    box inside it (sides of at least 1), so a rotated box may reach past the image's edges by up to
    ``(sqrt(2) - 1) / 2`` of its diagonal. Angles: often 0, +-45, +-90, 180 or 30 (axis-aligned and diagonal
    cases), otherwise any float in [-180, 180]. Switches as in `boxes`: `degenerate` (w and/or h = 0),
    `out_of_image` (centres in [-extent, 2 * extent], sides up to 2 * extent), `duplicates` (exact copies
    of rows), `extreme` (tiny, subnormal or huge centres and sides, every value, w and h included, within
    edudet's 1e15 limit; angles up to +-1e15 degrees and tiny ones; None: the session default).
    Shrinks to ``(1, 1, 1, 1, 0)``: the axis-aligned unit box (0.5, 0.5, 1.5, 1.5).
    """
    args = (_count_range(n, "n"), _dtypes(dtype), _image_size(image_size), _flag(degenerate, "degenerate"),
            _flag(out_of_image, "out_of_image"), _flag(duplicates, "duplicates"),
            _flag(extreme, "extreme", allow_none=True))
    return st.composite(lambda draw: _draw_rotated_boxes(draw, *args))()


def scores(n: int, dtype=np.float32, ties: bool = True):
    """(n,) scores in [0, 1] of `dtype`. ``ties=True``: often equal (0.5, 0.25, 0.75 recur); else all distinct."""
    n = _count_range(n, "n")[0]
    (dtype,) = _dtypes(dtype)
    ties = _flag(ties, "ties")
    width = 32 if dtype == np.float32 else 64  # exact in the dtype, so distinct stays distinct
    value = st.floats(0.0, 1.0, width=width)
    if ties:
        elements = st.one_of(st.sampled_from(_TIE_SCORES), value)
        return st.lists(elements, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=dtype).reshape(n))
    return st.lists(value, min_size=n, max_size=n, unique=True).map(lambda v: np.array(v, dtype=dtype).reshape(n))


def boxes_and_scores(n=(0, 12), ties: bool = True, **box_options):
    """(boxes (N, 4), scores (N,)): `boxes` with scores of the same dtype (see `scores` for `ties`).

    box_options: any argument of `boxes` (dtype, image_size, degenerate, out_of_image, duplicates, extreme).
    """
    ties = _flag(ties, "ties")
    box_strategy = boxes(n, **box_options)
    return box_strategy.flatmap(lambda b: st.tuples(st.just(b), scores(len(b), b.dtype.type, ties)))


def category_ids(n: int, num_categories: int = 3):
    """(n,) int64 category (or image) ids in [0, num_categories), e.g. the `idxs` of batched NMS."""
    n = _count_range(n, "n")[0]
    num_categories = _count_range(num_categories, "num_categories", low=1)[0]
    ids = st.lists(st.integers(0, num_categories - 1), min_size=n, max_size=n)
    return ids.map(lambda v: np.array(v, dtype=np.int64).reshape(n))


def detections(n=(0, 12), num_categories: int = 3, ties: bool = True, **box_options):
    """(boxes (N, 4), scores (N,), category_ids (N,) int64): the inputs of batched NMS."""
    _count_range(num_categories, "num_categories", low=1)
    return boxes_and_scores(n, ties, **box_options).flatmap(
        lambda bs: st.tuples(st.just(bs[0]), st.just(bs[1]), category_ids(len(bs[0]), num_categories)))


def iou_thresholds():
    """IoU thresholds in [0, 1]: 0.5, the edges 0 and 1 (where ``>`` and ``>=`` part ways) and any float."""
    return st.one_of(st.sampled_from(_NICE_THRESHOLDS), st.floats(0.0, 1.0))


class NMSCase(NamedTuple):
    """The arguments of one NMS call: ``nms(boxes, scores, iou_threshold)``."""

    boxes: np.ndarray
    scores: np.ndarray
    iou_threshold: float


def nms_cases(n=(0, 12), ties: bool = True, **box_options):
    """`NMSCase` s: `boxes_and_scores` and an IoU threshold from `iou_thresholds` (0, 1 and 0.5 included)."""
    return st.builds(lambda bs, t: NMSCase(bs[0], bs[1], t), boxes_and_scores(n, ties, **box_options),
                     iou_thresholds())


def rois(n=(0, 10), batch_size: int = 1, **box_options):
    """(K, 5) ``[batch_index, x1, y1, x2, y2]`` RoIs (torchvision's format) for `batch_size` images.

    The batch index is an integer in [0, batch_size) stored in the boxes' dtype. box_options: as `boxes`.
    """
    batch_size = _count_range(batch_size, "batch_size", low=1)[0]

    def with_index(b):
        index = st.lists(st.integers(0, batch_size - 1), min_size=len(b), max_size=len(b))
        return index.map(lambda i: np.concatenate([np.array(i, dtype=b.dtype).reshape(-1, 1), b], axis=1))

    return boxes(n, **box_options).flatmap(with_index)


def feature_maps(batch_size=(1, 2), channels=(1, 2), height=(1, 10), width=(1, 10), dtype=np.float32,
                 elements=None):
    """(N, C, H, W) feature maps; each size an int or a (min, max) range. Values: `elements` (a strategy of
    floats) or, by default, floats in [-1, 1], each drawn on its own (a constant map would hide a shifted
    sample). Shrinks to a 1 x 1 x 1 x 1 map of 0."""
    ranges = [_count_range(v, name, low=1) for v, name in
              ((batch_size, "batch_size"), (channels, "channels"), (height, "height"), (width, "width"))]
    dtypes = _dtypes(dtype)

    @st.composite
    def draw_map(draw):
        kind = draw(st.sampled_from(dtypes))
        shape = tuple(draw(st.integers(*r)) for r in ranges)
        values = elements if elements is not None else st.floats(-1.0, 1.0, width=32 if kind == np.float32 else 64)
        return draw(hnp.arrays(kind, shape, elements=values, fill=st.nothing()))

    return draw_map()


class RoIAlignCase(NamedTuple):
    """The arguments of one RoIAlign call: ``roi_align(input, boxes, output_size, spatial_scale, sampling_ratio,
    aligned)``; input (N, C, H, W), boxes (K, 5) ``[batch_index, x1, y1, x2, y2]`` in image coordinates."""

    input: np.ndarray
    boxes: np.ndarray
    output_size: tuple
    spatial_scale: float
    sampling_ratio: int
    aligned: bool


def roi_align_cases(n=(0, 6), aligned: bool | None = None, spatial_scales=(1.0, 0.5, 0.25, 0.125),
                    sampling_ratios=(2, -1, 0, 1, 3), max_output_size: int = 4, map_size=(1, 8), channels=(1, 2),
                    dtype=np.float32, **box_options):
    """`RoIAlignCase` s: a small feature map, RoIs on its image (the map's size / spatial_scale), and
    RoIAlign's parameters. aligned: None (drawn) or fixed. map_size: the map's height and width (an int or a
    range), channels: C; small maps keep shrinking fast. box_options: as `boxes`; ``out_of_image=True``
    makes RoIs cross the map's border, where bilinear sampling has its special rules."""
    aligned = _flag(aligned, "aligned", allow_none=True)
    scales = [float(s) for s in spatial_scales]
    if not scales or min(scales) <= 0:
        raise ValueError(f"spatial_scales must be positive, got {spatial_scales!r}")
    ratios = [int(r) for r in sampling_ratios]
    max_output_size = _count_range(max_output_size, "max_output_size", low=1)[0]

    @st.composite
    def draw_case(draw):
        fmap = draw(feature_maps(batch_size=(1, 2), channels=channels, height=map_size, width=map_size, dtype=dtype))
        scale = draw(st.sampled_from(scales))
        image_size = (max(1, round(fmap.shape[2] / scale)), max(1, round(fmap.shape[3] / scale)))
        regions = draw(rois(n, batch_size=fmap.shape[0], dtype=fmap.dtype.type, image_size=image_size,
                            **box_options))
        output_size = (draw(st.integers(1, max_output_size)), draw(st.integers(1, max_output_size)))
        ratio = draw(st.sampled_from(ratios))
        is_aligned = draw(st.booleans()) if aligned is None else aligned
        return RoIAlignCase(fmap, regions, output_size, scale, ratio, is_aligned)

    return draw_case()


# ----------------------------------------------------------------------------------------------------------
# Pyramids and matching
# ----------------------------------------------------------------------------------------------------------
class Pyramid(NamedTuple):
    """An image size ``(H, W)``, the strides of its FPN levels and their ``(h, w)`` feature shapes."""

    image_size: tuple
    strides: tuple
    feature_shapes: list


def image_sizes_and_feature_shapes(strides=None, max_size: int = 1333, size_divisible: int | None = None):
    """`Pyramid` s whose feature shapes are consistent with the image size: ``h = ceil(H / stride)``.

    strides: a tuple of powers of two, or None to draw a run of consecutive levels from 4 (P2) to 64 (P6).
    Strided 3 x 3 convolutions (padding 1) and ``max_pool2d(x, 1, 2)`` round up, hence ceil (800 -> 13 at 64).
    Image sides are at least 2.5 x the largest stride, so the stride is what `edudet.infer_stride` reads back
    from the shapes (for smaller images the ratio ``h / H`` no longer rounds to the stride). size_divisible:
    pad the sides up to a multiple of it (torchvision's GeneralizedRCNNTransform uses 32).
    """
    if strides is not None:
        strides = tuple(int(s) for s in strides)
        if not strides or any(s < 1 or s & (s - 1) for s in strides) or list(strides) != sorted(set(strides)):
            raise ValueError(f"strides must be increasing powers of two, got {strides!r}")
    if size_divisible is not None:
        size_divisible = _count_range(size_divisible, "size_divisible", low=1)[0]

    @st.composite
    def draw_pyramid(draw):
        chosen = strides
        if chosen is None:
            first = draw(st.integers(2, 6))
            last = draw(st.integers(first, 6))
            chosen = tuple(2 ** k for k in range(first, last + 1))
        smallest = math.ceil(2.5 * max(chosen))
        if max_size < smallest:
            raise ValueError(f"max_size {max_size} is below 2.5 x the largest stride ({smallest})")
        sides = [draw(st.integers(smallest, max_size)) for _ in range(2)]
        if size_divisible:
            sides = [-(-side // size_divisible) * size_divisible for side in sides]
        height, width = sides
        shapes = [(-(-height // s), -(-width // s)) for s in chosen]
        return Pyramid((height, width), chosen, shapes)

    return draw_pyramid()


def gt_and_anchors(num_gt=(1, 4), num_anchors=(0, 20), image_size=DEFAULT_IMAGE_SIZE, dtype=np.float32,
                   **box_options):
    """(gt_boxes (G, 4), anchors (A, 4)) for testing a matcher, G >= 1.

    Besides free anchors, some anchors are ground truths shifted by a few whole pixels (0 included: exact
    copies, IoU 1), so that positives, equal IoUs and ties at a ground truth's best IoU (the low-quality
    rule) are common. box_options: as `boxes` (e.g. ``duplicates=True`` for tied ground truths).
    """
    gt_range = _count_range(num_gt, "num_gt", low=1)
    anchor_range = _count_range(num_anchors, "num_anchors")
    gt_strategy = boxes(gt_range, dtype=dtype, image_size=image_size, **box_options)

    @st.composite
    def draw_pair(draw):
        gt = draw(gt_strategy)
        low, high = anchor_range
        rows = list(draw(boxes((0, high), dtype=gt.dtype.type, image_size=image_size, **box_options)))
        # ground truths shifted by whole pixels, each (gt, dx, dy) inserted at any position
        shifted = st.tuples(st.integers(0, len(gt) - 1), st.integers(-4, 4), st.integers(-4, 4), st.integers(0, high))
        for g, dx, dy, position in draw(st.lists(shifted, min_size=max(0, low - len(rows)), max_size=high - len(rows))):
            rows.insert(min(position, len(rows)), gt[g] + np.array([dx, dy, dx, dy], dtype=gt.dtype))
        return gt, np.array(rows, dtype=gt.dtype).reshape(len(rows), 4)

    return draw_pair()


# ----------------------------------------------------------------------------------------------------------
# Outside a test: draw a few examples, or search for the smallest failing one
# ----------------------------------------------------------------------------------------------------------
_QUIET = dict(database=None, deadline=None, suppress_health_check=list(HealthCheck))


def draw_examples(strategy, count: int = 8, random_seed: int = 0) -> list:
    """`count` examples of `strategy`, the same ones on every call with the same seed (for notebooks; in a
    test use ``@given``). hypothesis starts with the simplest examples, so the first ones are small."""
    count = _count_range(count, "count", low=1)[0]
    drawn = []

    @seed(random_seed)
    @settings(max_examples=count, phases=[Phase.generate], **_QUIET)
    @given(strategy)
    def collect(value):
        drawn.append(value)

    collect()
    return drawn[:count]


def minimal_example(strategy, condition, max_examples: int = 2000, random_seed: int = 0):
    """The simplest example of `strategy` for which ``condition(example)`` is true, after shrinking.

    This is what hypothesis does to a failing test, as a function: ``condition`` is "my code disagrees with
    the oracle". Raises ``hypothesis.errors.NoSuchExample`` when no example within `max_examples` satisfies it.
    """
    return find(strategy, condition, settings=settings(max_examples=max_examples, **_QUIET),
                random=random.Random(random_seed))
