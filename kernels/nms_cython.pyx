# distutils: extra_compile_args = -ffp-contract=off
"""Cython twins of `edudet.ops.nms`: greedy NMS and batched NMS on a uniform grid (``offset`` 0 or 1), Soft-NMS
and mmcv's ``nms_match`` (its plain loop).

The same algorithm as `nms_numba` (read its module docstring for why the grid is exact): kept boxes are
filed in every grid cell their extent touches, a candidate tests only the kept boxes filed in the cells
of its core. Typed memoryviews over float/double (fused), loops without the GIL. Floating-point
contraction is off (``-ffp-contract=off``) so that ``a + b - w * h`` rounds like torchvision's kernel.
As in `nms_numba`, any finite input is safe even in a direct call: cell counts are clamped, an overflowing
span falls back to one cell (no pruning), and a zero union (underflowing areas) is IoU 0.
"""
import numpy as np

from ._checks import CHECK_KERNELS, check_structure, check_values

cimport numpy as cnp
from cython cimport floating
from libc.math cimport exp, fabs, INFINITY, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc

cnp.import_array()

cdef double CELL_FRACTION = 0.2  # cells of about 0.2x the mean box side (see nms_numba)
cdef int64_t MAX_FILINGS_PER_BOX = 64
cdef double MAX_CELLS_PER_AXIS = 4096.0


cdef inline int64_t _cell(double v, double origin, double inv_cell, int64_t n_cells) noexcept nogil:
    """floor((v - origin) / cell) clamped to [0, n_cells - 1]: monotone in v, and a NaN is cell 0."""
    cdef double f = (v - origin) * inv_cell
    if not f > 0.0:
        return 0
    if f >= n_cells - 1:
        return n_cells - 1
    return <int64_t>f


cdef inline int64_t _cell_count(double span, double cell) noexcept nogil:
    """Cells of size `cell` covering `span`, in [1, 4097] for any input; NaN or 0 (a span or cell that is not
    finite) gives one cell, the plain loop (see nms_numba._cell_count)."""
    cdef double q = span / cell
    if not q > 0.0:
        return 1
    return <int64_t>(q if q < MAX_CELLS_PER_AXIS else MAX_CELLS_PER_AXIS) + 1


cdef inline double _core_fraction(double iou_threshold) noexcept nogil:
    """See nms_numba._core_fraction: a suppressor must overlap the candidate's core on each axis."""
    if iou_threshold < 1e-6:
        return 0.0
    return (iou_threshold if iou_threshold < 0.5 else 0.5) * 0.999


cdef inline bint _positive(const floating[:, ::1] boxes, int64_t i, floating pad) noexcept nogil:
    """A positive area, sides ``x2 - x1 + pad`` in the boxes' type: only such boxes can overlap."""
    return boxes[i, 2] - boxes[i, 0] + pad > 0 and boxes[i, 3] - boxes[i, 1] + pad > 0


