"""Checks for the unchecked layer: what `edudet.kernels` entry points verify before they run.

Every public kernel entry checks structure (shapes, matching lengths, C-contiguity, dtypes: O(1)) and raises
`ValueError` naming the argument. Values (NaN/inf, the coordinate bound, index ranges: O(n)) are the checked
layer's job (`edudet.ops`); set ``EDUDET_CHECK_KERNELS=1`` to have the Python-callable Cython and CUDA entries
check them too while you debug code that calls the kernels directly.
"""
from __future__ import annotations

import os

import numpy as np

# read once, at import: set it before the first kernel import
CHECK_KERNELS = os.environ.get("EDUDET_CHECK_KERNELS", "").strip().lower() not in ("", "0", "false", "no")

_COORDINATE_NAMES = ("boxes", "boxes1", "boxes2", "rois", "anchors", "gt_boxes", "points")


def check_structure(name: str, array, ndim: int | None = None, columns: int | None = None,
                    length: int | None = None, dtype=None) -> None:
    """Raise ValueError unless `array` is a C-contiguous ndarray of the given ndim/columns/length/dtype."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array, got {type(array).__name__}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if columns is not None and (array.ndim != 2 or array.shape[1] != columns):
        raise ValueError(f"{name} must have shape (N, {columns}), got {array.shape}")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} rows; expected {length} to match the other inputs")
    if dtype is not None and array.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {array.dtype}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray)")


def check_values(**arrays) -> None:
    """The O(n) value checks of debug mode: every array finite; box-like arrays within the coordinate bound."""
    from edudet._validate import COORDINATE_LIMIT

    for name, array in arrays.items():
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating) and array.size and not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or inf (EDUDET_CHECK_KERNELS=1)")
        if name in _COORDINATE_NAMES and array.size and float(np.max(np.abs(array))) > COORDINATE_LIMIT:
            raise ValueError(f"{name} has a coordinate beyond {COORDINATE_LIMIT:.0e} (EDUDET_CHECK_KERNELS=1)")


def check_level_mapping(boxes, k_min=None, k_max=None, canonical_scale=None, num_levels=None,
                        finest_scale=None) -> None:
    """The entry checks of the Python-callable level-mapping kernels (`fpn_levels`, `map_roi_levels`).

    boxes: a C-contiguous (N, 4) float32/float64 ndarray (in debug mode also finite, within the bound);
    FPN's `k_max >= k_min` and `canonical_scale > 0`, or mmdetection's `num_levels >= 1` and
    `finest_scale > 0`, both scales as they round in the boxes' dtype.
    """
    if not isinstance(boxes, np.ndarray) or boxes.dtype not in (np.float32, np.float64):
        raise ValueError("boxes must be a float32/float64 NumPy array")
    check_structure("boxes", boxes, columns=4)
    if CHECK_KERNELS:
        check_values(boxes=boxes)
    t = boxes.dtype.type
    if k_min is not None and k_max < k_min:
        raise ValueError("k_max must be >= k_min")
    if canonical_scale is not None and not t(canonical_scale) > 0:
        raise ValueError("canonical_scale must be positive in the boxes' dtype")
    if num_levels is not None and num_levels < 1:
        raise ValueError("num_levels must be >= 1")
    if finest_scale is not None and not t(finest_scale) > 0:
        raise ValueError("finest_scale must be positive in the boxes' dtype")
