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
# # Matching and sampling: the IoU matrix, thresholds 0.7/0.3, the low-quality rule (ties included) and the balanced sampler
#
# To train a detector, every anchor needs a label: which object it should regress to (a positive), or
# background (a negative), or "don't care" (ignored). Faster R-CNN's RPN decides with two IoU thresholds and
# one rescue rule, then trains on a small balanced sample of the labelled anchors. This lesson uses IoU
# (lesson 1) and the anchors of lesson 2.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import edudet
from edudet import ops, viz

# %% [markdown]
# ## 1. A small scene and its IoU matrix
#
# Two ground-truth boxes and eight anchors. The IoU matrix has one row per ground truth (G = 2) and one column
# per anchor (N = 8). By hand, against `gt0 = (0, 0, 100, 100)` (area 10 000), anchors sliding to the right:
#
# | anchor | box | intersection | union | IoU |
# | --- | --- | --- | --- | --- |
# | a0 | (0, 0, 100, 100) | 10 000 | 10 000 | 1 |
# | a1 | (10, 0, 110, 100) | 9 000 | 11 000 | 0.818 |
# | a2 | (25, 0, 125, 100) | 7 500 | 12 500 | 0.6 |
# | a3 | (50, 0, 150, 100) | 5 000 | 15 000 | 1/3 |
# | a4 | (60, 0, 160, 100) | 4 000 | 16 000 | 0.25 |
#
# and against the flat `gt1 = (200, 0, 260, 30)` (60 x 30 = 1 800): anchors `a5 = (190, 0, 250, 60)` and
# `a6 = (210, 0, 270, 60)` (60 x 60 each) both overlap it by 50 x 30 = 1 500, union 1 800 + 3 600 - 1 500 = 3 900:
# IoU `5/13 ≈ 0.385` each, an exact tie. `a7 = (200, 40, 260, 100)` lies below it: 0.

# %%
gt_boxes = np.array([[0, 0, 100, 100], [200, 0, 260, 30]], dtype=np.float32)
anchors = np.array([[0, 0, 100, 100], [10, 0, 110, 100], [25, 0, 125, 100], [50, 0, 150, 100],
                    [60, 0, 160, 100], [190, 0, 250, 60], [210, 0, 270, 60], [200, 40, 260, 100]],
                   dtype=np.float32)
anchor_names = [f"a{i}" for i in range(len(anchors))]
quality = ops.box_iou(gt_boxes, anchors)  # (G, N): rows are ground truths
print(np.round(quality, 4))

# %%
fig, (ax_scene, ax_matrix) = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1.3, 1]})
viz.image_axes(ax_scene, extent=(-10, -10, 290, 110), title="Ground truths (thick) and anchors (dashed)")
viz.draw_anchors(anchors, ax_scene, centers=False)
viz.draw_boxes(gt_boxes, ax_scene, labels=["gt0", "gt1"], color="black", linewidth=3)
viz.heatmap(quality, ax_matrix, xlabels=anchor_names, ylabels=["gt0", "gt1"], vmin=0, vmax=1,
            title="IoU matrix (G x N)", xlabel="anchor", ylabel="ground truth", colorbar_label="IoU")
plt.show()

# %% [markdown]
# ## 2. Two thresholds: 0.7 and 0.3
#
# Each anchor looks at its column and takes its best IoU `v` (and the ground truth giving it):
#
# * `v >= 0.7`: **positive**, matched to that ground truth (a0, a1 -> gt0);
# * `v < 0.3`: **negative**, background (a4 with 0.25, a7 with 0), match `-1`;
# * in between: **ignored**, match `-2`: too ambiguous to train on (a2 with 0.6, a3 with 1/3, a5 and a6 with 0.385).
#
# `edudet.Matcher(0.7, 0.3)` returns one integer per anchor: the ground-truth index, -1 or -2.

# %%
strict_matcher = edudet.Matcher(high_threshold=0.7, low_threshold=0.3, allow_low_quality_matches=False)
strict = strict_matcher(quality)
print(strict_matcher)
print("matches:", strict)

# %% [markdown]
# ## 3. The low-quality rule
#
# With thresholds alone, `gt1` gets **no** positive anchor: its best IoU is 0.385. A small or oddly shaped object
# would never be trained on. With `allow_low_quality_matches=True`, every ground truth also claims the anchors that
# reach *its* best IoU over all anchors, whatever that value is, **ties included**: both a5 and a6 reach 5/13, so
# both are rescued. (A rescued anchor is matched to its own best ground truth, which is the rescuing one except
# when the anchor overlaps another object even more.)

# %%
rpn_matcher = edudet.Matcher(high_threshold=0.7, low_threshold=0.3, allow_low_quality_matches=True)
rescued_matches = rpn_matcher(quality)
rescued = np.flatnonzero((rescued_matches >= 0) & (strict < 0))
print("with the rule :", rescued_matches)
print("rescued       :", [anchor_names[i] for i in rescued])
print("gt1's best IoU:", quality[1].max(), "reached by", [anchor_names[i] for i in np.flatnonzero(quality[1] == quality[1].max())])

# %%
status_colour = {"positive": "tab:green", "negative": "tab:red", "ignored": "0.6", "rescued": "tab:purple"}


def status_of(matches, rescued_set=()):
    return ["rescued" if i in rescued_set else "positive" if m >= 0 else "negative" if m == -1 else "ignored"
            for i, m in enumerate(matches)]


