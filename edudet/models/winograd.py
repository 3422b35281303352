"""Winograd's minimal filtering F(2x2, 3x3): a 3x3 convolution with 2.25 times fewer multiplications.

The 3x3, stride-1 convolutions (FPN outputs, RPN and dense heads, ResNet's bottlenecks) hold most of a
detector's arithmetic. im2col computes each output pixel with 9 multiply-adds per input channel. Winograd's
algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016) computes a 2x2
block of outputs from the 4x4 input tile ``d`` that covers it with 16 products instead of 36::

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise; g the 3x3 filter)

        B^T = [1  0 -1  0]      G = [ 1    0    0 ]      A^T = [1  1  1  0]
              [0  1  1  0]          [1/2  1/2  1/2]            [0  1 -1 -1]
              [0 -1  1  0]          [1/2 -1/2  1/2]
              [0  1  0 -1]          [ 0    0    1 ]

(worked out in one dimension: outputs ``y0 = d0 g0 + d1 g1 + d2 g2`` and ``y1 = d1 g0 + d2 g1 + d3 g2`` from
the four products of ``(d0 - d2) g0``, ``(d1 + d2)(g0 + g1 + g2)/2``, ``(d2 - d1)(g0 - g1 + g2)/2``,
``(d1 - d3) g2``; the 2-D form nests it along both axes). Summed over input channels, the elementwise
product of each of the 16 tile positions becomes a matrix product: ``M[k] = U[k] @ V[k]`` with the
transformed filters ``U[k]`` (C_out, C_in) (computed once, at load) and the transformed tiles ``V[k]``
(C_in, tiles). So a convolution is an input transform (additions only), 16 BLAS products holding 4/9 of
im2col's multiply-adds, and an output transform (additions only). The transforms only add and subtract
(times 1/2 in the filters, exact), so the result differs from the direct sum by a few float32 roundings.
One difference beyond rounding: the transforms subtract input values from each other, so an inf in the
input (or a transform that overflows float32, values near 3e38) can give inf - inf, and every output of that
tile is NaN where the direct sum gives inf. Neither is a finite number; a detector's inputs are checked finite before they get here.

The tiles are taken a band of tile rows at a time, so V and M stay small (`_BAND_BYTES`). The two transforms
below are the NumPy reference; `edudet.kernels.winograd_numba` has their compiled twins (same signatures,
same bits), used when Numba is importable.
"""
from __future__ import annotations

import numpy as np

__all__ = ["filter_transform", "input_transform", "output_transform", "conv3x3", "pad_even_odd"]

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

# V and M of one band together: large enough for wide products (BLAS is slow on thin ones), small enough
# to stay in the last-level cache between the transform that writes them and the product that reads them
_BAND_BYTES = 48 * 2**20


def filter_transform(weight: np.ndarray) -> np.ndarray:
    """``(C_out, C_in, 3, 3)`` -> ``U`` ``(16, C_out, C_in)`` float32: ``G g G^T`` per filter, tile position
    ``k = 4 i + j`` first (computed in float64, rounded once)."""
    weight = np.asarray(weight, np.float64)
    out_channels, in_channels = weight.shape[:2]
    u = np.einsum("ia,ocab,jb->ijoc", G, weight, G)
    return np.ascontiguousarray(u.reshape(16, out_channels, in_channels).astype(np.float32))


