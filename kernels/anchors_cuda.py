"""numba.cuda twin of `edudet.anchors.grid_anchors_numpy`: the anchor grid, one thread per anchor.

Public names (stable; see docs/kernels.md):

* ``grid_anchors(base_anchors, base_counts, feature_shapes, strides, center_offset, out) -> out``: base_anchors
  (B, 4) float32 (host or device), the levels' zero-centred base anchors stacked; base_counts (L,) int64, A_l;
  feature_shapes (L, 2) int64 ``(h, w)``; strides (L, 2) int64 ``(stride_h, stride_w)`` (these three on the
  host: they size the launches); center_offset a float (used as float32); out (sum_l h_l * w_l * A_l, 4)
  float32 or float64, C-contiguous. A device `out` is filled in place and returned (no copy to the host); a
  host `out` is filled through a device buffer and returned.
* ``anchor_xyxy(base, stride_h, stride_w, i, j, center_offset) -> (x1, y1, x2, y2)``
  (``@cuda.jit(device=True)``): base anchor `base` (length-4 float32) at location (i, j), in float32.

Checks at entry of ``grid_anchors`` (ValueError naming the argument): shapes and column counts, C-contiguity,
dtypes, L equal everywhere, non-negative counts and shapes summing to B rows and to out's rows. With
``EDUDET_CHECK_KERNELS=1``: finite base anchors within 1e15. On a GPU the compiler may fuse
``j * stride + center_offset * stride`` into one multiply-add: for center offsets 0 and 0.5 (exact products)
the values are the reference's; other offsets may differ in the last bit. Runs under ``NUMBA_ENABLE_CUDASIM=1``.

Example::

    import numpy as np
    from numba import cuda
    from edudet.kernels.anchors_cuda import grid_anchors
    base = np.array([[-16, -16, 16, 16]], dtype=np.float32)
    out = cuda.device_array((2 * 3, 4), dtype=np.float32)              # stays on the device
    grid_anchors(base, np.array([1]), np.array([[2, 3]]), np.array([[8, 8]]), 0.0, out).copy_to_host()[4]
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from ._checks import CHECK_KERNELS, check_structure, check_values
from .matching_cuda import _check_input, _device_view, _host, _on_device

_THREADS = 256


@cuda.jit(device=True)
def anchor_xyxy(base, stride_h, stride_w, i, j, center_offset):
    """Base anchor `base` (length-4 float32) at location (i, j): ``base + (x, y, x, y)`` in float32."""
    # the int64 shift rounded to float32 once, plus the cell's float32 offset, as the NumPy reference
    x = float32(j * stride_w) + float32(center_offset) * float32(stride_w)
    y = float32(i * stride_h) + float32(center_offset) * float32(stride_h)
    return base[0] + x, base[1] + y, base[2] + x, base[3] + y


@cuda.jit
def _level_kernel(base, height, width, stride_h, stride_w, center_offset, out):
    t = cuda.grid(1)
    count = base.shape[0]
    if t >= height * width * count:
        return
    a = t % count
    j = (t // count) % width
    i = t // (count * width)
    x1, y1, x2, y2 = anchor_xyxy(base[a], stride_h, stride_w, i, j, center_offset)
    out[t, 0] = x1
    out[t, 1] = y1
    out[t, 2] = x2
    out[t, 3] = y2


def grid_anchors(base_anchors, base_counts, feature_shapes, strides, center_offset, out):
    """base_anchors (B, 4) float32, base_counts (L,), feature_shapes (L, 2), strides (L, 2) int64 -> out, filled."""
    _check_input("base_anchors", base_anchors, columns=4, dtype=np.float32)
    check_structure("base_counts", base_counts, ndim=1, dtype=np.int64)
    num_levels = base_counts.shape[0]
    check_structure("feature_shapes", feature_shapes, columns=2, length=num_levels, dtype=np.int64)
    check_structure("strides", strides, columns=2, length=num_levels, dtype=np.int64)
    _check_input("out", out, columns=4)
    if np.dtype(out.dtype) not in (np.float32, np.float64):
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
        check_values(anchors=_host(base_anchors))
    d_base = _on_device(base_anchors)[0]
    d_out = _device_view(out)
    host_out = d_out is None
    if host_out:
        d_out = cuda.device_array(out.shape, dtype=out.dtype)
    offset = np.float32(center_offset)  # a float32 argument: the kernel's arithmetic stays float32
    start, first_base = 0, 0
    for count, (height, width), (stride_h, stride_w) in zip(base_counts.tolist(), feature_shapes.tolist(),
                                                            strides.tolist()):
        size = height * width * count
        if size:
            _level_kernel[math.ceil(size / _THREADS), _THREADS](d_base[first_base:first_base + count], height, width,
                                                                stride_h, stride_w, offset, d_out[start:start + size])
        start += size
        first_base += count
    if host_out:
        d_out.copy_to_host(out)
    return out
