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
# # Anchors: the 15 rounded base anchors (32..512 px, ratios 0.5/1/2), their grids on P2..P6, 242 991 for 800 x 1216
#
# An anchor is a reference box the detector predicts from (with the deltas of lesson 1). Faster R-CNN with
# an FPN places, at every location of every pyramid level, three anchors of one size and three shapes.
# This lesson builds the 15 base anchors by hand, lays them out on each level's grid, draws them on an
# image, and counts them.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import edudet
from edudet import viz

# %% [markdown]
# ## 1. Base anchors, by hand
#
# A base anchor is centred on 0. For a size `s` and an aspect ratio `r = h / w`, keep the area at `s^2`:
# `h = s sqrt(r)`, `w = s / sqrt(r)`, and the anchor is `round([-w/2, -h/2, w/2, h/2])`
# (torchvision rounds the half-sizes to whole pixels). For `s = 32`:
#
# | ratio | `w` | `h` | half-sizes | rounded anchor |
# | --- | --- | --- | --- | --- |
# | 0.5 (wide) | 32 / 0.7071 = 45.25 | 32 x 0.7071 = 22.63 | 22.63, 11.31 | `[-23, -11, 23, 11]` |
# | 1 | 32 | 32 | 16, 16 | `[-16, -16, 16, 16]` |
# | 2 (tall) | 22.63 | 45.25 | 11.31, 22.63 | `[-11, -23, 11, 23]` |
#
# Each doubling of the size doubles the half-sizes: for ratio 0.5, `22.63 -> 45.25 -> 90.51 -> 181.02 -> 362.04`
# round to `23, 45, 91, 181, 362`. Rounding makes the anchors slightly off their nominal area: the 32-pixel
# wide anchor is 46 x 22 = 1012 px², not 1024.

# %%
sizes = ((32,), (64,), (128,), (256,), (512,))           # one size per level, P2..P6
aspect_ratios = ((0.5, 1.0, 2.0),) * len(sizes)
generator = edudet.AnchorGenerator(sizes, aspect_ratios)
print(generator)
base_anchors = np.concatenate(generator.cell_anchors)
for level, cell in zip(range(2, 7), generator.cell_anchors):
    print(f"P{level}:", cell.astype(int).tolist())

# %% [markdown]
# All 15 drawn around one centre: each size is a level, each colour a ratio.

# %%
ratio_colours = ["tab:blue", "tab:orange", "tab:green"] * len(sizes)
ax = viz.image_axes(extent=(-380, -380, 380, 380), title="The 15 base anchors (sizes 32..512, ratios 0.5, 1, 2)",
                    figsize=(6.5, 6))
viz.draw_boxes(base_anchors, ax, colors=ratio_colours, linewidth=1.2)
for colour, ratio in zip(ratio_colours, (0.5, 1.0, 2.0)):
    ax.plot([], [], color=colour, label=f"ratio h/w = {ratio}")
ax.legend(loc="upper right", fontsize=8)
plt.show()

# %% [markdown]
# ## 2. The pyramid of an 800 x 1216 input
#
# Each FPN level halves the previous one. For an 800 x 1216 (padded) input, P2..P5 are
# 200 x 304, 100 x 152, 50 x 76 and 25 x 38. P6 is P5 max-pooled with stride 2, `ceil(25 / 2) = 13` by
# `38 / 2 = 19`. torchvision computes each level's stride as `image size // feature size`: 4, 8, 16, 32 and, for
# P6, `800 // 13 = 61` down and `1216 // 19 = 64` across (not 64 both ways: an odd map size shows through).
#
# A location `(i, j)` of a level with strides `(s_h, s_w)` carries the three base anchors shifted by
# `(j s_w, i s_h)`: torchvision puts the anchor centres on the cells' **top-left corners** (`j * s`), not on their
# centres (`(j + 0.5) * s`, mmdetection's `center_offset=0.5`).

