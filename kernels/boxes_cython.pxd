# cython: language_level=3
# The stable C-level API of edudet.kernels.boxes_cython (see docs/kernels.md). From a user's .pyx:
#     from edudet.kernels.boxes_cython cimport iou_xyxy, box_area
# (iou_xyxy_offset and box_area_offset take the pixel convention: offset 0, or 1 for inclusive x2, y2)
# built with cythonize(..., include_path=[edudet.kernels.get_include()]) and the extension's
# include_dirs=[numpy.get_include()]. Fused over float/double: the functions are defined here, inline
# (Cython exports no fused function across modules), so they compile into the caller's module. No checks.
from cython cimport floating


cdef inline floating iou_xyxy(const floating* a, const floating* b) noexcept nogil:
    """IoU of two boxes of 4 contiguous (x1, y1, x2, y2) values (e.g. &boxes[i, 0]); 0 where the union is not
    positive. The arithmetic and bits of edudet.ops.box_iou."""
    cdef floating zero = 0
    cdef floating w = (a[2] if a[2] < b[2] else b[2]) - (a[0] if a[0] > b[0] else b[0])
    cdef floating h = (a[3] if a[3] < b[3] else b[3]) - (a[1] if a[1] > b[1] else b[1])
    if w < zero:
        w = zero
    if h < zero:
        h = zero
    cdef floating inter = w * h
    cdef floating union_area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union_area if union_area > zero else zero


cdef inline void box_area(const floating[:, ::1] boxes, floating[::1] out) noexcept nogil:
    """out[i] = (x2 - x1) * (y2 - y1) of each row of boxes (N, 4); out must hold N values."""
    cdef Py_ssize_t i
    for i in range(boxes.shape[0]):
        out[i] = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])


cdef inline floating iou_xyxy_offset(const floating* a, const floating* b, floating offset) noexcept nogil:
    """iou_xyxy with the pixel convention: offset 1 makes x2, y2 inclusive (every width x2 - x1 + 1)."""
    cdef floating zero = 0
    cdef floating w = (a[2] if a[2] < b[2] else b[2]) - (a[0] if a[0] > b[0] else b[0]) + offset
    cdef floating h = (a[3] if a[3] < b[3] else b[3]) - (a[1] if a[1] > b[1] else b[1]) + offset
    if w < zero:
        w = zero
    if h < zero:
        h = zero
    cdef floating inter = w * h
    cdef floating union_area = ((a[2] - a[0] + offset) * (a[3] - a[1] + offset)
                                + (b[2] - b[0] + offset) * (b[3] - b[1] + offset) - inter)
    return inter / union_area if union_area > zero else zero


cdef inline void box_area_offset(const floating[:, ::1] boxes, floating[::1] out, floating offset) noexcept nogil:
    """out[i] = (x2 - x1 + offset) * (y2 - y1 + offset) of each row of boxes (N, 4)."""
    cdef Py_ssize_t i
    for i in range(boxes.shape[0]):
        out[i] = (boxes[i, 2] - boxes[i, 0] + offset) * (boxes[i, 3] - boxes[i, 1] + offset)
