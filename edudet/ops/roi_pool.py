"""RoIPool: the max of each bin of a region, with the region snapped to whole feature pixels.

Fast R-CNN (Girshick, 2015, sec. 2.1) pools a region ``(x1, y1, x2, y2)`` to a fixed ``PH x PW`` grid:
the scaled corners are rounded to pixels, the region (inclusive of both end pixels) is cut into bins
with floor/ceil edges, and each bin keeps its largest value. The rounding is what RoIAlign later removed:
a box moved by less than half a pixel pools exactly the same pixels.

As in `roi_align`, the computation is split in two: `pooling_bins` (NumPy, shared by every backend)
says which pixels each bin covers; `roi_pool_numpy` and its twins in
``edudet.kernels.roi_pool_{numba,cython,cuda}`` take the maxima.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._dispatch import Dispatcher
from .._validate import as_real_array, check_allocation, check_scalar
from .roi_align import as_feature_map, as_output_size, as_rois, check_finite_map, in_input_dtype, scaled_corners

__all__ = ["roi_pool", "roi_pool_numpy", "pooling_bins", "PoolingBins", "round_half_away_from_zero"]

# torchvision starts each bin's max at -FLT_MAX (in float64 too): values below it are never chosen
LOWEST = float(np.finfo(np.float32).min)


class PoolingBins(NamedTuple):
    """Per RoI, the half-open pixel range ``[start, end)`` of every bin row and column, clipped to the map."""

    h_start: np.ndarray  # (K, PH) int64
    h_end: np.ndarray  # (K, PH) int64
    w_start: np.ndarray  # (K, PW) int64
    w_end: np.ndarray  # (K, PW) int64


def round_half_away_from_zero(values: np.ndarray) -> np.ndarray:
    """C's ``round``: 2.5 -> 3, -2.5 -> -3 (NumPy's ``np.round`` rounds half to even: 2.5 -> 2)."""
    whole = np.trunc(values)
    # values - whole is exact in floating point, so the half test is exact (floor(v + 0.5) is not:
    # 0.49999997 + 0.5 rounds up to 1 in float32)
    return whole + np.where(np.abs(values - whole) >= 0.5, np.sign(values), 0).astype(values.dtype)


def _bin_edges(start, end, pooled: int, size: int, dtype):
    length = np.maximum(end - start + 1, 1)  # the end pixel is included; a malformed region is 1 pixel
    bin_size = length.astype(dtype) / dtype(pooled)
    p = np.arange(pooled)
    first = np.floor(p.astype(dtype)[None, :] * bin_size[:, None]).astype(np.int64)
    last = np.ceil((p + 1).astype(dtype)[None, :] * bin_size[:, None]).astype(np.int64)
    return (np.clip(first + start[:, None], 0, size), np.clip(last + start[:, None], 0, size))


def pooling_bins(boxes: np.ndarray, height: int, width: int, output_size: tuple[int, int],
                 spatial_scale: float) -> PoolingBins:
    """Which pixels each bin covers: (K, 4) boxes of dtype T on an H x W map -> `PoolingBins`.

    Corners are ``round(corner * spatial_scale)`` (half away from zero, in T); the region spans
    ``max(end - start + 1, 1)`` pixels per axis; bin p covers ``[floor(p * bin), ceil((p + 1) * bin))``
    shifted by the region's start and clipped to the map. Scaled corners must be finite and within
    +-COORDINATE_LIMIT (1e15, `ValueError` otherwise): then every edge is exact in int64 before the clip
    (torchvision rounds to a 32-bit int, undefined beyond 2 ** 31; here the bins stay defined up to 1e15).
    """
    dtype = boxes.dtype.type
    corners = round_half_away_from_zero(scaled_corners(boxes, spatial_scale)).astype(np.int64)
    x1, y1, x2, y2 = corners.T
    h_start, h_end = _bin_edges(y1, y2, output_size[0], height, dtype)
    w_start, w_end = _bin_edges(x1, x2, output_size[1], width, dtype)
    return PoolingBins(h_start, h_end, w_start, w_end)


def roi_pool_numpy(input: np.ndarray, batch_index: np.ndarray, bins: PoolingBins) -> np.ndarray:
    """NumPy reference: clean (N, C, H, W) input, (K,) int64 batch indices, `PoolingBins` -> (K, C, PH, PW).

    Per RoI and bin: the maximum over the bin's pixels, all channels at once. NaN is skipped and an empty
    bin is 0, as in torchvision. Each bin reads a view of the map: no copy, whatever the region's size.
    """
    num_rois, channels = len(batch_index), input.shape[1]
    pooled_h, pooled_w = bins.h_start.shape[1], bins.w_start.shape[1]
    out = np.zeros((num_rois, channels, pooled_h, pooled_w), dtype=input.dtype)
    for k in range(num_rois):
        fmap = input[batch_index[k]]
        for ph in range(pooled_h):
            rows = slice(bins.h_start[k, ph], bins.h_end[k, ph])
            for pw in range(pooled_w):
                cols = slice(bins.w_start[k, pw], bins.w_end[k, pw])
                if rows.stop <= rows.start or cols.stop <= cols.start:
                    continue  # an empty bin is 0
                # fmax skips NaN, as torchvision's strict `>` never picks it; nothing is below its -FLT_MAX start
                out[k, :, ph, pw] = np.fmax(np.fmax.reduce(fmap[:, rows, cols], axis=(1, 2)), LOWEST)
    return out


_roi_pool = Dispatcher(
    "roi_pool",
    reference=roi_pool_numpy,
    numba="roi_pool_numba:_roi_pool_bins",
    cython="roi_pool_cython:roi_pool",
    cuda="roi_pool_cuda:roi_pool",
)


def roi_pool(input, boxes, output_size, spatial_scale: float = 1.0, backend: str | None = None) -> np.ndarray:
    """RoIPool (Fast R-CNN): the max of each bin of each region, region snapped to feature pixels.

    input: (N, C, H, W) feature maps. boxes: (K, 5) ``[batch_index, x1, y1, x2, y2]`` or a list of N
    arrays (K_i, 4) ``(x1, y1, x2, y2)``, in image coordinates. output_size: int or (PH, PW).
    Returns (K, C, PH, PW) in the input's dtype (float32/float64 kept, integers -> float32; float16 is
    computed in float32 and returned as float16, as torchvision returns it: a max of float16 values is exact,
    so the values equal torchvision's, unless a corner times `spatial_scale` rounds differently in float16,
    where torchvision computes it).

    Rule: corners ``round(corner * spatial_scale)`` (half away from zero: 2.5 -> 3), region
    ``max(end - start + 1, 1)`` pixels per axis, bin p covers ``[floor(p * bin), ceil((p + 1) * bin))`` from
    the region's start, clipped to the map; each bin is its maximum (0 when it covers no pixel).
    Same values as ``torchvision.ops.roi_pool``. `backend`: None (fastest CPU), "numpy", "numba",
    "cython" or "cuda".

    Refused with ``ValueError``: NaN or inf in `input` or `boxes`; a box corner, given or times
    `spatial_scale`, beyond +-1e15 (``COORDINATE_LIMIT``); an output above edudet's allocation limit.
    """
    kernel = _roi_pool.get(backend)
    array = as_real_array(input, "input")
    fmap = as_feature_map(array)
    check_finite_map(fmap)
    batch_index, coords = as_rois(boxes, fmap.shape[0], fmap.dtype)
    output_size = as_output_size(output_size)
    spatial_scale = check_scalar(spatial_scale, "spatial_scale", low=0, low_inclusive=False)
    shape = (len(coords), fmap.shape[1], *output_size)
    check_allocation(shape, fmap.itemsize,
                     "roi_pool's (K, C, PH, PW) output (boxes: K, input: C, output_size: (PH, PW))")
    if len(coords) == 0:
        return in_input_dtype(np.zeros(shape, dtype=fmap.dtype), array)
    bins = pooling_bins(coords, fmap.shape[2], fmap.shape[3], output_size, spatial_scale)
    return in_input_dtype(kernel(fmap, batch_index, bins), array)
