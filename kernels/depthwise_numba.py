"""Depthwise convolution in Numba, channels-last: MobileNetV3's k x k per-channel filters.

Same arithmetic as the NumPy reference (`edudet.models.mobilenet_v3.depthwise_conv2d_numpy`): each output
starts at the channel's bias and adds ``weight[tap] * input`` tap by tap, in float32, taps in row-major
order, then the activation, so the two give the same values. The layout is (N, H, W, C): one output pixel's
channels sit side by side, so the innermost loop runs over channels with unit steps (vector instructions for
any map size), a pixel's partial sums stay in one small buffer, taps on the zero padding are skipped and
nothing is copied. In (N, C, H, W) the vectors would run along a row instead, and MobileNetV3's late maps
are 10 to 15 pixels wide with up to 960 channels: measured on its layers at 320 x 480 (one thread), the
channels-last loop is 3 to 14x faster than the row loop was (e.g. 960 channels, 10 x 15, 5 x 5: 4.1 -> 0.4 ms).
One thread: in a model these layers run between BLAS products, and an OpenMP team spinning beside BLAS's
threads cost more than it gave. Inputs are clean (the caller validates): ``x`` (N, H, W, C) float32,
contiguous, ``taps`` (k k, C) float32 contiguous, ``bias`` (C,) float32.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# activation codes shared with the reference: 0 none, 1 ReLU, 2 hardswish
RELU, HARDSWISH = 1, 2


@njit(cache=True, inline="always")
def _activated(value, activation):
    """`value` through the activation, rounded as the reference: ReLU keeps NaN (``np.maximum``), hardswish
    takes the product first, then the division (as PyTorch)."""
    if activation == RELU:
        return np.float32(0) if value < 0 else value
    if activation == HARDSWISH:
        gate = value + np.float32(3)
        gate = np.float32(0) if gate < 0 else (np.float32(6) if gate > np.float32(6) else gate)
        return (value * gate) / np.float32(6)
    return value


@njit(cache=True)
def depthwise_conv2d(x, taps, bias, kernel_size, stride, padding, dilation, out_h, out_w, activation):
    """(N, out_h, out_w, C) float32: ``out[n, y, x, c] = act(bias[c] + sum over (dy, dx) of
    taps[dy k + dx, c] * x[n, stride y + dilation dy - padding, stride x + dilation dx - padding, c])``,
    zero outside the map."""
    n, height, width, channels = x.shape
    out = np.empty((n, out_h, out_w, channels), np.float32)
    total = np.empty(channels, np.float32)
    for image in range(n):
        for y in range(out_h):
            for column in range(out_w):
                total[:] = bias
                for dy in range(kernel_size):
                    row = stride * y + dilation * dy - padding
                    if row < 0 or row >= height:
                        continue  # a padding row: every product is 0
                    for dx in range(kernel_size):
                        col = stride * column + dilation * dx - padding
                        if col < 0 or col >= width:
                            continue
                        pixel, weight = x[image, row, col], taps[dy * kernel_size + dx]
                        for c in range(channels):
                            total[c] += weight[c] * pixel[c]
                target = out[image, y, column]
                for c in range(channels):
                    target[c] = _activated(total[c], activation)
    return out


@njit(cache=True)
def bias_activation(out, bias, activation):
    """In place on ``out`` (M, C) float32 contiguous: ``out[m, c] = act(out[m, c] + bias[c])``, one pass."""
    rows, channels = out.shape
    for m in range(rows):
        target = out[m]
        for c in range(channels):
            target[c] = _activated(target[c] + bias[c], activation)
    return out
