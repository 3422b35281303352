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
# # FCOS targets: points per level, regress ranges, center sampling (radius 1.5), the centerness map, torchvision vs mmdetection
#
# FCOS (Tian et al., 2019) has no anchors: every location of every level is a **point** that may predict the box
# it sits in, as four distances `(left, top, right, bottom)` to the box's sides (lesson 1's `distance2bbox`).
# Training needs, for every point, which box (if any) it should predict. This lesson builds those targets on a
# 256 x 384 image with FPN levels P3..P7 (strides 8 to 128), step by step.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import edudet
from edudet import viz

# %% [markdown]
# ## 1. Points per level
#
# Level P`k` has stride `2^k`, so for a 256 x 384 image: P3 32 x 48 = 1 536 points, P4 16 x 24 = 384, P5 96,
# P6 24 and P7 6, 2 046 in all. mmdetection puts the point of cell `(i, j)` at the cell's centre,
# `((j + 0.5) s, (i + 0.5) s)`; the first P3 point is `(4, 4)`.

# %%
image_size = (256, 384)
feature_shapes = [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
strides = [edudet.infer_stride(shape, image_size) for shape in feature_shapes]
points = edudet.grid_points(image_size, feature_shapes)            # offset 0.5: cell centres
print("strides         :", strides)
print("points per level:", [len(p) for p in points])
print("first P3 points :", points[0][:3].tolist())

# %%
gt_boxes = np.array([[40, 40, 80, 80],        # A: 40 x 40, a small object
                     [150, 60, 330, 220]],    # B: 180 x 160, a large one
                    dtype=np.float32)
gt_labels = np.array([0, 1])                  # mmdetection's 0-based class ids
level_colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
ax = viz.image_axes(extent=(0, 0, image_size[1], image_size[0]), title="Points of P3..P7 and two objects",
                    figsize=(9, 6))
for k, (level_points, colour) in enumerate(zip(points, level_colours)):
    viz.draw_points(level_points, ax, color=colour, size=4 * (k + 1) ** 1.5, label=f"P{k + 3} (stride {strides[k]})")
viz.draw_boxes(gt_boxes, ax, labels=["A", "B"], color="black", linewidth=2)
ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
plt.show()

# %% [markdown]
# ## 2. Which points are positive: inside, in range, smallest
#
# A point `(x, y)` and a box `(x1, y1, x2, y2)` give the distances `l = x - x1`, `t = y - y1`, `r = x2 - x`,
# `b = y2 - y`. The point is a candidate for the box when
#
# 1. it lies strictly inside: `min(l, t, r, b) > 0`;
# 2. its **largest** distance `max(l, t, r, b)` falls in its level's **regress range**:
#    P3 `[-1, 64]`, P4 `[64, 128]`, P5 `[128, 256]`, P6 `[256, 512]`, P7 `[512, inf)`.
#
# A point that qualifies for several boxes takes the one of smallest area. The range is what spreads objects over
# levels: each level regresses distances of one scale only. Note the range looks at the *point's* distances, not
# at the box's size: the same box can be learned on two levels.
#
# By hand, box A `(40, 40, 80, 80)`: the P3 point `(60, 60)` has `l = t = r = b = 20`, largest 20 <= 64: positive on
# P3. The P3 points strictly inside A have `x, y` in `{44, 52, 60, 68, 76}`: **25** positives. Box B: at its centre
# `(240, 140)` the largest distance is 90 (P4's range); near its left edge, `r` approaches 180 (P5's range): B is
# positive on P4 **and** P5.

# %%
targets = edudet.fcos_targets(gt_boxes, gt_labels, image_size, feature_shapes, num_classes=2)
level_of_point = np.repeat(np.arange(3, 8), targets.num_points_per_level)
positive = targets.gt_index >= 0
for g, name in enumerate("AB"):
    counts = {f"P{k}": int(np.sum(positive & (targets.gt_index == g) & (level_of_point == k))) for k in range(3, 8)}
    print(f"box {name}: positives per level {counts}")
centre_point = int(np.flatnonzero(np.all(targets.points == [60, 60], axis=1))[0])
print("point (60, 60): label", targets.labels[centre_point], "targets (l, t, r, b)", targets.bbox_targets[centre_point])

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
for ax, k in zip(axes, (3, 4, 5)):
    on_level = level_of_point == k
    viz.image_axes(ax, extent=(0, 0, image_size[1], image_size[0]), title=f"P{k}: positive points")
    viz.draw_points(targets.points[on_level & ~positive], ax, color="0.8", size=4)
    for g, colour in zip(range(2), ("tab:blue", "tab:orange")):
        viz.draw_points(targets.points[on_level & (targets.gt_index == g)], ax, color=colour, size=16,
                        label=f"positive for {'AB'[g]}")
    viz.draw_boxes(gt_boxes, ax, labels=["A", "B"], color="black")
    ax.legend(loc="lower right", fontsize=7)
fig.suptitle("Regress ranges: B's centre points learn on P4, its off-centre points on P5")
plt.show()

# %% [markdown]
# ## 3. Center sampling, radius 1.5
#
# Points near a box's border see mostly background and make poor positives. With **center sampling**, a point must
# also lie inside a square around the box's centre of half-side `radius * stride` (clipped to the box):
# `1.5 * 8 = 12` pixels on P3. For A (centre `(60, 60)`), that keeps only `x, y` in `{52, 60, 68}`: **9** of the 25.
# (The point `(44, 60)` is inside A but 16 pixels from its centre: dropped.)

# %%
sampled = edudet.fcos_targets(gt_boxes, gt_labels, image_size, feature_shapes, num_classes=2,
                              center_sampling=True, center_sample_radius=1.5)
sampled_positive = sampled.gt_index >= 0
num_a_plain = int(np.sum(positive & (targets.gt_index == 0)))
num_a_sampled = int(np.sum(sampled_positive & (sampled.gt_index == 0)))
print("positives for A without / with center sampling:", num_a_plain, num_a_sampled)

fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, result, title in [(axes[0], targets, "center_sampling=False"), (axes[1], sampled, "center_sampling=True")]:
    viz.image_axes(ax, extent=(28, 28, 92, 92), title=f"Box A on P3, {title}")
    viz.draw_feature_grid((32, 48), stride=8, ax=ax, color="0.85")
    chosen = (result.gt_index == 0) & (level_of_point == 3)
    viz.draw_points(points[0], ax, color="0.7", size=8)
    viz.draw_points(result.points[chosen], ax, color="tab:blue", size=40, label="positive")
    viz.draw_boxes(gt_boxes[:1], ax, color="black", linewidth=2, label="box A")
viz.draw_boxes(np.array([[48, 48, 72, 72]]), axes[1], color="tab:red", linestyle="--",
               label="centre square, half-side 1.5 x 8")
for ax in axes:
    ax.legend(loc="lower right", fontsize=8)
plt.show()

# %% [markdown]
# ## 4. The centerness map
#
# Even inside the centre region, a point far from the centre regresses lopsided distances. FCOS predicts a
# **centerness** and multiplies it into the score at test time:
# `centerness = sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`, 1 at the centre, 0 on the border (FCOS eq. 3).
#
# By hand, the P3 point `(44, 60)` in A: `l = 4, r = 36, t = b = 20`: `sqrt(4/36 * 20/20) = 1/3`.
# Below, centerness for every P3 point inside B, as a map.

# %%
p3 = points[0]
box_b = gt_boxes[1]
distances = np.stack([p3[:, 0] - box_b[0], p3[:, 1] - box_b[1], box_b[2] - p3[:, 0], box_b[3] - p3[:, 1]], axis=1)
inside_b = distances.min(axis=1) > 0
centerness_b = np.zeros(len(p3), dtype=np.float32)
centerness_b[inside_b] = edudet.centerness_target(distances[inside_b])
hand_point = edudet.centerness_target(np.array([[4.0, 20.0, 36.0, 20.0]]))[0]
print("centerness of (44, 60) in A:", hand_point)

fig, ax = plt.subplots(figsize=(8, 5))
image = ax.imshow(centerness_b.reshape(feature_shapes[0]), extent=(0, image_size[1], image_size[0], 0),
                  cmap="magma", vmin=0, vmax=1, interpolation="nearest")
fig.colorbar(image, ax=ax, label="centerness")
viz.draw_boxes(gt_boxes[1:], ax, color="white", linewidth=1.5, label="box B")
ax.set_title("Centerness of every P3 point inside B (one cell per point)")
ax.set_xlabel("x (pixels)")
ax.set_ylabel("y (pixels)")
plt.show()

# %% [markdown]
# ## 5. torchvision's FCOS and mmdetection's, side by side
#
# The same idea, four differences in the details (`fcos_targets(..., rule="mmdet" | "torchvision")` has both):
#
# | | mmdetection `FCOSHead` | torchvision `FCOS` |
# | --- | --- | --- |
# | point of cell `(i, j)` | cell centre `((j + 0.5) s, (i + 0.5) s)` (mmdet 2: `j s + s // 2`) | the anchor centre `(j s, i s)`: the cell's top-left corner |
# | center sampling | off by default; radius 1.5 in the improved config | always on, radius 1.5 |
# | regress range test | `low <= max distance <= high` | `low < max distance < high` (bounds `4 s` to `8 s` from its anchor sizes; 0 below P3, none above P7) |
# | two boxes claim a point | the smaller area wins | the larger `1e8 - area` in the boxes' dtype wins (float32: areas a few px² apart tie, the first box wins) |
#
# `grid_points(..., offset=0)` gives torchvision's points; `rule="torchvision"` applies all four. For box A with center sampling on P3: mmdetection's
# points `{52, 60, 68}` squared give 9; torchvision's `{48, 56, 64, 72}` must be *strictly* within 12 of 60:
# `{56, 64}` squared, **4** positives. The same box gets a different number of positives.

# %%
torchvision_like = edudet.fcos_targets(gt_boxes, gt_labels, image_size, feature_shapes, num_classes=2,
                                       rule="torchvision")
num_a_torchvision = int(np.sum(torchvision_like.gt_index == 0))
print("positives for A: mmdetection (centres)", num_a_sampled, "| torchvision (corners)", num_a_torchvision)

fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, result, title in [(axes[0], sampled, "mmdetection: points at cell centres"),
                          (axes[1], torchvision_like, "torchvision: points at cell corners")]:
    viz.image_axes(ax, extent=(28, 28, 92, 92), title=title)
    viz.draw_feature_grid((32, 48), stride=8, ax=ax, color="0.85")
    on_p3 = level_of_point == 3
    viz.draw_points(result.points[on_p3], ax, color="0.7", size=8)
    viz.draw_points(result.points[on_p3 & (result.gt_index == 0)], ax, color="tab:blue", size=40, label="positive")
    viz.draw_boxes(gt_boxes[:1], ax, color="black", linewidth=2, label="box A")
    viz.draw_boxes(np.array([[48, 48, 72, 72]]), ax, color="tab:red", linestyle="--", label="centre square")
    ax.legend(loc="lower right", fontsize=8)
plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** What is the centerness target of a point whose distances to its box's sides are `(l, t, r, b) = (10,
# 20, 30, 20)`?

# %%
from edudet.lessons.check import check, hint

my_centerness_value = ...  # your answer: a number
check("centerness", my_centerness_value)

# %% [markdown]
# **2.** With regress ranges P3 `[0, 64]`, P4 `[64, 128]`, P5 `[128, 256]`, which level `k` must predict a point
# with `(l, t, r, b) = (30, 100, 50, 20)`?

# %%
my_fcos_k = ...  # your answer: 3, 4 or 5
check("fcos_level", my_fcos_k)

# %% [markdown]
# ## Check yourself

# %%
assert strides == [8, 16, 32, 64, 128]
assert targets.num_points_per_level == [1536, 384, 96, 24, 6] and len(targets.points) == 2046
assert points[0][0].tolist() == [4, 4]
assert targets.labels[centre_point] == 0 and targets.bbox_targets[centre_point].tolist() == [20, 20, 20, 20]
assert np.isclose(targets.centerness[centre_point], 1.0)
assert num_a_plain == 25 and num_a_sampled == 9 and num_a_torchvision == 4
assert set(level_of_point[targets.gt_index == 1]) == {4, 5}                  # B learns on two levels
assert set(level_of_point[sampled.gt_index == 1]) == {4}                     # its centre only on P4
assert np.all(targets.labels[~positive] == 2)                                # background = num_classes
assert np.isclose(hand_point, 1 / 3)
assert np.isclose(centerness_b.max(), 1.0, atol=0.1) and centerness_b[~inside_b].max() == 0
print("all checks passed")
