# cython: language_level=3
"""Cython twin of `edudet.matcher.match_boxes_numpy`: IoU + Matcher fused, without the (G, N) matrix.

Public names (stable; see docs/kernels.md):

* ``match_boxes(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches) -> (N,) int64`` (``def``):
  gt (G, 4) and boxes (N, 4) ``(x1, y1, x2, y2)``, both float32 or both float64, C-contiguous; each box's
  ground-truth index, -1 below `low_threshold`, -2 between (`edudet.Matcher`'s rule). OpenMP over boxes.
* ``cdef int64_t best_match(gt, x1, y1, x2, y2, floating* best_iou) noexcept nogil``: one box's best IoU and first
  argmax over the ground truths.
* ``cdef void match_boxes_serial(gt, boxes, high, low, allow_low_quality, best, gt_best, matches) noexcept nogil``:
  the whole rule for one image, serial, into caller-owned scratch (best (N,), gt_best (G,)) and matches (N,).

Checks at entry of ``match_boxes`` (ValueError naming the argument): ndarrays, 2-D with 4 columns,
C-contiguity, one float dtype. With ``EDUDET_CHECK_KERNELS=1``: finite coordinates within 1e15. Not checked:
x2 >= x1 of the ground truths, the thresholds' range (`edudet.Matcher.match_boxes` does). The cdef functions
check nothing.

Example (from a user's .pyx; ``match_boxes_serial`` inside your own prange over images)::

    from libc.stdint cimport int64_t
    from edudet.kernels.matching_cython cimport match_boxes_serial
    def match(const float[:, ::1] gt, const float[:, ::1] boxes, float[::1] best, float[::1] gt_best,
              int64_t[::1] matches):
        with nogil:
            match_boxes_serial(gt, boxes, 0.7, 0.3, True, best, gt_best, matches)

How it works (the .pxd's inline functions compile into users' modules and into this one, which uses its
``_pair_iou``; setup.py's ``include_path`` lets Cython find the .pxd for ``edudet.kernels.matching_cython``):

Same two passes as `matching_numba`: (1) in parallel over blocks of boxes, each box's best IoU and first
argmax, and each block's best IoU per ground truth; (2) thresholds, then low-quality matches, recomputing
IoUs only for boxes that could tie some ground truth's best. Fused float/double, nogil, OpenMP prange.
The argmax scan is strict and bounded: whatever the values (NaN IoUs from a caller that skips
`Matcher.match_boxes`' checks), every index written is in range.
"""
import numpy as np
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from ._checks import CHECK_KERNELS, check_structure, check_values

cdef Py_ssize_t _BLOCK = 4096  # boxes per parallel task: the per-block gt maxima stay small
cdef Py_ssize_t _MAX_BLOCK_MAXIMA = 4194304  # 2**22 per-block gt maxima at most (16 MB float32), however many gts


# _pair_iou (torchvision's IoU of two boxes, 0 for a zero union) comes from matching_cython.pxd, which Cython
# reads before this module: one definition, shared with users' modules


cdef void _best_pass(const floating[:, ::1] gt_t, const floating[:, ::1] boxes, const floating[::1] gt_area,
                     floating[:, ::1] block_gt_best, floating[::1] best, cnp.int64_t[::1] argbest,
                     Py_ssize_t b, Py_ssize_t block) noexcept nogil:
    cdef Py_ssize_t n = boxes.shape[0], num_gt = gt_t.shape[1]
    cdef Py_ssize_t i, g, k
    cdef Py_ssize_t end = (b + 1) * block
    cdef floating ax1, ay1, ax2, ay2, area_a, v, iou
    cdef const floating* gx1 = &gt_t[0, 0]
    cdef const floating* gy1 = &gt_t[1, 0]
    cdef const floating* gx2 = &gt_t[2, 0]
    cdef const floating* gy2 = &gt_t[3, 0]
    cdef const floating* area_g = &gt_area[0]
    cdef floating* row = &block_gt_best[b, 0]
    if end > n:
        end = n
    for i in range(b * block, end):
        ax1 = boxes[i, 0]
        ay1 = boxes[i, 1]
        ax2 = boxes[i, 2]
        ay2 = boxes[i, 3]
        area_a = (ax2 - ax1) * (ay2 - ay1)
        v = -1
        k = 0
        for g in range(num_gt):
            iou = _pair_iou(ax1, ay1, ax2, ay2, area_a, gx1[g], gy1[g], gx2[g], gy2[g], area_g[g])
            if iou > v:  # strict: the first gt reaching the max wins a tie, as torch.max(dim=0)
                v = iou
                k = g
            if iou > row[g]:
                row[g] = iou
        best[i] = v
        argbest[i] = k