cdef int _greedy_nms_grid(const floating[:, ::1] boxes, const floating* areas, const int64_t* members, int64_t m,
                          double iou_threshold, unsigned char* keep, floating pad) noexcept nogil:
    """Greedy NMS of boxes[members[:m]] (sorted by decreasing score); sets keep[i] = 1 for the kept ones.

    `pad` is the offset (0, or 1 for inclusive pixels: box i covers [x1, x2 + 1] x [y1, y2 + 1], the extent
    the grid files, ``x2 + padd`` in double). Returns 0, or -1 if the grid's buffers could not be allocated
    (keep is then incomplete).
    """
    cdef double padd = pad
    cdef int64_t r, i, j, k, c, e, cx, cy, nx = 0, ny = 0, filings = 0, n_valid = 0
    cdef double x_lo = INFINITY, y_lo = INFINITY, x_hi = -INFINITY, y_hi = -INFINITY
    cdef double sum_w = 0.0, sum_h = 0.0, cell_w, cell_h, inv_w = 0.0, inv_h = 0.0
    cdef double s, w, h, slop_x, slop_y, span_x, span_y
    cdef int64_t cx_lo, cx_hi, cy_lo, cy_hi
    cdef floating x1, y1, x2, y2, iw, ih, inter, union_area, area_j
    cdef bint suppressed
    cdef int64_t* start
    cdef int64_t* filed
    cdef int64_t* entries

    for r in range(m):
        i = members[r]
        if _positive(boxes, i, pad):
            x_lo = min(x_lo, <double>boxes[i, 0])
            y_lo = min(y_lo, <double>boxes[i, 1])
            x_hi = max(x_hi, <double>boxes[i, 2] + padd)
            y_hi = max(y_hi, <double>boxes[i, 3] + padd)
            sum_w += <double>boxes[i, 2] + padd - <double>boxes[i, 0]
            sum_h += <double>boxes[i, 3] + padd - <double>boxes[i, 1]
            n_valid += 1
    if n_valid == 0:  # only zero-area boxes: nothing overlaps anything
        for r in range(m):
            keep[members[r]] = 1
        return 0
    span_x = x_hi - x_lo
    span_y = y_hi - y_lo
    cell_w = max(max(CELL_FRACTION * sum_w / n_valid, span_x * 1e-6), 1e-300)
    cell_h = max(max(CELL_FRACTION * sum_h / n_valid, span_y * 1e-6), 1e-300)
    if not (isfinite(span_x) and isfinite(span_y) and isfinite(cell_w) and isfinite(cell_h)):
        cell_w = INFINITY  # an overflowing span: one cell, no pruning
        cell_h = INFINITY
    while True:
        nx = _cell_count(span_x, cell_w)
        ny = _cell_count(span_y, cell_h)
        if nx * ny <= 4 * m + 64:
            inv_w = 1.0 / cell_w
            inv_h = 1.0 / cell_h
            filings = 0
            for r in range(m):
                i = members[r]
                if _positive(boxes, i, pad):
                    cx = _cell(boxes[i, 2] + padd, x_lo, inv_w, nx) - _cell(boxes[i, 0], x_lo, inv_w, nx) + 1
                    cy = _cell(boxes[i, 3] + padd, y_lo, inv_h, ny) - _cell(boxes[i, 1], y_lo, inv_h, ny) + 1
                    filings += cx * cy
            if filings <= MAX_FILINGS_PER_BOX * m:
                break
        cell_w *= 2.0
        cell_h *= 2.0

    start = <int64_t*>calloc(nx * ny + 1, sizeof(int64_t))
    filed = <int64_t*>calloc(nx * ny, sizeof(int64_t))
    entries = <int64_t*>malloc(max(filings, 1) * sizeof(int64_t))
    if start == NULL or filed == NULL or entries == NULL:
        free(start)
        free(filed)
        free(entries)
        return -1
    # capacity of each cell: every box that could be filed there (only kept ones will be)
    for r in range(m):
        i = members[r]
        if _positive(boxes, i, pad):
            for cy in range(_cell(boxes[i, 1], y_lo, inv_h, ny), _cell(boxes[i, 3] + padd, y_lo, inv_h, ny) + 1):
                for cx in range(_cell(boxes[i, 0], x_lo, inv_w, nx), _cell(boxes[i, 2] + padd, x_lo, inv_w, nx) + 1):
                    start[cy * nx + cx + 1] += 1
    for c in range(nx * ny):
        start[c + 1] += start[c]

    s = _core_fraction(iou_threshold)
    for r in range(m):
        j = members[r]
        x1 = boxes[j, 0]
        y1 = boxes[j, 1]
        x2 = boxes[j, 2]
        y2 = boxes[j, 3]
        if not _positive(boxes, j, pad):  # a zero-area box overlaps nothing: kept, never filed
            keep[j] = 1
            continue
        w = <double>x2 + padd - <double>x1
        h = <double>y2 + padd - <double>y1
        slop_x = 1e-12 * (fabs(<double>x1) + fabs(<double>x2) + padd)
        slop_y = 1e-12 * (fabs(<double>y1) + fabs(<double>y2) + padd)
        cx_lo = _cell(x1 + s * w - slop_x, x_lo, inv_w, nx)
        cx_hi = _cell(x2 + padd - s * w + slop_x, x_lo, inv_w, nx)
        cy_lo = _cell(y1 + s * h - slop_y, y_lo, inv_h, ny)
        cy_hi = _cell(y2 + padd - s * h + slop_y, y_lo, inv_h, ny)
        area_j = areas[j]
        suppressed = False
        cy = cy_lo
        while cy <= cy_hi and not suppressed:
            cx = cx_lo
            while cx <= cx_hi and not suppressed:
                c = cy * nx + cx
                for e in range(start[c], start[c] + filed[c]):
                    k = entries[e]
                    iw = (boxes[k, 2] if boxes[k, 2] < x2 else x2) - (boxes[k, 0] if boxes[k, 0] > x1 else x1) + pad
                    if iw <= 0:
                        continue
                    ih = (boxes[k, 3] if boxes[k, 3] < y2 else y2) - (boxes[k, 1] if boxes[k, 1] > y1 else y1) + pad
                    if ih <= 0:
                        continue
                    inter = iw * ih
                    # the kept box's area first, as torchvision adds them; a float IoU vs a double threshold;
                    # a zero union (underflowing areas) is IoU 0 (torchvision: 0 / 0 = NaN, not > t either)
                    union_area = areas[k] + area_j - inter
                    if union_area > 0 and inter / union_area > iou_threshold:
                        suppressed = True
                        break
                cx += 1
            cy += 1
        if suppressed:
            continue
        keep[j] = 1
        for cy in range(_cell(y1, y_lo, inv_h, ny), _cell(y2 + padd, y_lo, inv_h, ny) + 1):
            for cx in range(_cell(x1, x_lo, inv_w, nx), _cell(x2 + padd, x_lo, inv_w, nx) + 1):
                c = cy * nx + cx
                entries[start[c] + filed[c]] = j
                filed[c] += 1
    free(start)
    free(filed)
    free(entries)
    return 0


