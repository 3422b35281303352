"""Pasting Mask R-CNN's fixed-size mask probabilities back into the image.

The mask head predicts an M x M (28 x 28) grid of probabilities per detection, in the detection box's
frame. To draw it, torchvision pads the grid by one zero cell per side (so the mask fades to 0 at its
border instead of ending abruptly), grows the box by the same proportion, snaps it to whole pixels,
resizes the padded grid to the box with bilinear interpolation (``align_corners=False``: grid cell i's
centre lands at ``(i + 0.5) * box_size / M_padded``), and copies the part inside the image.
See `edudet.poolers.roi_grid_to_image` for the same grid convention as a coordinate map.
"""
from __future__ import annotations

import numpy as np

from .._validate import (as_boxes, as_image_size, as_real_array, check_allocation, check_finite, check_scalar,
                         float_dtype_of)

__all__ = ["paste_masks_in_image", "expand_boxes"]

# grown boxes are truncated to int64 pixel coordinates; within +-1e18 their widths (x2 - x1 + 1) cannot wrap
_PIXEL_LIMIT = 1e18


def expand_boxes(boxes: np.ndarray, scale: float) -> np.ndarray:
    """(K, 4) boxes grown about their centres by `scale` per side length, in the boxes' dtype."""
    dtype = boxes.dtype.type
    half_w = (boxes[:, 2] - boxes[:, 0]) * dtype(0.5) * dtype(scale)
    half_h = (boxes[:, 3] - boxes[:, 1]) * dtype(0.5) * dtype(scale)
    centre_x = (boxes[:, 2] + boxes[:, 0]) * dtype(0.5)
    centre_y = (boxes[:, 3] + boxes[:, 1]) * dtype(0.5)
    return np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], axis=1)


def _resize_axis(out_size: int, in_size: int, first: int, stop: int, dtype):
    """Bilinear, ``align_corners=False``: output pixels ``first..stop-1`` of `out_size` read source pixels
    ``i0`` and ``i1`` with weights ``(w0, w1)`` (PyTorch's rule: source ``(dst + 0.5) * in / out - 0.5``,
    clamped at 0; the last pixel repeats at the far edge)."""
    scale = dtype(in_size) / dtype(out_size)
    src = np.maximum(scale * (np.arange(first, stop).astype(dtype) + dtype(0.5)) - dtype(0.5), dtype(0))
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = np.clip(src - i0.astype(dtype), dtype(0), dtype(1))
    return i0, i1, dtype(1) - w1, w1


def paste_masks_in_image(masks, boxes, image_shape, padding: int = 1) -> np.ndarray:
    """Mask R-CNN's masks back in the image: (K, 1, M, M) probabilities + (K, 4) boxes -> (K, 1, H, W).

    boxes: ``(x1, y1, x2, y2)`` detections in image pixels; image_shape: ``(H, W)``. Returns the masks'
    float dtype (float32 for integer masks).

    Rule (torchvision's ``paste_masks_in_image``): pad each mask by `padding` zero cells per side, grow its
    box about the centre by ``(M + 2 padding) / M`` and truncate the corners to integers; resize the padded
    mask to the ``max(x2 - x1 + 1, 1)`` x ``max(y2 - y1 + 1, 1)`` pixels of that box with bilinear
    interpolation (``align_corners=False``); pixels outside the box, or the box's part outside the
    image, are 0 / dropped. Only the visible part of each box is computed.

    Refused with ``ValueError``: NaN or inf in `masks` or `boxes`; a box coordinate beyond +-1e15
    (``COORDINATE_LIMIT``); a box grown by the padding beyond +-1e18 pixels (``padding`` hundreds of times
    ``M``); a padded-mask or output array above edudet's allocation limit.
    """
    array = as_real_array(masks, "masks")
    if array.ndim != 4 or array.shape[1] != 1 or array.shape[2] != array.shape[3] or array.shape[2] < 1:
        raise ValueError(f"masks must have shape (K, 1, M, M) with M >= 1, got {tuple(array.shape)}")
    check_finite(array, "masks")
    dtype = float_dtype_of(array)
    array = np.ascontiguousarray(array, dtype=dtype)
    boxes = as_boxes(boxes, dtype=dtype)
    if len(boxes) != len(array):
        raise ValueError(f"boxes has {len(boxes)} rows but masks has {len(array)}; they must match")
    height, width = as_image_size(image_shape, "image_shape")
    padding = check_scalar(padding, "padding", low=0, integer=True)
    size = array.shape[-1]
    check_allocation((len(array), 1, height, width), np.dtype(dtype).itemsize,
                     "paste_masks_in_image's (K, 1, H, W) output (masks: K, image_shape: H, W)")
    out = np.zeros((len(array), 1, height, width), dtype=dtype)
    if len(array) == 0:
        return out
    check_allocation((len(array), size + 2 * padding, size + 2 * padding), np.dtype(dtype).itemsize,
                     "paste_masks_in_image's padded masks (K, M + 2 padding, M + 2 padding)")
    scale = (size + 2 * padding) / size
    with np.errstate(over="ignore"):
        expanded = np.trunc(expand_boxes(boxes, scale))  # torchvision's .to(int64) truncates toward zero
    largest = float(np.abs(expanded).max())
    if not largest <= _PIXEL_LIMIT:  # also catches inf: float32 boxes grown past 3.4e38
        raise ValueError(f"boxes grown by padding={padding} (x {scale:.3g} for M = {size}) reach {largest:.3g}, "
                         f"beyond the +-{_PIXEL_LIMIT:.0e} pixel coordinates paste_masks_in_image handles; "
                         f"use a smaller padding")
    expanded = expanded.astype(np.int64)
    padded = np.pad(array[:, 0], ((0, 0), (padding, padding), (padding, padding)))
    for k, (x1, y1, x2, y2) in enumerate(expanded):
        box_w, box_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        # the box's pixels that fall inside the image, as image and as box coordinates
        left, right = max(x1, 0), min(x2 + 1, width)
        top, bottom = max(y1, 0), min(y2 + 1, height)
        right, bottom = min(right, x1 + box_w), min(bottom, y1 + box_h)
        if right <= left or bottom <= top:
            continue
        r0, r1, hy, ly = _resize_axis(box_h, padded.shape[1], top - y1, bottom - y1, dtype)
        c0, c1, hx, lx = _resize_axis(box_w, padded.shape[2], left - x1, right - x1, dtype)
        grid = padded[k]
        # interpolate along x on the two source rows of every output row, then along y
        upper = grid[r0][:, c0] * hx + grid[r0][:, c1] * lx
        lower = grid[r1][:, c0] * hx + grid[r1][:, c1] * lx
        out[k, 0, top:bottom, left:right] = hy[:, None] * upper + ly[:, None] * lower
    return out
