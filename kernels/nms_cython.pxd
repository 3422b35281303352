# cython: language_level=3
# The stable C-level API of edudet.kernels.nms_cython (see docs/kernels.md). From a user's .pyx:
#     from edudet.kernels.nms_cython cimport nms_sorted
# built with cythonize(..., include_path=[edudet.kernels.get_include()]) and the extension's
# include_dirs=[numpy.get_include()].
from cython cimport floating

# Greedy NMS of boxes (N, 4) (x1, y1, x2, y2) ALREADY SORTED by decreasing score: keep[i] = 1 if box i is kept
# (no earlier kept box has IoU > iou_threshold with it), else 0. Returns the number kept, or -1 if keep holds
# fewer than N entries or memory ran out. The arithmetic and results of edudet.ops.nms. Values not checked.
cdef Py_ssize_t nms_sorted_float(const float[:, ::1] boxes, double iou_threshold,
                                 unsigned char[::1] keep) noexcept nogil
cdef Py_ssize_t nms_sorted_double(const double[:, ::1] boxes, double iou_threshold,
                                  unsigned char[::1] keep) noexcept nogil
# The same with an offset: 0 (as above) or 1, legacy inclusive pixels (w = x2 - x1 + 1, intersection sides
# min(x2) - max(x1) + 1, as maskrcnn-benchmark and mmcv's offset=1). Returns -1 for any other offset.
cdef Py_ssize_t nms_sorted_offset_float(const float[:, ::1] boxes, double iou_threshold,
                                        unsigned char[::1] keep, int offset) noexcept nogil
cdef Py_ssize_t nms_sorted_offset_double(const double[:, ::1] boxes, double iou_threshold,
                                         unsigned char[::1] keep, int offset) noexcept nogil


cdef inline Py_ssize_t nms_sorted(const floating[:, ::1] boxes, double iou_threshold,
                                  unsigned char[::1] keep) noexcept nogil:
    """nms_sorted_float or nms_sorted_double, by the boxes' type (Cython exports no fused function)."""
    if floating is float:
        return nms_sorted_float(boxes, iou_threshold, keep)
    else:
        return nms_sorted_double(boxes, iou_threshold, keep)


cdef inline Py_ssize_t nms_sorted_offset(const floating[:, ::1] boxes, double iou_threshold,
                                         unsigned char[::1] keep, int offset) noexcept nogil:
    """nms_sorted_offset_float or nms_sorted_offset_double, by the boxes' type."""
    if floating is float:
        return nms_sorted_offset_float(boxes, iou_threshold, keep, offset)
    else:
        return nms_sorted_offset_double(boxes, iou_threshold, keep, offset)
