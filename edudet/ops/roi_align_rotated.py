"""RoIAlignRotated: RoIAlign over rotated regions (detectron2's ``ROIAlignRotated``, RRPN / Rotated R-CNN).

A rotated RoI ``(batch_index, cx, cy, w, h, angle in degrees)`` (the rotated-box convention of
`edudet.ops.rotated`: counter-clockwise on the screen, y down) is cut into an ``output_size`` grid of bins
*in the box's own frame*; each bin is the mean of a regular grid of bilinear samples, exactly as RoIAlign,
except that every sample point ``(xx, yy)`` (relative to the RoI's centre, along its w and h sides) is turned
by the angle before it is read::

    x = yy * sin(angle) + xx * cos(angle) + cx * spatial_scale - offset
    y = yy * cos(angle) - xx * sin(angle) + cy * spatial_scale - offset

``offset = 0.5`` (``aligned=True``, detectron2's only mode: pixel centres at half-integers) or 0 with each
side at least 1 feature pixel (``aligned=False``, mmcv's legacy mode). Sampling and bilinear rules
(a sample more than one pixel outside the map reads 0; within a pixel it reads the border) are RoIAlign's.

The RoI plan (centres, sizes, cos/sin, sample grid) is computed here in float64 for every backend, and the
samples too; values are accumulated in float64 and returned in the input's dtype (detectron2 computes in the
input's dtype: float32 results can differ in the last bits). The NumPy reference below is the readable truth;
``kernels/roi_align_rotated_{numba,cython,cuda}`` do the same arithmetic in the same order (bitwise-equal
results; on a real GPU fused multiply-adds can move the last bits).
"""
from __future__ import annotations

import numpy as np

from .._dispatch import Dispatcher
from .._validate import as_real_array, check_allocation, check_coordinates, check_finite, check_scalar
from .roi_align import MAX_SAMPLING_GRID, as_feature_map, as_output_size, check_finite_map

__all__ = ["roi_align_rotated"]


def rotated_sampling_plan(rois: np.ndarray, output_size, spatial_scale: float, sampling_ratio: int,
                          aligned: bool) -> np.ndarray:
    """(K, 11) float64 per RoI: centre_x, centre_y, start_x, start_y, bin_w, bin_h, cos, sin, grid_w, grid_h, count.

    (start_x, start_y) = (-w/2, -h/2): the RoI's first corner in its own frame, in feature pixels.

    rois: (K, 5) float64 ``(cx, cy, w, h, angle)`` in image coordinates. Shared by every backend.
    """
    pooled_h, pooled_w = output_size
    offset = 0.5 if aligned else 0.0
    centre_x = rois[:, 0] * spatial_scale - offset
    centre_y = rois[:, 1] * spatial_scale - offset
    roi_w = rois[:, 2] * spatial_scale
    roi_h = rois[:, 3] * spatial_scale
    if not aligned:  # mmcv's legacy mode: a RoI is at least one feature pixel on each side
        roi_w, roi_h = np.maximum(roi_w, 1.0), np.maximum(roi_h, 1.0)
    theta = np.radians(rois[:, 4])
    bin_w, bin_h = roi_w / pooled_w, roi_h / pooled_h
    if sampling_ratio > 0:
        grid_w = np.full(len(rois), float(sampling_ratio))
        grid_h = grid_w.copy()
    else:  # adaptive: about one sample per feature pixel
        grid_w, grid_h = np.ceil(bin_w), np.ceil(bin_h)
    if len(rois) and max(grid_w.max(), grid_h.max()) > MAX_SAMPLING_GRID:
        raise ValueError(f"rois give more than {MAX_SAMPLING_GRID} samples per bin along an axis (sampling_ratio "
                         f"{sampling_ratio}, largest bin {max(bin_w.max(), bin_h.max()):.4g} feature pixels)")
    count = np.maximum(grid_w * grid_h, 1.0)
    return np.column_stack([centre_x, centre_y, -roi_w / 2.0, -roi_h / 2.0, bin_w, bin_h, np.cos(theta),
                            np.sin(theta), grid_w, grid_h, count])


