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
reference uses NumPy's sums, the numba/cython twins sum separably over merged per-pixel weights
(``edudet.kernels._roi_common``: `bin_weights`, `row_slots`, which the numba twin re-does inside njit with the
same bits) and the CUDA twin sample by sample as
torchvision; all agree with torchvision to a few units in the last place (~1e-6 in float32 on unit-scale
maps, ~1e-15 in float64).

Bounds, checked by `roi_align` (and `sampling_plan`) before anything is allocated: box corners, given and
after ``* spatial_scale``, within +-COORDINATE_LIMIT (1e15: every position, width and index stays finite and
exact enough); at most MAX_SAMPLING_GRID samples per bin per axis; NaN or inf in the feature map is refused.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._dispatch import Dispatcher
from .._validate import (as_boxes, as_real_array, check_allocation, check_coordinates, check_finite,
                         check_scalar, float_dtype_of)
from ..kernels._roi_common import check_out

__all__ = ["roi_align", "roi_align_numpy", "sampling_plan", "SamplingPlan", "AxisSamples", "MAX_SAMPLING_GRID"]

# At most this many samples per bin along each axis, set by `sampling_ratio` or by the adaptive rule
# ceil(roi_size / output_size): a bin then averages at most 4096 ** 2 = 2 ** 24 samples (a count float32 still
# holds exactly), and an adaptive bin spans at most 4096 feature pixels, wider than any detector's feature map.
MAX_SAMPLING_GRID = 4096

# The NumPy reference computes at most this many samples at once (a block of channels x sample rows x bin
# columns): its ~10 temporaries of this size stay under ~200 MB in float64, whatever the RoI's size.
_CHUNK_ELEMENTS = 1 << 21

# bytes per sample per axis while a plan is built (its six arrays and the int64/T temporaries behind them)
_PLAN_BYTES_PER_SAMPLE = 96


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


def check_finite_map(fmap: np.ndarray, name: str = "input") -> None:
    """Refuse a feature map (clean, from `as_feature_map`) holding NaN or inf, in one BLAS pass over it.

    ``x . x`` is finite exactly when every x is, unless a square overflows (|x| > ~1.8e19 in float32); only
    then does the elementwise check decide. About 1.5x faster than ``isfinite(x).all()``, with no temporary.
    """
    flat = fmap.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        squares = np.dot(flat, flat)
    if flat.size and not np.isfinite(squares):
        check_finite(fmap, name)


def as_output_size(output_size, name: str = "output_size") -> tuple[int, int]:
    """An int ``s`` (meaning ``(s, s)``) or a pair ``(h, w)`` of positive ints."""
    if isinstance(output_size, np.ndarray) and output_size.ndim == 0:
        output_size = output_size.item()
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
    Coordinates must be finite and within +-COORDINATE_LIMIT (checked before the cast to `dtype`).
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
    check_coordinates(array[:, 1:], name)
    index = array[:, 0]
    if index.size and (np.any(index != np.floor(index)) or index.min() < 0 or index.max() >= num_images):
        raise ValueError(f"{name}[:, 0] (the batch index) must hold integers in [0, {num_images}) "
                         f"(N = {num_images} images in input)")
    return index.astype(np.int64), np.ascontiguousarray(array[:, 1:], dtype=dtype)


