# cython: language_level=3
# distutils: extra_compile_args = -ffp-contract=off
"""Mask pasting in Cython: same signature as `edudet.ops.masks.paste_masks_numpy`.

``paste_masks(padded_masks, boxes, out) -> out``: padded masks (K, P, P) float32/float64 C-contiguous, their
grown boxes (K, 4) int64 (inclusive pixel corners, within +-1e18), out (K, 1, H, W) zeros of the masks' dtype;
writes each box's visible window (clipped to the image: no input writes out of range). Checks (ValueError):
shapes that agree, boxes within +-1e18 (`edudet.ops.masks.check_paste_arguments`); dtypes and contiguity by the
typed memoryviews. Not checked: the masks' values.

OpenMP `prange` over masks (dynamic chunks of 1: boxes differ in size); each mask computes its window's row
and column sources and weights once (PyTorch's CPU bilinear rule, `edudet.ops.masks._resize_axis`), then
blends row by row in a small C function that GCC compiles twice (`target_clones`: with FMA instructions where
the CPU has them, chosen at load time, else plain; 3x faster than calling libm's `fma` per product).
Bit-identical to the NumPy reference: C's `fma`/`fmaf` round ``a * b + c`` once where the reference does, and
``-ffp-contract=off`` keeps the compiler from fusing anything else (GCC fuses by default when the target has
FMA instructions, as the FMA clone does). Fused types: one copy for float32, one for float64.
"""
import numpy as np

from cython.parallel import prange
from libc.math cimport floorf, fma, fmaf
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from edudet.ops.masks import _SMALL_OUTPUT, check_paste_arguments

ctypedef fused real:
    float
    double

