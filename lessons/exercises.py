"""The lessons' exercises: the answer, the typical slips and what to say about each, hints, and two test answers.

Read this file after trying an exercise, not before: it holds the answers. Each entry is an `Exercise`
(`edudet.lessons.check`); its arithmetic is written out in the comment above it. ``solution`` and ``wrong``
are what the lesson tests answer with (every solution must be judged right, every wrong answer wrong).
"""
from __future__ import annotations

import math

import numpy as np

from .check import Exercise


# --- lesson 01: IoU ------------------------------------------------------------------------------------------

def _iou_reference(a, b):
    """IoU of two (x1, y1, x2, y2) boxes."""
    overlap_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    overlap_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = overlap_w * overlap_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _iou_unclamped(a, b):
    """The classic slip: no max(0, ...), so two negative overlaps multiply to a positive area."""
    inter = (min(a[2], b[2]) - max(a[0], b[0])) * (min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _iou_union_is_sum(a, b):
    overlap = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return overlap / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]))


# --- lesson 06: bilinear interpolation ----------------------------------------------------------------------

def _bilinear_reference(plane, y, x):
    """plane (H, W) read at the real point (y, x), pixel centres at integers (RoIAlign's rule inside the map)."""
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, plane.shape[0] - 1), min(x0 + 1, plane.shape[1] - 1)
    ly, lx = y - y0, x - x0
    return float((1 - ly) * (1 - lx) * plane[y0, x0] + (1 - ly) * lx * plane[y0, x1]
                 + ly * (1 - lx) * plane[y1, x0] + ly * lx * plane[y1, x1])


def _bilinear_nearest(plane, y, x):
    return float(plane[int(round(y)), int(round(x))])


def _bilinear_swapped(plane, y, x):
    return _bilinear_reference(plane.T, y, x) if max(y, x) < min(plane.shape) else float("nan")


def _bilinear_floor(plane, y, x):
    return float(plane[int(math.floor(y)), int(math.floor(x))])


_RAMP = np.arange(12, dtype=float).reshape(3, 4)   # value 4 y + x: bilinear reads of a ramp are exact
_BUMP = np.array([[0.0, 1.0], [2.0, 7.0]])          # not a ramp: the four weights all matter


