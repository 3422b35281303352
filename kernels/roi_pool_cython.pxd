# cython: language_level=3
# The stable C-level API of edudet.kernels.roi_pool_cython (see docs/kernels.md). From a user's .pyx:
#     from edudet.kernels.roi_pool_cython cimport roi_pool_one
# built with cythonize(..., include_path=[edudet.kernels.get_include()]) and the extension's
# include_dirs=[numpy.get_include()]. Fused over float/double, defined here inline. No checks: the caller
# passes C-contiguous views, a finite box within +-1e15 after scaling.
from cython cimport floating
from libc.math cimport ceil, floor, round
from libc.stdint cimport int64_t


cdef inline void roi_pool_one(const floating[:, :, ::1] fmap, const floating* box, floating spatial_scale,
                              floating[:, :, ::1] out) noexcept nogil:
    """RoIPool of one RoI: fmap (C, H, W) of its image, box 4 contiguous (x1, y1, x2, y2) (e.g. &rois[k, 1])
    -> out (C, PH, PW), the output size taken from out's shape. torchvision's rule (see edudet.ops.roi_pool):
    corners rounded half away from zero, bins [floor(p * bin), ceil((p + 1) * bin)) clipped to the map, the
    max of each (strictly greater than -FLT_MAX), 0 for an empty bin. Bit-identical to edudet.ops.roi_pool."""
    cdef Py_ssize_t channels = out.shape[0], pooled_h = out.shape[1], pooled_w = out.shape[2]
    cdef Py_ssize_t height = fmap.shape[1], width = fmap.shape[2]
    cdef int64_t x1 = <int64_t>round(box[0] * spatial_scale), y1 = <int64_t>round(box[1] * spatial_scale)
    cdef int64_t x2 = <int64_t>round(box[2] * spatial_scale), y2 = <int64_t>round(box[3] * spatial_scale)
    cdef floating bin_h = <floating>(y2 - y1 + 1 if y2 - y1 + 1 > 1 else 1) / <floating>pooled_h
    cdef floating bin_w = <floating>(x2 - x1 + 1 if x2 - x1 + 1 > 1 else 1) / <floating>pooled_w
    cdef int64_t hs, he, ws, we, h, w
    cdef Py_ssize_t c, ph, pw
    cdef floating best, value
    for ph in range(pooled_h):
        hs = min(max(<int64_t>floor(<floating>ph * bin_h) + y1, 0), height)
        he = min(max(<int64_t>ceil(<floating>(ph + 1) * bin_h) + y1, 0), height)
        for pw in range(pooled_w):
            ws = min(max(<int64_t>floor(<floating>pw * bin_w) + x1, 0), width)
            we = min(max(<int64_t>ceil(<floating>(pw + 1) * bin_w) + x1, 0), width)
            for c in range(channels):
                if he <= hs or we <= ws:
                    out[c, ph, pw] = 0
                    continue
                best = -3.4028234663852886e38  # -FLT_MAX, torchvision's start in float64 too
                for h in range(hs, he):
                    for w in range(ws, we):
                        value = fmap[c, h, w]
                        if value > best:
                            best = value
                out[c, ph, pw] = best
