"""Pooling RoIs from a feature pyramid, and mapping RoI grid points back to the image.

`MultiScaleRoIAlign` (torchvision's, FPN eq. 1): each box is pooled from one pyramid level, chosen by its
size through `LevelMapper`, with RoIAlign at that level's spatial scale. The scales are inferred from the
feature and image shapes, or given as ``featmap_strides`` (mmdetection) or ``scales`` (maskrcnn-benchmark's
``POOLER_SCALES``, 1 / stride) and then checked against the shapes (a wrong list, e.g. mmdetection's
``[8, 16, 32, 64]`` for P2..P5, silently pools every RoI from the wrong place; here it raises, and a scale
given as a stride, or the reverse, is named as such).

`roi_grid_to_image` answers the inverse question: which image point does cell (i, j) of a RoI's pooled
grid (or of a Mask R-CNN mask) stand for?
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ._validate import as_boxes, as_image_size, as_real_array, check_scalar
from ._workspace import Workspace
from .level_mapper import LevelMapper, check_scales, check_strides, infer_scale
from .ops.roi_align import (_roi_align_on_finite_map, as_feature_map, as_output_size, as_rois,
                             check_finite_map)

__all__ = ["MultiScaleRoIAlign", "roi_grid_to_image"]


class MultiScaleRoIAlign:
    """RoIAlign over an FPN: features ``{name: (N, C, H_l, W_l)}`` + per-image boxes -> (sum K_i, C, PH, PW).

    Call as ``pooler(features, boxes, image_shapes)``: `boxes` a list of N arrays (K_i, 4) ``(x1, y1, x2, y2)``
    in image coordinates, `image_shapes` a list of N ``(height, width)``. Rows of the result follow the boxes
    (image 0's first). The levels used are the entries of `features` whose names are in `featmap_names`, in
    the dict's order (as torchvision); all must have the same N and C and the same dtype. The result has
    the maps' dtype (float16 maps are pooled in float32, the result rounded once to float16). Zero boxes
    give (0, C, PH, PW), as torchvision; zero images (``boxes == []``, ``image_shapes == []``) too, where
    torchvision raises.

    Rule: box b goes to level ``floor(canonical_level + log2(sqrt(area_b) / canonical_scale) + 1e-6)``,
    clamped to the levels present, and is pooled there by ``roi_align(..., spatial_scale=scale_l,
    sampling_ratio, aligned=False)``. ``scale_l`` is inferred as torchvision does,
    ``2 ** round(log2(H_l / max image height))``, unless `featmap_strides` gives the strides or `scales`
    the spatial scales (1 / stride, maskrcnn-benchmark's ``POOLER_SCALES``), one per name of
    `featmap_names`; either is checked against the shapes (``ValueError`` when they disagree). Give at
    most one of the two. The scales of the last call are on `.scales`.
    FPN (Lin et al., 2017) eq. 1; torchvision.ops.MultiScaleRoIAlign.
    """

    def __init__(self, featmap_names: Sequence[str], output_size, sampling_ratio: int, *,
                 canonical_scale: float = 224, canonical_level: int = 4,
                 featmap_strides: Sequence[float] | None = None, scales: Sequence[float] | None = None,
                 aligned: bool = False, backend: str | None = None):
        if isinstance(featmap_names, str) or not all(isinstance(n, str) for n in featmap_names):
            raise TypeError(f"featmap_names must be a list of str, got {featmap_names!r}")
        self.featmap_names = list(featmap_names)
        if not self.featmap_names:
            raise ValueError("featmap_names must name at least one feature map")
        self.output_size = as_output_size(output_size)
        self.sampling_ratio = check_scalar(sampling_ratio, "sampling_ratio", integer=True)
        self.canonical_scale = check_scalar(canonical_scale, "canonical_scale", low=0, low_inclusive=False)
        self.canonical_level = check_scalar(canonical_level, "canonical_level", integer=True)
        if featmap_strides is not None and scales is not None:
            raise ValueError("give featmap_strides or scales (= 1 / stride), not both")
        self.featmap_strides = self._per_level(featmap_strides, "featmap_strides")
        self.given_scales = self._per_level(scales, "scales")
        self.aligned = aligned
        self.backend = backend
        self._scratch = Workspace()  # the arrays `pool_model_features(..., reuse=True)` keeps
        self.scales: list[float] | None = None
        self.map_levels: LevelMapper | None = None

    def __repr__(self) -> str:
        strides = f", featmap_strides={self.featmap_strides}" if self.featmap_strides is not None else ""
        strides += f", scales={self.given_scales}" if self.given_scales is not None else ""
        return (f"MultiScaleRoIAlign(featmap_names={self.featmap_names}, output_size={self.output_size}, "
                f"sampling_ratio={self.sampling_ratio}{strides})")

    def _per_level(self, values, name: str) -> list[float] | None:
        """One positive number per featmap name (no silent "first len(...) maps" as in mmdetection)."""
        if values is None:
            return None
        if isinstance(values, str) or not hasattr(values, "__len__"):
            raise TypeError(f"{name} must be a list of numbers, one per featmap name, got {values!r}")
        values = list(values)
        if len(values) != len(self.featmap_names):
            raise ValueError(f"{name} has {len(values)} entries for {len(self.featmap_names)} featmap_names "
                             f"{self.featmap_names}; they must match (one per pooled map)")
        return [check_scalar(v, f"{name} entries", low=0, low_inclusive=False, integer=False) for v in values]

    def _levels(self, features: Mapping[str, object]):
        if not isinstance(features, Mapping):
            raise TypeError(f"features must be a dict name -> (N, C, H, W) array, got {type(features).__name__}")
        missing = [n for n in self.featmap_names if n not in features]
        if missing:
            raise ValueError(f"features has no map named {missing}; it has {list(features)}")
        names = [n for n in features if n in self.featmap_names]  # dict order, as torchvision
        given = [as_real_array(features[n], f"features[{n!r}]") for n in names]
        maps = [as_feature_map(g, f"features[{n!r}]") for n, g in zip(names, given)]
        first = maps[0]
        for n, m in zip(names, maps):
            if m.shape[:2] != first.shape[:2] or m.dtype != first.dtype:
                raise ValueError(f"features[{n!r}] has N, C = {m.shape[:2]} and dtype {m.dtype}; every level must "
                                 f"match features[{names[0]!r}] ({first.shape[:2]}, {first.dtype})")
        # float16 maps are pooled in float32 and the result returned as float16, as torchvision returns it
        out_dtype = np.float16 if all(g.dtype == np.float16 for g in given) else first.dtype
        return names, maps, out_dtype

    def setup_scales(self, names, maps, image_shapes) -> tuple[list[float], LevelMapper]:
        """The scale of each level and the `LevelMapper` over them (inferred or from `featmap_strides`)."""
        shapes = [as_image_size(s, f"image_shapes[{i}]") for i, s in enumerate(image_shapes)]
        if not shapes:
            raise ValueError("image_shapes must hold one (height, width) per image, got an empty list")
        largest = (max(h for h, _ in shapes), max(w for _, w in shapes))  # the padded batch size
        order = {n: i for i, n in enumerate(self.featmap_names)}
        if self.featmap_strides is not None:
            given = [self.featmap_strides[order[n]] for n in names]
            strides = check_strides(given, [m.shape for m in maps], largest, names=names)
            scales = [1.0 / s for s in strides]
        elif self.given_scales is not None:
            given = [self.given_scales[order[n]] for n in names]
            scales = check_scales(given, [m.shape for m in maps], largest, names=names)
        else:
            scales = [infer_scale(m.shape, largest) for m in maps]
        k_min = int(-math.log2(scales[0]))
        k_max = int(-math.log2(scales[-1]))
        mapper = LevelMapper(k_min, k_max, canonical_scale=self.canonical_scale,
                             canonical_level=self.canonical_level)
        return scales, mapper

    def __call__(self, features: Mapping[str, object], boxes: Sequence, image_shapes: Sequence) -> np.ndarray:
        return self._pool(features, boxes, image_shapes, check_maps=True)

    def pool_model_features(self, features: Mapping[str, np.ndarray], boxes: Sequence,
                            image_shapes: Sequence, reuse: bool = False) -> np.ndarray:
        """``self(features, boxes, image_shapes)`` for a detector's own FPN maps, which are finite by
        construction (checked images, checked weights): the same result without the pass over every map for
        NaN/inf that a public call makes (a Mask R-CNN forward pools twice). Everything else is checked.

        ``reuse=True`` (the detectors' own calls): the result is a view of arrays this pooler keeps, one set
        per thread, and overwrites on its next such call, so use it before then. A forward pass pools a large
        array (1000 boxes x 256 x 7 x 7 floats: 50 MB) that the box head reads once, and a fresh one each time
        comes from the OS page by page (`edudet._workspace` gives the measurement)."""
        return self._pool(features, boxes, image_shapes, check_maps=False, workspace=self._scratch if reuse else None)

    def _pool(self, features, boxes, image_shapes, check_maps: bool, workspace=None) -> np.ndarray:
        names, maps, out_dtype = self._levels(features)
        num_images, channels = maps[0].shape[:2]
        if not isinstance(boxes, (list, tuple)):
            raise TypeError(f"boxes must be a list of N (K_i, 4) arrays, got {type(boxes).__name__}")
        if len(boxes) > num_images:
            raise ValueError(f"boxes has {len(boxes)} per-image arrays but the features hold {num_images} images")
        if len(image_shapes) != len(boxes):
            raise ValueError(f"image_shapes has {len(image_shapes)} entries but boxes has {len(boxes)}; "
                             f"they must match (one per image)")
        if len(boxes) == 0:
            # zero images (or no boxes lists at all): an empty result, whose shape needs no scale. torchvision
            # raises "images list should not be empty" here; edudet gives empty output for empty input.
            return np.zeros((0, channels, *self.output_size), dtype=out_dtype)
        self.scales, self.map_levels = self.setup_scales(names, maps, image_shapes)
        per_image = [as_boxes(b, f"boxes[{i}]") for i, b in enumerate(boxes)]
        batch_index, coords = as_rois(per_image, num_images, maps[0].dtype)
        if len(coords) == 0:
            return np.zeros((0, channels, *self.output_size), dtype=out_dtype)
        rois = np.concatenate([batch_index[:, None].astype(coords.dtype), coords], axis=1)
        if len(maps) == 1:
            levels = np.zeros(len(coords), dtype=np.int64)
        else:
            levels = self.map_levels(per_image)  # in the boxes' own dtype, as torchvision
        members = [np.flatnonzero(levels == level) for level in range(len(maps))]
        occupied = [level for level, in_level in enumerate(members) if in_level.size]

        def new(name: str, count: int) -> np.ndarray:
            shape = (count, channels, *self.output_size)
            return np.empty(shape, maps[0].dtype) if workspace is None else workspace.array(name, shape, maps[0].dtype)

        def pool_level(level: int, out: np.ndarray) -> np.ndarray:
            if check_maps:
                check_finite_map(maps[level], f"features[{names[level]!r}]")
            return _roi_align_on_finite_map(maps[level], rois[members[level]], self.output_size, self.scales[level],
                                            self.sampling_ratio, self.aligned, backend=self.backend, out=out)

        if len(occupied) == 1 and members[occupied[0]].size == len(coords):
            # every box on one level (small images: often all on the finest): the kernel's output is the result
            return pool_level(occupied[0], new("result", len(coords))).astype(out_dtype, copy=False)
        result = new("result", len(coords))
        if sum(in_level.size for in_level in members) < len(coords):
            # a level index without a map (scales that skip a power of two): those boxes stay 0, as in torchvision
            result[...] = 0
        for level in occupied:
            result[members[level]] = pool_level(level, new("level", members[level].size))
        return result.astype(out_dtype, copy=False)


def roi_grid_to_image(grid_points, boxes, grid_size) -> np.ndarray:
    """Image coordinates of points on RoIs' pooled grids (or masks): ``x_img = x1 + (x_f + 0.5) * w / M``.

    grid_points: (P, 2) ``(x_f, y_f)`` shared by all RoIs, or (K, P, 2) per RoI, in grid cells (cell (i, j) is
    row i, column j; fractional values allowed). boxes: (K, 4) ``(x1, y1, x2, y2)``. grid_size: M or
    (M_h, M_w), the grid's rows and columns. Returns (K, P, 2) ``(x_img, y_img)`` in the boxes' dtype.

    Convention: cell index i stands for the centre of the i-th of M equal slices of the box,
    ``x1 + (i + 0.5) * (x2 - x1) / M``. That is where RoIAlign's bin i is centred (its samples sit
    symmetrically in the bin), and it is how Mask R-CNN puts a mask back (`paste_masks_in_image` resizes
    with bilinear ``align_corners=False``, which places pixel i's centre at ``(i + 0.5) * scale``). So
    cell 0 is half a cell inside the box's left edge, never on it. Exact for ``aligned=True`` RoIAlign and
    for masks; legacy ``aligned=False`` samples the feature map half a feature pixel (``0.5 / spatial_scale``
    image pixels) right of and below these points, and stretches RoIs smaller than one feature pixel.
    """
    boxes = as_boxes(boxes)
    dtype = boxes.dtype.type
    points = as_real_array(grid_points, "grid_points")
    if points.ndim not in (2, 3) or points.shape[-1] != 2 or (points.ndim == 3 and points.shape[0] != len(boxes)):
        raise ValueError(f"grid_points must have shape (P, 2) or (K, P, 2) with K = {len(boxes)} boxes, "
                         f"got {tuple(points.shape)}")
    if not np.isfinite(points).all():
        raise ValueError("grid_points contains NaN or inf")
    m_h, m_w = as_output_size(grid_size, "grid_size")
    points = np.broadcast_to(points.astype(dtype), (len(boxes), points.shape[-2], 2))
    x1, y1, x2, y2 = (boxes[:, i, None] for i in range(4))
    x_img = x1 + (points[..., 0] + dtype(0.5)) * (x2 - x1) / dtype(m_w)
    y_img = y1 + (points[..., 1] + dtype(0.5)) * (y2 - y1) / dtype(m_h)
    return np.stack([x_img, y_img], axis=-1)