EXERCISES: dict[str, Exercise] = {
    # (0, 0, 4, 4) and (2, 2, 6, 6): overlap 2 x 2 = 4; union 16 + 16 - 4 = 28; IoU = 4/28 = 1/7
    "iou_by_hand": Exercise(
        1, "IoU of (0, 0, 4, 4) and (2, 2, 6, 6)?", 1 / 7,
        hints=["Intersection: the overlap's width times its height.",
               "Union = area A + area B - intersection (the overlap is in both areas once too often).",
               "4 / (16 + 16 - 4)."],
        solution=1 / 7, wrong=4 / 32,
        mistakes=[(4 / 32, "did you forget to subtract the intersection in the union? (16 + 16 - 4 = 28)"),
                  (4 / 16, "that divides by one box's area; IoU divides by the union of both"),
                  (4 / 24, "the intersection is counted in both areas: subtract it once, not twice")],
        explain="4 / (16 + 16 - 4) = 1/7."),
    "iou_function": Exercise(
        1, "Write iou(a, b) for two (x1, y1, x2, y2) boxes.",
        [(((0, 0, 4, 4), (2, 2, 6, 6)), 1 / 7),
         (((0, 0, 4, 4), (0, 0, 4, 4)), 1.0),
         (((0, 0, 2, 2), (3, 3, 5, 5)), 0.0),          # apart on both axes: both overlaps are negative
         (((0, 0, 2, 2), (2, 0, 4, 2)), 0.0)],         # touching edges: zero overlap
        hints=["The overlap's left edge is the larger x1, its right edge the smaller x2; same for y.",
               "Boxes that do not overlap have a negative overlap width or height: clamp it at 0.",
               "inter = max(0, min(x2s) - max(x1s)) * max(0, min(y2s) - max(y1s)); union = areaA + areaB - inter."],
        solution=_iou_reference, wrong=_iou_unclamped, kind="function",
        mistakes=[(_iou_unclamped, "two negative overlaps multiply to a positive area: clamp each at 0"),
                  (_iou_union_is_sum, "subtract the intersection from the sum of the areas")],
        explain="That is ops.box_iou for one pair."),
    # 200 x 304 locations x 3 aspect ratios (one size per level) = 182 400
    "anchors_on_p2": Exercise(
        2, "How many anchors on a 200 x 304 P2 map, one size, ratios (0.5, 1, 2)?", 200 * 304 * 3,
        hints=["One anchor per location per (size, ratio) pair.", "200 * 304 locations."],
        solution=182_400, wrong=60_800,
        mistakes=[(60_800, "that is one anchor per location; there is one per aspect ratio (3)"),
                  (729_600, "count feature-map locations, not image pixels: the stride (4) is not in it")],
        explain="200 * 304 * 3 = 182 400."),
    # size 32, ratio h/w = 0.5: h = 32 * sqrt(0.5) = 22.63, w = 32 / sqrt(0.5) = 45.25; halves rounded: 23, 11
    "base_anchor": Exercise(
        2, "torchvision's base anchor of size 32, aspect ratio 0.5, as (x1, y1, x2, y2)?", [-23, -11, 23, 11],
        hints=["torchvision's aspect ratio is height / width, and the area stays 32 * 32.",
               "h = 32 * sqrt(0.5) = 22.6, w = 32 / sqrt(0.5) = 45.3; the anchor is centred on 0.",
               "(-w/2, -h/2, w/2, h/2), each rounded."],
        solution=[-23, -11, 23, 11], wrong=[-11, -23, 11, 23],
        mistakes=[([-11, -23, 11, 23], "that is ratio 2: torchvision's aspect ratio is height / width, so 0.5 "
                                       "is wide"),
                  ([-16, -8, 16, 8], "the area stays size * size: h = size * sqrt(ratio), not size * ratio")],
        explain="Wide: 46 x 22 pixels, area ~ 32 * 32."),
    # IoUs 0.8, 0.5, 0.2, 0.65, 0.1 with thresholds 0.7 / 0.3: >= 0.7 positive, < 0.3 negative, between ignored
    "match_labels": Exercise(
        3, "Labels (1 positive, 0 negative, -1 ignored) for IoUs [0.8, 0.5, 0.2, 0.65, 0.1], thresholds 0.7/0.3?",
        [1, -1, 0, -1, 0],
        hints=["IoU >= 0.7: positive. IoU < 0.3: negative.", "What is neither is ignored: -1."],
        solution=[1, -1, 0, -1, 0], wrong=[1, 0, 0, 0, 0],
        mistakes=[([1, 0, 0, 0, 0], "IoUs between 0.3 and 0.7 are ignored (-1), not negative: the loss never "
                                    "sees them"),
                  ([1, 1, 0, 1, 0], "0.5 and 0.65 are below the 0.7 positive threshold")],
        explain="0.5 and 0.65 are in between: ignored."),
    # a gt whose best IoU is 0.4 (< 0.7) with anchors at 0.4, 0.4, 0.1: both 0.4 anchors become positive
    "low_quality": Exercise(
        3, "One gt, anchor IoUs [0.4, 0.4, 0.1], allow_low_quality_matches=True: which anchors become positive?",
        [0, 1], unordered=True,
        hints=["The rule gives every gt the anchors with its highest IoU, even below 0.7.",
               "Ties: every anchor that reaches the gt's best IoU counts."],
        solution=[0, 1], wrong=[0],
        mistakes=[([0], "ties count: every anchor at the gt's best IoU (0.4) is matched, anchor 1 too"),
                  ([], "allow_low_quality_matches gives each gt its best anchors, even below 0.7")],
        explain="Both 0.4 anchors: the ties are included."),
    # boxes 0 (0,0,10,10) .9, 1 (1,1,11,11) .8, 2 (0,0,10,5) .7, 3 (20,20,30,30) .6 at IoU threshold 0.3:
    # keep 0; IoU(0, 1) = 81/119 = 0.68 > 0.3 drop 1; IoU(0, 2) = 50/100 = 0.5 > 0.3 drop 2; 3 overlaps nothing
    "nms_keep": Exercise(
        4, "Which boxes does NMS keep at IoU threshold 0.3?", [0, 3], unordered=True,
        hints=["Take the best-scoring box left, keep it, drop every box overlapping it with IoU > 0.3; repeat.",
               "IoU(0, 1) = 81/119 and IoU(0, 2) = 50/100."],
        solution=[0, 3], wrong=[0, 2, 3],
        mistakes=[([0, 2, 3], "box 2 (0, 0, 10, 5) overlaps box 0 with IoU 50/100 = 0.5 > 0.3: it is dropped"),
                  ([0, 1, 3], "box 1 overlaps box 0 with IoU 81/119 = 0.68 > 0.3: it is dropped"),
                  ([0, 1, 2, 3], "at 0.3, boxes 1 and 2 overlap box 0 too much"),
                  ([0], "box 3 overlaps no kept box: it stays")],
        explain="0 suppresses 1 and 2; 3 is far away."),
    # (0, 0, 2, 1) and (0, 0, 1, 1): IoU = 1 / 2 exactly; torchvision drops only IoU > threshold
    "nms_tie": Exercise(
        4, "Two boxes with IoU exactly 0.5, NMS at threshold 0.5: how many are kept?", 2,
        hints=["Is the rule IoU > threshold or IoU >= threshold?"],
        solution=2, wrong=1,
        mistakes=[(1, "NMS drops boxes whose IoU is strictly greater than the threshold; 0.5 is not > 0.5")],
        explain="Strict >: equal IoU survives."),
    # 150 x 90: scale sqrt(13 500) = 116.2; 4 + log2(116.2 / 224) = 4 - 0.947 = 3.05 -> P3
    "roi_level": Exercise(
        5, "Which FPN level k (2 for P2 ... 5 for P5) gets a 150 x 90 RoI?", 3,
        hints=["The scale is sqrt(w * h).", "k = floor(4 + log2(scale / 224))."],
        solution=3, wrong=2,
        mistakes=[(2, "the scale is sqrt(150 * 90) = 116.2, not the shorter side: 4 + log2(116.2 / 224) = 3.05"),
                  (4, "floor, not round up: 4 + log2(116.2 / 224) = 3.05 -> 3")],
        explain="sqrt(13 500) = 116.2 >= 112: P3."),
    # maskrcnn-benchmark's POOLER_SCALES for P2..P5: 1/4, 1/8, 1/16, 1/32
    "pooler_scales": Exercise(
        5, "maskrcnn-benchmark's POOLER_SCALES for P2..P5 (a list of four numbers)?",
        [1 / 4, 1 / 8, 1 / 16, 1 / 32], tolerance=1e-6,
        hints=["A scale maps image pixels to feature cells: x_feature = x_image * scale.", "scale = 1 / stride."],
        solution=[1 / 4, 1 / 8, 1 / 16, 1 / 32], wrong=[4, 8, 16, 32],
        mistakes=[([4, 8, 16, 32], "those are the strides (featmap_strides); POOLER_SCALES are 1 / stride"),
                  ([1 / 8, 1 / 16, 1 / 32, 1 / 64], "those are P3..P6's scales; P2 has stride 4")],
        explain="(0.25, 0.125, 0.0625, 0.03125)."),
    # RoIPool at scale 1/4: x1 = 10 -> 2.5 -> rounded half away from zero -> column 3
    "roipool_start": Exercise(
        6, "At which feature column does RoIPool start reading a RoI with x1 = 10 at spatial_scale 1/4?", 3,
        hints=["10 * 1/4 = 2.5, then RoIPool rounds.", "C's round(): half away from zero."],
        solution=3, wrong=2,
        mistakes=[(2, "2.5 rounds half away from zero to 3 (C's round, as torchvision); Python's round(2.5) "
                      "is 2 (half to even), and floor is 2 too"),
                  (2.5, "RoIAlign keeps 2.5; RoIPool rounds it to a whole column")],
        explain="round(2.5) = 3 in C."),
    "bilinear": Exercise(
        6, "Write bilinear(plane, y, x): the (H, W) plane read at a real point, pixel centres at integers.",
        [((_RAMP, 0.5, 1.25), 3.25),        # 4 * 0.5 + 1.25
         ((_RAMP, 1.0, 2.0), 6.0),          # on a pixel centre: that pixel
         ((_RAMP, 1.75, 0.5), 7.5),         # 4 * 1.75 + 0.5
         ((_BUMP, 0.5, 0.5), 2.5),          # (0 + 1 + 2 + 7) / 4
         ((_BUMP, 0.25, 0.75), 2.0)],       # .75*.25*0 + .75*.75*1 + .25*.25*2 + .25*.75*7 = .5625+.125+1.3125
        hints=["Take the four pixels around (y, x): rows floor(y), floor(y) + 1, columns floor(x), floor(x) + 1.",
               "Each pixel's weight is (1 - distance in y) * (1 - distance in x).",
               "ly, lx = y - y0, x - x0; (1-ly)(1-lx) p00 + (1-ly) lx p01 + ly (1-lx) p10 + ly lx p11."],
        solution=_bilinear_reference, wrong=_bilinear_nearest, kind="function",
        mistakes=[(_bilinear_nearest, "that is the nearest pixel; bilinear mixes the four around the point"),
                  (_bilinear_floor, "that is the top-left pixel only; weight all four neighbours"),
                  (_bilinear_swapped, "x and y are swapped: plane[row, column] is plane[y, x]")],
        explain="Exactly what RoIAlign does at every sampling point."),
    # torchvision's transform: scale = min(800 / 600, 1333 / 900) = 1.333 -> 800 x 1200; padded to /32: 800 x 1216
    "padded_size": Exercise(
        7, "A 600 x 900 image, min_size 800, max_size 1333: the padded batch size (height, width)?", [800, 1216],
        hints=["Resize so the shorter side is 800, unless the longer side would pass 1333.",
               "Then pad both sides up to a multiple of 32 (size_divisible)."],
        solution=[800, 1216], wrong=[800, 1200],
        mistakes=[([800, 1200], "that is the resized image; the batch is padded to a multiple of 32: 1200 -> 1216"),
                  ([800, 1333], "max_size only caps the longer side; 900 * 800 / 600 = 1200 < 1333")],
        explain="800 x 1200, padded to 800 x 1216."),
    # proposal (0, 0, 100, 100), deltas (1, 0, 0, 0), weights (10, 10, 5, 5): dx = 1/10 -> cx = 50 + 0.1 * 100
    "decode_box": Exercise(
        7, "Decode deltas (1, 0, 0, 0) on proposal (0, 0, 100, 100) with weights (10, 10, 5, 5)?",
        [10, 0, 110, 100],
        hints=["Divide the deltas by the weights first: dx = 1 / 10.",
               "The centre moves by dx * width; the width is unchanged (dw = 0)."],
        solution=[10, 0, 110, 100], wrong=[100, 0, 200, 100],
        mistakes=[([100, 0, 200, 100], "the deltas are divided by the weights (10, 10, 5, 5) first: dx = 0.1"),
                  ([1, 0, 101, 100], "dx is relative to the width: the centre moves by dx * w = 0.1 * 100")],
        explain="cx = 50 + 0.1 * 100 = 60."),
    # l, t, r, b = 10, 20, 30, 20: sqrt(10/30 * 20/20) = sqrt(1/3) = 0.577
    "centerness": Exercise(
        8, "FCOS centerness of a point with (l, t, r, b) = (10, 20, 30, 20)?", math.sqrt(1 / 3),
        hints=["min(l, r) / max(l, r) times min(t, b) / max(t, b) ...", "... and then a square root."],
        solution=math.sqrt(1 / 3), wrong=1 / 3,
        mistakes=[(1 / 3, "take the square root of the product: sqrt(1/3) = 0.577"),
                  (0.5, "centerness multiplies the two ratios, it does not average them")],
        explain="sqrt(10/30 * 20/20) = 0.577."),
    # max(l, t, r, b) = 100 with ranges P3 [0, 64], P4 [64, 128], P5 [128, 256], ...: P4
    "fcos_level": Exercise(
        8, "Regress ranges P3 [0, 64], P4 [64, 128], P5 [128, 256]: which level k for (l, t, r, b) = "
           "(30, 100, 50, 20)?", 4,
        hints=["The range is checked against one number per point: the largest of l, t, r, b."],
        solution=4, wrong=3,
        mistakes=[(3, "the rule reads max(l, t, r, b) = 100, not the smallest or the mean: 64 <= 100 <= 128"),
                  (5, "the rule reads max(l, t, r, b) = 100, not the sum l + t + r + b = 200")],
        explain="max = 100 is in P4's [64, 128]."),
    # box x1 = 10, w = 56, M = 28: a cell is 2 px; mask cell 0's centre is 10 + 0.5 * 2 = 11
    "mask_cell": Exercise(
        9, "Box x1 = 10, width 56, 28 x 28 mask: the image x of mask cell x_f = 0's centre?", 11,
        hints=["A mask cell covers w / 28 = 2 image pixels.", "Cell 0 spans [10, 12): where is its centre?"],
        solution=11, wrong=10,
        mistakes=[(10, "that is cell 0's left edge (x1 + x_f * w / 28); its centre is half a cell further: "
                       "x1 + (x_f + 0.5) * w / 28"),
                  (12, "that is cell 0's right edge, (x_f + 1) * w / 28")],
        explain="x1 + (0 + 0.5) * 56 / 28 = 11."),
    # half a cell of a 112-px-wide box on a 28-cell mask: 0.5 * 112 / 28 = 2 px
    "half_cell": Exercise(
        9, "How many image pixels is x1 + x_f * w / 28 off for a 112-px-wide box?", 2.0,
        hints=["The two formulas differ by 0.5 cell.", "One cell is w / 28 image pixels."],
        solution=2.0, wrong=0.5,
        mistakes=[(0.5, "half a cell, in image pixels: 0.5 * 112 / 28 = 2"),
                  (4.0, "that is a whole cell; the shift is half of one")],
        explain="0.5 * 112 / 28 = 2 px, towards the top-left."),
    # 1000 RoIs x 256 channels x 7 x 7 bins x (2 x 2) samples = 50 176 000 bilinear reads
    "roi_align_reads": Exercise(
        10, "Bilinear samples for 1000 RoIs, 256 channels, 7 x 7 output, sampling_ratio 2?", 50_176_000,
        hints=["sampling_ratio 2 is 2 samples per axis per bin.", "RoIs x channels x bins x samples per bin."],
        solution=50_176_000, wrong=25_088_000, tolerance=1e-9,
        mistakes=[(25_088_000, "sampling_ratio 2 is 2 per axis: 2 x 2 = 4 samples per bin"),
                  (12_544_000, "each bin averages 2 x 2 = 4 samples, not 1"),
                  (196_000, "every channel is sampled: times 256")],
        explain="1000 * 256 * 49 * 4."),
    # adaptive sampling: RoI 40 x 12 px at scale 1/4 -> 10 x 3 cells; ceil(10/7) x ceil(3/7) = 2 x 1 = 2
    "adaptive_samples": Exercise(
        10, "sampling_ratio=-1: samples per bin for a 40 x 12 px RoI at scale 1/4 pooled to 7 x 7?", 2,
        hints=["Adaptive: ceil(roi_width / 7) samples along x, ceil(roi_height / 7) along y.",
               "Measure the RoI on the feature map: 40 x 12 pixels at scale 1/4."],
        solution=2, wrong=4,
        mistakes=[(4, "adaptive means ceil(10 / 7) x ceil(3 / 7) = 2 x 1 on the feature map, not 2 x 2"),
                  (6, "measure the RoI on the feature map (10 x 3 cells), not in image pixels")],
        explain="ceil(10/7) x ceil(3/7) = 2 x 1."),
    # detections in score order TP, TP, FP, TP, FP; 4 ground truths: after 3, precision 2/3, recall 2/4
    "precision_recall": Exercise(
        11, "Detections (by score) TP, TP, FP, TP, FP; 4 objects. (precision, recall) after the 3rd?", [2 / 3, 0.5],
        hints=["Precision: the share of the detections so far that are right.",
               "Recall: the share of the ground-truth objects found so far."],
        solution=[2 / 3, 0.5], wrong=[2 / 3, 0.4],
        mistakes=[([2 / 3, 0.4], "recall divides by the ground-truth objects (4), not the detections (5)"),
                  ([0.5, 2 / 3], "swapped: precision is 2 of 3 detections, recall 2 of 4 objects"),
                  ([0.6, 0.75], "that is after the 5th and 4th; stop after the 3rd detection")],
        explain="2/3 of the detections are right, 2/4 objects found."),
    # COCO matching: a detection matches a gt when IoU >= threshold, so IoU 0.5 counts at AP50
    "ap50_tie": Exercise(
        11, "Does a detection with IoU exactly 0.5 count as a true positive for AP50 (True / False)?", True,
        hints=["COCO skips a pair only when IoU < threshold."],
        solution=True, wrong=False,
        mistakes=[(False, "COCO matches when IoU >= the threshold; 0.5 is enough for AP50 "
                          "(NMS's rule is the strict one)")],
        explain="IoU >= 0.5 matches."),
    # (0, 0, 2, 1, 0) and (0, 0, 2, 1, 90): a plus sign; the middle square 1 x 1 is shared; union 2 + 2 - 1 = 3
    "rotated_cross_iou": Exercise(
        12, "IoU of the 2 x 1 bar (0, 0, 2, 1, 0) and the same bar upright, (0, 0, 2, 1, 90)?", 1 / 3,
        hints=["Both bars are centred on (0, 0): one lies along x, one along y.",
               "They share the 1 x 1 square in the middle; each has area 2."],
        solution=1 / 3, wrong=1 / 2,
        mistakes=[(1 / 2, "that divides by one bar's area; IoU divides by the union, 2 + 2 - 1 = 3"),
                  (1 / 4, "the shared square is in both areas: the union is 2 + 2 - 1, not 2 + 2"),
                  (1.0, "the upright bar is a different region: only the middle 1 x 1 square is shared")],
        explain="1 / (2 + 2 - 1) = 1/3."),
    # mmcv angle -pi/4 rad, clockwise=True -> detectron2 / edudet: -degrees(-pi/4) = +45 (counter-clockwise)
    "rotated_mmcv_angle": Exercise(
        12, "mmcv's angle -pi/4 (radians, clockwise=True) in edudet's / detectron2's degrees?", 45.0,
        hints=["Two changes: radians to degrees, and clockwise to counter-clockwise.",
               "angle_detectron2 = -degrees(angle_mmcv)."],
        solution=45.0, wrong=-45.0,
        mistakes=[(-45.0, "that converts the unit but not the direction: mmcv counts clockwise, edudet "
                          "counter-clockwise, so the sign flips"),
                  (math.pi / 4, "edudet's angles are in degrees: 45, not pi/4"),
                  (-math.pi / 4, "that is mmcv's own value: convert radians to degrees and flip the sign")],
        explain="-degrees(-pi/4) = 45: the same box, seen counter-clockwise."),
    # two identical boxes, equal scores 0.9, threshold 0.5: a stable sort visits box 0 first; it suppresses box 1
    "tie_kept": Exercise(
        13, "Two identical boxes, both scored 0.9, NMS at 0.5: which index does edudet's NMS keep?", [0],
        hints=["Equal scores: which one does a stable sort put first?",
               "torchvision and edudet sort stably; py-faster-rcnn's argsort()[::-1] reverses ties."],
        solution=[0], wrong=[1],
        mistakes=[([1], "that is py-faster-rcnn's argsort()[::-1]; edudet and torchvision sort stably, so equal "
                        "scores are visited by increasing index and box 0 is kept"),
                  ([0, 1], "the copies overlap with IoU 1 > 0.5: one suppresses the other")],
        explain="Stable order: box 0 first, and it suppresses its copy."),
    # two copies of the unit box at iou_threshold=1: IoU = 1, not > 1, so both stay (the >= version keeps one)
    "copies_at_threshold_one": Exercise(
        13, "Two copies of the unit box, NMS at iou_threshold=1 with the right > rule: how many are kept?", 2,
        hints=["Their IoU is exactly 1.", "Is 1 greater than 1?"],
        solution=2, wrong=1,
        mistakes=[(1, "IoU 1 is not greater than 1: with > both copies stay; keeping one is the >= bug")],
        explain="1 > 1 is false: both stay."),
}

for _name, _exercise in EXERCISES.items():
    _exercise.name = _name
