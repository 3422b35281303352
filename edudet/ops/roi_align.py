"""RoIAlign: bilinear samples of a feature map, averaged (or maxed) over each bin of a region.

Mask R-CNN (He et al., 2017, sec. 3) replaced RoIPool's rounding with exact bilinear sampling: a region
``(x1, y1, x2, y2)`` in image coordinates is scaled to the feature map (``* spatial_scale``), cut into
``output_size`` equal bins, each bin is sampled on a regular ``grid_h x grid_w`` grid, and the samples are
averaged. Nothing is rounded, so a box moved by a fraction of a pixel moves its features by that fraction.

The computation is split in two, and a learner should read it in that order:

1. `sampling_plan` (NumPy, shared by every backend): where the samples are. Bilinear interpolation is
   separable, so each sample's four neighbours and weights are the product of a row part (which two rows,
   with which weights) and a column part. The plan stores, per RoI, the rows of its ``PH * grid_h`` sample
   heights and the columns of its ``PW * grid_w`` sample widths: a few numbers per RoI, shared by all channels.
2. `roi_align_numpy` (this module) and its fast twins in ``edudet.kernels.roi_align_{numba,cython,cuda}``:
   gather the four neighbours of every sample, weight, and pool per bin.

Every rounding step of the plan follows torchvision's CPU kernel (in the input's dtype ``T``), so sample
positions and weights are bit-identical to torchvision's. The sums differ only in order: the NumPy
reference uses NumPy's pairwise sums, the numba/cython twins sum separably over merged per-pixel weights
(`bin_weights`, `row_slots`) and the CUDA twin sample by sample as torchvision; all agree with torchvision
to a few units in the last place (~1e-6 in float32 on unit-scale maps, ~1e-15 in float64).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._dispatch import Dispatcher
from .._validate import as_boxes, as_real_array, check_finite, check_scalar, float_dtype_of

__all__ = ["roi_align", "roi_align_numpy", "sampling_plan", "SamplingPlan", "bin_weights", "row_slots"]

# an adaptive grid this many samples per bin or more means a box far larger than any feature map
_MAX_GRID = 1 << 16


# ----------------------------------------------------------------------------------------------------------
# Input checks shared with roi_pool: done once, here, so the kernels can assume clean arrays.
# ----------------------------------------------------------------------------------------------------------
def as_feature_map(input, name: str = "input") -> np.ndarray:
    """(N, C, H, W) as a C-contiguous float32/float64 array (integers compute in float32)."""
    array = as_real_array(input, name)
    if array.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {array.ndim}-D shape {tuple(array.shape)}")
    if array.shape[2] < 1 or array.shape[3] < 1:
        raise ValueError(f"{name} must have H >= 1 and W >= 1, got shape {tuple(array.shape)}")
    return np.ascontiguousarray(array, dtype=float_dtype_of(array))


def as_output_size(output_size, name: str = "output_size") -> tuple[int, int]:
    """An int ``s`` (meaning ``(s, s)``) or a pair ``(h, w)`` of positive ints."""
    if isinstance(output_size, (list, tuple, np.ndarray)):
        if len(output_size) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {output_size!r}")
        h, w = output_size
    else:
        h = w = output_size
    return (check_scalar(h, f"{name}[0]", low=1, integer=True), check_scalar(w, f"{name}[1]", low=1, integer=True))


def as_rois(boxes, num_images: int, dtype, name: str = "boxes") -> tuple[np.ndarray, np.ndarray]:
    """RoIs in either torchvision format -> ((K,) int64 batch indices, (K, 4) boxes of `dtype`).

    `boxes` is a (K, 5) array ``[batch_index, x1, y1, x2, y2]`` or a list of N arrays (K_i, 4), the i-th
    holding image i's boxes. A single (K, 4) array is refused: it does not say which image a box is on.
    """
    if isinstance(boxes, (list, tuple)):
        if len(boxes) > num_images:
            raise ValueError(f"{name} is a list of {len(boxes)} per-image arrays but input has only "
                             f"{num_images} images (N)")
        per_image = [as_boxes(b, f"{name}[{i}]") for i, b in enumerate(boxes)]
        counts = [len(b) for b in per_image]
        batch_index = np.repeat(np.arange(len(per_image), dtype=np.int64), counts)
        coords = np.concatenate(per_image) if per_image else np.zeros((0, 4))
        return batch_index, np.ascontiguousarray(coords, dtype=dtype)
    array = as_real_array(boxes, name)
    if array.ndim == 2 and array.shape[1] == 4:
        raise ValueError(f"{name} is one (K, 4) array with no batch index: pass a (K, 5) array "
                         f"[batch_index, x1, y1, x2, y2] or a list of N arrays of shape (K_i, 4)")
    if array.ndim != 2 or array.shape[1] != 5:
        raise ValueError(f"{name} must be a (K, 5) array [batch_index, x1, y1, x2, y2] or a list of N (K_i, 4) "
                         f"arrays, got shape {tuple(array.shape)}")
    check_finite(array, name)
    index = array[:, 0]
    if index.size and (np.any(index != np.floor(index)) or index.min() < 0 or index.max() >= num_images):
        raise ValueError(f"{name}[:, 0] (the batch index) must hold integers in [0, {num_images}) "
                         f"(N = {num_images} images in input)")
    return index.astype(np.int64), np.ascontiguousarray(array[:, 1:], dtype=dtype)


def group_by_image(batch_index: np.ndarray, num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """RoI numbers sorted by image, and where each image's run starts: ``order[starts[n]:starts[n + 1]]``.

    The fast kernels visit one (image, channel) plane at a time and pool every RoI of that image from it
    while the plane is in cache, instead of pulling ``C`` planes through the cache once per RoI.
    """
    order = np.argsort(batch_index, kind="stable").astype(np.int64)
    starts = np.searchsorted(batch_index[order], np.arange(num_images + 1)).astype(np.int64)
    return order, starts


# ----------------------------------------------------------------------------------------------------------
# 1. The sampling plan
# ----------------------------------------------------------------------------------------------------------
class AxisSamples(NamedTuple):
    """The samples of every RoI along one axis (rows or columns), flattened RoI after RoI.

    RoI k owns entries ``offsets[k] : offsets[k + 1]``, ``pooled * grid[k]`` of them, bin-major:
    entry ``offsets[k] + p * grid[k] + i`` is sample i of bin p. A sample interpolates between pixel
    ``low`` (weight ``w_low``) and pixel ``high`` (weight ``w_high``); a sample outside the map has both
    weights 0.
    """

    grid: np.ndarray  # (K,) int64 samples per bin
    offsets: np.ndarray  # (K + 1,) int64
    low: np.ndarray  # (S,) int64
    high: np.ndarray  # (S,) int64
    w_low: np.ndarray  # (S,) T
    w_high: np.ndarray  # (S,) T


class SamplingPlan(NamedTuple):
    rows: AxisSamples
    cols: AxisSamples
    count: np.ndarray  # (K,) T, the divisor of average pooling (max(grid_h * grid_w, 1))
    pooled_height: int
    pooled_width: int


def _axis_samples(start, bin_size, grid, pooled: int, size: int, dtype) -> AxisSamples:
    """Sample positions ``start + p * bin + (i + 0.5) * bin / grid`` along one axis, and their neighbours."""
    per_roi = pooled * grid
    offsets = np.concatenate([[0], np.cumsum(per_roi)]).astype(np.int64)
    roi = np.repeat(np.arange(len(grid)), per_roi)
    j = np.arange(offsets[-1]) - offsets[roi]
    p, i = np.divmod(j, np.maximum(grid[roi], 1))
    # the same operations, in the same order and dtype, as torchvision's kernel: bit-identical positions
    pos = (start[roi] + p.astype(dtype) * bin_size[roi]
           + (i + 0.5).astype(dtype) * bin_size[roi] / grid[roi].astype(dtype))
    # a sample more than one pixel outside the map reads nothing; one within a pixel reads the border
    outside = (pos < -1.0) | (pos > size)
    pos = np.maximum(pos, dtype(0))
    low = pos.astype(np.int64)
    at_edge = low >= size - 1
    low = np.where(at_edge, size - 1, low)
    high = np.where(at_edge, size - 1, low + 1)
    pos = np.where(at_edge, low.astype(dtype), pos)
    w_high = pos - low.astype(dtype)
    w_low = dtype(1) - w_high
    zero = dtype(0)
    return AxisSamples(
        grid=grid, offsets=offsets,
        low=np.where(outside, 0, low), high=np.where(outside, 0, high),
        w_low=np.where(outside, zero, w_low).astype(dtype), w_high=np.where(outside, zero, w_high).astype(dtype),
    )


def sampling_plan(boxes: np.ndarray, height: int, width: int, output_size: tuple[int, int],
                  spatial_scale: float, sampling_ratio: int, aligned: bool) -> SamplingPlan:
    """Where RoIAlign samples: (K, 4) boxes of dtype T on an H x W map -> a `SamplingPlan` in T.

    Box corners scale to ``corner * spatial_scale - (0.5 if aligned else 0)``; when not aligned a RoI is at
    least 1 x 1 (legacy Detectron); each of the ``PH x PW`` bins gets ``sampling_ratio`` samples per axis,
    or ``ceil(roi_size / pooled_size)`` when ``sampling_ratio <= 0``.
    """
    dtype = boxes.dtype.type
    pooled_h, pooled_w = output_size
    # aligned=True: a pixel's centre is at +0.5 in continuous coordinates; shifting by -0.5 puts pixel
    # centres on integer indices, which is where bilinear interpolation reads them (Detectron2's fix)
    offset = dtype(0.5 if aligned else 0.0)
    corners = boxes * dtype(spatial_scale) - offset
    x1, y1, x2, y2 = corners.T
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = np.maximum(roi_w, dtype(1)), np.maximum(roi_h, dtype(1))
    bin_h, bin_w = roi_h / dtype(pooled_h), roi_w / dtype(pooled_w)
    if sampling_ratio > 0:
        grid_h = np.full(len(boxes), sampling_ratio, dtype=np.int64)
        grid_w = grid_h.copy()
    else:
        grid_h = np.ceil(roi_h / dtype(pooled_h))
        grid_w = np.ceil(roi_w / dtype(pooled_w))
        if grid_h.size and max(grid_h.max(), grid_w.max()) > _MAX_GRID:
            raise ValueError(f"boxes: a box spans more than {_MAX_GRID} feature pixels per bin; check "
                             f"spatial_scale ({spatial_scale}) and the box coordinates")
        # a negative-size aligned box has no samples (torchvision's loops do not run): its bins are 0
        grid_h = np.maximum(grid_h, 0).astype(np.int64)
        grid_w = np.maximum(grid_w, 0).astype(np.int64)
    count = np.maximum(grid_h * grid_w, 1).astype(dtype)
    rows = _axis_samples(y1, bin_h, grid_h, pooled_h, height, dtype)
    cols = _axis_samples(x1, bin_w, grid_w, pooled_w, width, dtype)
    return SamplingPlan(rows, cols, count, pooled_h, pooled_w)


class BinWeights(NamedTuple):
    """Per bin of every RoI along one axis, the pixels its samples read and their summed weights.

    Bin p of RoI k (``b = k * pooled + p``) owns entries ``offsets[b] : offsets[b + 1]``: pixel ``pixel[e]``
    with weight ``weight[e]``, each pixel once (sorted), zero weights dropped. Because bilinear weights
    factor, ``sum over samples of w_y * w_x * f[y, x]`` equals ``sum over y entries of w_y * (sum over x
    entries of w_x * f[y, x])`` with these merged weights: the average-pooling kernels read each pixel
    once per bin instead of once per sample that touches it (up to ~4x fewer reads with adaptive grids,
    whose samples are about a pixel apart). Used by the numba and cython twins. Dropping zero weights
    skips pixels torchvision multiplies by 0: only a non-finite map (0 * inf = NaN there) tells them apart.
    """

    offsets: np.ndarray  # (K * pooled + 1,) int64
    pixel: np.ndarray  # (E,) int64
    weight: np.ndarray  # (E,) T


def bin_weights(axis: AxisSamples, pooled: int, size: int) -> BinWeights:
    """Merge the two neighbours of every sample of a bin into one weight per pixel (see `BinWeights`)."""
    dtype = axis.w_low.dtype.type
    num_rois = len(axis.grid)
    roi = np.repeat(np.arange(num_rois), pooled * axis.grid)
    j = np.arange(len(roi)) - axis.offsets[roi]
    bin_id = roi * pooled + j // np.maximum(axis.grid[roi], 1)
    keys = np.concatenate([bin_id * size + axis.low, bin_id * size + axis.high])
    weights = np.concatenate([axis.w_low, axis.w_high])
    keep = weights != 0
    unique, inverse = np.unique(keys[keep], return_inverse=True)
    # each pixel's weights are summed in float64 and rounded to T once
    merged = np.bincount(inverse.ravel(), weights=weights[keep], minlength=len(unique)).astype(dtype)
    offsets = np.searchsorted(unique // size, np.arange(num_rois * pooled + 1)).astype(np.int64)
    return BinWeights(offsets, (unique % size).astype(np.int64), merged)


class RowSlots(NamedTuple):
    """The distinct rows each RoI reads, so a kernel can reduce every row once and reuse it across bins.

    RoI k reads rows ``rows[offsets[k]:offsets[k + 1]]``; entry e of the row `BinWeights` reads the RoI's
    row number ``slot[e]`` in that list. Neighbouring bins share rows (always when bins are under a pixel),
    so a row's per-bin column sums are computed once, then weighted into every bin that reads the row.
    """

    offsets: np.ndarray  # (K + 1,) int64
    rows: np.ndarray  # (R,) int64
    slot: np.ndarray  # (E,) int64


def row_slots(row_bins: BinWeights, pooled_h: int, height: int) -> RowSlots:
    """The distinct rows of each RoI's row `BinWeights` and each entry's place among them (see `RowSlots`)."""
    num_rois = (len(row_bins.offsets) - 1) // pooled_h
    entry_roi = np.repeat(np.arange(num_rois * pooled_h), np.diff(row_bins.offsets)) // pooled_h
    unique, inverse = np.unique(entry_roi * height + row_bins.pixel, return_inverse=True)
    offsets = np.searchsorted(unique // height, np.arange(num_rois + 1)).astype(np.int64)
    slot = inverse.ravel() - offsets[entry_roi]
    return RowSlots(offsets, (unique % height).astype(np.int64), slot.astype(np.int64))


# ----------------------------------------------------------------------------------------------------------
# 2. Pooling the samples: the NumPy reference
# ----------------------------------------------------------------------------------------------------------
def roi_align_numpy(input: np.ndarray, batch_index: np.ndarray, plan: SamplingPlan, max_mode: bool) -> np.ndarray:
    """NumPy reference: clean (N, C, H, W) input, (K,) int64 batch indices, a plan -> (K, C, PH, PW).

    Per RoI (a loop over RoIs, everything else vectorised): gather the four neighbours of all
    ``PH grid_h x PW grid_w`` samples, weight them, then average (or max) each bin's ``grid_h x grid_w`` block.
    """
    num_rois, channels = len(batch_index), input.shape[1]
    ph_, pw_ = plan.pooled_height, plan.pooled_width
    out = np.zeros((num_rois, channels, ph_, pw_), dtype=input.dtype)
    rows, cols = plan.rows, plan.cols
    for k in range(num_rois):
        gh, gw = rows.grid[k], cols.grid[k]
        if gh == 0 or gw == 0:
            continue  # no samples: every bin is 0
        r = slice(rows.offsets[k], rows.offsets[k + 1])
        c = slice(cols.offsets[k], cols.offsets[k + 1])
        y_lo, y_hi, hy, ly = rows.low[r], rows.high[r], rows.w_low[r], rows.w_high[r]
        x_lo, x_hi, hx, lx = cols.low[c], cols.high[c], cols.w_low[c], cols.w_high[c]
        fmap = input[batch_index[k]]  # (C, H, W)

        def corner(y, x):  # (C, PH * gh, PW * gw): one neighbour of every sample
            return fmap[:, y[:, None], x[None, :]]

        # w1..w4 are outer products of the row and column weights, as in torchvision
        samples = (np.multiply.outer(hy, hx) * corner(y_lo, x_lo) + np.multiply.outer(hy, lx) * corner(y_lo, x_hi)
                   + np.multiply.outer(ly, hx) * corner(y_hi, x_lo) + np.multiply.outer(ly, lx) * corner(y_hi, x_hi))
        samples = samples.reshape(channels, ph_, gh, pw_, gw)
        if max_mode:
            out[k] = samples.max(axis=(2, 4))
        else:
            out[k] = samples.sum(axis=(2, 4)) / plan.count[k]
    return out


_roi_align = Dispatcher(
    "roi_align",
    reference=roi_align_numpy,
    numba="roi_align_numba:roi_align",
    cython="roi_align_cython:roi_align",
    cuda="roi_align_cuda:roi_align",
)


def roi_align(input, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
              aligned: bool = False, pool_mode: str = "avg", backend: str | None = None) -> np.ndarray:
    """RoIAlign (Mask R-CNN): pool each region of a feature map to a fixed ``output_size`` grid.

    input: (N, C, H, W) feature maps. boxes: (K, 5) ``[batch_index, x1, y1, x2, y2]`` or a list of N
    arrays (K_i, 4) ``(x1, y1, x2, y2)``, in image coordinates. output_size: int or (PH, PW).
    Returns (K, C, PH, PW) in the input's dtype (float32/float64 kept, integers -> float32; boxes are
    cast to it, as torchvision requires them to match).

    Rule: each bin of the region ``box * spatial_scale - (0.5 if aligned else 0)`` (at least 1 x 1 when not
    aligned) is the mean (``pool_mode="avg"``) or max (``"max"``, mmcv's variant) of bilinear samples on a
    ``sampling_ratio`` (or, when <= 0, ``ceil(roi_size / output_size)``) grid per axis; a sample more than
    one pixel outside the map counts as 0, one within a pixel reads the border. A bin with no samples is 0.
    Same values as ``torchvision.ops.roi_align``; ``aligned=True`` is Detectron2's half-pixel fix.
    `backend`: None (fastest CPU), "numpy", "numba", "cython" or "cuda".
    """
    kernel = _roi_align.get(backend)
    fmap = as_feature_map(input)
    batch_index, coords = as_rois(boxes, fmap.shape[0], fmap.dtype)
    output_size = as_output_size(output_size)
    spatial_scale = check_scalar(spatial_scale, "spatial_scale", low=0, low_inclusive=False)
    sampling_ratio = check_scalar(sampling_ratio, "sampling_ratio", integer=True)
    if not isinstance(aligned, (bool, np.bool_)):
        raise TypeError(f"aligned must be a bool, got {type(aligned).__name__}")
    if pool_mode not in ("avg", "max"):
        raise ValueError(f"pool_mode must be 'avg' or 'max', got {pool_mode!r}")
    if len(coords) == 0:
        return np.zeros((0, fmap.shape[1], *output_size), dtype=fmap.dtype)
    plan = sampling_plan(coords, fmap.shape[2], fmap.shape[3], output_size, spatial_scale, sampling_ratio,
                         bool(aligned))
    return kernel(fmap, batch_index, plan, pool_mode == "max")
