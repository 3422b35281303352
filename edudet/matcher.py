"""Matching: which ground-truth box, if any, each anchor or proposal is trained against.

Faster R-CNN (Ren et al., 2015) labels an anchor positive when its best IoU with a ground truth is at least
``high_threshold``, negative below ``low_threshold`` and ignores it in between; with
``allow_low_quality_matches`` every ground truth also claims the anchors that overlap it best, so that no
object is left without a positive anchor. This is torchvision's ``Matcher`` (``models/detection/_utils.py``).

`Matcher.match_boxes` fuses the IoU matrix and the matching for the hot case (a quarter of a million anchors
against a few dozen boxes): its kernels never build the (G, N) matrix, they keep per-anchor max/argmax and a
per-box max, then revisit only the anchors that can tie a box's best IoU. The NumPy reference walks the
matrix in column blocks of at most `REFERENCE_BLOCK_BYTES`, so it too handles any G x N in bounded memory.
"""
from __future__ import annotations

import numpy as np

from ._dispatch import Dispatcher
from ._validate import (as_boxes, as_real_array, check_allocation, check_finite, check_scalar, common_float_dtype,
                        float_dtype_of)

__all__ = ["Matcher", "rpn_background_matches", "match_quality_numpy", "match_boxes_numpy"]

BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2

# The NumPy references (here and in `targets`) work on blocks of at most this many bytes of (G, columns)
# temporaries: 50 gt x 243k anchors as one matrix is ~50 MB of IoUs but ~500 MB of box_iou's temporaries.
REFERENCE_BLOCK_BYTES = 64 * 2**20


