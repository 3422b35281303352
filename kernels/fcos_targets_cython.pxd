# cython: language_level=3
# Stable cdef function of edudet.kernels.fcos_targets_cython for a user's .pyx (see docs/kernels.md):
#     from edudet.kernels.fcos_targets_cython cimport fcos_assign_point
# compiled with cythonize(..., include_path=[edudet.kernels.get_include()]). It is `inline` and defined here, in
# the .pxd, so that it compiles into the user's module for both float types (Cython exports no fused function
# across modules).
#
# fcos_assign_point(x, y, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area) -> int64:
#     the ground truth FCOS assigns to point (x, y): among the rows of gt (G, 4) (x1, y1, x2, y2) that contain it
#     strictly (with center_sampling: whose centre square of half-side radius_stride, clipped to the box, does)
#     and whose largest side distance max(l, t, r, b) lies in [range_low, range_high], the smallest area, first
#     on ties; -1 if none has an area below no_candidate_area (edudet.targets.FCOS_INF). Serial, nogil, unchecked.
from cython cimport floating
from libc.stdint cimport int64_t


cdef inline int64_t fcos_assign_point(floating x, floating y, const floating[:, ::1] gt, floating radius_stride,
                                      floating range_low, floating range_high, bint center_sampling,
                                      floating no_candidate_area) noexcept nogil:
    cdef floating left, top, right, bottom, reach, lo, hi, center, area
    cdef floating r = radius_stride
    cdef floating best_area = no_candidate_area
    cdef int64_t best = -1
    cdef Py_ssize_t g
    cdef bint inside
    for g in range(gt.shape[0]):
        left = x - gt[g, 0]
        top = y - gt[g, 1]
        right = gt[g, 2] - x
        bottom = gt[g, 3] - y
        if center_sampling:
            # the gt's centre square of half-side stride * radius, clipped to the gt box (the centre halved in
            # the input dtype, as the reference)
            center = (gt[g, 0] + gt[g, 2]) / 2
            lo = center - r
            hi = center + r
            inside = (x - (lo if lo > gt[g, 0] else gt[g, 0]) > 0) and ((hi if hi < gt[g, 2] else gt[g, 2]) - x > 0)
            if inside:
                center = (gt[g, 1] + gt[g, 3]) / 2
                lo = center - r
                hi = center + r
                inside = (y - (lo if lo > gt[g, 1] else gt[g, 1]) > 0) and ((hi if hi < gt[g, 3] else gt[g, 3]) - y > 0)
        else:
            inside = left > 0 and top > 0 and right > 0 and bottom > 0
        if not inside:
            continue
        reach = left if left > top else top  # the longest side distance decides the level, not the box size
        if right > reach:
            reach = right
        if bottom > reach:
            reach = bottom
        if reach < range_low or reach > range_high:
            continue
        area = (gt[g, 2] - gt[g, 0]) * (gt[g, 3] - gt[g, 1])
        if area < best_area:  # strict: the first gt wins a tie, as argmin
            best_area = area
            best = g
    return best
