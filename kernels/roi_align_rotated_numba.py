"""Numba twin of `edudet.ops.roi_align_rotated`: same signature, same arithmetic, bitwise-equal results.

``roi_align_rotated(input, batch_index, plan, output_size)``: (N, C, H, W) float32/float64 feature maps,
(K,) int64 batch indices and the (K, 11) float64 plan of `edudet.ops.roi_align_rotated.rotated_sampling_plan`
-> (K, C, PH, PW) float64. Each sample's four bilinear weights and positions are computed once per RoI and
bin and reused for every channel (the reference recomputes them per channel block); RoIs run in parallel.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from edudet.kernels._roi_align_rotated_common import check_rotated_plan


@njit(cache=True)
def _weights(height, width, y, x):
    """RoIAlign's bilinear rule at (y, x) inside [-1, H] x [-1, W]: (w1, w2, w3, w4, y_low, y_high, x_low, x_high)."""
    y = max(y, 0.0)
    x = max(x, 0.0)
    y_low = int(np.floor(y))
    x_low = int(np.floor(x))
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly = y - y_low
    lx = x - x_low
    hy = 1.0 - ly
    hx = 1.0 - lx
    return hy * hx, hy * lx, ly * hx, ly * lx, y_low, y_high, x_low, x_high


@njit(cache=True, parallel=True)
def _roi_align_rotated(input, batch_index, plan, pooled_h, pooled_w):
    channels, height, width = input.shape[1], input.shape[2], input.shape[3]
    out = np.zeros((plan.shape[0], channels, pooled_h, pooled_w))
    for k in prange(plan.shape[0]):
        centre_x, centre_y, start_x, start_y = plan[k, 0], plan[k, 1], plan[k, 2], plan[k, 3]
        bin_w, bin_h, cos, sin = plan[k, 4], plan[k, 5], plan[k, 6], plan[k, 7]
        grid_w, grid_h, count = plan[k, 8], plan[k, 9], plan[k, 10]
        b = batch_index[k]
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                for iy in range(int(grid_h)):
                    yy = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(int(grid_w)):
                        xx = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        y = yy * cos - xx * sin + centre_y
                        x = yy * sin + xx * cos + centre_x
                        if y < -1.0 or y > height or x < -1.0 or x > width:
                            continue  # more than a pixel outside the map: reads 0 (the reference adds 0)
                        w1, w2, w3, w4, y0, y1, x0, x1 = _weights(height, width, y, x)
                        for c in range(channels):
                            out[k, c, ph, pw] += (w1 * input[b, c, y0, x0] + w2 * input[b, c, y0, x1]
                                                  + w3 * input[b, c, y1, x0] + w4 * input[b, c, y1, x1])
                for c in range(channels):
                    out[k, c, ph, pw] /= count
    return out


def roi_align_rotated(input, batch_index, plan, output_size):
    """(N, C, H, W), (K,) int64, (K, 11) float64 plan, (PH, PW) -> (K, C, PH, PW) float64."""
    check_rotated_plan(input, batch_index, plan, output_size)  # Numba does no bounds checks: refuse a bad plan
    return _roi_align_rotated(input, batch_index, plan, int(output_size[0]), int(output_size[1]))
