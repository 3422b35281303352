"""edudet.eval: hand-computed cases, then properties, then parity with pycocotools' COCOeval."""
import contextlib
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edudet
from edudet.eval import IOU_THRESHOLDS, RECALL_THRESHOLDS, STAT_NAMES, mean_average_precision
from helpers import random_boxes, require


def image(boxes=(), labels=None, scores=None, **extra):
    """One image's dict: boxes (N, 4), labels default 1, scores default 1 (drop scores for a ground truth)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    entry = {"boxes": boxes, "labels": np.ones(len(boxes), np.int64) if labels is None else np.asarray(labels)}
    if scores is not None:
        entry["scores"] = np.asarray(scores, dtype=np.float64)
    entry.update(extra)
    return entry


def prediction(boxes=(), labels=None, scores=None):
    n = np.asarray(boxes).reshape(-1, 4).shape[0]
    return image(boxes, labels, np.ones(n) if scores is None else scores)


# ---------------------------------------------------------------------------------------------------------
# hand-computed cases
# ---------------------------------------------------------------------------------------------------------

def test_thresholds_are_cocos():
    np.testing.assert_allclose(IOU_THRESHOLDS, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95], atol=1e-15)
    assert IOU_THRESHOLDS[0] == 0.5 and IOU_THRESHOLDS[5] == 0.75  # exact: AP50 and AP75 pick these rows
    assert len(RECALL_THRESHOLDS) == 101 and RECALL_THRESHOLDS[0] == 0 and RECALL_THRESHOLDS[-1] == 1
    assert edudet.eval.mean_average_precision is mean_average_precision  # reachable through edudet


def test_one_perfect_detection():
    stats = mean_average_precision([prediction([[0, 0, 10, 10]])], [image([[0, 0, 10, 10]])])
    # IoU 1 >= every threshold; precision 1 at every recall point: AP 1. A 10 x 10 box is small (< 32^2).
    for name in ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs"):
        assert stats[name] == 1.0, name
    for name in ("APm", "APl", "ARm", "ARl"):  # no medium or large object to find: undefined, -1 as COCO
        assert stats[name] == -1.0, name
    assert stats["per_category"] == {1: 1.0}


def test_one_detection_at_iou_0_6():
    # det [0, 0, 10, 6] inside gt [0, 0, 10, 10]: intersection 60, union 100, IoU 0.6 exactly
    stats = mean_average_precision([prediction([[0, 0, 10, 6]])], [image([[0, 0, 10, 10]])])
    assert stats["AP50"] == 1.0 and stats["AP75"] == 0.0
    # found at thresholds 0.50, 0.55, 0.60 (>=), missed at the 7 others: AP = 3 / 10
    assert stats["AP"] == pytest.approx(0.3, abs=1e-15) and stats["AR100"] == pytest.approx(0.3, abs=1e-15)


def test_ranking_across_images():
    # two images, one object each. Ranked detections: 0.9 hits image 0, 0.8 misses in image 1, 0.7 hits image 1:
    # TP, FP, TP -> recall 0.5, 0.5, 1.0; precision 1, 1/2, 2/3; envelope (best precision at any recall >= r)
    # 1, 2/3, 2/3. Recall points 0.00..0.50 (51 of them) read 1, 0.51..1.00 (50) read 2/3:
    # AP = (51 * 1 + 50 * 2/3) / 101 = 0.834983...
    ground_truths = [image([[0, 0, 10, 10]]), image([[20, 20, 40, 40]])]
    predictions = [
        prediction([[0, 0, 10, 10]], scores=[0.9]),
        prediction([[50, 50, 60, 60], [20, 20, 40, 40]], scores=[0.8, 0.7]),
    ]
    stats = mean_average_precision(predictions, ground_truths)
    expected = (51 + 50 * 2 / 3) / 101
    assert stats["AP"] == pytest.approx(expected, abs=1e-12)
    assert stats["AP50"] == pytest.approx(expected, abs=1e-12)
    # at most one detection per image: 0.9 in image 0, 0.8 (a miss) in image 1: recall 1/2
    assert stats["AR1"] == 0.5 and stats["AR10"] == 1.0


def test_duplicates_after_full_recall_cost_nothing():
    # the 0.9 detection takes the only object; the 0.8 duplicate is a false positive ranked after recall 1
    stats = mean_average_precision([prediction([[0, 0, 10, 10]] * 2, scores=[0.9, 0.8])], [image([[0, 0, 10, 10]])])
    assert stats["AP"] == 1.0
    # ranked first, the same duplicate halves the precision at every recall: AP 1/2
    stats = mean_average_precision(
        [prediction([[0, 0, 10, 10], [50, 50, 60, 60]], scores=[0.8, 0.9])], [image([[0, 0, 10, 10]])]
    )
    assert stats["AP"] == pytest.approx(0.5, abs=1e-15)


def test_best_iou_wins_not_first_ground_truth():
    # one detection [0, 0, 10, 10] overlaps gt A [0, 0, 10, 12] (IoU 100/120 = 0.83) and gt B (itself, IoU 1).
    # It takes B, the best; A stays unfound: recall 1/2 at precision 1 -> AP = 51/101 at every threshold
    stats = mean_average_precision([prediction([[0, 0, 10, 10]])], [image([[0, 0, 10, 12], [0, 0, 10, 10]])])
    assert stats["AP"] == pytest.approx(51 / 101, abs=1e-15)


def test_mean_over_categories_with_ground_truth():
    gt = image([[0, 0, 10, 10], [20, 20, 30, 30]], labels=[1, 2])
    # category 1 found (AP 1), category 2 missed (AP 0); category 3 has no ground truth: left out of the mean,
    # so its detection changes nothing. mAP = (1 + 0) / 2
    pred = prediction([[0, 0, 10, 10], [50, 50, 60, 60]], labels=[1, 3])
    stats = mean_average_precision([pred], [gt])
    assert stats["AP"] == 0.5 and stats["per_category"] == {1: 1.0, 2: 0.0}


def test_crowd_regions_are_ignored():
    # a crowd gt [0, 0, 100, 100] and a regular gt [200, 200, 210, 210]. The 0.9 detection [10, 10, 20, 20]
    # lies inside the crowd: intersection / its own area = 100 / 100 = 1, so it is ignored, not a false positive
    gt = image([[0, 0, 100, 100], [200, 200, 210, 210]], iscrowd=[1, 0])
    pred = prediction([[10, 10, 20, 20], [12, 12, 22, 22], [200, 200, 210, 210]], scores=[0.9, 0.85, 0.5])
    assert mean_average_precision([pred], [gt])["AP"] == 1.0  # a crowd absorbs any number of detections
    # without the crowd flag the two are misses (the big gt is far from both in IoU): FP, FP, TP, and the
    # big gt is never found: recall 1/2 at precision 1/3 -> AP = 51/101 * 1/3
    stats = mean_average_precision([pred], [image(gt["boxes"])])
    assert stats["AP"] == pytest.approx(51 / 101 / 3, abs=1e-15)


def test_area_ranges_use_the_given_area():
    # a 10 x 10 box is small, but an explicit area (a segment's pixel count, as COCO uses) decides the range
    gt = image([[0, 0, 10, 10]], area=[50.0**2])
    stats = mean_average_precision([prediction([[0, 0, 10, 10]])], [gt])
    assert stats["APm"] == 1.0 and stats["APs"] == -1.0 and stats["APl"] == -1.0


def test_max_detections_per_image():
    # 2 objects, 2 perfect detections: with 1 detection per image only the better is counted: AR1 = 1/2
    boxes = [[0, 0, 10, 10], [20, 20, 30, 30]]
    stats = mean_average_precision([prediction(boxes, scores=[0.9, 0.8])], [image(boxes)])
    assert stats["AR1"] == 0.5 and stats["AR10"] == 1.0 and stats["AP"] == 1.0
    # only the 100 best detections per image count: 100 misses scored above one hit leave it uncounted
    misses = [[500 + i, 500, 501 + i, 501] for i in range(100)]
    pred = prediction(misses + [[0, 0, 10, 10]], scores=[0.9] * 100 + [0.1])
    stats = mean_average_precision([pred], [image([[0, 0, 10, 10]])])
    assert stats["AP"] == 0.0 and stats["AR100"] == 0.0


def test_nothing_to_find_or_nothing_found():
    empty = mean_average_precision([], [])
    assert all(empty[name] == -1.0 for name in STAT_NAMES) and empty["per_category"] == {}
    no_gt = mean_average_precision([prediction([[0, 0, 5, 5]])], [image()])
    assert no_gt["AP"] == -1.0
    no_predictions = mean_average_precision([prediction()], [image([[0, 0, 5, 5]])])
    assert no_predictions["AP"] == 0.0 and no_predictions["AR100"] == 0.0


# ---------------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------------

def random_dataset(rng, num_images, max_objects=6, max_predictions=10, crowd=0.0, score_decimals=None,
                   dtype=np.float64):
    """Ground truths and noisy predictions near them, with empty images and images without predictions."""
    predictions, ground_truths = [], []
    for _ in range(num_images):
        m = int(rng.integers(0, max_objects + 1))
        gt_boxes = random_boxes(rng, m, image_size=300, min_side=2, max_side=150, dtype=np.float64)
        gt_labels = rng.integers(1, 4, m)
        n = int(rng.integers(0, max_predictions + 1)) if rng.random() > 0.2 else 0
        if m:
            source = rng.integers(0, m, n)
            boxes = gt_boxes[source] + rng.normal(0, 6, (n, 4))
            labels = np.where(rng.random(n) < 0.8, gt_labels[source], rng.integers(1, 4, n))
        else:
            boxes, labels = rng.uniform(0, 300, (n, 4)), rng.integers(1, 4, n)
        boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        scores = rng.random(n)
        if score_decimals is not None:
            scores = np.round(scores, score_decimals)  # ties: the order rules must agree too
        predictions.append({"boxes": boxes.astype(dtype), "scores": scores.astype(dtype), "labels": labels})
        ground_truths.append({"boxes": gt_boxes.astype(dtype), "labels": gt_labels,
                              "iscrowd": (rng.random(m) < crowd).astype(np.int64)})
    return predictions, ground_truths


def assert_stats_equal(a, b, names=STAT_NAMES):
    for name in names:
        assert a[name] == pytest.approx(b[name], abs=1e-12), name


@given(seed=st.integers(0, 2**32 - 1))
def test_bounds_and_perfect_predictions(seed):
    rng = np.random.default_rng(seed)
    predictions, ground_truths = random_dataset(rng, 4)
    stats = mean_average_precision(predictions, ground_truths)
    for name in STAT_NAMES:
        assert stats[name] == -1.0 or 0.0 <= stats[name] <= 1.0
    # predicting the ground truth itself, in any score order, is perfect wherever there is something to find
    # (but AR1: one detection per image cannot find an image's second object)
    perfect = [prediction(g["boxes"], g["labels"], rng.random(len(g["boxes"]))) for g in ground_truths]
    stats = mean_average_precision(perfect, ground_truths)
    assert all(stats[name] in (1.0, -1.0) for name in STAT_NAMES if name != "AR1")
    assert (stats["AP"] == 1.0) == any(len(g["boxes"]) for g in ground_truths)


@given(seed=st.integers(0, 2**32 - 1))
def test_invariances(seed):
    rng = np.random.default_rng(seed)
    predictions, ground_truths = random_dataset(rng, 5)
    stats = mean_average_precision(predictions, ground_truths)
    # the order of the images does not matter (scores are distinct, so no tie is broken by image order)
    order = rng.permutation(len(predictions))
    shuffled = mean_average_precision([predictions[i] for i in order], [ground_truths[i] for i in order])
    assert_stats_equal(stats, shuffled)
    # only the ranking of scores matters: halving them (exact in floating point) changes nothing
    halved = [{**p, "scores": p["scores"] / 2} for p in predictions]
    assert_stats_equal(stats, mean_average_precision(halved, ground_truths))
    # IoU is scale free: doubling every box (exact) keeps every AP over area "all"
    doubled = mean_average_precision([{**p, "boxes": p["boxes"] * 2} for p in predictions],
                                     [{**g, "boxes": g["boxes"] * 2} for g in ground_truths])
    assert_stats_equal(stats, doubled, names=("AP", "AP50", "AP75", "AR1", "AR10", "AR100"))
    # an extra image with nothing in it, and detections of a category without ground truth, change nothing
    extra = mean_average_precision(predictions + [prediction()], ground_truths + [image()])
    assert_stats_equal(stats, extra)
    stray = [{**p, "labels": np.full(len(p["labels"]), 99)} for p in predictions]
    stray_stats = mean_average_precision(
        [prediction(np.concatenate([p["boxes"], s["boxes"]]), np.concatenate([p["labels"], s["labels"]]),
                    np.concatenate([p["scores"], s["scores"]])) for p, s in zip(predictions, stray)],
        ground_truths,
    )
    assert_stats_equal(stats, stray_stats)


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "predictions, ground_truths, error, match",
    [
        ([prediction()], [], ValueError, "1 images but ground_truths has 0"),
        (prediction(), [image()], TypeError, "predictions must be a list"),
        ([[0, 0, 1, 1]], [image()], TypeError, r"predictions\[0\] must be a dict"),
        ([{"boxes": np.zeros((1, 4)), "labels": [1]}], [image()], ValueError, "no 'scores'"),
        ([prediction()], [{"labels": []}], ValueError, r"ground_truths\[0\] has no 'boxes'"),
        ([{"boxes": [[0, 0, 1]], "scores": [1.0], "labels": [1]}], [image()], ValueError, r"shape \(N, 4\)"),
        ([prediction([[0, 0, 1, np.nan]])], [image()], ValueError, "NaN or inf"),
        ([prediction([[5, 0, 1, 1]])], [image()], ValueError, "x2 >= x1"),
        ([prediction([[0, 0, 1, 1]], scores=[0.5, 0.6])], [image()], ValueError, "scores'] has 2 entries"),
        ([prediction([[0, 0, 1, 1]], scores=[np.inf])], [image()], ValueError, "NaN or inf"),
        ([prediction()], [image([[0, 0, 1, 1]], labels=[1.5])], ValueError, "must hold integers"),
        ([prediction()], [image([[0, 0, 1, 1]], iscrowd=[2])], ValueError, "0 or 1"),
        ([prediction()], [image([[0, 0, 1, 1]], area=[-1.0])], ValueError, r"area'\] must be >= 0"),
        ([prediction()], [image([[0, 0, 1, 1]], area=[1.0, 2.0])], ValueError, r"area'\] must have shape \(1,\)"),
    ],
)
def test_bad_input(predictions, ground_truths, error, match):
    with pytest.raises(error, match=match):
        mean_average_precision(predictions, ground_truths)


# ---------------------------------------------------------------------------------------------------------
# parity with pycocotools
# ---------------------------------------------------------------------------------------------------------

def import_pycocotools():
    """(COCO, COCOeval), or skip locally when missing; in CI a missing pycocotools is a failure."""
    coco = require("pycocotools.coco", "the eval parity tests")
    cocoeval = require("pycocotools.cocoeval", "the eval parity tests")
    return coco.COCO, cocoeval.COCOeval


def pycocotools_stats(predictions, ground_truths, categories=(1, 2, 3)):
    """COCOeval's 12 stats on the same data, built in memory: boxes as xywh, gt area given as w * h."""
    COCO, COCOeval = import_pycocotools()
    images, annotations, detections = [], [], []
    for image_id, (pred, gt) in enumerate(zip(predictions, ground_truths), start=1):
        images.append({"id": image_id, "width": 300, "height": 300})
        areas = gt.get("area")
        for k, (box, label) in enumerate(zip(gt["boxes"].astype(np.float64), gt["labels"])):
            x1, y1, x2, y2 = (float(v) for v in box)
            area = float(areas[k]) if areas is not None else (x2 - x1) * (y2 - y1)
            crowd = int(gt["iscrowd"][k]) if "iscrowd" in gt else 0
            # ids start at 1: pycocotools stores the matched id, and 0 means "unmatched"
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area, "iscrowd": crowd})
        for box, score, label in zip(pred["boxes"].astype(np.float64), pred["scores"], pred["labels"]):
            x1, y1, x2, y2 = (float(v) for v in box)
            detections.append({"image_id": image_id, "category_id": int(label), "score": float(score),
                               "bbox": [x1, y1, x2 - x1, y2 - y1]})
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": annotations,
                       "categories": [{"id": c, "name": str(c)} for c in categories]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(detections)  # needs at least one detection
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STAT_NAMES, evaluator.stats))