def _bilinear(plane: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """plane (C, H, W) read at float64 points y, x (same shape S) -> (C, *S), RoIAlign's border rules."""
    height, width = plane.shape[1:]
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y, x = np.maximum(y, 0.0), np.maximum(x, 0.0)
    y_low, x_low = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    y_edge, x_edge = y_low >= height - 1, x_low >= width - 1
    y_low, x_low = np.where(y_edge, height - 1, y_low), np.where(x_edge, width - 1, x_low)
    y, x = np.where(y_edge, y_low, y), np.where(x_edge, x_low, x)  # on the last row: read it, weight 1
    y_high, x_high = np.where(y_edge, y_low, y_low + 1), np.where(x_edge, x_low, x_low + 1)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    value = (hy * hx * plane[:, y_low, x_low] + hy * lx * plane[:, y_low, x_high]
             + ly * hx * plane[:, y_high, x_low] + ly * lx * plane[:, y_high, x_high])
    return np.where(outside, 0.0, value)


def roi_align_rotated_numpy(input: np.ndarray, batch_index: np.ndarray, plan: np.ndarray,
                            output_size) -> np.ndarray:
    """NumPy reference: (N, C, H, W), (K,) int64, (K, 11) plan -> (K, C, PH, PW) float64."""
    pooled_h, pooled_w = output_size
    out = np.zeros((len(plan), input.shape[1], pooled_h, pooled_w))
    bins_y = np.arange(pooled_h, dtype=np.float64)[:, None]  # (PH, 1)
    bins_x = np.arange(pooled_w, dtype=np.float64)[None, :]  # (1, PW)
    for k, (centre_x, centre_y, start_x, start_y, bin_w, bin_h, cos, sin, grid_w, grid_h, count) in enumerate(plan):
        plane = input[batch_index[k]]
        # the samples of every bin at once, one (iy, ix) sample position per step: the kernels' order
        for iy in range(int(grid_h)):
            yy = start_y + bins_y * bin_h + (iy + 0.5) * bin_h / grid_h  # (PH, 1)
            for ix in range(int(grid_w)):
                xx = start_x + bins_x * bin_w + (ix + 0.5) * bin_w / grid_w  # (1, PW)
                y = yy * cos - xx * sin + centre_y  # turn about the centre, then move there
                x = yy * sin + xx * cos + centre_x
                out[k] += _bilinear(plane, y, x)
        out[k] /= count
    return out


_roi_align_rotated = Dispatcher("roi_align_rotated", reference=roi_align_rotated_numpy,
                                numba="roi_align_rotated_numba:roi_align_rotated",
                                cython="roi_align_rotated_cython:roi_align_rotated",
                                cuda="roi_align_rotated_cuda:roi_align_rotated")


def roi_align_rotated(input, rois, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
                      aligned: bool = True, backend: str | None = None) -> np.ndarray:
    """RoIAlign over rotated RoIs (detectron2's ``ROIAlignRotated``).

    input: (N, C, H, W) feature maps. rois: (K, 6) ``[batch_index, cx, cy, w, h, angle in degrees]`` in image
    coordinates (angle counter-clockwise on the screen). output_size: int or (PH, PW).
    Returns (K, C, PH, PW) in the input's dtype (integers -> float32).

    Each bin of the RoI, taken in the RoI's own frame, is the mean of ``sampling_ratio`` (or, when <= 0,
    ``ceil(bin size)``) bilinear samples per axis, turned by the angle about the RoI's centre (module
    docstring). ``aligned=True`` (default, detectron2's behaviour) shifts by half a pixel; ``aligned=False``
    is mmcv's legacy mode (no shift; a side under 1 feature pixel grows to 1 about the centre). At angle 0
    this is `roi_align` with the same `aligned` on the RoI's ``(cx - w/2, cy - h/2, cx + w/2, cy + h/2)``
    (with ``aligned=False`` only where no side is under 1 feature pixel: `roi_align` grows such a side from
    x1, as torchvision does). `backend`: None (fastest CPU), "numpy", "numba", "cython" or "cuda".
    """
    fmap = as_feature_map(input)
    check_finite_map(fmap)
    size = as_output_size(output_size)
    spatial_scale = check_scalar(spatial_scale, "spatial_scale", low=0, low_inclusive=False)
    sampling_ratio = check_scalar(sampling_ratio, "sampling_ratio", integer=True)
    if not isinstance(aligned, (bool, np.bool_)):
        raise TypeError(f"aligned must be a bool, got {type(aligned).__name__}")
    array = as_real_array(rois, "rois")
    if array.ndim != 2 or array.shape[1] != 6:
        raise ValueError(f"rois must have shape (K, 6) [batch_index, cx, cy, w, h, angle], got {tuple(array.shape)}")
    check_finite(array, "rois")
    check_coordinates(array[:, 1:], "rois")
    check_coordinates(array[:, 1:5] * spatial_scale, "rois times spatial_scale")
    index = array[:, 0]
    num_images = fmap.shape[0]
    if index.size and (np.any(index != np.floor(index)) or index.min() < 0 or index.max() >= num_images):
        raise ValueError(f"rois[:, 0] (the batch index) must hold integers in [0, {num_images}) "
                         f"(N = {num_images} images in input)")
    if index.size and float(np.min(array[:, 3:5])) < 0:
        raise ValueError("rois has a negative width or height (columns 3 and 4 must be >= 0)")
    kernel = _roi_align_rotated.get(backend)
    check_allocation((len(array), fmap.shape[1], *size), 8, "roi_align_rotated's (K, C, PH, PW) output")
    plan = rotated_sampling_plan(array[:, 1:].astype(np.float64), size, spatial_scale, sampling_ratio, aligned)
    if len(array) == 0:
        return np.zeros((0, fmap.shape[1], *size), dtype=fmap.dtype)
    out = kernel(fmap, index.astype(np.int64), np.ascontiguousarray(plan), size)
    return out.astype(fmap.dtype, copy=False)