cdef Py_ssize_t _nms_sorted(const floating[:, ::1] boxes, double iou_threshold, unsigned char[::1] keep,
                            int offset) noexcept nogil:
    """Greedy NMS of boxes already sorted by decreasing score: keep[i] = 1 or 0; the count kept, -1 on failure
    (or an offset other than 0 and 1)."""
    cdef int64_t n = boxes.shape[0], i
    cdef Py_ssize_t kept = 0
    cdef floating pad = offset
    if keep.shape[0] < n or (offset != 0 and offset != 1):
        return -1
    cdef floating* areas = <floating*>malloc(max(n, 1) * sizeof(floating))
    cdef int64_t* members = <int64_t*>malloc(max(n, 1) * sizeof(int64_t))
    if areas == NULL or members == NULL:
        free(areas)
        free(members)
        return -1
    for i in range(n):
        areas[i] = (boxes[i, 2] - boxes[i, 0] + pad) * (boxes[i, 3] - boxes[i, 1] + pad)
        members[i] = i
        keep[i] = 0
    if _greedy_nms_grid(boxes, areas, members, n, iou_threshold, &keep[0] if n else NULL, pad) != 0:
        kept = -1
    else:
        for i in range(n):
            kept += keep[i]
    free(areas)
    free(members)
    return kept


cdef Py_ssize_t nms_sorted_float(const float[:, ::1] boxes, double iou_threshold,
                                 unsigned char[::1] keep) noexcept nogil:
    return _nms_sorted(boxes, iou_threshold, keep, 0)