def assert_matches_pycocotools(predictions, ground_truths):
    expected = pycocotools_stats(predictions, ground_truths)
    got = mean_average_precision(predictions, ground_truths)
    for name in STAT_NAMES:
        assert got[name] == pytest.approx(expected[name], abs=1e-4), name  # the brief's bar
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name  # what we actually reach


@pytest.mark.parametrize("seed", range(12))
def test_parity_with_pycocotools(seed):
    rng = np.random.default_rng(seed)
    predictions, ground_truths = random_dataset(
        rng, num_images=int(rng.integers(1, 10)), crowd=0.15 if seed % 2 else 0.0,
        score_decimals=1 if seed % 3 == 0 else None, dtype=np.float32 if seed % 4 == 1 else np.float64,
    )
    if not any(len(p["boxes"]) for p in predictions):
        predictions[0] = prediction([[0, 0, 10, 10]], scores=[0.5])  # pycocotools' loadRes needs one detection
    assert_matches_pycocotools(predictions, ground_truths)


def test_parity_with_pycocotools_crowded_images():
    # many overlapping objects and detections per image (more than 100 in some): the matching order matters
    rng = np.random.default_rng(123)
    predictions, ground_truths = random_dataset(rng, num_images=4, max_objects=40, max_predictions=130,
                                                crowd=0.05, score_decimals=2)
    assert_matches_pycocotools(predictions, ground_truths)


