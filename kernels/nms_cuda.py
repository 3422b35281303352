"""numba.cuda twins of `edudet.ops.nms.nms` and `batched_nms`: the bitmask scheme of the GPU NMS kernels.

Stable public names (host launchers): ``nms(boxes, scores, iou_threshold, offset=0)`` and ``batched_nms(boxes,
scores, idxs, iou_threshold, offset=0)`` -> int64 indices of the kept boxes by decreasing score, exactly those
of `edudet.ops` (`offset` 1: legacy inclusive pixels); ``nms_match(boxes, scores, iou_threshold)`` (NumPy
arrays only) -> mmcv's groups, a list of int64 arrays.
boxes (N, 4) float32/float64 and scores (N,) C-contiguous, idxs (N,) integers (int64 when on the device).
NumPy arrays in: a NumPy array out. Device arrays in (``__cuda_array_interface__``: numba device arrays,
CuPy): a numba device array out; the boxes stay on the GPU, only the scores (for the sort) and the suppression
bitmasks (for the greedy scan) come to the host, as in torchvision's GPU kernel. Each checks structure
(shapes, matching lengths, C-contiguity, float dtypes) and raises a ``ValueError`` naming the argument; values
(NaN, inf, the 1e15 coordinate bound) are `edudet.ops`' job, or checked here for NumPy input when
``EDUDET_CHECK_KERNELS=1``. For IoU inside a user's own ``@cuda.jit`` kernel, call
`edudet.kernels.boxes_cuda.iou_xyxy`. Example::

    from numba import cuda
    from edudet.kernels import nms_cuda
    keep = nms_cuda.nms(cuda.to_device(boxes), cuda.to_device(scores), 0.5)   # a device array
    keep.copy_to_host()

Boxes are sorted by decreasing score on the host. The GPU then fills a table of suppression bits: blocks
of 64 "row" boxes meet blocks of 64 "column" boxes (only blocks on or above the diagonal: a box can only
suppress later ones), the column block is staged in shared memory, and each thread writes one 64-bit word
whose bit c says "my row box has IoU > t with column box c" (and, for `batched_nms`, the same category).
The greedy part stays serial but cheap: a host scan walks the rows in score order, keeps a row whose bit
is not yet set in the running "removed" mask, and ORs its words into that mask.

IoU uses torchvision's CPU arithmetic in the boxes' dtype. CUDA compilers fuse ``a + b - w * h`` into a
fused multiply-add (one rounding instead of two), which would change borderline results, so on a GPU the
product is written with libdevice's ``fmul_rn``/``dmul_rn`` (a multiply that is never fused). With
``NUMBA_ENABLE_CUDASIM=1`` the same kernels run in numba's simulator (slow: small inputs only).
"""
from __future__ import annotations

import numpy as np
from numba import config, cuda, float32, float64, int64, njit, uint64

from edudet._validate import check_allocation

from ._checks import CHECK_KERNELS, check_structure, check_values
from .boxes_cuda import _check_device_boxes, as_device_array, box_area, is_device_array

THREADS = 64  # one bit per column box in a uint64 word

if config.ENABLE_CUDASIM:  # the simulator computes in NumPy scalars: plain products round once already
    @cuda.jit(device=True)
    def _product(a, b):
        return a * b

    _mul32 = _mul64 = _product
else:  # pragma: no cover - needs a GPU
    from numba.cuda import libdevice

    _mul32, _mul64 = libdevice.fmul_rn, libdevice.dmul_rn


def _make_mask_kernel(box_type, mul, match):
    """The bitmask kernel; `match` False: `nms`'s rule (sides ``min - max + pad`` > 0, ``iou > t`` in double);
    True: `nms_match`'s (sides clamped at 0, ``iou >= t`` in the boxes' dtype, a zero union never matches)."""
    @cuda.jit
    def suppression_masks(boxes, areas, labels, iou_threshold, pad, masks):
        row_block = cuda.blockIdx.y
        col_block = cuda.blockIdx.x
        if row_block > col_block:  # whole block below the diagonal: nothing to do (uniform exit)
            return
        n = boxes.shape[0]
        t = cuda.threadIdx.x
        col_boxes = cuda.shared.array((THREADS, 4), box_type)
        col_areas = cuda.shared.array(THREADS, box_type)
        col_labels = cuda.shared.array(THREADS, int64)
        col = col_block * THREADS + t
        if col < n:
            for d in range(4):
                col_boxes[t, d] = boxes[col, d]
            col_areas[t] = areas[col]
            col_labels[t] = labels[col]
        cuda.syncthreads()

        row = row_block * THREADS + t
        if row >= n:
            return
        x1 = boxes[row, 0]
        y1 = boxes[row, 1]
        x2 = boxes[row, 2]
        y2 = boxes[row, 3]
        area = areas[row]
        label = labels[row]
        n_cols = min(THREADS, n - col_block * THREADS)
        first = t + 1 if row_block == col_block else 0  # only later boxes
        bits = uint64(0)
        for c in range(first, n_cols):
            if col_labels[c] != label:
                continue
            iw = min(x2, col_boxes[c, 2]) - max(x1, col_boxes[c, 0]) + pad
            ih = min(y2, col_boxes[c, 3]) - max(y1, col_boxes[c, 1]) + pad
            if match:
                iw = max(iw, box_type(0))
                ih = max(ih, box_type(0))
            elif iw <= 0 or ih <= 0:
                continue
            inter = mul(iw, ih)
            # the earlier (row) box's area first, as torchvision adds them; a zero union (underflowing areas)
            # is IoU 0 for nms, and never matches for nms_match (mmcv's 0 / 0 = NaN), as in the reference
            union = area + col_areas[c] - inter
            if match:
                if union != 0 and inter / union >= iou_threshold:
                    bits |= uint64(1) << uint64(c)
            elif union > 0 and inter / union > iou_threshold:
                bits |= uint64(1) << uint64(c)
        masks[row, col_block] = bits

    return suppression_masks


