"""Numba twins of `edudet.models.winograd`'s two transforms (same signatures, same operations in the same order,
so the same bits): the 4x4 input tiles to ``V = B^T d B`` and the products ``M`` back to 2x2 output tiles.

Both loop over one row of tiles at a time with unit-stride inner loops (the padded image is stored as its
even and odd columns, so a tile's four columns are ``even[t], odd[t], even[t + 1], odd[t + 1]``), which the
compiler vectorises. They run on one thread: the products between them run on BLAS's threads, and an
OpenMP team spinning beside those would slow them down more than it gains.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["winograd_input_transform", "winograd_output_transform"]


@njit(cache=True, boundscheck=False)
def _columns(s_even, s_odd, v0, v1, v2, v3, tiles):
    # d B for one row combination: columns 2t .. 2t + 3 of the row are s_even[t], s_odd[t], s_even[t+1], s_odd[t+1]
    for t in range(tiles):
        v0[t] = s_even[t] - s_even[t + 1]
    for t in range(tiles):
        v1[t] = s_odd[t] + s_even[t + 1]
    for t in range(tiles):
        v2[t] = s_even[t + 1] - s_odd[t]
    for t in range(tiles):
        v3[t] = s_odd[t] - s_odd[t + 1]


@njit(cache=True, boundscheck=False)
def winograd_input_transform(even, odd, tiles_y, tiles_x, row0, rows, v):
    """even, odd (N, C, 2 tiles_y + 2, tiles_x + 1) float32; tile rows ``row0 .. row0 + rows`` counted over the
    whole batch (row g is image ``g // tiles_y``) -> v (16, C, rows tiles_x), written in place."""
    channels = even.shape[1]
    width = tiles_x + 1
    s = np.empty((8, width), np.float32)  # B^T d: 4 row combinations, each as its even and odd columns
    for c in range(channels):
        for g in range(rows):
            n = (row0 + g) // tiles_y
            r = 2 * ((row0 + g) % tiles_y)
            e0, e1, e2, e3 = even[n, c, r], even[n, c, r + 1], even[n, c, r + 2], even[n, c, r + 3]
            o0, o1, o2, o3 = odd[n, c, r], odd[n, c, r + 1], odd[n, c, r + 2], odd[n, c, r + 3]
            for t in range(width):
                s[0, t] = e0[t] - e2[t]
            for t in range(width):
                s[1, t] = o0[t] - o2[t]
            for t in range(width):
                s[2, t] = e1[t] + e2[t]
            for t in range(width):
                s[3, t] = o1[t] + o2[t]
            for t in range(width):
                s[4, t] = e2[t] - e1[t]
            for t in range(width):
                s[5, t] = o2[t] - o1[t]
            for t in range(width):
                s[6, t] = e1[t] - e3[t]
            for t in range(width):
                s[7, t] = o1[t] - o3[t]
            a = g * tiles_x
            b = a + tiles_x
            for i in range(4):
                _columns(s[2 * i], s[2 * i + 1], v[4 * i, c, a:b], v[4 * i + 1, c, a:b], v[4 * i + 2, c, a:b],
                         v[4 * i + 3, c, a:b], tiles_x)


@njit(cache=True, boundscheck=False)
def winograd_output_transform(m, bias, relu, tiles_y, tiles_x, row0, rows, out):
    """m (16, C_out, rows tiles_x) -> the 2x2 tiles ``A^T M A + bias`` (then ReLU) of tile rows
    ``row0 .. row0 + rows`` written into out (N, C_out, H, W); the last row / column is dropped when odd."""
    out_channels = m.shape[1]
    height, width = out.shape[2], out.shape[3]
    pairs = width // 2  # tiles whose second column lies inside the image
    r = np.empty((8, tiles_x), np.float32)  # A^T M: 2 rows of 4 columns
    for o in range(out_channels):
        bias_o = bias[o]
        for g in range(rows):
            n = (row0 + g) // tiles_y
            y = 2 * ((row0 + g) % tiles_y)
            a = g * tiles_x
            b = a + tiles_x
            for j in range(4):
                p0, p1, p2, p3 = m[j, o, a:b], m[4 + j, o, a:b], m[8 + j, o, a:b], m[12 + j, o, a:b]
                top, bottom = r[j], r[4 + j]
                for t in range(tiles_x):
                    top[t] = p0[t] + p1[t] + p2[t]
                for t in range(tiles_x):
                    bottom[t] = p1[t] - p2[t] - p3[t]
            for half in range(2):
                if y + half >= height:
                    break
                row = out[n, o, y + half]
                q0, q1, q2, q3 = r[4 * half], r[4 * half + 1], r[4 * half + 2], r[4 * half + 3]
                for t in range(pairs):
                    row[2 * t] = q0[t] + q1[t] + q2[t] + bias_o
                    row[2 * t + 1] = q1[t] - q2[t] - q3[t] + bias_o
                if pairs < tiles_x:
                    row[2 * pairs] = q0[pairs] + q1[pairs] + q2[pairs] + bias_o
                if relu:
                    for x in range(width):
                        if row[x] < 0:  # NaN stays NaN, as np.maximum(x, 0) keeps it
                            row[x] = 0.0
