"""numba.cuda twins of `edudet.ops.nms.nms` and `batched_nms`: the bitmask scheme of the GPU NMS kernels.

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

THREADS = 64  # one bit per column box in a uint64 word

if config.ENABLE_CUDASIM:  # the simulator computes in NumPy scalars: plain products round once already
    @cuda.jit(device=True)
    def _product(a, b):
        return a * b

    _mul32 = _mul64 = _product
else:  # pragma: no cover - needs a GPU
    from numba.cuda import libdevice

    _mul32, _mul64 = libdevice.fmul_rn, libdevice.dmul_rn


def _make_mask_kernel(box_type, mul):
    @cuda.jit
    def suppression_masks(boxes, areas, labels, iou_threshold, masks):
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
            iw = min(x2, col_boxes[c, 2]) - max(x1, col_boxes[c, 0])
            if iw <= 0:
                continue
            ih = min(y2, col_boxes[c, 3]) - max(y1, col_boxes[c, 1])
            if ih <= 0:
                continue
            inter = mul(iw, ih)
            # the earlier (row) box's area first, as torchvision adds them; float IoU vs double threshold;
            # a zero union (underflowing areas) is IoU 0, as in the reference
            union = area + col_areas[c] - inter
            if union > 0 and inter / union > iou_threshold:
                bits |= uint64(1) << uint64(c)
        masks[row, col_block] = bits

    return suppression_masks


_mask_kernels = {}


def _mask_kernel(dtype):
    kernel = _mask_kernels.get(dtype)
    if kernel is None:
        kernel = _mask_kernels[dtype] = (_make_mask_kernel(float32, _mul32) if dtype == np.float32
                                         else _make_mask_kernel(float64, _mul64))
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


def _greedy_on_gpu(boxes, scores, labels, iou_threshold):
    order = np.argsort(-scores, kind="stable")  # ties by increasing index, as torchvision
    sorted_boxes = np.ascontiguousarray(boxes[order])
    areas = (sorted_boxes[:, 2] - sorted_boxes[:, 0]) * (sorted_boxes[:, 3] - sorted_boxes[:, 1])
    n = sorted_boxes.shape[0]
    n_blocks = (n + THREADS - 1) // THREADS
    check_allocation((n, n_blocks), 8, f"the CUDA nms's (N, N / 64) suppression bitmasks (boxes: N = {n})")
    # words below the diagonal are never written and never read (the scan starts at a row's own block)
    masks = cuda.device_array((n, n_blocks), dtype=np.uint64)
    _mask_kernel(boxes.dtype.type)[(n_blocks, n_blocks), THREADS](
        cuda.to_device(sorted_boxes), cuda.to_device(areas), cuda.to_device(np.ascontiguousarray(labels[order])),
        np.float64(iou_threshold), masks)
    return order[_scan_masks(masks.copy_to_host(), n)]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Same as `edudet.ops.nms.nms_numpy`, with the suppression bitmasks computed on the GPU."""
    return _greedy_on_gpu(boxes, scores, np.zeros(boxes.shape[0], dtype=np.int64), iou_threshold)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Same as `edudet.ops.nms.batched_nms_numpy`: boxes of different idxs leave each other's bits unset."""
    return _greedy_on_gpu(boxes, scores, idxs, iou_threshold)