def test_parity_with_pycocotools_given_areas_and_hand_cases():
    rng = np.random.default_rng(7)
    predictions, ground_truths = random_dataset(rng, num_images=6)
    for gt in ground_truths:  # areas unrelated to the boxes (as segment areas are) move objects between ranges
        gt["area"] = rng.uniform(0, 150**2, len(gt["boxes"]))
    assert_matches_pycocotools(predictions, ground_truths)
    # the hand cases above, checked against pycocotools too
    assert_matches_pycocotools([prediction([[0, 0, 10, 6]])], [image([[0, 0, 10, 10]])])
    assert_matches_pycocotools(
        [prediction([[10, 10, 20, 20], [12, 12, 22, 22], [200, 200, 210, 210]], scores=[0.9, 0.85, 0.5])],
        [image([[0, 0, 100, 100], [200, 200, 210, 210]], iscrowd=[1, 0])],
    )
    assert_matches_pycocotools([prediction([[0, 0, 10, 10]])], [image([[0, 0, 10, 12], [0, 0, 10, 10]])])


# issue 12: labels beyond int64 used to wrap to INT64_MIN (1e19 and 2e19 became one category): refused now
@pytest.mark.parametrize("labels,error", [
    ([1e19], ValueError),
    ([-2e19], ValueError),
    (np.array([2**63], np.uint64), ValueError),
    ([2**64], TypeError),  # a Python int NumPy cannot hold: an object array
])
def test_labels_beyond_int64_are_refused(labels, error):
    with pytest.raises(error, match=r"labels"):
        mean_average_precision([prediction([[0, 0, 1, 1]], labels=labels)], [image([[0, 0, 1, 1]])])
    with pytest.raises(error, match=r"ground_truths\[0\]\['labels'\]"):
        mean_average_precision([prediction()], [image([[0, 0, 1, 1]], labels=labels)])


def test_float_labels_within_int64_still_work():
    # 2**53 is exactly representable as a float and as an int64: one category, found exactly once
    label = float(2**53)
    stats = mean_average_precision([prediction([[0, 0, 10, 10]], labels=[label])],
                                   [image([[0, 0, 10, 10]], labels=[label])])
    assert stats["AP"] == 1.0 and list(stats["per_category"]) == [2**53]
