# cython: language_level=3
# Stable cdef function of edudet.kernels.anchors_cython for a user's .pyx (see docs/kernels.md):
#     from edudet.kernels.anchors_cython cimport fill_anchor_rows
# compiled with cythonize(..., include_path=[edudet.kernels.get_include()]). It is `inline` and defined here, in
# the .pxd, so that it compiles into the user's module for both output types (Cython exports no fused function
# across modules).
#
# fill_anchor_rows(base, row_start, row_stop, width, stride_h, stride_w, center_offset, out): rows
#     [row_start, row_stop) of one level's anchor grid into `out`, that level's (h * width * A, 4) block: anchor
#     (i, j, a) = base[a] + (x, y, x, y), x = j * stride_w + center_offset * stride_w in float32 (y alike), at row
#     (i * width + j) * A + a. base (A, 4) float32; out float32 or float64. Serial, nogil, unchecked: the caller
#     keeps row_stop * width * A <= out.shape[0].
from cython cimport floating
from libc.stdint cimport int64_t


cdef inline void fill_anchor_rows(const float[:, ::1] base, Py_ssize_t row_start, Py_ssize_t row_stop,
                                  Py_ssize_t width, int64_t stride_h, int64_t stride_w, float center_offset,
                                  floating[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t count = base.shape[0], i, j, a, k
    cdef float x, y
    # the cell's offset, in float32 as the reference: 0 for torchvision, half a stride for mmdetection
    cdef float offset_x = center_offset * <float>stride_w
    cdef float offset_y = center_offset * <float>stride_h
    for i in range(row_start, row_stop):
        y = <float>(i * stride_h) + offset_y  # the int64 shift rounded to float32 once, as the reference's astype
        for j in range(width):
            x = <float>(j * stride_w) + offset_x
            k = (i * width + j) * count
            for a in range(count):
                # float32 sums (torchvision's), stored in out's dtype
                out[k + a, 0] = <float>(base[a, 0] + x)
                out[k + a, 1] = <float>(base[a, 1] + y)
                out[k + a, 2] = <float>(base[a, 2] + x)
                out[k + a, 3] = <float>(base[a, 3] + y)
