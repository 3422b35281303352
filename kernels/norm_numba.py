"""Numba twin of `edudet.models.layers.GroupNorm`: the whole normalisation in two passes over the map, in place.

``group_norm_(x, num_groups, weight, bias, eps, relu)``
    x: (N, C, L) C-contiguous float32, overwritten with ``(x - mean_g) / sqrt(var_g + eps) * weight_c + bias_c``
    (then ReLU when `relu`); weight, bias: (C,) float32; C divisible by `num_groups` (not checked here:
    `GroupNorm` builds the arguments).

Why a kernel: the NumPy reference makes about ten passes over the activation (a centred copy, its square, the
scale, the shift, the ReLU), and FCOS's head runs eight group norms on every level of every image. Here one
pass reads each group once, accumulating the sum and the sum of squares in float64, and a second pass writes
``x scale_c + shift_c`` with the ReLU folded in, on one thread (in FCOS's head the norms run between BLAS products, and an
OpenMP team spinning beside BLAS's threads slowed the head by 15%). The sums are of ``x - k``, k the
group's first value (the "shifted data" variance): ``E[x^2] - mean^2`` of the raw values cancels
catastrophically once |mean| / std passes ~1e7 (a near-constant group of 1e8 gave -2048 for -0.11, one near
3e38 a variance of 0 and NaN), while no value of a group lies more than sqrt(count) standard deviations from
its mean, so ``E[(x - k)^2] - (mean - k)^2`` loses at most a factor count to cancellation, in float64.
Squares are taken in float64, so a group of values up to float32's max still gets its true variance (the NumPy
reference squares in float32 as torch does, and redoes in float64 only the groups whose float32 squares overflow
or underflow: |x - mean| beyond ~1e19, where torch's output is the bias or NaN, or below ~1e-19).
"""
from __future__ import annotations

import numpy as np
from numba import njit


# numpy's error model: eps = 0 on a constant group divides by zero, which must give inf (then NaN, as torch), not raise
@njit(cache=True, error_model="numpy")
def group_norm_(x, num_groups, weight, bias, eps, relu):
    images, channels, length = x.shape
    per_group = channels // num_groups
    count = per_group * length
    for job in range(images * num_groups):
        image, group = job // num_groups, job % num_groups
        first = group * per_group
        if count == 0:
            continue  # an empty map: nothing to read or write
        pivot = np.float64(x[image, first, 0])  # the shift k: within sqrt(count) std of the mean
        total = 0.0
        squares = 0.0
        for channel in range(first, first + per_group):
            for k in range(length):
                value = np.float64(x[image, channel, k]) - pivot
                total += value
                squares += value * value
        shifted_mean = total / count
        mean = pivot + shifted_mean
        # rounding can make a constant group's slightly < 0
        variance = max(squares / count - shifted_mean * shifted_mean, 0.0)
        inv_std = 1.0 / np.sqrt(variance + eps)
        for channel in range(first, first + per_group):
            scale = inv_std * weight[channel]
            shift = np.float32(bias[channel] - mean * scale)
            scale32 = np.float32(scale)
            for k in range(length):
                value = x[image, channel, k] * scale32 + shift
                x[image, channel, k] = max(value, np.float32(0.0)) if relu else value
    return x