# %%
image_size = (800, 1216)
feature_shapes = [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]
strides = [(image_size[0] // h, image_size[1] // w) for h, w in feature_shapes]
print("strides (down, across):", strides)
anchors = generator(image_size, feature_shapes)
per_level = generator.num_anchors_per_level(feature_shapes)
print("anchors per level:", per_level)
print("total            :", anchors.shape)

# %% [markdown]
# The anchors come level by level, and inside a level location by location (row by row), three per location:
# the same order in which the RPN head's outputs are flattened. So the first three anchors of P3 sit at index
# 182 400, centred on `(0, 0)`, and the last three anchors of all sit at P6's location `(12, 18)`, centred on
# `(18 * 64, 12 * 61) = (1152, 732)`.

# %%
level_starts = np.concatenate([[0], np.cumsum(per_level)[:-1]])
print("first anchors of P3:\n", anchors[level_starts[1]:level_starts[1] + 3])
print("last anchors       :\n", anchors[-3:])
last_centre = (anchors[-1, :2] + anchors[-1, 2:]) / 2
print("last anchors' centre:", last_centre)

# %% [markdown]
# ## 3. Drawn on an image
#
# A synthetic 800 x 1216 image stands in for a photo. Each panel zooms on the middle of the image at one level:
# the yellow dots are that level's anchor centres (its grid), and the three anchors of the location nearest the
# image centre are drawn (blue: ratio 0.5, orange: 1, green: 2).
# Small anchors on a dense grid (P2) cover small objects; large anchors on a sparse grid (P6), large ones.

# %%
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:image_size[0], 0:image_size[1]]
image = 0.4 + 0.3 * np.sin(xx / 90.0) * np.cos(yy / 70.0)
for _ in range(6):  # a few bright rectangles as "objects"
    x0, y0 = rng.integers(0, 1000), rng.integers(0, 650)
    w, h = rng.integers(40, 300, size=2)
    image[y0:y0 + h, x0:x0 + w] += 0.3
image = np.clip(image, 0, 1)

fig, axes = plt.subplots(1, 5, figsize=(20, 4.6))
centre = np.array([image_size[1] / 2, image_size[0] / 2])
for k, ax in enumerate(axes):
    (stride_h, stride_w), (h, w) = strides[k], feature_shapes[k]
    level_anchors = anchors[level_starts[k]:level_starts[k] + per_level[k]].reshape(h, w, 3, 4)
    i, j = int(round(centre[1] / stride_h)), int(round(centre[0] / stride_w))
    half = min(1.6 * sizes[k][0], 450)  # zoom so that the level's anchors fill the panel
    viz.draw_image(image, ax, title=f"P{k + 2}: {h} x {w}, stride {stride_h} x {stride_w}")
    grid = np.stack(np.meshgrid(np.arange(w) * stride_w, np.arange(h) * stride_h), axis=-1).reshape(-1, 2)
    near = np.all(np.abs(grid - [j * stride_w, i * stride_h]) <= half, axis=1)
    viz.draw_points(grid[near], ax, color="yellow", size=4, zorder=0.5)
    viz.draw_anchors(level_anchors[i, j], ax, colors=["tab:blue", "tab:orange", "tab:green"], linestyle="-",
                     linewidth=2)
    ax.set_xlim(j * stride_w - half, j * stride_w + half)
    ax.set_ylim(i * stride_h + half, i * stride_h - half)
fig.suptitle("The three anchors of one location on each level, over that level's grid of anchor centres")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. How many anchors per level
#
# Count = `h * w * 3`, by hand: P2 `200 * 304 * 3 = 182 400`, P3 `45 600`, P4 `11 400`, P5 `2 850`,
# P6 `13 * 19 * 3 = 741`; total **242 991**. Three quarters of them are on P2, and each level has a quarter of
# the one below (up to rounding at P6).

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
names = [f"P{k}" for k in range(2, 7)]
bars = ax.bar(names, per_level, color="tab:blue")
ax.bar_label(bars, labels=[f"{n:,}" for n in per_level])
ax.set_ylim(100, 1e6)
ax.set_yscale("log")
ax.set_title(f"Anchors per level for an 800 x 1216 input ({sum(per_level):,} in all)")
ax.set_xlabel("pyramid level")
ax.set_ylabel("anchors (log scale)")
plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** How many anchors does one size with the three ratios (0.5, 1, 2) put on a 200 x 304 P2 map?

# %%
from edudet.lessons.check import check, hint

my_anchor_count = ...  # your answer: a whole number
check("anchors_on_p2", my_anchor_count)

# %% [markdown]
# **2.** Write torchvision's (rounded) base anchor of size 32 and aspect ratio 0.5 as `[x1, y1, x2, y2]`,
# centred on 0.

# %%
my_base_anchor = ...  # your answer: [x1, y1, x2, y2]
check("base_anchor", my_base_anchor)

# %% [markdown]
# ## Check yourself

# %%
assert generator.cell_anchors[0].tolist() == [[-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23]]
assert [cell[0, 2] for cell in generator.cell_anchors] == [23, 45, 91, 181, 362]   # ratio 0.5 half-widths
assert [cell[1, 2] for cell in generator.cell_anchors] == [16, 32, 64, 128, 256]   # ratio 1: exactly s/2
assert base_anchors.shape == (15, 4)
assert strides == [(4, 4), (8, 8), (16, 16), (32, 32), (61, 64)]
assert per_level == [182400, 45600, 11400, 2850, 741] and anchors.shape == (242991, 4)
assert np.allclose(anchors[182400:182403], generator.cell_anchors[1])               # P3 starts at (0, 0)
assert np.allclose(last_centre, [1152, 732])
print("all checks passed")
