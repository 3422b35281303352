# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # NMS step by step: the greedy loop frame by frame, the strict > rule, batched NMS's offset trick and soft-NMS
#
# A detector fires many boxes around each object. Non-maximum suppression (NMS) keeps the best box of each
# cluster and drops the boxes that overlap it too much. This lesson runs the greedy loop by hand on six boxes,
# one frame per step, then looks at the exact rule (`>`, not `>=`), at NMS per category, and at soft-NMS,
# which lowers scores instead of dropping boxes. It uses IoU from lesson 1.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from edudet import ops, viz

# %% [markdown]
# ## 1. The scene
#
# Six boxes around two objects (float32, as a detector would output them):
#
# | box | `(x1, y1, x2, y2)` | score |
# | --- | --- | --- |
# | 0 | (10, 10, 50, 50) | 0.90 |
# | 1 | (20, 10, 60, 50) | 0.80 |
# | 2 | (10, 30, 50, 70) | 0.75 |
# | 3 | (100, 20, 140, 60) | 0.85 |
# | 4 | (105, 25, 145, 65) | 0.60 |
# | 5 | (130, 20, 170, 60) | 0.45 |
#
# The IoUs that matter, by hand (every box is 40 x 40, area 1600):
#
# * IoU(0, 1): intersection 30 x 40 = 1200, union 3200 - 1200 = 2000: **0.6**.
# * IoU(0, 2): intersection 40 x 20 = 800, union 2400: **1/3**.
# * IoU(3, 4): intersection 35 x 35 = 1225, union 1975: **0.6203**.
# * IoU(3, 5): intersection 10 x 40 = 400, union 2800: **1/7**.

# %%
boxes = np.array([[10, 10, 50, 50], [20, 10, 60, 50], [10, 30, 50, 70],
                  [100, 20, 140, 60], [105, 25, 145, 65], [130, 20, 170, 60]], dtype=np.float32)
scores = np.array([0.90, 0.80, 0.75, 0.85, 0.60, 0.45], dtype=np.float32)
iou = ops.box_iou(boxes, boxes)
print(np.round(iou, 4))

# %%
captions = [f"{i}: {s:.2f}" for i, s in enumerate(scores)]
ax = viz.image_axes(extent=(0, 0, 180, 80), title="Six detections and their scores", figsize=(11, 5))
viz.draw_boxes(boxes, ax, labels=captions, linewidth=2)
plt.show()

# %% [markdown]
# ## 2. The greedy loop, written out
#
# Visit the boxes by decreasing score. A box that is still alive when visited is **kept**, and it suppresses
# every later box whose IoU with it is **strictly greater** than the threshold. A suppressed box is skipped:
# it never suppresses anything itself. Threshold 0.5, by hand:
#
# 1. box 0 (0.90): kept; suppresses box 1 (IoU 0.6 > 0.5); box 2 survives (1/3).
# 2. box 3 (0.85): kept; suppresses box 4 (0.6203); box 5 survives (1/7).
# 3. box 1 (0.80): already suppressed, skipped.
# 4. box 2 (0.75): kept.
# 5. box 4 (0.60): already suppressed, skipped.
# 6. box 5 (0.45): kept.
#
# Kept, in score order: **0, 3, 2, 5**. The loop below records a frame after each step.

# %%
iou_threshold = 0.5
order = np.argsort(-scores, kind="stable")  # equal scores: lower index first
state = np.array(["waiting"] * len(boxes), dtype=object)
frames = []
for i in order:
    if state[i] == "waiting":
        state[i] = "kept"
        overlapping = (iou[i] > iou_threshold) & (state == "waiting")
        state[overlapping] = "suppressed"
    frames.append((int(i), state.copy()))
my_keep = [int(i) for i in order if state[i] == "kept"]
print("kept by the loop above:", my_keep)
print("kept by ops.nms       :", ops.nms(boxes, scores, iou_threshold))

# %% [markdown]
# One frame per visited box: green is kept, red dashed is suppressed, grey is still waiting; the box being
# visited is drawn thick.

# %%
colours = {"kept": "tab:green", "suppressed": "tab:red", "waiting": "0.6"}
fig, axes = plt.subplots(2, 3, figsize=(13, 5.5))
for step, (ax, (visited, frame)) in enumerate(zip(axes.ravel(), frames), start=1):
    viz.image_axes(ax, extent=(0, 0, 180, 80), title=f"step {step}: visit box {visited} ({frame[visited]})")
    for i in range(len(boxes)):
        viz.draw_boxes(boxes[i:i + 1], ax, labels=[str(i)], color=colours[frame[i]],
                       linestyle="--" if frame[i] == "suppressed" else "-",
                       linewidth=3 if i == visited else 1.2)