cdef Py_ssize_t nms_sorted_double(const double[:, ::1] boxes, double iou_threshold,
                                  unsigned char[::1] keep) noexcept nogil:
    return _nms_sorted(boxes, iou_threshold, keep, 0)


cdef Py_ssize_t nms_sorted_offset_float(const float[:, ::1] boxes, double iou_threshold,
                                        unsigned char[::1] keep, int offset) noexcept nogil:
    return _nms_sorted(boxes, iou_threshold, keep, offset)


cdef Py_ssize_t nms_sorted_offset_double(const double[:, ::1] boxes, double iou_threshold,
                                         unsigned char[::1] keep, int offset) noexcept nogil:
    return _nms_sorted(boxes, iou_threshold, keep, offset)


cdef _areas(const floating[:, ::1] boxes, floating[::1] areas, floating pad):
    cdef Py_ssize_t i
    with nogil:
        for i in range(boxes.shape[0]):
            areas[i] = (boxes[i, 2] - boxes[i, 0] + pad) * (boxes[i, 3] - boxes[i, 1] + pad)


def _run(boxes, order, members_in_groups, group_starts, double iou_threshold, int offset):
    """Greedy NMS of each group of `members_in_groups`; the kept indices in `order`."""
    areas = np.empty(boxes.shape[0], dtype=boxes.dtype)
    keep = np.zeros(boxes.shape[0], dtype=np.uint8)
    members = np.ascontiguousarray(members_in_groups, dtype=np.int64)
    cdef int64_t[::1] members_view = members
    cdef unsigned char[::1] keep_view = keep
    cdef float[::1] areas32
    cdef double[::1] areas64
    cdef Py_ssize_t g, first, last
    cdef int failed = 0
    if boxes.shape[0] == 0:
        return order[:0]
    if boxes.dtype == np.float32:
        areas32 = areas
        _areas[float](boxes, areas32, <float>offset)
        for g in range(len(group_starts) - 1):
            first, last = group_starts[g], group_starts[g + 1]
            failed |= _greedy_nms_grid[float](boxes, &areas32[0], &members_view[first], last - first,
                                              iou_threshold, &keep_view[0], <float>offset)
    else:
        areas64 = areas
        _areas[double](boxes, areas64, <double>offset)
        for g in range(len(group_starts) - 1):
            first, last = group_starts[g], group_starts[g + 1]
            failed |= _greedy_nms_grid[double](boxes, &areas64[0], &members_view[first], last - first,
                                               iou_threshold, &keep_view[0], <double>offset)
    if failed:
        raise MemoryError("nms: out of memory for the grid of cells")
    return order[keep[order].view(bool)]


def _check_boxes_scores(boxes, scores):
    check_structure("boxes", boxes, ndim=2, columns=4)
    if boxes.dtype != np.float32 and boxes.dtype != np.float64:
        raise ValueError(f"boxes must be float32 or float64, got {boxes.dtype}")
    check_structure("scores", scores, ndim=1, length=boxes.shape[0])
    if scores.dtype != np.float32 and scores.dtype != np.float64:
        raise ValueError(f"scores must be float32 or float64, got {scores.dtype}")
    if CHECK_KERNELS:
        check_values(boxes=boxes, scores=scores)


def _check_offset(offset):
    if offset not in (0, 1):
        raise ValueError(f"offset must be 0 or 1, got {offset}")


def nms(boxes, scores, double iou_threshold, int offset=0):
    """Same as `edudet.ops.nms.nms_numpy`: int64 indices of the kept boxes by decreasing score."""
    _check_boxes_scores(boxes, scores)
    if not iou_threshold >= 0:
        raise ValueError(f"iou_threshold must be >= 0, got {iou_threshold}")
    _check_offset(offset)
    order = np.argsort(-scores, kind="stable")
    return _run(boxes, order, order, [0, len(order)], iou_threshold, offset)


