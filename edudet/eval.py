"""COCO-style mean average precision (mAP) of detections, the numbers pycocotools' COCOeval prints.

predictions: a list with one dict per image, ``boxes`` (N, 4) xyxy, ``scores`` (N,), ``labels`` (N,) ints.
ground_truths: a list of the same length, ``boxes`` (M, 4) xyxy, ``labels`` (M,) ints, and optionally
``iscrowd`` (M,) 0/1 and ``area`` (M,) (the area used for the small/medium/large ranges; default: box area).

The rule, in one sentence: per category and IoU threshold, detections of all images are ranked by score,
each is greedily matched (highest score first, inside its own image) to the unmatched ground truth with the
highest IoU at or above the threshold; the precision/recall curve of that ranking is made monotone and read
at 101 recall points; AP is the mean over those points, the 10 thresholds 0.50:0.05:0.95 and the categories
that have ground truth.

This follows the COCO detection evaluation (Lin et al., "Microsoft COCO", 2014) as pycocotools implements it,
tie rules included, so the results agree with `pycocotools.cocoeval.COCOeval` (checked in tests/test_eval.py):

- detections per image and category are the `max_dets` highest scores (stable sort, so equal scores keep
  their input order); across images, equal scores keep image order;
- a detection prefers a regular ground truth to an ignored one (crowd or outside the area range), and among
  equal IoUs takes the later ground truth, as pycocotools does;
- crowd ground truths (``iscrowd=1``) never count as objects to find: a detection that overlaps one by
  ``intersection / detection area >= threshold`` is ignored (neither true nor false positive), and one crowd
  region may absorb any number of detections;
- a metric with no ground truth to find (no category with a regular ground truth in that area range) is -1,
  as in pycocotools.

Boxes are compared in float64 with continuous coordinates (width ``x2 - x1``, no +1).
"""
from __future__ import annotations

import numpy as np

from ._validate import as_boxes, as_int_labels, as_real_array, as_scores, check_finite

__all__ = [
    "mean_average_precision",
    "IOU_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "AREA_RANGES",
    "MAX_DETECTIONS",
    "STAT_NAMES",
]

# the same linspace calls as pycocotools, so thresholds compare bit-for-bit (0.75 is exactly 0.75 here)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
# object area in pixels, both ends inclusive: COCO's "small" is below 32 x 32, "large" above 96 x 96
AREA_RANGES = {
    "all": (0.0, 1e5 ** 2),
    "small": (0.0, 32.0 ** 2),
    "medium": (32.0 ** 2, 96.0 ** 2),
    "large": (96.0 ** 2, 1e5 ** 2),
}
MAX_DETECTIONS = (1, 10, 100)
# the 12 summary numbers, in the order of pycocotools' `COCOeval.stats`
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def mean_average_precision(predictions, ground_truths) -> dict:
    """COCO mAP and friends of `predictions` against `ground_truths` (one dict per image, see the module doc).

    Returns a dict of floats keyed by `STAT_NAMES`: ``AP`` (IoU 0.50:0.95), ``AP50``, ``AP75``, ``APs``/``APm``/
    ``APl`` (by ground-truth area), ``AR1``/``AR10``/``AR100`` (recall with at most 1/10/100 detections per
    image, averaged over thresholds) and ``ARs``/``ARm``/``ARl``; plus ``per_category``, {label: AP}, for every
    label that has a regular ground truth. Every AP uses at most 100 detections per image.
    """
    predictions, ground_truths = _check_inputs(predictions, ground_truths)
    categories = sorted({int(c) for gt in ground_truths for c in gt["labels"]})
    max_dets = MAX_DETECTIONS[-1]

    # precision[area][category]: (T, R) curve at 100 detections, or None when there is nothing to find;
    # recall[area][category][max_det]: (T,) final recall
    precision = {area: {} for area in AREA_RANGES}
    recall = {area: {} for area in AREA_RANGES}
    for category in categories:
        per_image = [_image_category(p, g, category, max_dets) for p, g in zip(predictions, ground_truths)]
        for area, area_range in AREA_RANGES.items():
            matches = [_match_image(*image, area_range) for image in per_image]
            recall[area][category] = {}
            for max_det in MAX_DETECTIONS:
                curve = _precision_recall(matches, max_det)
                if max_det == max_dets:
                    precision[area][category] = None if curve is None else curve[0]
                recall[area][category][max_det] = None if curve is None else curve[1]

    def mean_ap(area: str, threshold_index=slice(None)) -> float:
        curves = [c[threshold_index] for c in precision[area].values() if c is not None]
        return float(np.mean(curves)) if curves else -1.0

    def mean_ar(area: str, max_det: int) -> float:
        recalls = [r[max_det] for r in recall[area].values() if r[max_det] is not None]
        return float(np.mean(recalls)) if recalls else -1.0

    stats = {
        "AP": mean_ap("all"),
        "AP50": mean_ap("all", _threshold_index(0.5)),
        "AP75": mean_ap("all", _threshold_index(0.75)),
        "APs": mean_ap("small"),
        "APm": mean_ap("medium"),
        "APl": mean_ap("large"),
        "AR1": mean_ar("all", 1),
        "AR10": mean_ar("all", 10),
        "AR100": mean_ar("all", 100),
        "ARs": mean_ar("small", max_dets),
        "ARm": mean_ar("medium", max_dets),
        "ARl": mean_ar("large", max_dets),
    }
    stats["per_category"] = {
        category: float(np.mean(curve)) for category, curve in precision["all"].items() if curve is not None
    }
    return stats