fig.suptitle(f"Greedy NMS, iou_threshold = {iou_threshold}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. The strict `>` rule
#
# A pair with IoU *exactly* equal to the threshold is **not** suppressed. `(0, 0, 30, 10)` and `(10, 0, 40, 10)`
# overlap by 20 x 10 = 200 with union 300 + 300 - 200 = 400: IoU exactly 0.5, with no rounding even in float32.
# At threshold 0.5 both survive; a hair lower and the second goes. (edudet compares the float32 IoU against the
# threshold in double precision, as torchvision's C++ kernel does, so borderline cases agree exactly.)

# %%
pair = np.array([[0, 0, 30, 10], [10, 0, 40, 10]], dtype=np.float32)
pair_scores = np.array([0.9, 0.8], dtype=np.float32)
print("IoU              :", ops.box_iou(pair, pair)[0, 1])
keep_at_half = ops.nms(pair, pair_scores, 0.5)
keep_below = ops.nms(pair, pair_scores, 0.49)
print("kept at 0.5      :", keep_at_half)
print("kept at 0.49     :", keep_below)

# %%
thresholds = np.linspace(0.3, 0.7, 81)
survivors = [len(ops.nms(pair, pair_scores, t)) for t in thresholds]
fig, ax = plt.subplots(figsize=(7, 3))
ax.step(thresholds, survivors, where="post")
ax.axvline(0.5, color="tab:red", linestyle=":", label="IoU of the pair = 0.5")
ax.set_yticks([1, 2])
ax.set_title("Boxes kept from a pair with IoU exactly 0.5")
ax.set_xlabel("iou_threshold")
ax.set_ylabel("boxes kept")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## 4. Batched NMS: one NMS per category
#
# A person and a dog may overlap a lot and both be right. `ops.batched_nms(boxes, scores, idxs, t)` runs NMS
# inside each category `idxs` separately. Add box 6 = `(12, 12, 52, 52)` of category 1 (score 0.70): its IoU with
# box 0 is 38 x 38 / (3200 - 1444) = 1444 / 1756 ≈ 0.822, so plain NMS would drop it, batched NMS keeps it.
#
# The **coordinate-offset trick** (used by torchvision on small inputs) does all categories in one plain NMS
# call: shift each box by `idx * (max_coordinate + 1)`, so that different categories can never overlap.

# %%
boxes7 = np.concatenate([boxes, np.array([[12, 12, 52, 52]], dtype=np.float32)])
scores7 = np.concatenate([scores, np.array([0.70], dtype=np.float32)])
categories = np.array([0, 0, 0, 0, 0, 0, 1])
print("plain NMS  :", ops.nms(boxes7, scores7, 0.5))
batched_keep = ops.batched_nms(boxes7, scores7, categories, 0.5)
print("batched NMS:", batched_keep)

offset = categories * (boxes7.max() + 1)
shifted = boxes7 + offset[:, None].astype(np.float32)
trick_keep = ops.nms(shifted, scores7, 0.5)
print("offset trick (one NMS on shifted boxes):", trick_keep)

# %%
ax = viz.image_axes(extent=(0, 0, 360, 240), title="The offset trick: category 1 moved by max + 1 = 171",
                    figsize=(8, 5.5))
viz.draw_boxes(shifted[categories == 0], ax, labels=[str(i) for i in np.flatnonzero(categories == 0)],
               color="tab:blue", label="category 0 (not moved)")
viz.draw_boxes(shifted[categories == 1], ax, labels=["6"], color="tab:orange", label="category 1 (moved)")
ax.legend(loc="upper right")
ax.axvline(171, color="0.7", linestyle=":")
ax.axhline(171, color="0.7", linestyle=":")
plt.show()

# %% [markdown]
# The trick's price: shifted coordinates are large, and float32 has only 24 bits of mantissa. With 80 categories
# on an 800-pixel image, coordinates reach about 64 000, where float32 numbers are 1/256 apart, so a coordinate
# such as 10.3 comes back as 10.30078125 (= 10 + 77/256). An IoU sitting right at the threshold can flip. edudet's `batched_nms`
# therefore loops over categories (with the original coordinates) instead of shifting them; torchvision does the
# same for large inputs.

# %%
x = np.float32(10.3)
big_offset = np.float32(64000)
round_trip = (x + big_offset) - big_offset
print(f"float32: 10.3 + 64000 - 64000 = {float(round_trip)!r}; spacing near 64000: {float(np.spacing(big_offset))}")

# %% [markdown]
# ## 5. Soft-NMS, side by side
#
# Hard NMS sets a suppressed box's score to 0. Soft-NMS (Bodla et al., 2017) multiplies it by a weight that
# falls with the overlap, and drops a box only once its score is below `score_threshold` (1e-3):
#
# * linear: weight `1 - IoU` when `IoU >= iou_threshold` (0.3 here), else 1;
# * gaussian: weight `exp(-IoU^2 / sigma)` for every box (sigma 0.5).
#
# Linear, by hand: box 0 is selected first; box 1 (IoU 0.6) becomes `0.80 * 0.4 = 0.32`, box 2 (IoU 1/3 >= 0.3)
# becomes `0.75 * 2/3 = 0.5`. Then box 3: box 4 (IoU 0.6203) becomes `0.60 * 0.3797 ≈ 0.2278`, box 5
# (1/7 < 0.3) is untouched. Nothing falls below 1e-3: all six boxes survive, re-ranked.
#
# Gaussian has no threshold, so small overlaps decay too, once per selected box: box 2 becomes
# `0.75 * exp(-(1/3)^2 / 0.5) ≈ 0.6006`, and box 1 is decayed twice, by box 0 (IoU 0.6) and later by box 2
# (IoU 3/13): `0.8 * exp(-0.72) * exp(-(3/13)^2 / 0.5) ≈ 0.3501`.

# %%
hard_keep = ops.nms(boxes, scores, 0.5)
linear_dets, linear_keep = ops.soft_nms(boxes, scores, iou_threshold=0.3, method="linear")
gauss_dets, gauss_keep = ops.soft_nms(boxes, scores, sigma=0.5, method="gaussian")
print("linear  :", linear_keep, np.round(linear_dets[:, 4], 4))
print("gaussian:", gauss_keep, np.round(gauss_dets[:, 4], 4))

hard_scores = np.where(np.isin(np.arange(len(scores)), hard_keep), scores, 0)
linear_scores = np.zeros_like(scores)
linear_scores[linear_keep] = linear_dets[:, 4]
gauss_scores = np.zeros_like(scores)
gauss_scores[gauss_keep] = gauss_dets[:, 4]

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
positions = np.arange(len(scores))
for k, (name, values) in enumerate([("input", scores), ("hard NMS (0.5)", hard_scores),
                                    ("soft, linear (0.3)", linear_scores), ("soft, gaussian (0.5)", gauss_scores)]):
    ax.bar(positions + (k - 1.5) * 0.2, values, width=0.2, label=name)
ax.set_xticks(positions, labels=[f"box {i}" for i in positions])
ax.set_title("Scores after hard NMS and soft-NMS")
ax.set_xlabel("box")
ax.set_ylabel("score")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** Boxes `0: (0, 0, 10, 10)` score 0.9, `1: (1, 1, 11, 11)` 0.8, `2: (0, 0, 10, 5)` 0.7, `3: (20, 20, 30,
# 30)` 0.6. Which does NMS keep at IoU threshold **0.3**? Predict before you run anything.

# %%
from edudet.lessons.check import check, hint

my_kept = ...  # your answer: a list of box indices
check("nms_keep", my_kept)

# %% [markdown]
# **2.** Two boxes overlap with IoU exactly 0.5. How many does NMS keep at `iou_threshold=0.5`?

# %%
my_kept_count = ...  # your answer: 1 or 2
check("nms_tie", my_kept_count)

# %% [markdown]
# ## Check yourself

# %%
assert np.isclose(iou[0, 1], 0.6) and np.isclose(iou[0, 2], 1 / 3)
assert np.isclose(iou[3, 4], 1225 / 1975) and np.isclose(iou[3, 5], 1 / 7)
assert my_keep == [0, 3, 2, 5]
assert list(ops.nms(boxes, scores, 0.5)) == [0, 3, 2, 5]
assert ops.nms(boxes, scores, 0.5).dtype == np.int64
assert list(keep_at_half) == [0, 1] and list(keep_below) == [0]   # IoU == threshold is not suppressed
assert list(ops.nms(boxes7, scores7, 0.5)) == [0, 3, 2, 5]          # box 6 lost to box 0 (IoU 0.822)
assert list(batched_keep) == [0, 3, 2, 6, 5]                        # ... but not in its own category
assert list(trick_keep) == list(batched_keep)
assert round_trip == np.float32(10 + 77 / 256)              # the nearest multiple of 1/256
assert np.isclose(linear_scores[1], 0.32) and np.isclose(linear_scores[2], 0.5)
assert np.isclose(linear_scores[4], 0.6 * (1 - 1225 / 1975), atol=1e-6)
assert np.isclose(linear_scores[5], 0.45)
assert np.isclose(gauss_scores[2], 0.75 * np.exp(-(1 / 3) ** 2 / 0.5), atol=1e-6)
assert np.isclose(gauss_scores[1], 0.8 * np.exp(-0.6 ** 2 / 0.5) * np.exp(-(3 / 13) ** 2 / 0.5), atol=1e-6)
print("all checks passed")