def batched_nms(boxes, scores, idxs, double iou_threshold, int offset=0):
    """Same as `edudet.ops.nms.batched_nms_numpy`: greedy NMS per category, merged by decreasing score."""
    _check_boxes_scores(boxes, scores)
    check_structure("idxs", idxs, ndim=1, length=boxes.shape[0])
    if not np.issubdtype(idxs.dtype, np.integer):
        raise ValueError(f"idxs must have an integer dtype, got {idxs.dtype}")
    if not iou_threshold >= 0:
        raise ValueError(f"iou_threshold must be >= 0, got {iou_threshold}")
    _check_offset(offset)
    order = np.argsort(-scores, kind="stable")
    grouped = order[np.argsort(idxs[order], kind="stable")]  # by category, by score inside each
    labels = idxs[grouped]
    n = len(labels)  # (explicit ends: negative slice ends are undefined under wraparound=False)
    group_starts = [0, *(np.flatnonzero(labels[1:n] != labels[0:n - 1]) + 1).tolist(), n]
    return _run(boxes, order, grouped, group_starts, iou_threshold, offset)


cdef Py_ssize_t _soft_nms(floating[::1] x1, floating[::1] y1, floating[::1] x2, floating[::1] y2,
                          floating[::1] sc, floating[::1] areas, int64_t[::1] index, floating[:, ::1] dets,
                          floating threshold, floating sigma, floating min_score, int method,
                          floating pad) noexcept nogil:
    """mmcv's in-place Soft-NMS loop on column arrays; returns the number of boxes kept."""
    cdef Py_ssize_t live = x1.shape[0], i = 0, p, best, last
    cdef floating w, h, inter, union, iou, weight, t
    cdef int64_t ti
    while i < live:
        best = i
        for p in range(i + 1, live):
            if sc[best] < sc[p]:
                best = p
        t = x1[i]; x1[i] = x1[best]; x1[best] = t
        t = y1[i]; y1[i] = y1[best]; y1[best] = t
        t = x2[i]; x2[i] = x2[best]; x2[best] = t
        t = y2[i]; y2[i] = y2[best]; y2[best] = t
        t = sc[i]; sc[i] = sc[best]; sc[best] = t
        t = areas[i]; areas[i] = areas[best]; areas[best] = t
        ti = index[i]; index[i] = index[best]; index[best] = ti
        dets[i, 0] = x1[i]
        dets[i, 1] = y1[i]
        dets[i, 2] = x2[i]
        dets[i, 3] = y2[i]
        dets[i, 4] = sc[i]
        p = i + 1
        while p < live:
            w = (x2[i] if x2[i] < x2[p] else x2[p]) - (x1[i] if x1[i] > x1[p] else x1[p]) + pad
            h = (y2[i] if y2[i] < y2[p] else y2[p]) - (y1[i] if y1[i] > y1[p] else y1[p]) + pad
            if w < 0:
                w = 0
            if h < 0:
                h = 0
            inter = w * h
            union = areas[i] + areas[p] - inter
            iou = inter / union if union > 0 else 0
            if method == 0:
                weight = 0 if iou >= threshold else 1
            elif method == 1:
                weight = 1 - iou if iou >= threshold else 1
            else:
                # the exponent in the dtype, exp in double, rounded once
                weight = <floating>exp(<double>(-(iou * iou) / sigma))
            sc[p] *= weight
            if sc[p] < min_score:  # drop it: the last live box moves into its slot and is examined next
                last = live - 1
                x1[p] = x1[last]
                y1[p] = y1[last]
                x2[p] = x2[last]
                y2[p] = y2[last]
                sc[p] = sc[last]
                areas[p] = areas[last]
                index[p] = index[last]
                live -= 1
            else:
                p += 1
        i += 1
    return live