def _threshold_index(value: float) -> int:
    return int(np.flatnonzero(IOU_THRESHOLDS == value)[0])


# --- one image, one category -------------------------------------------------------------------------------

def _image_category(prediction: dict, ground_truth: dict, category: int, max_dets: int):
    """The pieces of one image that matter for `category`: its best detections and its ground truths.

    Returns (scores (D,), areas of the detections (D,), ious (D, G), gt areas (G,), gt crowd flags (G,)).
    """
    keep = prediction["labels"] == category
    det_boxes, det_scores = prediction["boxes"][keep], prediction["scores"][keep]
    # highest score first; a stable sort keeps the input order among equal scores, as pycocotools does
    order = np.argsort(-det_scores, kind="stable")[:max_dets]
    det_boxes, det_scores = det_boxes[order], det_scores[order]

    is_gt = ground_truth["labels"] == category
    gt_boxes, gt_crowd = ground_truth["boxes"][is_gt], ground_truth["iscrowd"][is_gt]
    gt_area = ground_truth["area"][is_gt]
    ious = _coco_iou(det_boxes, gt_boxes, gt_crowd)
    return det_scores, _area(det_boxes), ious, gt_area, gt_crowd


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _coco_iou(det_boxes: np.ndarray, gt_boxes: np.ndarray, gt_crowd: np.ndarray) -> np.ndarray:
    """(D, G) IoU; against a crowd region the union is the detection alone (how much of it lies in the crowd)."""
    left_top = np.maximum(det_boxes[:, None, :2], gt_boxes[None, :, :2])
    right_bottom = np.minimum(det_boxes[:, None, 2:], gt_boxes[None, :, 2:])
    wh = np.clip(right_bottom - left_top, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    det_area, gt_area = _area(det_boxes)[:, None], _area(gt_boxes)[None, :]
    union = np.where(gt_crowd[None, :], det_area, det_area + gt_area - inter)
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=inter > 0)  # no overlap is IoU 0, even for zero-area boxes
    return out


def _match_image(det_scores, det_area, ious, gt_area, gt_crowd, area_range):
    """Greedy matching of one image's detections, at every IoU threshold at once.

    Returns (scores (D,), matched (T, D) bool, ignored (T, D) bool, number of regular ground truths).
    A ground truth is ignored when it is a crowd or its area is outside `area_range`; a detection is
    ignored when it matches an ignored ground truth, or matches nothing and is itself outside the range.
    """
    low, high = area_range
    gt_ignored = gt_crowd | (gt_area < low) | (gt_area > high)
    num_thresholds, (num_dets, num_gts) = len(IOU_THRESHOLDS), ious.shape
    matched = np.zeros((num_thresholds, num_dets), dtype=bool)
    ignored = np.zeros((num_thresholds, num_dets), dtype=bool)
    gt_taken = np.zeros((num_thresholds, num_gts), dtype=bool)
    # pycocotools compares with min(t, 1 - 1e-10): a threshold of 1 is met by an IoU rounded just below 1
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
    any_ignored = bool(gt_ignored.any())
    # a detection below the lowest threshold with every ground truth can match nothing: skip it
    may_match = ious.max(axis=1) >= thresholds[0, 0] if num_gts else np.zeros(num_dets, dtype=bool)
    for d in np.flatnonzero(may_match):  # highest score first: better detections choose first
        # (T, G): which ground truths this detection may take at each threshold; crowds can be shared
        candidate = (ious[d][None, :] >= thresholds) & (~gt_taken | gt_crowd[None, :])
        best = _best_last(ious[d], candidate & ~gt_ignored)
        if any_ignored:  # a regular ground truth wins over any ignored one, whatever their IoUs
            best = np.where(best >= 0, best, _best_last(ious[d], candidate & gt_ignored))
        hit = best >= 0
        matched[hit, d] = True
        ignored[hit, d] = gt_ignored[best[hit]]
        gt_taken[hit, best[hit]] = True
    outside = (det_area < low) | (det_area > high)
    ignored |= ~matched & outside[None, :]
    return det_scores, matched, ignored, int(np.count_nonzero(~gt_ignored))


