"""Training targets: what each anchor, proposal or point should predict for one image.

* `rpn_targets`: torchvision's RPN labelling (``RegionProposalNetwork.assign_targets_to_anchors``): IoU
  matching at 0.7 / 0.3 with low-quality matches, labels 1 / 0 / -1, deltas with weights (1, 1, 1, 1).
* `roi_head_targets`: torchvision's box-head labelling (``RoIHeads.select_training_samples``): ground truths
  appended to the proposals, matching at 0.5 / 0.5, class labels (0 background, -1 ignored), optional
  balanced sampling, deltas with weights (10, 10, 5, 5).
* `fcos_targets`: FCOS's point labelling, by one of two rules (``rule=``): a point is assigned the
  smallest-area ground truth that contains it (or, with center sampling, whose centre region contains it)
  and whose largest side distance falls in the point's level's regression range. The two rules differ in
  the details, which move points between positive and background:

  | detail             | ``rule="mmdet"`` (``FCOSHead.get_targets``) | ``rule="torchvision"`` (``FCOS.compute_loss``) |
  | ------------------ | ------------------------------------------- | ---------------------------------------------- |
  | point of (i, j)    | ``((j + 0.5) s, (i + 0.5) s)``              | ``(j s, i s)``, its anchor's centre            |
  | center sampling    | off by default; radius x s, the square      | on by default (radius 1.5) x size_l:           |
  |                    | clipped to the box                          | ``max(|x - cx|, |y - cy|) < r``, inside box    |
  | range of level l   | given (default -1, 64, 128, 256, 512, inf)  | ``4 size_l .. 8 size_l``, 0 on the first       |
  |                    |                                             | level, no upper bound on the last              |
  | range test         | ``low <= max(l, t, r, b) <= high``          | ``low < max(l, t, r, b) < high``               |
  | smallest area wins | exact areas; first gt on ties               | highest ``1e8 - area`` in the boxes' dtype     |
  |                    |                                             | (float32: areas ~8 px^2 apart tie); first gt   |
  |                    |                                             | on ties; areas >= 1e8 never match              |

  (``s``: the level's stride; ``size_l``: torchvision's anchor size of the level, equal to the stride by
  default.) Example: box (0, 0, 128, 128) and the P3 point (64, 64) (stride 8), with torchvision's range
  (0, 64) for P3 under both rules: the largest distance is exactly 64, so mmdetection's inclusive test
  assigns the point and torchvision's strict one does not.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from ._dispatch import Dispatcher
from ._validate import (COORDINATE_LIMIT, as_boxes, as_image_size, as_int_labels, check_allocation, check_scalar,
                        common_float_dtype)
from .anchors import grid_points
from .box_coder import BoxCoder, centerness_target
from .level_mapper import check_feature_shapes, check_strides, infer_stride
from .matcher import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, Matcher, block_length

__all__ = ["rpn_targets", "roi_head_targets", "fcos_targets", "RPNTargets", "RoIHeadTargets", "FCOSTargets",
           "fcos_assign_numpy", "fcos_ranks", "FCOS_RULES"]

# FCOS's "infinity", defined here only and passed to every fcos_assign kernel: the open upper end of the last
# regression range, and the candidate area that means "no ground truth for this point". mmdetection uses 1e8
# for both, which silently leaves every point of a ground truth larger than 10,000 x 10,000 px background
# (its area is not below 1e8); a true infinity cannot collide with an area, which stays finite (coordinates
# are within +-1e15, so areas are below 4e30, finite even in float32).
FCOS_INF = float("inf")
FCOS_REGRESS_RANGES = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, FCOS_INF))
FCOS_RULES = ("mmdet", "torchvision")


def _gt_boxes(gt_boxes, name="gt_boxes"):
    gt = as_boxes(gt_boxes, name)
    bad = (gt[:, 2] < gt[:, 0]) | (gt[:, 3] < gt[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1; box {i} is {gt[i].tolist()}")
    return gt


def _gt_labels(gt_labels, n, low=1):
    labels = as_int_labels(gt_labels, n, "gt_labels")
    if labels.size and labels.min() < low:
        raise ValueError(f"gt_labels must be >= {low} (0 is background), got {int(labels.min())}")
    return labels


class RPNTargets(NamedTuple):
    labels: np.ndarray  # (A,) float32: 1 object, 0 background, -1 ignored
    matched_gt_boxes: np.ndarray  # (A, 4) the ground truth each anchor regresses to (zeros without gt)
    regression_targets: np.ndarray  # (A, 4) (dx, dy, dw, dh) against the anchors, weights (1, 1, 1, 1)
    matched_idxs: np.ndarray  # (A,) int64 Matcher output: gt index, -1 below, -2 between


def rpn_targets(anchors, gt_boxes, high_threshold: float = 0.7, low_threshold: float = 0.3,
                allow_low_quality_matches: bool = True, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
                backend: str | None = None) -> RPNTargets:
    """RPN targets of one image: anchors (A, 4) and gt_boxes (G, 4) ``(x1, y1, x2, y2)`` -> `RPNTargets`.

    An anchor is 1 if its matched IoU is >= high_threshold (or it is some gt's best anchor, ties included),
    0 if < low_threshold, else -1; it regresses to ``gt_boxes[max(match, 0)]``. An image without ground
    truth is all background (0) with zero boxes, as torchvision's RPN. `backend` runs the fused IoU + matching.
    """
    boxes = as_boxes(anchors, "anchors")
    gt = _gt_boxes(gt_boxes)
    coder = BoxCoder(weights)
    matcher = Matcher(high_threshold, low_threshold, allow_low_quality_matches)  # checked even without gt
    if gt.shape[0] == 0:
        matched_idxs = np.full(boxes.shape[0], BELOW_LOW_THRESHOLD, dtype=np.int64)
        matched = np.zeros(boxes.shape, dtype=np.float32)  # torchvision's float32 zeros, whatever the anchors
        labels = np.zeros(boxes.shape[0], dtype=np.float32)
    else:
        matched_idxs = matcher.match_boxes(gt, boxes, backend=backend)
        dtype = common_float_dtype(gt, boxes)
        matched = gt.astype(dtype, copy=False)[np.maximum(matched_idxs, 0)]  # -1/-2 index gt 0, masked by labels
        labels = (matched_idxs >= 0).astype(np.float32)
        labels[matched_idxs == BETWEEN_THRESHOLDS] = -1.0
    return RPNTargets(labels, matched, coder.encode(matched, boxes), matched_idxs)


class RoIHeadTargets(NamedTuple):
    proposals: np.ndarray  # (R, 4) the proposals trained on (gt appended, then sampled if a sampler is given)
    matched_idxs: np.ndarray  # (R,) int64 gt index, clamped at 0 (background rows point at gt 0)
    labels: np.ndarray  # (R,) int64 class id, 0 background, -1 ignored
    regression_targets: np.ndarray  # (R, 4) (dx, dy, dw, dh), weights (10, 10, 5, 5)


def roi_head_targets(proposals, gt_boxes, gt_labels, fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5,
                     weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0), add_gt_as_proposals: bool = True,
                     sampler=None, backend: str | None = None) -> RoIHeadTargets:
    """Box-head targets of one image: proposals (P, 4), gt_boxes (G, 4), gt_labels (G,) ints >= 1.

    The ground truths are appended to the proposals (``add_gt_as_proposals``), each row is matched at
    (fg_iou_thresh, bg_iou_thresh) without low-quality matches, and labelled ``gt_labels[match]`` if
    matched, 0 below bg_iou_thresh, -1 in between. With a `BalancedPositiveNegativeSampler` as `sampler`,
    only the sampled rows are kept, in increasing row order, as torchvision's ``subsample``.
    """
    props = as_boxes(proposals, "proposals")
    gt = _gt_boxes(gt_boxes)
    labels_in = _gt_labels(gt_labels, gt.shape[0])
    # checked under the names the caller used (the Matcher would say high_/low_threshold)
    fg_iou_thresh = check_scalar(fg_iou_thresh, "fg_iou_thresh", low=0)
    bg_iou_thresh = check_scalar(bg_iou_thresh, "bg_iou_thresh", low=0)
    if bg_iou_thresh > fg_iou_thresh:
        raise ValueError(f"bg_iou_thresh must be <= fg_iou_thresh, got bg_iou_thresh={bg_iou_thresh:g} > "
                         f"fg_iou_thresh={fg_iou_thresh:g}")
    matcher = Matcher(fg_iou_thresh, bg_iou_thresh, False)  # checked even without gt
    coder = BoxCoder(weights)
    add_gt_as_proposals = _flag(add_gt_as_proposals, "add_gt_as_proposals")
    if sampler is not None and not callable(sampler):
        raise TypeError(f"sampler must be a BalancedPositiveNegativeSampler (a callable) or None, "
                        f"got {type(sampler).__name__}")
    dtype = props.dtype.type
    gt = gt.astype(dtype, copy=False)  # torchvision casts the ground truth to the proposals' dtype
    if add_gt_as_proposals:
        props = np.concatenate([props, gt])
    n = props.shape[0]
    if gt.shape[0] == 0:
        matched_idxs = np.zeros(n, dtype=np.int64)
        labels = np.zeros(n, dtype=np.int64)
        gt_for_rows = np.zeros((1, 4), dtype=dtype)
    else:
        matches = matcher.match_boxes(gt, props, backend=backend)
        matched_idxs = np.maximum(matches, 0)
        labels = labels_in[matched_idxs]
        labels[matches == BELOW_LOW_THRESHOLD] = 0
        labels[matches == BETWEEN_THRESHOLDS] = -1
        gt_for_rows = gt
    if sampler is not None:
        pos, neg = sampler([labels])
        keep = np.flatnonzero(pos[0] | neg[0])
        props, matched_idxs, labels = props[keep], matched_idxs[keep], labels[keep]
    targets = coder.encode(gt_for_rows[matched_idxs], props)
    return RoIHeadTargets(props, matched_idxs, labels, targets)


def fcos_assign_numpy(points, gt, radius_stride, range_low, range_high, center_sampling, no_candidate_area,
                      torchvision_rule=False, block_bytes: int | None = None):
    """NumPy reference of the FCOS assignment: (P,) int64 index of each point's ground truth, -1 for none.

    points (P, 2), gt (G, 4), and per point: radius_stride (the centre region's half-side), range_low,
    range_high, all of one float dtype. Each candidate gt has a rank (`fcos_ranks`: its area, or under
    torchvision's rule ``area - 1e8``); the lowest wins, the first on ties, and only below no_candidate_area
    (`FCOS_INF`, or `TORCHVISION_NO_MATCH` under torchvision's rule, in that dtype). torchvision_rule: its
    centre test and strict range test (see `fcos_targets`).
    The (points, G) arrays below are what the fast twins avoid; here they are built a block of points at a
    time (~24 temporaries per pair, `matcher.REFERENCE_BLOCK_BYTES` per block), so memory stays bounded.
    """
    ranks = fcos_ranks(gt, torchvision_rule)
    block = block_length(24 * gt.shape[0] * gt.itemsize, points.shape[0], block_bytes)
    out = np.empty(points.shape[0], dtype=np.int64)
    for start in range(0, points.shape[0], block):
        rows = slice(start, start + block)
        candidate = _fcos_candidates(points[rows], gt, radius_stride[rows], range_low[rows], range_high[rows],
                                     center_sampling, torchvision_rule)
        candidate_ranks = np.where(candidate, ranks[None, :], no_candidate_area)
        best = candidate_ranks.argmin(axis=1)  # the smallest box wins an ambiguous point; first index on ties
        found = candidate_ranks[np.arange(best.shape[0]), best] < no_candidate_area
        out[rows] = np.where(found, best, -1)
    return out


# torchvision scores a candidate ``1e8 - area`` (in the boxes' dtype) and leaves a point unmatched when its best
# score is below 1e-5. As a rank to minimise: ``area - 1e8`` (the same rounding, negated), which must be <= -1e-5,
# i.e. below the next float above -1e-5 (`fcos_targets` passes it in the boxes' dtype as no_candidate_area)
TORCHVISION_AREA_OFFSET = 1e8
TORCHVISION_NO_MATCH = -1e-5


def fcos_ranks(gt, torchvision_rule=False):
    """(G,) the rank of each ground truth among a point's candidates (lowest wins): mmdetection's area, or
    torchvision's ``area - 1e8``, rounded in the boxes' dtype (float32 spaces floats near 1e8 by 8, so areas
    within ~8 px^2 of each other tie there and the first box wins)."""
    areas = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    if torchvision_rule:
        return areas - gt.dtype.type(TORCHVISION_AREA_OFFSET)
    return areas


def _fcos_candidates(points, gt, radius_stride, range_low, range_high, center_sampling, torchvision_rule=False):
    """(P, G) bool: ground truth g may be assigned to point p (inside it, or its centre region, and in range)."""
    xs, ys = points[:, 0:1], points[:, 1:2]
    left, top = xs - gt[None, :, 0], ys - gt[None, :, 1]
    right, bottom = gt[None, :, 2] - xs, gt[None, :, 3] - ys
    ltrb = np.stack([left, top, right, bottom], axis=-1)  # (P, G, 4)
    center_x = (gt[:, 0] + gt[:, 2]) / 2
    center_y = (gt[:, 1] + gt[:, 3]) / 2
    r = radius_stride[:, None]
    inside = ltrb.min(axis=-1) > 0
    if center_sampling and torchvision_rule:
        # torchvision: within r of the gt's centre along both axes (and inside the gt, tested above)
        inside &= np.maximum(np.abs(xs - center_x[None, :]), np.abs(ys - center_y[None, :])) < r
    elif center_sampling:
        # mmdetection: inside the gt's centre region, a (2 r)-wide square at its centre clipped to the gt box
        x1 = np.maximum(center_x[None, :] - r, gt[None, :, 0])
        y1 = np.maximum(center_y[None, :] - r, gt[None, :, 1])
        x2 = np.minimum(center_x[None, :] + r, gt[None, :, 2])
        y2 = np.minimum(center_y[None, :] + r, gt[None, :, 3])
        inside = np.minimum(np.minimum(xs - x1, ys - y1), np.minimum(x2 - xs, y2 - ys)) > 0
    reach = ltrb.max(axis=-1)  # the longest side distance decides the level, not the box size
    low, high = range_low[:, None], range_high[:, None]
    if torchvision_rule:
        return inside & (reach > low) & (reach < high)
    return inside & (reach >= low) & (reach <= high)


_fcos_assign = Dispatcher(
    "fcos_assign",
    reference=fcos_assign_numpy,
    numba="fcos_targets_numba:fcos_assign",
    cython="fcos_targets_cython:fcos_assign",
    cuda="fcos_targets_cuda:fcos_assign",
)


def _flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _sequence(values, name: str) -> list:
    """A list from a list, tuple or 1-d array (a 0-d array or a scalar is a TypeError naming `name`)."""
    if isinstance(values, np.ndarray) and values.ndim >= 1:
        return values.tolist()
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list with one entry per level, got {type(values).__name__}")
    return list(values)


def _regress_ranges(regress_ranges, num_levels: int) -> list[tuple[float, float]]:
    """One checked ``(low, high)`` per level; either end may be -inf / +inf (FCOS_INF), never NaN."""
    ranges = _sequence(regress_ranges, "regress_ranges")
    if len(ranges) != num_levels:
        raise ValueError(f"regress_ranges must hold one (low, high) pair per level ({num_levels} levels), "
                         f"got {len(ranges)} entries")
    out = []
    for i, pair in enumerate(ranges):
        try:
            low, high = pair
        except (TypeError, ValueError):
            raise ValueError(f"regress_ranges[{i}] must be a (low, high) pair, got {pair!r}") from None
        low, high = _range_end(low, f"regress_ranges[{i}][0]"), _range_end(high, f"regress_ranges[{i}][1]")
        if high < low:
            raise ValueError(f"regress_ranges[{i}] must have low <= high, got {(low, high)!r}")
        out.append((low, high))
    return out


def _range_end(value, name: str) -> float:
    """An end of a regression range: -inf or +inf (FCOS_INF: no bound), else a finite real (check_scalar)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (float, np.floating)) and np.isinf(value):
        return float(value)
    return check_scalar(value, name)


class FCOSTargets(NamedTuple):
    points: np.ndarray  # (P, 2) (x, y) of every location, level by level
    labels: np.ndarray  # (P,) int64 class id, num_classes for background (mmdetection's convention)
    bbox_targets: np.ndarray  # (P, 4) (left, top, right, bottom), / stride (or anchor size) with norm_on_bbox
    centerness: np.ndarray  # (P,) centerness of the targets at positives, 0 at background
    gt_index: np.ndarray  # (P,) int64 index of the assigned ground truth, -1 for background
    num_points_per_level: list


def fcos_targets(gt_boxes, gt_labels, image_size, feature_shapes, num_classes: int, strides=None,
                 regress_ranges=None, center_sampling: bool | None = None, center_sample_radius: float = 1.5,
                 norm_on_bbox: bool = False, offset=None, rule: str = "mmdet", anchor_sizes=None,
                 backend: str | None = None) -> FCOSTargets:
    """FCOS targets of one image: gt_boxes (G, 4), gt_labels (G,) class ids in ``[0, num_classes)``,
    image_size ``(H, W)``, feature_shapes one ``(h, w)`` per level.

    ``rule="mmdet"`` (default; mmdetection's ``FCOSHead.get_targets``): a point at level l (points from
    `grid_points`, ``offset=0.5``: ``(j + 0.5) * stride``) is assigned the smallest-area ground truth that
    contains it strictly (all four distances > 0; with `center_sampling`, the ground truth's centre square of
    half-side ``stride * center_sample_radius``, clipped to the box, must contain it) and whose largest
    distance ``max(l, t, r, b)`` lies in ``regress_ranges[l]`` (both ends inclusive; default
    `FCOS_REGRESS_RANGES`). mmdetection's defaults are ``center_sampling=False, norm_on_bbox=False``; its
    improved FCOS config turns both on (radius 1.5).

    ``rule="torchvision"`` (torchvision's ``FCOS.compute_loss`` matching, its ``matched_idxs`` as `gt_index`):
    points at ``offset=0`` (``j * stride``, its anchors' centres); center sampling on by default: the point
    must lie within ``center_sample_radius * size_l`` of the box centre along both axes (strictly) and inside
    the box; its largest distance must lie STRICTLY between ``4 size_l`` and ``8 size_l`` (lower bound 0 on the first
    level, no upper bound on the last; or strictly inside `regress_ranges` if given); among candidates the
    highest ``1e8 - area`` wins, computed in the boxes' dtype (`fcos_ranks`), the first on ties, none if below
    1e-5. anchor_sizes: one ``size_l`` per level (a number or torchvision's one-element tuple), default the
    strides (torchvision's ``((8,), (16,), (32,), (64,), (128,))``); torchvision's anchors are
    ``2 * round(size / 2)`` wide, which is used (a size <= 1 gives width 0, which matches nothing). With
    `norm_on_bbox`, distances are divided by ``size_l`` (torchvision's ``BoxLinearCoder(normalize_by_size=True)``).

    The module docstring sets the two rules side by side, with the example where they differ. Both:
    unassigned points are labelled ``num_classes`` (background, as mmdetection); ``bbox_targets`` are the
    distances to the assigned box (to gt 0 for background rows: ignore them). strides: optional, checked
    against the shapes (``ValueError`` naming the level); by default the power of two the shapes imply.
    mmdetection's last range ends at `FCOS_INF` (infinity; mmdetection writes 1e8, which also served as its
    "no candidate" area and so dropped every ground truth larger than 10,000 x 10,000 px: here any box within
    the +-1e15 coordinate limit is assigned; under torchvision's rule, as torchvision, boxes of area >= 1e8
    are not). Ranges may use -inf / inf; every other parameter must be finite, else a ``ValueError`` /
    ``TypeError`` naming it; more points than fit in edudet's allocation limit raise a ``ValueError`` giving
    the sizes. Memory is O(P + G) on every backend (the NumPy reference works a block of points at a time).
    """
    if not isinstance(rule, str) or rule not in FCOS_RULES:
        raise ValueError(f"rule must be one of {FCOS_RULES}, got {rule!r}")
    torchvision_rule = rule == "torchvision"
    image_size = as_image_size(image_size)
    shapes = check_feature_shapes(feature_shapes, image_size)
    if strides is None:
        level_strides = [infer_stride(s, image_size) for s in shapes]
    else:
        level_strides = check_strides(_sequence(strides, "strides"), shapes, image_size)
    num_classes = check_scalar(num_classes, "num_classes", low=1, integer=True)
    radius = check_scalar(center_sample_radius, "center_sample_radius", low=0, low_inclusive=False)
    center_sampling = _flag(torchvision_rule if center_sampling is None else center_sampling, "center_sampling")
    norm_on_bbox = _flag(norm_on_bbox, "norm_on_bbox")
    if torchvision_rule:
        sizes = _anchor_sizes(level_strides if anchor_sizes is None else anchor_sizes, len(shapes))
        if regress_ranges is None:
            regress_ranges = [(4 * size, 8 * size) for size in sizes]
            regress_ranges[0] = (0.0, regress_ranges[0][1])
            regress_ranges[-1] = (regress_ranges[-1][0], FCOS_INF)
    else:
        if anchor_sizes is not None:
            raise ValueError("anchor_sizes belongs to rule='torchvision' (mmdetection's rule scales the centre "
                             "region and ranges by the strides and regress_ranges)")
        sizes = level_strides
    ranges = _regress_ranges(FCOS_REGRESS_RANGES if regress_ranges is None else regress_ranges, len(shapes))
    gt = _gt_boxes(gt_boxes)
    labels_in = _gt_labels(gt_labels, gt.shape[0], low=0)
    if labels_in.size and labels_in.max() >= num_classes:
        raise ValueError(f"gt_labels must be < num_classes={num_classes} (mmdetection's 0-based ids), "
                         f"got {int(labels_in.max())}")
    num_points = sum(h * w for h, w in shapes)
    check_allocation((num_points, 4), gt.itemsize,
                     f"fcos_targets' (P, 4) bbox_targets (P = {num_points} points over every level of feature_shapes)")
    dtype = gt.dtype.type
    if offset is None:
        offset = 0.0 if torchvision_rule else 0.5
    per_level = grid_points(image_size, shapes, strides=level_strides, offset=offset, dtype=dtype)
    counts = [p.shape[0] for p in per_level]
    points = np.concatenate(per_level)
    repeat = lambda values: np.repeat(np.asarray(values, dtype=dtype), counts)  # noqa: E731
    point_scale = repeat(sizes)  # what the centre region and norm_on_bbox scale by: stride, or anchor size
    if gt.shape[0] == 0:
        n = points.shape[0]
        return FCOSTargets(points, np.full(n, num_classes, dtype=np.int64), np.zeros((n, 4), dtype=dtype),
                           np.zeros(n, dtype=dtype), np.full(n, -1, dtype=np.int64), counts)
    kernel = _fcos_assign.get(backend)
    radius_stride = repeat(_centre_half_sides(radius, sizes, dtype, torchvision_rule))
    no_candidate = (np.nextafter(dtype(TORCHVISION_NO_MATCH), dtype(0)) if torchvision_rule  # rank <= -1e-5
                    else dtype(FCOS_INF))
    gt_index = kernel(points, gt, radius_stride, repeat([r[0] for r in ranges]), repeat([r[1] for r in ranges]),
                      center_sampling, no_candidate, torchvision_rule)
    positive = gt_index >= 0
    assigned = gt[np.maximum(gt_index, 0)]  # background rows take gt 0, as mmdetection's argmin over INF
    bbox_targets = np.stack([points[:, 0] - assigned[:, 0], points[:, 1] - assigned[:, 1],
                             assigned[:, 2] - points[:, 0], assigned[:, 3] - points[:, 1]], axis=1)
    if norm_on_bbox:
        bbox_targets = bbox_targets / point_scale[:, None]
    labels = np.where(positive, labels_in[np.maximum(gt_index, 0)], num_classes).astype(np.int64)
    centerness = np.zeros(points.shape[0], dtype=dtype)
    centerness[positive] = centerness_target(bbox_targets[positive])
    return FCOSTargets(points, labels, bbox_targets, centerness, gt_index, counts)


def _anchor_sizes(anchor_sizes, num_levels: int) -> list[float]:
    """torchvision's anchor size per level: one positive number (or one-element tuple) per level, as the
    width of torchvision's anchor, ``2 * round(size / 2)`` (its anchors are ``round(-size / 2)`` to
    ``round(size / 2)`` about the point, rounded half to even)."""
    sizes = _sequence(anchor_sizes, "anchor_sizes")
    if len(sizes) != num_levels:
        raise ValueError(f"anchor_sizes must hold one size per level ({num_levels} levels), got {len(sizes)}")
    out = []
    for i, size in enumerate(sizes):
        if isinstance(size, (list, tuple)):
            if len(size) != 1:
                raise ValueError(f"anchor_sizes[{i}] must be one size (FCOS has one anchor per location), "
                                 f"got {size!r}")
            size = size[0]
        size = check_scalar(size, f"anchor_sizes[{i}]", low=0, low_inclusive=False)
        out.append(2.0 * round(size / 2))  # a size of 1 or less gives width 0: nothing matches, as in torchvision
    return out


def _centre_half_sides(radius: float, sizes, dtype, torchvision_rule: bool) -> list[float]:
    """Per level, the centre region's half-side ``radius * size``: in double precision then the boxes' dtype
    (mmdetection multiplies Python floats), or in the boxes' dtype (torchvision multiplies tensors).
    A square wider than any box (coordinates are within +-1e15) is the whole box: capping the half-side
    there changes no assignment and keeps it finite in float32 (1e300 * 8 would be inf)."""
    with np.errstate(over="ignore"):
        if torchvision_rule:
            half_sides = [float(dtype(radius) * dtype(size)) for size in sizes]
        else:
            half_sides = [radius * size for size in sizes]
    return [min(h, 4 * COORDINATE_LIMIT) for h in half_sides]