def soft_nms(boxes, scores, double iou_threshold, double sigma, double score_threshold, int method, int offset):
    """Same as `edudet.ops.nms.soft_nms_numpy`: returns (dets, keep)."""
    _check_boxes_scores(boxes, scores)
    check_structure("scores", scores, dtype=boxes.dtype)
    if method not in (0, 1, 2):
        raise ValueError(f"method must be 0 (naive), 1 (linear) or 2 (gaussian), got {method}")
    if offset not in (0, 1):
        raise ValueError(f"offset must be 0 or 1, got {offset}")
    if not (sigma > 0 and iou_threshold >= 0 and score_threshold >= 0):
        raise ValueError("sigma must be > 0, iou_threshold and score_threshold >= 0")
    dtype = boxes.dtype
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, c]) for c in range(4))
    sc = scores.copy()
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    index = np.arange(boxes.shape[0], dtype=np.int64)
    dets = np.empty((boxes.shape[0], 5), dtype=dtype)
    cdef Py_ssize_t live
    if dtype == np.float32:
        live = _soft_nms[float](x1, y1, x2, y2, sc, areas, index, dets, <float>iou_threshold, <float>sigma,
                                <float>score_threshold, method, <float>offset)
    else:
        live = _soft_nms[double](x1, y1, x2, y2, sc, areas, index, dets, iou_threshold, sigma,
                                 score_threshold, method, <double>offset)
    return dets[:live].copy(), index[:live].copy()


cdef Py_ssize_t _nms_match(const floating[:, ::1] boxes, const int64_t[::1] order, floating threshold,
                           unsigned char[::1] suppressed, int64_t[::1] members, int64_t[::1] starts) noexcept nogil:
    """mmcv's nms_match loop (see nms_numba.nms_match_flat); fills members and starts, returns the group count."""
    cdef Py_ssize_t n = boxes.shape[0], r, q, n_members = 0, n_groups = 0
    cdef int64_t i, j
    cdef floating w, h, inter, union_area, area_i, area_j
    for r in range(n):
        i = order[r]
        if suppressed[i]:
            continue
        starts[n_groups] = n_members
        n_groups += 1
        members[n_members] = i
        n_members += 1
        area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        for q in range(r + 1, n):
            j = order[q]
            if suppressed[j]:
                continue
            w = (boxes[i, 2] if boxes[i, 2] < boxes[j, 2] else boxes[j, 2]) - \
                (boxes[i, 0] if boxes[i, 0] > boxes[j, 0] else boxes[j, 0])
            h = (boxes[i, 3] if boxes[i, 3] < boxes[j, 3] else boxes[j, 3]) - \
                (boxes[i, 1] if boxes[i, 1] > boxes[j, 1] else boxes[j, 1])
            if w < 0:
                w = 0
            if h < 0:
                h = 0
            inter = w * h
            area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            union_area = area_i + area_j - inter
            if union_area != 0 and inter / union_area >= threshold:  # mmcv: 0 / 0 = NaN, never >= t
                suppressed[j] = 1
                members[n_members] = j
                n_members += 1
    starts[n_groups] = n_members
    return n_groups


def nms_match(boxes, scores, double iou_threshold):
    """Same as `edudet.ops.nms.nms_match_numpy`: a list of int64 arrays (kept box, then those it suppressed)."""
    _check_boxes_scores(boxes, scores)
    if not iou_threshold >= 0:
        raise ValueError(f"iou_threshold must be >= 0, got {iou_threshold}")
    n = boxes.shape[0]
    order = np.argsort(-scores, kind="stable").astype(np.int64)
    suppressed = np.zeros(n, dtype=np.uint8)
    members = np.empty(n, dtype=np.int64)
    starts = np.empty(n + 1, dtype=np.int64)
    cdef Py_ssize_t n_groups
    if boxes.dtype == np.float32:
        n_groups = _nms_match[float](boxes, order, <float>iou_threshold, suppressed, members, starts)
    else:
        n_groups = _nms_match[double](boxes, order, iou_threshold, suppressed, members, starts)
    return [members[starts[g]:starts[g + 1]].copy() for g in range(n_groups)]
