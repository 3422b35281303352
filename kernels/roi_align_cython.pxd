# cython: language_level=3
# The stable C-level API of edudet.kernels.roi_align_cython (see docs/kernels.md). From a user's .pyx:
#     from edudet.kernels.roi_align_cython cimport bilinear, roi_align_one
# built with cythonize(..., include_path=[edudet.kernels.get_include()]) and the extension's
# include_dirs=[numpy.get_include()]. Fused over float/double and defined here, inline (Cython exports no
# fused function across modules), so they compile into the caller's module. No checks of any kind: the
# caller passes C-contiguous views of matching sizes, finite values, and at most 4096 samples per bin per axis.
from cython cimport floating
from libc.math cimport ceil


cdef inline floating bilinear(const floating[:, ::1] plane, floating y, floating x) noexcept nogil:
    """One bilinear sample of a (H, W) plane at (y, x): 0 when more than one pixel outside (or NaN), the
    border within a pixel (torchvision's rule). The sample edudet.ops.roi_align computes, bit for bit."""
    cdef Py_ssize_t height = plane.shape[0], width = plane.shape[1]
    cdef Py_ssize_t y_low, x_low, y_high, x_high
    cdef floating ly, lx, hy, hx
    if not (y >= -1.0 and y <= height and x >= -1.0 and x <= width):
        return 0
    if y <= 0:
        y = 0
    if x <= 0:
        x = 0
    y_low = <Py_ssize_t>y
    x_low = <Py_ssize_t>x
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = <floating>y_low
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = <floating>x_low
    else:
        x_high = x_low + 1
    ly = y - <floating>y_low
    lx = x - <floating>x_low
    hy = 1 - ly
    hx = 1 - lx
    return (hy * hx * plane[y_low, x_low] + hy * lx * plane[y_low, x_high]
            + ly * hx * plane[y_high, x_low] + ly * lx * plane[y_high, x_high])


cdef inline void roi_align_one(const floating[:, :, ::1] fmap, const floating* box, floating spatial_scale,
                               int sampling_ratio, bint aligned, bint max_mode,
                               floating[:, :, ::1] out) noexcept nogil:
    """RoIAlign of one RoI: fmap (C, H, W) of its image, box 4 contiguous (x1, y1, x2, y2) in image
    coordinates (e.g. &rois[k, 1]) -> out (C, PH, PW), the output size taken from out's shape.

    torchvision's rule (see edudet.ops.roi_align); samples added in torchvision's order (sample rows, then
    columns): within a few ulps of edudet.ops.roi_align in average mode, bit-identical in max mode."""
    cdef Py_ssize_t channels = out.shape[0], pooled_h = out.shape[1], pooled_w = out.shape[2]
    cdef Py_ssize_t c, ph, pw, iy, ix, grid_h, grid_w
    cdef floating offset = 0.5 if aligned else 0.0
    cdef floating x1 = box[0] * spatial_scale - offset
    cdef floating y1 = box[1] * spatial_scale - offset
    cdef floating roi_w = (box[2] * spatial_scale - offset) - x1
    cdef floating roi_h = (box[3] * spatial_scale - offset) - y1
    cdef floating bin_h, bin_w, y, x, value, acc, count
    if not aligned:  # legacy Detectron: a RoI is at least 1 x 1
        roi_w = roi_w if roi_w > 1 else 1
        roi_h = roi_h if roi_h > 1 else 1
    bin_h = roi_h / <floating>pooled_h
    bin_w = roi_w / <floating>pooled_w
    if sampling_ratio > 0:
        grid_h = grid_w = sampling_ratio
    else:
        grid_h = <Py_ssize_t>ceil(roi_h / <floating>pooled_h)
        grid_w = <Py_ssize_t>ceil(roi_w / <floating>pooled_w)
        grid_h = grid_h if grid_h > 0 else 0  # a negative-size aligned RoI has no samples: its bins are 0
        grid_w = grid_w if grid_w > 0 else 0
    count = <floating>(grid_h * grid_w if grid_h * grid_w > 1 else 1)
    for c in range(channels):
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                acc = 0
                for iy in range(grid_h):
                    y = y1 + <floating>ph * bin_h + <floating>(iy + 0.5) * bin_h / <floating>grid_h
                    for ix in range(grid_w):
                        x = x1 + <floating>pw * bin_w + <floating>(ix + 0.5) * bin_w / <floating>grid_w
                        value = bilinear(fmap[c], y, x)
                        if not max_mode:
                            acc = acc + value
                        elif (iy == 0 and ix == 0) or value > acc:
                            acc = value
                out[c, ph, pw] = acc if max_mode else acc / count