# The blend of one output row, in C so that GCC can compile it twice: with FMA instructions for CPUs that have
# them (picked at load time by the loader: `target_clones`) and plain for the others. The same expressions
# either way (C's fma is exact everywhere); the FMA clone only calls no library function per pixel, ~3x faster.
cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define EDUDET_FMA_CLONES __attribute__((target_clones("fma", "default")))
    #else
    #define EDUDET_FMA_CLONES
    #endif
    #define EDUDET_BLEND_ROW(suffix, real, fma_fn)                                                           \
    EDUDET_FMA_CLONES static void edudet_blend_row_##suffix(                                                 \
            const real* upper, const real* lower, real high, real low, const int64_t* c0, const int64_t* c1,  \
            const real* hx, const real* lx, int64_t n, int small, real* out) {                               \
        int64_t j;                                                                                           \
        if (small) {                                                                                         \
            for (j = 0; j < n; j++) {                                                                        \
                real total = fma_fn(upper[c0[j]], high * hx[j], upper[c1[j]] * (high * lx[j]));              \
                total = fma_fn(lower[c0[j]], low * hx[j], total);                                            \
                out[j] = fma_fn(lower[c1[j]], low * lx[j], total);                                           \
            }                                                                                                \
        } else {                                                                                             \
            for (j = 0; j < n; j++) {                                                                        \
                real top = fma_fn(upper[c0[j]], hx[j], upper[c1[j]] * lx[j]);                                \
                real bottom = fma_fn(lower[c0[j]], hx[j], lower[c1[j]] * lx[j]);                             \
                out[j] = fma_fn(top, high, bottom * low);                                                    \
            }                                                                                                \
        }                                                                                                    \
    }
    EDUDET_BLEND_ROW(float, float, fmaf)
    EDUDET_BLEND_ROW(double, double, fma)
    """
    void edudet_blend_row_float(const float* upper, const float* lower, float high, float low,
                                const int64_t* c0, const int64_t* c1, const float* hx, const float* lx,
                                int64_t n, int small, float* out) noexcept nogil
    void edudet_blend_row_double(const double* upper, const double* lower, double high, double low,
                                 const int64_t* c0, const int64_t* c1, const double* hx, const double* lx,
                                 int64_t n, int small, double* out) noexcept nogil


cdef inline real _fma(real a, real b, real c) noexcept nogil:
    if real is float:
        return fmaf(a, b, c)
    else:
        return fma(a, b, c)


cdef inline int64_t _min(int64_t a, int64_t b) noexcept nogil:
    return a if a < b else b


cdef inline int64_t _max(int64_t a, int64_t b) noexcept nogil:
    return a if a > b else b


cdef void _resize_axis(int64_t out_size, int64_t in_size, int64_t first, int64_t n, int64_t* i0, int64_t* i1,
                       real* w0, real* w1) noexcept nogil:
    cdef int64_t t, low
    cdef real scale, src, weight
    if out_size == in_size:  # equal sizes copy
        for t in range(n):
            i0[t] = first + t
            i1[t] = first + t
            w0[t] = 1
            w1[t] = 0
        return
    scale = (<real>in_size) / (<real>out_size)
    for t in range(n):
        src = _fma(scale, <real>(first + t) + <real>0.5, <real>-0.5)
        if src < 0:
            src = 0
        # PyTorch floors in float32 even for float64 input (see the reference)
        low = _min(<int64_t>floorf(<float>src), in_size - 1)
        i0[t] = low
        i1[t] = _min(low + 1, in_size - 1)
        weight = src - <real>low
        weight = 0 if weight < 0 else (1 if weight > 1 else weight)
        w1[t] = weight
        w0[t] = 1 - weight


cdef int _paste_one(const real[:, ::1] grid, const int64_t* box, real[:, ::1] plane,
                    int64_t small_output) noexcept nogil:
    """Paste one mask; 1 if its scratch memory could not be allocated, else 0."""
    cdef int64_t x1 = box[0], y1 = box[1], x2 = box[2], y2 = box[3]
    cdef int64_t height = plane.shape[0], width = plane.shape[1]
    cdef int64_t box_w = _max(x2 - x1 + 1, 1), box_h = _max(y2 - y1 + 1, 1)
    cdef int64_t left = _max(x1, 0), right = _min(_min(x2 + 1, width), x1 + box_w)
    cdef int64_t top = _max(y1, 0), bottom = _min(_min(y2 + 1, height), y1 + box_h)
    cdef int64_t n_cols, n_rows, i
    cdef int64_t *c0
    cdef int64_t *c1
    cdef int64_t *r0
    cdef int64_t *r1
    cdef real *hx
    cdef real *lx
    cdef real *hy
    cdef real *ly
    cdef int small
    if right <= left or bottom <= top:
        return 0
    n_cols = right - left
    n_rows = bottom - top
    # one block: column then row indices (int64), column then row weights (real)
    c0 = <int64_t*>malloc(2 * (n_cols + n_rows) * (sizeof(int64_t) + sizeof(real)))
    if c0 == NULL:
        return 1
    c1 = c0 + n_cols
    r0 = c1 + n_cols
    r1 = r0 + n_rows
    hx = <real*>(r1 + n_rows)
    lx = hx + n_cols
    hy = lx + n_cols
    ly = hy + n_rows
    _resize_axis(box_w, grid.shape[1], left - x1, n_cols, c0, c1, hx, lx)
    _resize_axis(box_h, grid.shape[0], top - y1, n_rows, r0, r1, hy, ly)
    small = box_h + box_w <= small_output
    for i in range(n_rows):
        # small: the four corners weighted by products of the two axes' weights; else along x on both source
        # rows, then along y (see the reference's _bilinear)
        if real is float:
            edudet_blend_row_float(&grid[r0[i], 0], &grid[r1[i], 0], hy[i], ly[i], c0, c1, hx, lx, n_cols, small,
                                   &plane[top + i, left])
        else:
            edudet_blend_row_double(&grid[r0[i], 0], &grid[r1[i], 0], hy[i], ly[i], c0, c1, hx, lx, n_cols, small,
                                    &plane[top + i, left])
    free(c0)
    return 0


def _paste(const real[:, :, ::1] padded_masks, const int64_t[:, ::1] boxes, real[:, :, :, ::1] out):
    cdef Py_ssize_t k
    cdef int64_t small_output = _SMALL_OUTPUT
    cdef int failed = 0
    with nogil:
        for k in prange(boxes.shape[0], schedule="dynamic", chunksize=1):
            failed += _paste_one(padded_masks[k], &boxes[k, 0], out[k, 0], small_output)
    if failed:
        raise MemoryError(f"paste_masks_in_image: no memory for {failed} masks' resize tables")


def paste_masks(padded_masks, boxes, out):
    """See the module docstring: fills `out` (K, 1, H, W) in place and returns it."""
    check_paste_arguments(padded_masks, boxes, out)
    if len(boxes):
        _paste(padded_masks, boxes, out)
    return out