cdef cnp.int64_t _final(const floating[:, ::1] gt, const floating[:, ::1] boxes, const floating[::1] gt_area,
                        const floating[::1] gt_best, floating smallest_gt_best, floating v, cnp.int64_t k,
                        floating high, floating low, bint allow_low_quality, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t g
    cdef floating ax1, ay1, ax2, ay2, area_a
    if v >= high:
        return k
    if allow_low_quality and v >= smallest_gt_best:
        ax1 = boxes[i, 0]
        ay1 = boxes[i, 1]
        ax2 = boxes[i, 2]
        ay2 = boxes[i, 3]
        area_a = (ax2 - ax1) * (ay2 - ay1)
        for g in range(gt.shape[0]):
            if _pair_iou(ax1, ay1, ax2, ay2, area_a, gt[g, 0], gt[g, 1], gt[g, 2], gt[g, 3], gt_area[g]) == gt_best[g]:
                return k
    return -1 if v < low else -2


def _match(const floating[:, ::1] gt, const floating[:, ::1] boxes, floating high, floating low,
           bint allow_low_quality):
    cdef Py_ssize_t n = boxes.shape[0], num_gt = gt.shape[0]
    if num_gt == 0 or n == 0:  # Matcher refuses G = 0; a direct caller gets all background, never a bad read
        return np.full(n, -1, dtype=np.int64)
    # many gts: fewer, longer blocks, so the (blocks, gts) partial maxima stay within _MAX_BLOCK_MAXIMA
    cdef Py_ssize_t num_blocks = min((n + _BLOCK - 1) // _BLOCK, max(1, _MAX_BLOCK_MAXIMA // num_gt))
    cdef Py_ssize_t block = (n + num_blocks - 1) // num_blocks
    dtype = np.float32 if floating is float else np.float64
    gt_np = np.asarray(gt)
    cdef floating[::1] gt_area = np.ascontiguousarray((gt_np[:, 2] - gt_np[:, 0]) * (gt_np[:, 3] - gt_np[:, 1]))
    cdef floating[:, ::1] block_gt_best = np.full((num_blocks, num_gt), -1, dtype=dtype)
    cdef floating[:, ::1] gt_t = np.ascontiguousarray(gt_np.T)  # one row per coordinate: streamed by the gt loop
    cdef floating[::1] best = np.empty(n, dtype=dtype)
    cdef cnp.int64_t[::1] argbest = np.empty(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    cdef cnp.int64_t[::1] matches = out
    cdef Py_ssize_t b, i
    with nogil:
        for b in prange(num_blocks, schedule="dynamic"):
            _best_pass(gt_t, boxes, gt_area, block_gt_best, best, argbest, b, block)
    gt_best_np = np.asarray(block_gt_best).max(axis=0)
    cdef floating[::1] gt_best = gt_best_np
    cdef floating smallest_gt_best = gt_best_np.min()
    with nogil:
        for i in prange(n, schedule="static"):
            matches[i] = _final(gt, boxes, gt_area, gt_best, smallest_gt_best, best[i], argbest[i],
                                high, low, allow_low_quality, i)
    return out


def match_boxes(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches):
    """(G, 4) gt and (N, 4) boxes of one float dtype, thresholds in that dtype -> (N,) int64 matches."""
    check_structure("gt", gt, columns=4)
    check_structure("boxes", boxes, columns=4)
    if gt.dtype != boxes.dtype or gt.dtype not in (np.float32, np.float64):
        raise ValueError(f"gt and boxes must have the same float dtype (float32 or float64), got {gt.dtype} "
                         f"and {boxes.dtype}")
    if CHECK_KERNELS:
        check_values(gt_boxes=gt, boxes=boxes)
    # the fused def dispatches on the arrays' dtype: float32 -> the float kernel, float64 -> the double one
    return _match(gt, boxes, high_threshold, low_threshold, allow_low_quality_matches)