def _best_last(iou_row: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """(T,) index of the highest allowed IoU in each row (the last one among ties), -1 where none is allowed."""
    masked = np.where(allowed, iou_row[None, :], -1.0)
    last_of_max = masked.shape[1] - 1 - np.argmax(masked[:, ::-1], axis=1)  # pycocotools keeps the later tie
    return np.where(allowed.any(axis=1), last_of_max, -1)


# --- all images of one category -----------------------------------------------------------------------------

def _precision_recall(matches: list, max_det: int):
    """((T, R) interpolated precision at `RECALL_THRESHOLDS`, (T,) final recall) over all images, or None.

    None when no image has a regular ground truth: AP is undefined there, and skipped in the means.
    """
    num_objects = sum(m[3] for m in matches)
    if num_objects == 0:
        return None
    scores = np.concatenate([m[0][:max_det] for m in matches])
    matched = np.concatenate([m[1][:, :max_det] for m in matches], axis=1)
    ignored = np.concatenate([m[2][:, :max_det] for m in matches], axis=1)
    order = np.argsort(-scores, kind="stable")  # rank every detection of the category, best first
    matched, ignored = matched[:, order], ignored[:, order]

    precision = np.zeros((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)))
    final_recall = np.zeros(len(IOU_THRESHOLDS))
    for t in range(len(IOU_THRESHOLDS)):
        counted = matched[t][~ignored[t]]  # ignored detections are neither right nor wrong: drop them
        if counted.size == 0:
            continue  # nothing found: precision and recall stay 0
        true_positives = np.cumsum(counted)
        false_positives = np.cumsum(~counted)
        recall = true_positives / num_objects
        precision_at_rank = true_positives / (true_positives + false_positives)
        # the interpolated precision at recall r is the best precision at any recall >= r (the envelope)
        envelope = np.maximum.accumulate(precision_at_rank[::-1])[::-1]
        # first rank reaching each recall threshold; thresholds beyond the final recall get precision 0
        rank = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
        reached = rank < len(recall)
        precision[t, reached] = envelope[rank[reached]]
        final_recall[t] = recall[-1]
    return precision, final_recall


# --- input checks -------------------------------------------------------------------------------------------

def _check_inputs(predictions, ground_truths):
    for name, value in (("predictions", predictions), ("ground_truths", ground_truths)):
        if isinstance(value, dict) or not hasattr(value, "__len__"):
            raise TypeError(f"{name} must be a list with one dict per image, got {type(value).__name__}")
    if len(predictions) != len(ground_truths):
        raise ValueError(
            f"predictions has {len(predictions)} images but ground_truths has {len(ground_truths)}; they must match"
        )
    clean_predictions = [_check_prediction(p, i) for i, p in enumerate(predictions)]
    clean_ground_truths = [_check_ground_truth(g, i) for i, g in enumerate(ground_truths)]
    return clean_predictions, clean_ground_truths


def _get(entry, key: str, where: str):
    if not isinstance(entry, dict):
        raise TypeError(f"{where} must be a dict, got {type(entry).__name__}")
    if key not in entry:
        expected = "boxes, scores, labels" if where.startswith("predictions") else "boxes, labels"
        raise ValueError(f"{where} has no {key!r} (expected keys: {expected})")
    return entry[key]


def _check_xyxy(boxes, name: str) -> np.ndarray:
    boxes = as_boxes(boxes, name, dtype=np.float64)
    if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
        raise ValueError(f"{name} must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1")
    return boxes


def _check_prediction(entry, i: int) -> dict:
    where = f"predictions[{i}]"
    boxes = _check_xyxy(_get(entry, "boxes", where), f"{where}['boxes']")
    scores = as_scores(_get(entry, "scores", where), len(boxes), f"{where}['scores']", dtype=np.float64)
    labels = as_int_labels(_get(entry, "labels", where), len(boxes), f"{where}['labels']")
    return {"boxes": boxes, "scores": scores, "labels": labels}


def _check_ground_truth(entry, i: int) -> dict:
    where = f"ground_truths[{i}]"
    boxes = _check_xyxy(_get(entry, "boxes", where), f"{where}['boxes']")
    labels = as_int_labels(_get(entry, "labels", where), len(boxes), f"{where}['labels']")
    iscrowd = np.zeros(len(boxes), dtype=bool)
    if entry.get("iscrowd") is not None:
        raw = as_int_labels(entry["iscrowd"], len(boxes), f"{where}['iscrowd']")
        if np.any((raw != 0) & (raw != 1)):
            raise ValueError(f"{where}['iscrowd'] must hold 0 or 1")
        iscrowd = raw.astype(bool)
    area = _area(boxes)
    if entry.get("area") is not None:
        area = as_real_array(entry["area"], f"{where}['area']").astype(np.float64)
        if area.shape != (len(boxes),):
            raise ValueError(f"{where}['area'] must have shape ({len(boxes)},), got {tuple(area.shape)}")
        check_finite(area, f"{where}['area']")
        if np.any(area < 0):
            raise ValueError(f"{where}['area'] must be >= 0")
    return {"boxes": boxes, "labels": labels, "iscrowd": iscrowd, "area": area}
