# cython: language_level=3
# Stable cdef functions of edudet.kernels.matching_cython for a user's .pyx (see docs/kernels.md):
#     from edudet.kernels.matching_cython cimport best_match, match_boxes_serial
# compiled with cythonize(..., include_path=[edudet.kernels.get_include()]) (and numpy.get_include() in the
# Extension's include_dirs). They are `inline` and defined here, in the .pxd, so that they compile into the user's
# module for both float types (Cython exports no fused function across modules). Nothing here checks shapes,
# lengths or values: the caller passes C-contiguous (G, 4) / (N, 4) float32 or float64 boxes (x1, y1, x2, y2).
#
# best_match(gt, x1, y1, x2, y2, &best_iou) -> int64: the best IoU of box (x1, y1, x2, y2) over the G >= 1 rows
#     of gt, written to best_iou[0], and the first row reaching it (the Matcher's argmax; torchvision's box_iou
#     values, 0 for a zero union).
# match_boxes_serial(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches, best, gt_best, matches):
#     edudet.Matcher's rule on box_pair_iou(gt, boxes) without the (G, N) matrix, serially (call it from your own
#     prange over images): matches (N,) gets the gt index, -1 below low_threshold, -2 between. Scratch: best (N,),
#     gt_best (G,). G = 0 gives all -1.
from cython cimport floating
from libc.stdint cimport int64_t


cdef inline floating _pair_iou(floating ax1, floating ay1, floating ax2, floating ay2, floating area_a,
                          floating gx1, floating gy1, floating gx2, floating gy2, floating area_g) noexcept nogil:
    # torchvision's box_iou operations in its order and dtype (clamp at 0, w * h, a1 + a2 - inter): the value is
    # bit-identical; a zero union (two degenerate boxes) gives 0 where torchvision gives NaN. The early exits
    # skip the division for the many disjoint pairs and predict well: neighbouring anchors overlap alike
    cdef floating w = (ax2 if ax2 < gx2 else gx2) - (ax1 if ax1 > gx1 else gx1)
    if w <= 0:
        return 0
    cdef floating h = (ay2 if ay2 < gy2 else gy2) - (ay1 if ay1 > gy1 else gy1)
    if h <= 0:
        return 0
    cdef floating inter = w * h
    cdef floating union = (area_g + area_a) - inter
    if union <= 0:
        return 0
    return inter / union


cdef inline int64_t best_match(const floating[:, ::1] gt, floating x1, floating y1, floating x2, floating y2,
                               floating* best_iou) noexcept nogil:
    cdef floating area_a = (x2 - x1) * (y2 - y1), v = -1, iou
    cdef int64_t k = 0
    cdef Py_ssize_t g
    for g in range(gt.shape[0]):
        iou = _pair_iou(x1, y1, x2, y2, area_a, gt[g, 0], gt[g, 1], gt[g, 2], gt[g, 3],
                   (gt[g, 2] - gt[g, 0]) * (gt[g, 3] - gt[g, 1]))
        if iou > v:  # strict: the first gt reaching the max wins a tie, as torch.max(dim=0)
            v = iou
            k = g
    best_iou[0] = v
    return k


cdef inline void match_boxes_serial(const floating[:, ::1] gt, const floating[:, ::1] boxes, floating high_threshold,
                                    floating low_threshold, bint allow_low_quality_matches, floating[::1] best,
                                    floating[::1] gt_best, int64_t[::1] matches) noexcept nogil:
    cdef Py_ssize_t i, g, n = boxes.shape[0], num_gt = gt.shape[0]
    cdef floating v, iou, smallest, area_a
    if num_gt == 0:
        for i in range(n):
            matches[i] = -1
        return
    for g in range(num_gt):
        gt_best[g] = -1
    for i in range(n):  # pass 1: each box's best and argmax; each gt's best over the boxes
        matches[i] = best_match(gt, boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], &best[i])
        if allow_low_quality_matches:
            area_a = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            for g in range(num_gt):
                iou = _pair_iou(boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], area_a, gt[g, 0], gt[g, 1],
                           gt[g, 2], gt[g, 3], (gt[g, 2] - gt[g, 0]) * (gt[g, 3] - gt[g, 1]))
                if iou > gt_best[g]:
                    gt_best[g] = iou
    smallest = gt_best[0]
    for g in range(1, num_gt):
        if gt_best[g] < smallest:
            smallest = gt_best[g]
    for i in range(n):  # pass 2: the thresholds, then the ties with some gt's best
        v = best[i]
        if v >= high_threshold:
            continue
        if allow_low_quality_matches and v >= smallest:
            area_a = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            for g in range(num_gt):
                if _pair_iou(boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], area_a, gt[g, 0], gt[g, 1], gt[g, 2],
                        gt[g, 3], (gt[g, 2] - gt[g, 0]) * (gt[g, 3] - gt[g, 1])) == gt_best[g]:
                    break
            else:
                matches[i] = -1 if v < low_threshold else -2
            continue
        matches[i] = -1 if v < low_threshold else -2