def pad_even_odd(x: np.ndarray, first: int = 0, count: int | None = None):
    """``(N, C, H, W)`` -> the zero-padded image's even and odd columns for tile rows ``first .. first + count``
    (default: all ``ty = ceil(H / 2)``), each ``(N, C, 2 count + 2, tx + 1)``, and ``ty``, ``tx = ceil(W / 2)``.

    Tile row t reads padded rows ``2t .. 2t + 3``; padded row p is image row ``p - 1`` and padded column q
    image column ``q - 1``, so the even columns hold the image's odd ones and the other way round. The
    padding (one pixel on the top and left, one or two on the bottom and right) is zero.
    """
    n, c, h, w = x.shape
    tiles_y, tiles_x = (h + 1) // 2, (w + 1) // 2
    count = tiles_y - first if count is None else count
    even = np.zeros((n, c, 2 * count + 2, tiles_x + 1), np.float32)
    odd = np.zeros_like(even)
    top = 2 * first - 1  # the image row of the first padded row
    low, high = max(top, 0), min(top + 2 * count + 2, h)
    even[:, :, low - top: high - top, 1: 1 + w // 2] = x[:, :, low:high, 1::2]
    odd[:, :, low - top: high - top, : (w + 1) // 2] = x[:, :, low:high, 0::2]
    return even, odd, tiles_y, tiles_x


def _segments(tiles_y: int, row0: int, rows: int):
    """The images a band of tile rows (counted over the batch) crosses: (image, first row in it, count, offset)."""
    g = row0
    while g < row0 + rows:
        n, first = divmod(g, tiles_y)
        count = min(tiles_y - first, row0 + rows - g)
        yield n, first, count, g - row0
        g += count


def input_transform(even, odd, tiles_y: int, tiles_x: int, row0: int, rows: int, v: np.ndarray) -> None:
    """``V = B^T d B`` of every 4x4 tile in tile rows ``row0 .. row0 + rows`` (counted over the batch: row g
    is image ``g // tiles_y``) -> v ``(16, C, rows tiles_x)``, written in place.

    Rows first: tile row t reads padded rows ``2t .. 2t + 3``; the combinations ``d0 - d2``, ``d1 + d2``,
    ``d2 - d1``, ``d1 - d3`` of those rows are whole-row operations. Then the same combination of the four
    columns ``2t .. 2t + 3``, which are ``even[t], odd[t], even[t + 1], odd[t + 1]``.
    """
    channels = even.shape[1]
    v = v.reshape(16, channels, rows, tiles_x)
    combinations = ((np.subtract, 0, 2), (np.add, 1, 2), (np.subtract, 2, 1), (np.subtract, 1, 3))
    for n, first, count, at in _segments(tiles_y, row0, rows):
        block = v[:, :, at: at + count]

        def tile_row(array, i):  # row i of every tile in the segment: (C, count, tiles_x + 1)
            return array[n, :, 2 * first + i: 2 * (first + count) + i - 1: 2]

        for i, (combine, a, b) in enumerate(combinations):
            s_even = combine(tile_row(even, a), tile_row(even, b))
            s_odd = combine(tile_row(odd, a), tile_row(odd, b))
            np.subtract(s_even[..., :-1], s_even[..., 1:], out=block[4 * i])
            np.add(s_odd[..., :-1], s_even[..., 1:], out=block[4 * i + 1])
            np.subtract(s_even[..., 1:], s_odd[..., :-1], out=block[4 * i + 2])
            np.subtract(s_odd[..., :-1], s_odd[..., 1:], out=block[4 * i + 3])


def output_transform(m, bias, relu: bool, tiles_y: int, tiles_x: int, row0: int, rows: int, out) -> None:
    """``Y = A^T M A + bias`` (then ReLU) of tile rows ``row0 .. row0 + rows``: m ``(16, C_out, rows tiles_x)``
    -> the 2x2 output tiles, written into out ``(N, C_out, H, W)`` (a last odd row / column is dropped)."""
    out_channels = m.shape[1]
    height, width = out.shape[2:]
    m = m.reshape(16, out_channels, rows, tiles_x)
    for n, first, count, at in _segments(tiles_y, row0, rows):
        part = m[:, :, at: at + count]
        # A^T M: rows 0 (m0 + m1 + m2) and 1 (m1 - m2 - m3) of the 4 tile columns j
        top = [part[j] + part[4 + j] + part[8 + j] for j in range(4)]
        bottom = [part[4 + j] - part[8 + j] - part[12 + j] for j in range(4)]
        tiles = np.empty((out_channels, count, 2, tiles_x, 2), np.float32)  # (o, tile row, dy, tile, dx)
        for dy, q in enumerate((top, bottom)):
            tiles[:, :, dy, :, 0] = q[0] + q[1] + q[2] + bias[:, None, None]
            tiles[:, :, dy, :, 1] = q[1] - q[2] - q[3] + bias[:, None, None]
        y0 = 2 * first
        y1 = min(height, 2 * (first + count))
        block = tiles.reshape(out_channels, 2 * count, 2 * tiles_x)[:, : y1 - y0, :width]
        out[n, :, y0:y1] = np.maximum(block, 0) if relu else block


def _kernels():
    """The Numba transforms, imported (and compiled) on first use; the NumPy ones where Numba is unusable."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from ..kernels.winograd_numba import winograd_input_transform, winograd_output_transform
            _KERNELS = (winograd_input_transform, winograd_output_transform)
        except ImportError:
            _KERNELS = (input_transform, output_transform)
    return _KERNELS


_KERNELS = None


def conv3x3(x: np.ndarray, filters: np.ndarray, bias: np.ndarray, relu: bool = False,
            transforms=None) -> np.ndarray:
    """``(N, C_in, H, W)`` float32 -> ``(N, C_out, H, W)``: a 3x3, stride-1, padding-1 convolution (+ bias, then
    ReLU) with `filters` = ``filter_transform(weight)`` ``(16, C_out, C_in)``. `transforms`: an
    (input, output) pair of transform functions (default: the compiled ones).

    A band is a run of tile rows within one image (large maps) or several whole images (small maps, such as
    RoIs); only the band's rows are padded and split into even and odd columns, so the copies stay small.
    """
    n, channels, h, w = x.shape
    out_channels = filters.shape[1]
    out = np.empty((n, out_channels, h, w), np.float32)
    if out.size == 0:
        return out
    forward, backward = transforms or _kernels()
    tiles_y, tiles_x = (h + 1) // 2, (w + 1) // 2
    rows = max(1, _BAND_BYTES // (4 * 16 * (channels + out_channels) * tiles_x))
    if rows >= tiles_y:  # whole images per band
        images = rows // tiles_y
        bands = [(i, min(images, n - i), 0, tiles_y) for i in range(0, n, images)]
    else:  # runs of tile rows of one image
        bands = [(i, 1, first, min(rows, tiles_y - first)) for i in range(n) for first in range(0, tiles_y, rows)]
    columns = max(count * span * tiles_x for _, count, _, span in bands)
    v_buffer = np.empty(16 * channels * columns, np.float32)
    m_buffer = np.empty(16 * out_channels * columns, np.float32)
    for image, count, first, span in bands:
        even, odd, _, _ = pad_even_odd(x[image: image + count], first, span)
        tiles = count * span * tiles_x
        v = v_buffer[: 16 * channels * tiles].reshape(16, channels, tiles)
        m = m_buffer[: 16 * out_channels * tiles].reshape(16, out_channels, tiles)
        # the band's even / odd arrays hold `span` tile rows per image: numbered from 0 there
        forward(even, odd, span, tiles_x, 0, count * span, v)
        np.matmul(filters, v, out=m)  # 16 BLAS products (C_out, C_in) @ (C_in, tiles)
        # out holds every tile row of every image: the band's rows counted from the batch's first
        backward(m, bias, relu, tiles_y, tiles_x, image * tiles_y + first, count * span, out)
    return out