def scaled_corners(boxes: np.ndarray, spatial_scale: float, name: str = "boxes") -> np.ndarray:
    """(K, 4) boxes of dtype T times `spatial_scale`, computed in T, each corner finite and within the bound.

    A valid box and a valid scale can still overflow T together (float32(1e300) is inf, 1e15 x 1e10 is far
    past the bound): refused here by name, so no later position, width or pixel index can be NaN or wrap.
    """
    dtype = boxes.dtype.type
    with np.errstate(over="ignore", invalid="ignore"):
        corners = boxes * dtype(spatial_scale)
    if not np.isfinite(corners).all():
        raise ValueError(f"{name} * spatial_scale ({spatial_scale:g}) overflows {np.dtype(dtype).name}")
    check_coordinates(corners, f"{name} * spatial_scale ({spatial_scale:g})")
    return corners


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
    # a sample more than one pixel outside the map reads nothing; one within a pixel reads the border.
    # Written as "inside" so that a NaN position (impossible from checked boxes) also reads nothing, and
    # every index below comes from a position in [0, size]: no value of `pos` can index outside the map
    inside = (pos >= -1.0) & (pos <= size)
    outside = ~inside
    pos = np.where(inside, np.maximum(pos, dtype(0)), dtype(0))
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
    or ``ceil(roi_size / pooled_size)`` when ``sampling_ratio <= 0``. Raises ``ValueError`` when a scaled
    corner is non-finite or beyond +-COORDINATE_LIMIT, when a bin would take more than MAX_SAMPLING_GRID
    samples per axis, or when the plan would exceed edudet's allocation limit.
    """
    dtype = boxes.dtype.type
    pooled_h, pooled_w = output_size
    # aligned=True: a pixel's centre is at +0.5 in continuous coordinates; shifting by -0.5 puts pixel
    # centres on integer indices, which is where bilinear interpolation reads them (Detectron2's fix)
    offset = dtype(0.5 if aligned else 0.0)
    corners = scaled_corners(boxes, spatial_scale) - offset
    x1, y1, x2, y2 = corners.T
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = np.maximum(roi_w, dtype(1)), np.maximum(roi_h, dtype(1))
    bin_h, bin_w = roi_h / dtype(pooled_h), roi_w / dtype(pooled_w)
    if sampling_ratio > 0:
        if sampling_ratio > MAX_SAMPLING_GRID:
            raise ValueError(f"sampling_ratio must be <= {MAX_SAMPLING_GRID} (samples per bin per axis), "
                             f"got {sampling_ratio}")
        grid_h = np.full(len(boxes), sampling_ratio, dtype=np.int64)
        grid_w = grid_h.copy()
    else:
        grid_h = np.ceil(roi_h / dtype(pooled_h))
        grid_w = np.ceil(roi_w / dtype(pooled_w))
        if grid_h.size and max(grid_h.max(), grid_w.max()) > MAX_SAMPLING_GRID:
            raise ValueError(f"boxes: a box spans more than {MAX_SAMPLING_GRID} feature pixels per bin, so the "
                             f"adaptive grid (sampling_ratio <= 0) would exceed {MAX_SAMPLING_GRID} samples per "
                             f"bin per axis; check spatial_scale ({spatial_scale:g}) and the box coordinates, "
                             f"or pass sampling_ratio > 0")
        # a negative-size aligned box has no samples (torchvision's loops do not run): its bins are 0
        grid_h = np.maximum(grid_h, 0).astype(np.int64)
        grid_w = np.maximum(grid_w, 0).astype(np.int64)
    num_samples = pooled_h * int(grid_h.sum()) + pooled_w * int(grid_w.sum())
    check_allocation((num_samples,), _PLAN_BYTES_PER_SAMPLE,
                     "roi_align's sampling plan (K boxes x output size x samples per bin, rows plus columns)")
    count = np.maximum(grid_h * grid_w, 1).astype(dtype)
    rows = _axis_samples(y1, bin_h, grid_h, pooled_h, height, dtype)
    cols = _axis_samples(x1, bin_w, grid_w, pooled_w, width, dtype)
    return SamplingPlan(rows, cols, count, pooled_h, pooled_w)


# ----------------------------------------------------------------------------------------------------------
# 2. Pooling the samples: the NumPy reference
# ----------------------------------------------------------------------------------------------------------
def roi_align_numpy(input: np.ndarray, batch_index: np.ndarray, plan: SamplingPlan, max_mode: bool,
                    out: np.ndarray | None = None, max_elements: int | None = None) -> np.ndarray:
    """NumPy reference: clean (N, C, H, W) input, (K,) int64 batch indices, a plan -> (K, C, PH, PW), written
    into `out` when given (as every backend: a C-contiguous array of that shape and input's dtype).

    Per RoI (a loop over RoIs, everything else vectorised): gather the four neighbours of the
    ``PH grid_h x PW grid_w`` samples, weight them, then average (or max) each bin's ``grid_h x grid_w``
    block. Usually a RoI is one piece; a RoI with more than `max_elements` samples (default 2 ** 21) is
    done in pieces (`_pieces`) whose partial sums (or maxima) add up per bin: memory stays bounded
    whatever the box size, and the result is the same up to rounding.
    """
    max_elements = _CHUNK_ELEMENTS if max_elements is None else max_elements
    num_rois, channels = len(batch_index), input.shape[1]
    ph_, pw_ = plan.pooled_height, plan.pooled_width
    out = check_out(out, input, batch_index, plan)
    rows, cols = plan.rows, plan.cols
    reduce = np.maximum if max_mode else np.add
    for k in range(num_rois):
        gh, gw = int(rows.grid[k]), int(cols.grid[k])
        if gh == 0 or gw == 0:
            out[k] = 0  # no samples: every bin is 0
            continue
        r = slice(rows.offsets[k], rows.offsets[k + 1])
        c = slice(cols.offsets[k], cols.offsets[k + 1])
        y_lo, y_hi, hy, ly = rows.low[r], rows.high[r], rows.w_low[r], rows.w_high[r]
        x_lo, x_hi, hx, lx = cols.low[c], cols.high[c], cols.w_low[c], cols.w_high[c]
        fmap = input[batch_index[k]]  # (C, H, W)
        total = np.full((channels, ph_, pw_), -np.inf if max_mode else 0, dtype=input.dtype)
        for chans, ys, bins in _pieces(channels, ph_ * gh, pw_, gw, max_elements):
            xs = slice(bins.start * gw, bins.stop * gw)  # the sample columns of these bin columns

            def corner(y, x):  # (channels, sample rows, sample columns): one neighbour of every sample
                return fmap[chans, y[ys, None], x[None, xs]]

            # w1..w4 are outer products of the row and column weights, as in torchvision
            samples = (np.multiply.outer(hy[ys], hx[xs]) * corner(y_lo, x_lo)
                       + np.multiply.outer(hy[ys], lx[xs]) * corner(y_lo, x_hi)
                       + np.multiply.outer(ly[ys], hx[xs]) * corner(y_hi, x_lo)
                       + np.multiply.outer(ly[ys], lx[xs]) * corner(y_hi, x_hi))
            # reduce each bin column's grid_w samples, then each run of sample rows of one bin row
            samples = samples.reshape(*samples.shape[:2], bins.stop - bins.start, gw)
            per_row = samples.max(axis=3) if max_mode else samples.sum(axis=3)
            bin_row = np.arange(ys.start, ys.stop) // gh
            first = np.flatnonzero(np.r_[True, bin_row[1:] != bin_row[:-1]])
            hit = bin_row[first]
            total[chans, hit, bins] = reduce(total[chans, hit, bins], reduce.reduceat(per_row, first, axis=1))
        out[k] = total if max_mode else total / plan.count[k]
    return out


def _pieces(channels: int, sample_rows: int, bin_columns: int, grid_w: int, max_elements: int):
    """Cut one RoI's samples (channels x sample rows x bin columns of grid_w samples) into pieces of at most
    `max_elements` (never less than one bin column of one sample row of one channel, <= MAX_SAMPLING_GRID):
    yields (channel slice, sample-row slice, bin-column slice)."""
    bins_step = max(1, min(bin_columns, max_elements // grid_w))
    rows_step = max(1, min(sample_rows, max_elements // (bins_step * grid_w)))
    channels_step = max(1, min(channels, max_elements // (rows_step * bins_step * grid_w)))
    for c0 in range(0, channels, channels_step):
        for r0 in range(0, sample_rows, rows_step):
            for b0 in range(0, bin_columns, bins_step):
                yield (slice(c0, min(c0 + channels_step, channels)), slice(r0, min(r0 + rows_step, sample_rows)),
                       slice(b0, min(b0 + bins_step, bin_columns)))


_roi_align = Dispatcher(
    "roi_align",
    reference=roi_align_numpy,
    numba="roi_align_numba:_roi_align_planned",  # ~3x the public njit `roi_align` (avg)
    cython="roi_align_cython:roi_align",
    cuda="roi_align_cuda:roi_align",
)


def roi_align(input, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
              aligned: bool = False, pool_mode: str = "avg", backend: str | None = None) -> np.ndarray:
    """RoIAlign (Mask R-CNN): pool each region of a feature map to a fixed ``output_size`` grid.

    input: (N, C, H, W) feature maps. boxes: (K, 5) ``[batch_index, x1, y1, x2, y2]`` or a list of N
    arrays (K_i, 4) ``(x1, y1, x2, y2)``, in image coordinates. output_size: int or (PH, PW).
    Returns (K, C, PH, PW) in the input's dtype (float32/float64 kept, integers -> float32; boxes are
    cast to it, as torchvision requires them to match). float16 input is computed in float32 and the result
    rounded once to float16, as torchvision returns float16 for it; torchvision's CPU kernel computes in
    float16 itself (every operation rounds to float16), so its values differ from edudet's by a few float16
    units in the last place (measured up to ~2% of the map's range with adaptive sampling), edudet's being
    the float32 result rounded once. (torchvision also refuses float32 boxes with float16 input; edudet
    casts the boxes.)

    Rule: each bin of the region ``box * spatial_scale - (0.5 if aligned else 0)`` (at least 1 x 1 when not
    aligned) is the mean (``pool_mode="avg"``) or max (``"max"``, mmcv's variant) of bilinear samples on a
    ``sampling_ratio`` (or, when <= 0, ``ceil(roi_size / output_size)``) grid per axis; a sample more than
    one pixel outside the map counts as 0, one within a pixel reads the border. A bin with no samples is 0.
    Same values as ``torchvision.ops.roi_align``; ``aligned=True`` is Detectron2's half-pixel fix.
    `backend`: None (fastest CPU), "numpy", "numba", "cython" or "cuda".

    Refused with ``ValueError``: NaN or inf in `input` or `boxes`; a box corner, given or times
    `spatial_scale`, beyond +-1e15 (``COORDINATE_LIMIT``); more than 4096 samples per bin per axis
    (``MAX_SAMPLING_GRID``: ``sampling_ratio`` above it, or an adaptive grid over a bin wider than 4096
    feature pixels); an output or sampling plan above edudet's allocation limit.
    """
    array = as_real_array(input, "input")
    fmap = as_feature_map(array)
    check_finite_map(fmap)
    pooled = _roi_align_on_finite_map(fmap, boxes, output_size, spatial_scale, sampling_ratio, aligned, pool_mode,
                                      backend)
    return in_input_dtype(pooled, array)


def in_input_dtype(result: np.ndarray, input: np.ndarray) -> np.ndarray:
    """`result`, computed in float32 for a float16 `input`, rounded back to float16 (torchvision's output
    dtype); any other result as it is."""
    return result.astype(np.float16) if input.dtype == np.float16 else result


def _roi_align_on_finite_map(fmap: np.ndarray, boxes, output_size, spatial_scale: float = 1.0,
                             sampling_ratio: int = -1, aligned: bool = False, pool_mode: str = "avg",
                             backend: str | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """`roi_align` for a caller that already holds a clean, finite map (`as_feature_map`, `check_finite_map`).

    Every other argument is checked here; only the pass over the map for NaN/inf is skipped. For
    `MultiScaleRoIAlign`, which checks each pyramid level once per call. `out`: the (K, C, PH, PW) array to
    write (C-contiguous, fmap's dtype), or None for a new one.
    """
    kernel = _roi_align.get(backend)
    batch_index, coords = as_rois(boxes, fmap.shape[0], fmap.dtype)
    output_size = as_output_size(output_size)
    spatial_scale = check_scalar(spatial_scale, "spatial_scale", low=0, low_inclusive=False)
    sampling_ratio = check_scalar(sampling_ratio, "sampling_ratio", high=MAX_SAMPLING_GRID, integer=True)
    if not isinstance(aligned, (bool, np.bool_)):
        raise TypeError(f"aligned must be a bool, got {type(aligned).__name__}")
    if not isinstance(pool_mode, str) or pool_mode not in ("avg", "max"):
        raise ValueError(f"pool_mode must be 'avg' or 'max', got {pool_mode!r}")
    shape = (len(coords), fmap.shape[1], *output_size)
    check_allocation(shape, fmap.itemsize,
                     "roi_align's (K, C, PH, PW) output (boxes: K, input: C, output_size: (PH, PW))")
    if len(coords) == 0:
        return np.zeros(shape, dtype=fmap.dtype) if out is None else out
    plan = sampling_plan(coords, fmap.shape[2], fmap.shape[3], output_size, spatial_scale, sampling_ratio,
                         bool(aligned))
    return kernel(fmap, batch_index, plan, pool_mode == "max", out)