fig, axes = plt.subplots(1, 2, figsize=(15, 4.2), layout="constrained")
for ax, matches, title in [(axes[0], strict, "Matcher(0.7, 0.3)"),
                           (axes[1], rescued_matches, "Matcher(0.7, 0.3, allow_low_quality_matches=True)")]:
    statuses = status_of(matches, set(rescued) if matches is rescued_matches else ())
    viz.image_axes(ax, extent=(-10, -10, 290, 135), title=title)
    viz.draw_boxes(anchors, ax, colors=[status_colour[s] for s in statuses], linestyle="--")
    viz.draw_boxes(gt_boxes, ax, color="black", linewidth=3)
    for i, (name, status) in enumerate(zip(anchor_names, statuses)):
        # names under each anchor's bottom-right corner, staggered so that neighbours do not collide
        ax.text(anchors[i, 2], anchors[i, 3] + 8 + 10 * (i % 3), name, color=status_colour[status],
                ha="right", fontsize=9, fontweight="bold")
    for status, colour in status_colour.items():
        ax.plot([], [], linestyle="--", color=colour, label=status)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
plt.show()

# %% [markdown]
# ## 4. At full scale: 242 991 anchors, three objects
#
# The same matcher on every anchor of an 800 x 1216 input (lesson 2) with three ground-truth boxes.
# `Matcher.match_boxes` fuses the IoU matrix and the matching (its fast kernels never build the 3 x 242 991 matrix).
# The RPN turns matches into labels: matched -> 1, background -> 0, ignored -> -1.

# %%
generator = edudet.AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
image_size = (800, 1216)
all_anchors = generator(image_size, [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)])
objects = np.array([[100, 150, 300, 450], [600, 300, 700, 380], [800, 100, 1150, 700]], dtype=np.float32)
matches = rpn_matcher.match_boxes(objects, all_anchors)
labels = np.where(matches >= 0, 1, np.where(matches == -1, 0, -1))
num_positive, num_negative, num_ignored = (labels == 1).sum(), (labels == 0).sum(), (labels == -1).sum()
print(f"positives {num_positive}, negatives {num_negative}, ignored {num_ignored}")
print("positives per object:", np.bincount(matches[matches >= 0], minlength=len(objects)))

# %% [markdown]
# ## 5. The balanced sampler
#
# A dozen positives against a quarter of a million negatives: a loss over all anchors would learn "background".
# `BalancedPositiveNegativeSampler(256, 0.5)` draws, per image, at most `256 * 0.5 = 128` positives and fills the
# rest of the 256 with negatives, uniformly at random; ignored anchors are never drawn. By hand, with the counts
# above: `num_pos = min(#positives, 128)` = all of the positives, and `num_neg = 256 - num_pos`.

# %%
sampler = edudet.BalancedPositiveNegativeSampler(batch_size_per_image=256, positive_fraction=0.5, seed=0)
pos_masks, neg_masks = sampler([labels])
sampled_pos, sampled_neg = np.flatnonzero(pos_masks[0]), np.flatnonzero(neg_masks[0])
print(sampler)
print("sampled positives:", sampled_pos.size, " sampled negatives:", sampled_neg.size)

# %% [markdown]
# The sampled anchors on the image: every positive (green) and 246 random negatives (red, thin), scattered over
# every level and everywhere in the image.

# %%
ax = viz.image_axes(extent=(0, 0, image_size[1], image_size[0]), title="One RPN mini-batch: 256 sampled anchors",
                    figsize=(9, 6))
viz.draw_boxes(all_anchors[sampled_neg], ax, color="tab:red", linewidth=0.5, alpha=0.6, label="sampled negatives")
viz.draw_boxes(all_anchors[sampled_pos], ax, color="tab:green", linewidth=1.5, label="sampled positives")
viz.draw_boxes(objects, ax, color="black", linewidth=3, label="ground truth")
ax.set_xlim(0, image_size[1])
ax.set_ylim(image_size[0], 0)
ax.legend(loc="lower left", fontsize=8)
plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** One ground-truth box has IoUs `[0.8, 0.5, 0.2, 0.65, 0.1]` with five anchors. With thresholds 0.7 /
# 0.3, label each anchor: 1 positive, 0 negative, -1 ignored.

# %%
from edudet.lessons.check import check, hint

my_labels = ...  # your answer: a list of five labels
check("match_labels", my_labels)

# %% [markdown]
# **2.** Another ground truth's IoUs with three anchors are `[0.4, 0.4, 0.1]`, all below 0.7. With
# `allow_low_quality_matches=True`, which anchors (indices) become positive?

# %%
my_low_quality_anchors = ...  # your answer: a list of indices
check("low_quality", my_low_quality_anchors)

# %% [markdown]
# ## Check yourself

# %%
assert np.allclose(quality[0, :5], [1, 9000 / 11000, 7500 / 12500, 5000 / 15000, 4000 / 16000])
assert np.isclose(quality[1, 5], 5 / 13) and quality[1, 5] == quality[1, 6]          # an exact tie
assert strict.tolist() == [0, 0, -2, -2, -1, -2, -2, -1]
assert rescued_matches.tolist() == [0, 0, -2, -2, -1, 1, 1, -1]
assert [anchor_names[i] for i in rescued] == ["a5", "a6"]                            # both tied anchors
assert rescued_matches.dtype == np.int64
assert num_positive + num_negative + num_ignored == 242991
assert (np.bincount(matches[matches >= 0], minlength=3) > 0).all()                 # no object left out
assert sampled_pos.size == min(num_positive, 128) and sampled_neg.size == 256 - sampled_pos.size
assert (labels[sampled_pos] == 1).all() and (labels[sampled_neg] == 0).all()
print("all checks passed")
