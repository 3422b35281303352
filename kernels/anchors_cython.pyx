# cython: language_level=3
"""Cython twin of `edudet.anchors.grid_anchors_numpy`: every level's anchor grid written straight into the output.

Public names (stable; see docs/kernels.md):

* ``grid_anchors(base_anchors, base_counts, feature_shapes, strides, center_offset, out) -> out`` (``def``):
  base_anchors (B, 4) float32, the levels' zero-centred base anchors stacked; base_counts (L,) int64, A_l;
  feature_shapes (L, 2) int64 ``(h, w)``; strides (L, 2) int64 ``(stride_h, stride_w)``; center_offset a float
  (used as float32); out (sum_l h_l * w_l * A_l, 4) float32 or float64, C-contiguous, filled level by level,
  location by location (row-major), base anchor by base anchor, and returned. Serial on purpose (writing 16 or
32 bytes per anchor; threads would only add a fork/join that a busy machine stretches into milliseconds).
* ``fill_anchor_rows(base, row_start, row_stop, width, stride_h, stride_w, center_offset, out)``:
  ``cdef inline void ... noexcept nogil``, defined in ``anchors_cython.pxd``: rows of one level into its block.

Checks at entry of ``grid_anchors`` (ValueError naming the argument): ndarrays, 2-D shapes and column counts,
C-contiguity, dtypes (float32 base, int64 counts/shapes/strides, float32/float64 out), L equal everywhere,
non-negative counts and shapes summing to B rows and to out's rows (so no write leaves out). With
``EDUDET_CHECK_KERNELS=1``: base anchors finite and within 1e15 too. ``fill_anchor_rows`` checks nothing.

Example (from a user's .pyx)::

    from edudet.kernels.anchors_cython cimport fill_anchor_rows
    def one_level(const float[:, ::1] base, Py_ssize_t h, Py_ssize_t w, long stride, float[:, ::1] out):
        with nogil:
            fill_anchor_rows(base, 0, h, w, stride, stride, 0, out)
"""
import numpy as np
from cython cimport floating
from libc.stdint cimport int64_t

from ._checks import CHECK_KERNELS, check_structure, check_values


# fill_anchor_rows comes from anchors_cython.pxd (Cython reads a module's own .pxd first): one definition


cdef void _fill(const float[:, ::1] base_anchors, const int64_t[::1] base_counts, const int64_t[:, ::1] shapes,
                const int64_t[:, ::1] strides, float center_offset, floating[:, ::1] out):
    cdef Py_ssize_t level, start = 0, first_base = 0, count, height, width
    cdef const float[:, ::1] base
    cdef floating[:, ::1] block
    for level in range(base_counts.shape[0]):
        count = base_counts[level]
        height = shapes[level, 0]
        width = shapes[level, 1]
        if height * width * count:
            base = base_anchors[first_base:first_base + count]
            block = out[start:start + height * width * count]
            with nogil:
                fill_anchor_rows(base, 0, height, width, strides[level, 0], strides[level, 1], center_offset, block)
        start += height * width * count
        first_base += count


def grid_anchors(base_anchors, base_counts, feature_shapes, strides, center_offset, out):
    """base_anchors (B, 4) float32, base_counts (L,), feature_shapes (L, 2), strides (L, 2) int64 -> out, filled."""
    check_structure("base_anchors", base_anchors, columns=4, dtype=np.float32)
    check_structure("base_counts", base_counts, ndim=1, dtype=np.int64)
    num_levels = base_counts.shape[0]
    check_structure("feature_shapes", feature_shapes, columns=2, length=num_levels, dtype=np.int64)
    check_structure("strides", strides, columns=2, length=num_levels, dtype=np.int64)
    check_structure("out", out, columns=4)
    if out.dtype not in (np.float32, np.float64):
        raise ValueError(f"out must be float32 or float64, got {out.dtype}")
    if (base_counts < 0).any() or (feature_shapes < 0).any():
        raise ValueError("base_counts and feature_shapes must be >= 0")
    if int(base_counts.sum()) != base_anchors.shape[0]:
        raise ValueError(f"base_counts sum to {int(base_counts.sum())} but base_anchors has "
                         f"{base_anchors.shape[0]} rows")
    total = sum(int(h) * int(w) * int(a) for (h, w), a in zip(feature_shapes, base_counts))
    if total != out.shape[0]:
        raise ValueError(f"out must have sum_l h_l * w_l * A_l = {total} rows, got {out.shape[0]}")
    if CHECK_KERNELS:
        check_values(anchors=base_anchors)
    if out.dtype == np.float32:
        _fill[float](base_anchors, base_counts, feature_shapes, strides, center_offset, out)
    else:
        _fill[double](base_anchors, base_counts, feature_shapes, strides, center_offset, out)
    return out
