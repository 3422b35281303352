"""numba.cuda twin of `edudet.ops.roi_align_rotated`: same signature, the reference's arithmetic.

``roi_align_rotated(input, batch_index, plan, output_size)``: (N, C, H, W) float32/float64 feature maps,
(K,) int64 batch indices and the (K, 11) float64 plan of `edudet.ops.roi_align_rotated.rotated_sampling_plan`
-> (K, C, PH, PW) float64, host arrays in and out. One thread per output element ``(k, c, ph, pw)`` (x varies
fastest: neighbouring threads write neighbouring bins), each adding its bin's samples in the reference's
order. Under ``NUMBA_ENABLE_CUDASIM=1`` (numba's simulator, slow: small inputs only) the results are bitwise
equal to the reference; on a real GPU the compiler fuses multiply-adds, so a value can differ in the last bits
(relative 1e-15 in float64).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from edudet.kernels._roi_align_rotated_common import check_rotated_plan

_THREADS = 128


@cuda.jit
def _roi_align_rotated_kernel(input, batch_index, plan, out):
    index = cuda.grid(1)
    num_rois, channels, pooled_h, pooled_w = out.shape
    if index >= num_rois * channels * pooled_h * pooled_w:
        return
    pw = index % pooled_w
    ph = (index // pooled_w) % pooled_h
    c = (index // (pooled_w * pooled_h)) % channels
    k = index // (pooled_w * pooled_h * channels)
    n = batch_index[k]
    height = input.shape[2]
    width = input.shape[3]
    centre_x = plan[k, 0]
    centre_y = plan[k, 1]
    start_x = plan[k, 2]
    start_y = plan[k, 3]
    bin_w = plan[k, 4]
    bin_h = plan[k, 5]
    cos_t = plan[k, 6]
    sin_t = plan[k, 7]
    grid_w = plan[k, 8]
    grid_h = plan[k, 9]
    acc = 0.0
    for iy in range(int(grid_h)):
        yy = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        for ix in range(int(grid_w)):
            xx = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            y = yy * cos_t - xx * sin_t + centre_y  # turn about the centre, then move there
            x = yy * sin_t + xx * cos_t + centre_x
            if y < -1.0 or y > height or x < -1.0 or x > width:
                continue  # more than a pixel outside the map: reads 0 (the reference adds 0)
            y = max(y, 0.0)
            x = max(x, 0.0)
            y_low = int(math.floor(y))
            x_low = int(math.floor(x))
            if y_low >= height - 1:
                y_low = height - 1
                y_high = y_low
                y = float(y_low)
            else:
                y_high = y_low + 1
            if x_low >= width - 1:
                x_low = width - 1
                x_high = x_low
                x = float(x_low)
            else:
                x_high = x_low + 1
            ly = y - y_low
            lx = x - x_low
            hy = 1.0 - ly
            hx = 1.0 - lx
            # float(): read float32 maps as float64 (the simulator would otherwise multiply in float32)
            acc += (hy * hx * float(input[n, c, y_low, x_low]) + hy * lx * float(input[n, c, y_low, x_high])
                    + ly * hx * float(input[n, c, y_high, x_low]) + ly * lx * float(input[n, c, y_high, x_high]))
    out[k, c, ph, pw] = acc / plan[k, 10]


def roi_align_rotated(input, batch_index, plan, output_size):
    """(N, C, H, W), (K,) int64, (K, 11) float64 plan, (PH, PW) -> (K, C, PH, PW) float64."""
    check_rotated_plan(input, batch_index, plan, output_size)  # a hand-made plan must not read outside
    shape = (len(plan), input.shape[1], int(output_size[0]), int(output_size[1]))
    total = int(np.prod(shape))
    if total == 0:
        return np.zeros(shape)
    out = cuda.device_array(shape, dtype=np.float64)
    blocks = math.ceil(total / _THREADS)
    _roi_align_rotated_kernel[blocks, _THREADS](cuda.to_device(input), cuda.to_device(batch_index),
                                                cuda.to_device(plan), out)
    return out.copy_to_host()
