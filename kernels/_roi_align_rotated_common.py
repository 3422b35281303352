"""The entry check shared by the compiled RoIAlignRotated kernels (Cython, numba.cuda).

The public `edudet.ops.roi_align_rotated` always passes a valid plan; this makes a hand-built or edited one a
`ValueError` instead of a read outside the feature map: a NaN sample position would turn into an arbitrary
integer index in C. O(K) reads of the plan, nothing of the feature map.
"""
from __future__ import annotations

import numpy as np

from edudet.kernels._roi_common import _check_batch_index

PLAN_COLUMNS = 11  # centre_x, centre_y, start_x, start_y, bin_w, bin_h, cos, sin, grid_w, grid_h, count
MAX_GRID = 4096  # samples per bin per axis (`edudet.ops.roi_align.MAX_SAMPLING_GRID`)


def check_rotated_plan(input: np.ndarray, batch_index: np.ndarray, plan: np.ndarray, output_size) -> None:
    """Refuse inputs that could make a kernel read outside `input` or loop without end (ValueError)."""
    _check_batch_index(input, batch_index)  # (N, C, H, W) float32/64 C-contiguous; (K,) int64 in [0, N)
    if (not isinstance(plan, np.ndarray) or plan.dtype != np.float64 or plan.ndim != 2
            or plan.shape != (len(batch_index), PLAN_COLUMNS) or not plan.flags.c_contiguous):
        raise ValueError(f"plan must be a C-contiguous float64 (K, {PLAN_COLUMNS}) array with K = "
                         f"{len(batch_index)} (one row per batch index), got {getattr(plan, 'shape', plan)}")
    if plan.size and not np.isfinite(plan).all():
        raise ValueError("plan contains NaN or inf")
    grids = plan[:, 8:10]
    if grids.size and (grids.min() < 0 or grids.max() > MAX_GRID):
        raise ValueError(f"plan's grid_w, grid_h (columns 8, 9) must lie in [0, {MAX_GRID}]")
    if len(output_size) != 2 or min(int(output_size[0]), int(output_size[1])) < 1:
        raise ValueError(f"output_size must be (PH, PW) with both >= 1, got {tuple(output_size)}")