_mask_kernels = {}


def _mask_kernel(dtype, match=False):
    kernel = _mask_kernels.get((dtype, match))
    if kernel is None:
        kernel = _mask_kernels[dtype, match] = (_make_mask_kernel(float32, _mul32, match) if dtype == np.float32
                                                else _make_mask_kernel(float64, _mul64, match))
    return kernel


@njit(cache=True)
def _scan_masks(masks, n):
    """The greedy pass on the host: keep row i unless an earlier kept row set its bit."""
    removed = np.zeros(masks.shape[1], dtype=np.uint64)
    keep = np.empty(n, dtype=np.int64)
    n_kept = 0
    for i in range(n):
        block = i // THREADS
        if removed[block] & (np.uint64(1) << np.uint64(i % THREADS)):
            continue
        keep[n_kept] = i
        n_kept += 1
        for c in range(block, masks.shape[1]):
            removed[c] |= masks[i, c]
    return keep[:n_kept]


@njit(cache=True)
def _scan_groups(masks, n):
    """`nms_match`'s pass on the host: (members, starts) of the groups, as `nms_numba.nms_match_flat`.

    A kept row's group is the rows its bits mark that no earlier kept row has taken already."""
    removed = np.zeros(masks.shape[1], dtype=np.uint64)
    members = np.empty(n, dtype=np.int64)
    starts = np.empty(n + 1, dtype=np.int64)
    n_members = 0
    n_groups = 0
    for i in range(n):
        block = i // THREADS
        if removed[block] & (np.uint64(1) << np.uint64(i % THREADS)):
            continue
        starts[n_groups] = n_members
        n_groups += 1
        members[n_members] = i
        n_members += 1
        for c in range(block, masks.shape[1]):
            taken = masks[i, c] & ~removed[c]
            for b in range(THREADS):
                if taken & (np.uint64(1) << np.uint64(b)):
                    members[n_members] = c * THREADS + b
                    n_members += 1
            removed[c] |= masks[i, c]
    starts[n_groups] = n_members
    return members, starts[:n_groups + 1].copy()


@cuda.jit
def _gather_sorted(boxes, labels, order, pad, sorted_boxes, sorted_areas, sorted_labels):
    """Row r of the outputs is box order[r]: the score-sorted copy the mask kernel reads (all on the GPU)."""
    r = cuda.grid(1)
    if r < order.shape[0]:
        k = order[r]
        for d in range(4):
            sorted_boxes[r, d] = boxes[k, d]
        if pad == 0:
            sorted_areas[r] = box_area(sorted_boxes[r])
        else:
            sorted_areas[r] = ((sorted_boxes[r, 2] - sorted_boxes[r, 0] + pad)
                               * (sorted_boxes[r, 3] - sorted_boxes[r, 1] + pad))
        sorted_labels[r] = labels[k]


def _suppression_masks(boxes, scores, labels, iou_threshold, offset, match):
    """Sort by score on the host, fill the (N, N / 64) bitmasks on the GPU: (order, host masks, on_device)."""
    on_device = is_device_array(boxes)
    n = boxes.shape[0]
    host_scores = scores.copy_to_host() if on_device else scores
    order = np.argsort(-host_scores, kind="stable")  # ties by increasing index, as torchvision
    n_blocks = (n + THREADS - 1) // THREADS
    check_allocation((n, n_blocks), 8, f"the CUDA nms's (N, N / 64) suppression bitmasks (boxes: N = {n})")
    dtype = np.dtype(boxes.dtype).type
    pad = dtype(offset)
    if on_device:
        sorted_boxes = cuda.device_array((n, 4), dtype=boxes.dtype)
        areas = cuda.device_array(n, dtype=boxes.dtype)
        sorted_labels = cuda.device_array(n, dtype=np.int64)
        _gather_sorted[(n + 127) // 128, 128](boxes, labels, cuda.to_device(order), pad, sorted_boxes, areas,
                                               sorted_labels)
    else:
        host_sorted = np.ascontiguousarray(boxes[order])
        sorted_boxes = cuda.to_device(host_sorted)
        areas = cuda.to_device((host_sorted[:, 2] - host_sorted[:, 0] + pad)
                               * (host_sorted[:, 3] - host_sorted[:, 1] + pad))
        sorted_labels = cuda.to_device(np.ascontiguousarray(labels[order]))
    # words below the diagonal are never written and never read (the scan starts at a row's own block)
    masks = cuda.device_array((n, n_blocks), dtype=np.uint64)
    # nms compares a float IoU with a double threshold (as C++ promotes); nms_match in the boxes' dtype (mmcv)
    threshold = dtype(iou_threshold) if match else np.float64(iou_threshold)
    _mask_kernel(dtype, match)[(n_blocks, n_blocks), THREADS](sorted_boxes, areas, sorted_labels, threshold, pad,
                                                              masks)
    return order, masks.copy_to_host(), on_device


