# cython: language_level=3
# Stable cdef function of edudet.kernels.fcos_targets_cython for a user's .pyx (see docs/kernels.md):
#     from edudet.kernels.fcos_targets_cython cimport fcos_assign_point
# compiled with cythonize(..., include_path=[edudet.kernels.get_include()]). It is `inline` and defined here, in
# the .pxd, so that it compiles into the user's module for both float types (Cython exports no fused function
# across modules).
#
# fcos_assign_point(x, y, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
#                   torchvision_rule=False) -> int64:
#     the ground truth FCOS assigns to point (x, y): among the rows of gt (G, 4) (x1, y1, x2, y2) that contain it
#     strictly (with center_sampling: whose centre square of half-side radius_stride, clipped to the box, does;
#     under torchvision_rule: within radius_stride of the centre along both axes, and inside the box) and whose
#     largest side distance max(l, t, r, b) lies in [range_low, range_high] (open ends under torchvision_rule),
#     the lowest rank (the area; under torchvision_rule area - 1e8 in the input dtype), first on ties; -1 if
#     none ranks below no_candidate_area (edudet.targets.FCOS_INF for mmdetection's rule). Serial, nogil,
#     unchecked.
from cython cimport floating
from libc.stdint cimport int64_t


cdef inline int64_t fcos_assign_point(floating x, floating y, const floating[:, ::1] gt, floating radius_stride,
                                      floating range_low, floating range_high, bint center_sampling,
                                      floating no_candidate_area, bint torchvision_rule=False) noexcept nogil:
    cdef floating left, top, right, bottom, reach, lo, hi, center, rank
    cdef floating r = radius_stride
    cdef floating best_rank = no_candidate_area
    # edudet.targets.TORCHVISION_AREA_OFFSET (a .pxd cannot import it), in the input dtype
    cdef floating offset = 100000000.0
    cdef int64_t best = -1
    cdef Py_ssize_t g
    cdef bint inside
    for g in range(gt.shape[0]):
        left = x - gt[g, 0]
        top = y - gt[g, 1]
        right = gt[g, 2] - x
        bottom = gt[g, 3] - y
        if center_sampling and not torchvision_rule:
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
            if inside and center_sampling:  # torchvision's: within r of the centre along both axes
                lo = x - (gt[g, 0] + gt[g, 2]) / 2
                hi = y - (gt[g, 1] + gt[g, 3]) / 2
                inside = (lo if lo >= 0 else -lo) < r and (hi if hi >= 0 else -hi) < r
        if not inside:
            continue
        reach = left if left > top else top  # the longest side distance decides the level, not the box size
        if right > reach:
            reach = right
        if bottom > reach:
            reach = bottom
        if torchvision_rule:
            if not (reach > range_low and reach < range_high):
                continue
        elif reach < range_low or reach > range_high:
            continue
        rank = (gt[g, 2] - gt[g, 0]) * (gt[g, 3] - gt[g, 1])
        if torchvision_rule:
            rank = rank - offset
        if rank < best_rank:  # strict: the first gt wins a tie, as argmin
            best_rank = rank
            best = g
    return best
