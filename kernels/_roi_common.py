"""Plumbing shared by the RoIAlign and RoIPool kernels: grouping RoIs by image, merged bin weights, entry checks.

The readable part of RoIAlign (where the samples are: `edudet.ops.roi_align.sampling_plan`) and of RoIPool
(which pixels a bin covers: `edudet.ops.roi_pool.pooling_bins`) lives with the ops. What is here only makes
the kernels fast (`group_by_image`, `bin_weights`, `row_slots`) or safe to call directly (`check_plan`,
`check_bins`: a plan or bins that `edudet`'s own functions can never produce are refused before any kernel
reads memory through them).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["group_by_image", "BinWeights", "bin_weights", "RowSlots", "row_slots", "check_plan", "check_bins"]


def group_by_image(batch_index: np.ndarray, num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """RoI numbers sorted by image, and where each image's run starts: ``order[starts[n]:starts[n + 1]]``.

    The fast kernels visit one (image, channel) plane at a time and pool every RoI of that image from it
    while the plane is in cache, instead of pulling ``C`` planes through the cache once per RoI.
    """
    order = np.argsort(batch_index, kind="stable").astype(np.int64)
    starts = np.searchsorted(batch_index[order], np.arange(num_images + 1)).astype(np.int64)
    return order, starts


class BinWeights(NamedTuple):
    """Per bin of every RoI along one axis, the pixels its samples read and their summed weights.

    Bin p of RoI k (``b = k * pooled + p``) owns entries ``offsets[b] : offsets[b + 1]``: pixel ``pixel[e]``
    with weight ``weight[e]``, each pixel once (sorted), zero weights dropped. Because bilinear weights
    factor, ``sum over samples of w_y * w_x * f[y, x]`` equals ``sum over y entries of w_y * (sum over x
    entries of w_x * f[y, x])`` with these merged weights: the average-pooling kernels read each pixel
    once per bin instead of once per sample that touches it (up to ~4x fewer reads with adaptive grids,
    whose samples are about a pixel apart). Used by the numba and cython twins. Dropping zero weights
    skips pixels torchvision multiplies by 0: only a non-finite map (0 * inf = NaN there) tells them apart,
    and the public ops refuse those.
    """

    offsets: np.ndarray  # (K * pooled + 1,) int64
    pixel: np.ndarray  # (E,) int64
    weight: np.ndarray  # (E,) T


def bin_weights(axis, pooled: int, size: int) -> BinWeights:
    """Merge the two neighbours of every sample of a bin into one weight per pixel (see `BinWeights`).

    `axis` is one `edudet.ops.roi_align.AxisSamples` (the rows or the columns of a sampling plan).
    """
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
# Entry checks: O(K x samples) reads of the plan, nothing of the feature map. The public ops always pass
# valid plans; these make a hand-built or edited plan a ValueError instead of a read outside the map.
# ----------------------------------------------------------------------------------------------------------
def _check_in_range(values: np.ndarray, low: int, high: int, what: str) -> None:
    if values.size and (int(values.min()) < low or int(values.max()) > high):
        raise ValueError(f"{what} must lie in [{low}, {high}], got values in [{values.min()}, {values.max()}]")


def _check_batch_index(input: np.ndarray, batch_index: np.ndarray) -> None:
    if input.ndim != 4 or not input.flags.c_contiguous or input.dtype.type not in (np.float32, np.float64):
        raise ValueError(f"input must be a C-contiguous float32/float64 (N, C, H, W) array, got "
                         f"{input.ndim}-D {input.dtype}")
    if batch_index.ndim != 1 or batch_index.dtype != np.int64:
        raise ValueError(f"batch_index must be a (K,) int64 array, got {batch_index.ndim}-D {batch_index.dtype}")
    _check_in_range(batch_index, 0, input.shape[0] - 1, "batch_index")


def check_plan(input: np.ndarray, batch_index: np.ndarray, plan) -> None:
    """Refuse a `SamplingPlan` that would read outside `input`: indices, offsets and lengths are checked."""
    _check_batch_index(input, batch_index)
    num_rois = len(batch_index)
    if plan.pooled_height < 1 or plan.pooled_width < 1 or len(plan.count) != num_rois:
        raise ValueError("plan: pooled sizes must be >= 1 and count must have one entry per RoI")
    for name, axis, pooled, size in (("rows", plan.rows, plan.pooled_height, input.shape[2]),
                                     ("cols", plan.cols, plan.pooled_width, input.shape[3])):
        if (len(axis.grid) != num_rois or len(axis.offsets) != num_rois + 1 or axis.offsets[0] != 0
                or np.any(axis.grid < 0) or np.any(np.diff(axis.offsets) != pooled * axis.grid)):
            raise ValueError(f"plan.{name}: offsets must start at 0 and step by output size x grid per RoI")
        if not len(axis.low) == len(axis.high) == len(axis.w_low) == len(axis.w_high) == axis.offsets[-1]:
            raise ValueError(f"plan.{name}: low, high, w_low and w_high must hold offsets[-1] samples")
        _check_in_range(axis.low, 0, size - 1, f"plan.{name}.low")
        _check_in_range(axis.high, 0, size - 1, f"plan.{name}.high")


def check_out(out, input: np.ndarray, batch_index: np.ndarray, plan) -> np.ndarray:
    """The (K, C, PH, PW) array a pooling kernel writes: a new one when `out` is None, else `out` itself, which
    must be a writable C-contiguous array of exactly that shape and input's dtype (the kernels write every
    element without bounds checks)."""
    shape = (len(batch_index), input.shape[1], plan.pooled_height, plan.pooled_width)
    if out is None:
        return np.empty(shape, dtype=input.dtype)
    if (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != input.dtype
            or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f"out must be a writable C-contiguous {input.dtype} array of shape {shape}, got "
                         f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
    return out


def check_bins(input: np.ndarray, batch_index: np.ndarray, bins) -> None:
    """Refuse `PoolingBins` that would read outside `input`: every edge within the map, one row per RoI."""
    _check_batch_index(input, batch_index)
    for name, size in (("h_start", input.shape[2]), ("h_end", input.shape[2]),
                       ("w_start", input.shape[3]), ("w_end", input.shape[3])):
        edges = getattr(bins, name)
        if edges.ndim != 2 or len(edges) != len(batch_index) or edges.shape[1] < 1:
            raise ValueError(f"bins.{name} must have shape (K, pooled) with K = {len(batch_index)} RoIs")
        _check_in_range(edges, 0, size, f"bins.{name}")
    if bins.h_start.shape != bins.h_end.shape or bins.w_start.shape != bins.w_end.shape:
        raise ValueError("bins: starts and ends must have the same shape")