def _greedy_on_gpu(boxes, scores, labels, iou_threshold, offset=0):
    """Host arrays in: host int64 indices out. Device arrays in: a device array of indices out (the score sort
    and the greedy scan over the bitmasks run on the host, as the GPU kernels of torchvision scan theirs)."""
    on_device = is_device_array(boxes)
    n = boxes.shape[0]
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return cuda.to_device(empty) if on_device else empty
    order, masks, on_device = _suppression_masks(boxes, scores, labels, iou_threshold, offset, match=False)
    keep = order[_scan_masks(masks, n)]
    return cuda.to_device(keep) if on_device else keep


def _checked(boxes, scores, idxs, iou_threshold, offset=0):
    """The structural checks (and, for host arrays with EDUDET_CHECK_KERNELS=1, the value checks)."""
    if is_device_array(boxes) or is_device_array(scores) or (idxs is not None and is_device_array(idxs)):
        boxes, scores = as_device_array(boxes), as_device_array(scores)
        _check_device_boxes("boxes", boxes)
        if scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"scores must have shape ({boxes.shape[0]},) to match boxes, got {tuple(scores.shape)}")
        if idxs is not None:
            idxs = as_device_array(idxs)
            if idxs.ndim != 1 or idxs.shape[0] != boxes.shape[0] or np.dtype(idxs.dtype) != np.int64:
                raise ValueError(f"idxs must be int64 of shape ({boxes.shape[0]},), got {idxs.dtype} "
                                 f"{tuple(idxs.shape)}")
    else:
        check_structure("boxes", boxes, ndim=2, columns=4)
        if boxes.dtype not in (np.float32, np.float64):
            raise ValueError(f"boxes must be float32 or float64, got {boxes.dtype}")
        check_structure("scores", scores, ndim=1, length=boxes.shape[0])
        if idxs is not None:
            check_structure("idxs", idxs, ndim=1, length=boxes.shape[0])
            if not np.issubdtype(idxs.dtype, np.integer):
                raise ValueError(f"idxs must have an integer dtype, got {idxs.dtype}")
        if CHECK_KERNELS:
            check_values(boxes=boxes, scores=scores)
    if not iou_threshold >= 0:
        raise ValueError(f"iou_threshold must be >= 0, got {iou_threshold}")
    if offset not in (0, 1):
        raise ValueError(f"offset must be 0 or 1, got {offset}")
    return boxes, scores, idxs


def nms(boxes, scores, iou_threshold: float, offset: int = 0):
    """Same as `edudet.ops.nms.nms_numpy`, with the suppression bitmasks computed on the GPU.

    boxes (N, 4), scores (N,): NumPy arrays (-> NumPy int64 indices) or device arrays (-> a device array).
    `offset` 1: inclusive pixels (sides ``x2 - x1 + 1``)."""
    boxes, scores, _ = _checked(boxes, scores, None, iou_threshold, offset)
    labels = np.zeros(boxes.shape[0], dtype=np.int64)
    return _greedy_on_gpu(boxes, scores, cuda.to_device(labels) if is_device_array(boxes) else labels,
                          iou_threshold, offset)


def batched_nms(boxes, scores, idxs, iou_threshold: float, offset: int = 0):
    """Same as `edudet.ops.nms.batched_nms_numpy`: boxes of different idxs leave each other's bits unset."""
    boxes, scores, idxs = _checked(boxes, scores, idxs, iou_threshold, offset)
    return _greedy_on_gpu(boxes, scores, idxs, iou_threshold, offset)


def nms_match(boxes, scores, iou_threshold: float):
    """Same as `edudet.ops.nms.nms_match_numpy`: a list of int64 arrays (kept box, then those it suppressed).

    NumPy arrays only (the groups are a host-side list): the match bits on the GPU with the same bitmask
    kernel as `nms` (in its `nms_match` mode), the grouping scan on the host."""
    if is_device_array(boxes) or is_device_array(scores):
        raise ValueError("nms_match takes NumPy arrays (its result is a host list of groups)")
    boxes, scores, _ = _checked(boxes, scores, None, iou_threshold)
    n = boxes.shape[0]
    if n == 0:
        return []
    order, masks, _ = _suppression_masks(boxes, scores, np.zeros(n, dtype=np.int64), iou_threshold, 0, match=True)
    members, starts = _scan_groups(masks, n)
    members = order[members]
    return [members[starts[g]:starts[g + 1]].copy() for g in range(len(starts) - 1)]