def block_length(bytes_per_column: int, total: int, block_bytes: int | None = None) -> int:
    """How many of `total` columns fit in one block of `block_bytes` (default REFERENCE_BLOCK_BYTES), >= 1."""
    block_bytes = REFERENCE_BLOCK_BYTES if block_bytes is None else block_bytes
    return int(max(1, min(total, block_bytes // max(1, bytes_per_column))))


def _match_in_blocks(quality_block, num_rows: int, num_columns: int, columns_per_block: int, high_threshold,
                     low_threshold, allow_low_quality_matches: bool) -> np.ndarray:
    """The Matcher rule over a (G, N) quality matrix that `quality_block(start, stop)` gives block by block.

    Pass 1 keeps what the rule needs from each column (its best quality and first argmax) and each row (its
    best quality so far); pass 2, only with low-quality matches, looks at the blocks again for the ties.
    """
    if num_rows == 0 or num_columns == 0:  # `Matcher` refuses G = 0; a direct caller gets all background
        return np.full(num_columns, BELOW_LOW_THRESHOLD, dtype=np.int64)
    spans = [(start, min(num_columns, start + columns_per_block))
             for start in range(0, num_columns, columns_per_block)]
    if len(spans) == 1:  # one block: compute it once for both passes
        whole = quality_block(0, num_columns)
        quality_block = lambda start, stop: whole  # noqa: E731
    matched_vals, all_matches, highest_quality_foreach_gt = [], [], None
    for start, stop in spans:
        quality = quality_block(start, stop)
        matched_vals.append(quality.max(axis=0))
        # argmax: the first gt wins a tie, as torch.max(dim=0); a NaN (only from a caller bypassing the
        # checks) is np.argmax's pick and stays a valid index
        all_matches.append(quality.argmax(axis=0))
        row_best = quality.max(axis=1)
        highest_quality_foreach_gt = (row_best if highest_quality_foreach_gt is None
                                      else np.maximum(highest_quality_foreach_gt, row_best))
    matched_vals = np.concatenate(matched_vals)
    all_matches = np.concatenate(all_matches).astype(np.int64)
    matches = all_matches.copy()
    matches[matched_vals < low_threshold] = BELOW_LOW_THRESHOLD
    matches[(matched_vals >= low_threshold) & (matched_vals < high_threshold)] = BETWEEN_THRESHOLDS
    if allow_low_quality_matches:
        # every prediction tied at some gt's best quality (ties included) gets its own best gt back; that gt is
        # its argmax, not necessarily the gt whose best it ties
        for start, stop in spans:
            ties = (quality_block(start, stop) == highest_quality_foreach_gt[:, None]).any(axis=0)
            matches[start:stop][ties] = all_matches[start:stop][ties]
    return matches


def match_quality_numpy(quality: np.ndarray, high_threshold, low_threshold, allow_low_quality_matches: bool,
                        block_bytes: int | None = None) -> np.ndarray:
    """NumPy reference of `Matcher.__call__` on a clean (G, N) float matrix, G, N > 0; thresholds already
    in the matrix's dtype (torch compares a float32 tensor with a Python float in float32)."""
    num_gt, n = quality.shape
    columns = block_length(num_gt * quality.itemsize, n, block_bytes)
    return _match_in_blocks(lambda start, stop: quality[:, start:stop], num_gt, n, columns, high_threshold,
                            low_threshold, allow_low_quality_matches)


def match_boxes_numpy(gt_boxes: np.ndarray, boxes: np.ndarray, high_threshold, low_threshold,
                      allow_low_quality_matches: bool, block_bytes: int | None = None) -> np.ndarray:
    """NumPy reference of the fused IoU + matching: ``match_quality_numpy(box_iou(gt_boxes, boxes), ...)``,
    with the IoU matrix computed a block of boxes at a time (box_iou's temporaries: ~12 values per pair)."""
    from .ops.boxes import box_iou_numpy

    columns = block_length(12 * gt_boxes.shape[0] * gt_boxes.itemsize, boxes.shape[0], block_bytes)
    return _match_in_blocks(lambda start, stop: box_iou_numpy(gt_boxes, boxes[start:stop]), gt_boxes.shape[0],
                            boxes.shape[0], columns, high_threshold, low_threshold, allow_low_quality_matches)


_match_boxes = Dispatcher(
    "match_boxes",
    reference=match_boxes_numpy,
    numba="matching_numba:match_boxes",
    cython="matching_cython:match_boxes",
    cuda="matching_cuda:match_boxes",
)


class Matcher:
    """Assign each of N predictions the index of its ground truth: (G, N) quality -> (N,) int64.

    For prediction n with best quality ``v = max_g q[g, n]`` (ties: the lowest g wins), the match is
    ``argmax_g q[g, n]`` if ``v >= high_threshold``, ``-2`` (BETWEEN_THRESHOLDS, ignored) if
    ``low_threshold <= v < high_threshold`` and ``-1`` (BELOW_LOW_THRESHOLD, background) if
    ``v < low_threshold``. With ``allow_low_quality_matches``, every prediction whose quality with some gt g
    equals g's best quality over all predictions (ties included) gets ``argmax_g q[g, n]`` back whatever v.
    Comparisons happen in the matrix's dtype, as torchvision's do (a float32 IoU of exactly
    ``float32(0.7)`` is a positive). Faster R-CNN uses (0.7, 0.3, True) in the RPN and (0.5, 0.5, False) in
    the box head. G = 0 raises ``ValueError`` (see `rpn_background_matches`); N = 0 gives an empty result
    (torchvision raises there too). Thresholds are finite and >= 0; quality values any finite reals (NaN or
    inf raise ``ValueError``).
    """

    BELOW_LOW_THRESHOLD = BELOW_LOW_THRESHOLD
    BETWEEN_THRESHOLDS = BETWEEN_THRESHOLDS

    def __init__(self, high_threshold: float, low_threshold: float, allow_low_quality_matches: bool = False):
        self.high_threshold = check_scalar(high_threshold, "high_threshold", low=0)
        self.low_threshold = check_scalar(low_threshold, "low_threshold", low=0)
        if self.low_threshold > self.high_threshold:
            raise ValueError(f"low_threshold must be <= high_threshold, got low_threshold={self.low_threshold:g} "
                             f"> high_threshold={self.high_threshold:g}")
        if not isinstance(allow_low_quality_matches, (bool, np.bool_)):
            raise TypeError(f"allow_low_quality_matches must be a bool, got {type(allow_low_quality_matches).__name__}")
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __repr__(self) -> str:
        return (f"Matcher(high_threshold={self.high_threshold:g}, low_threshold={self.low_threshold:g}, "
                f"allow_low_quality_matches={self.allow_low_quality_matches})")

    def _thresholds(self, dtype):
        return dtype(self.high_threshold), dtype(self.low_threshold)

    def __call__(self, match_quality_matrix) -> np.ndarray:
        """match_quality_matrix: (G, N) pairwise quality (IoU) of G ground truths and N predictions."""
        quality = as_real_array(match_quality_matrix, "match_quality_matrix")
        if quality.ndim != 2:
            raise ValueError(f"match_quality_matrix must have shape (G, N), got {tuple(quality.shape)}")
        if quality.shape[0] == 0:
            raise ValueError("match_quality_matrix has no rows: no ground-truth boxes for this image "
                             "(use rpn_background_matches(N) for an all-background image)")
        check_finite(quality, "match_quality_matrix")
        dtype = float_dtype_of(quality)
        if quality.dtype != dtype:
            # int or float16 input computes in float32 (int64 values beyond 2**24 round, as torch's would)
            check_allocation(quality.shape, np.dtype(dtype).itemsize,
                             "Matcher's float copy of match_quality_matrix (G, N)")
            quality = quality.astype(dtype)
        if quality.shape[1] == 0:
            return np.zeros(0, dtype=np.int64)
        high, low = self._thresholds(dtype)
        return match_quality_numpy(quality, high, low, self.allow_low_quality_matches)

    def match_boxes(self, gt_boxes, boxes, backend: str | None = None) -> np.ndarray:
        """``self(box_iou(gt_boxes, boxes))`` fused: gt_boxes (G, 4), boxes (N, 4) ``(x1, y1, x2, y2)`` -> (N,) int64.

        The fast backends never build the (G, N) IoU matrix and the NumPy one builds it a block at a time, so
        memory stays O(G + N) plus a fixed block. IoU is computed in float64 if either input is float64, else
        float32, exactly as torchvision's ``box_iou`` (a pair whose union is 0, e.g. two boxes whose areas
        underflow to 0, counts as 0 where torchvision gives NaN). Coordinates must be finite and within
        +-1e15 (`COORDINATE_LIMIT`: areas and unions then stay finite in float32), ground truths must have
        ``x2 >= x1`` and ``y2 >= y1``; else ``ValueError``. `backend`: None (fastest CPU), "numpy",
        "numba", "cython" or "cuda".
        """
        kernel = _match_boxes.get(backend)
        gt = as_boxes(gt_boxes, "gt_boxes")
        preds = as_boxes(boxes, "boxes")
        if gt.shape[0] == 0:
            raise ValueError("gt_boxes is empty: no ground-truth boxes for this image "
                             "(use rpn_background_matches(N) for an all-background image)")
        if np.any(gt[:, 2] < gt[:, 0]) or np.any(gt[:, 3] < gt[:, 1]):
            bad = int(np.flatnonzero((gt[:, 2] < gt[:, 0]) | (gt[:, 3] < gt[:, 1]))[0])
            raise ValueError(f"gt_boxes must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1; box {bad} is "
                             f"{gt[bad].tolist()}")
        dtype = common_float_dtype(gt, preds)
        gt, preds = gt.astype(dtype, copy=False), preds.astype(dtype, copy=False)
        if preds.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        high, low = self._thresholds(dtype)
        return kernel(gt, preds, high, low, self.allow_low_quality_matches)


def rpn_background_matches(num_boxes: int) -> np.ndarray:
    """(N,) int64 all ``-1`` (BELOW_LOW_THRESHOLD): the matches of an image without ground truth.

    torchvision's RPN labels every anchor of such an image background (0) instead of calling the Matcher,
    which refuses an empty matrix; these matches give that labelling through the usual rule.
    """
    n = check_scalar(num_boxes, "num_boxes", low=0, integer=True)
    check_allocation((n,), 8, "rpn_background_matches' (N,) int64 output (N: num_boxes)")
    return np.full(n, BELOW_LOW_THRESHOLD, dtype=np.int64)
