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
# # FPN level mapping: FPN eq. 1 next to mmdetection's finest_scale=56, the stride mistake check_strides refuses, POOLER_SCALES vs featmap_strides
#
# A feature pyramid (FPN, Lin et al., 2017) gives a detector several feature maps: P2 with stride 4
# (fine, for small objects) up to P5 with stride 32 (coarse, for large ones). Each region of interest
# (RoI) is pooled from **one** of them. This lesson computes which one, two ways that turn out to be the
# same rule, and then shows what happens when the strides of the maps are written down wrong.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import edudet
from edudet import viz

# %% [markdown]
# ## 1. FPN's equation 1
#
# A RoI of width `w` and height `h` has scale `s = sqrt(w h)` and goes to level
#
# `k = floor(k0 + log2(s / 224))`, with `k0 = 4`, clamped to the levels that exist (P2..P5).
#
# 224 is the size of an ImageNet image, the object size a backbone's P4-like output was trained on.
# Every halving of the scale moves one level finer. By hand:
#
# | RoI `w x h` | scale `s` | `4 + log2(s / 224)` | level |
# | --- | --- | --- | --- |
# | 100 x 100 | 100 | 4 - 1.163 = 2.837 | P2 |
# | 112 x 112 | 112 | 4 - 1 = 3 | P3 |
# | 224 x 224 | 224 | 4 | P4 |
# | 500 x 300 | 387.3 | 4 + 0.790 = 4.790 | P4 |
# | 448 x 448 | 448 | 5 | P5 |
# | 1000 x 1000 | 1000 | 4 + 2.158 = 6.158 | 6, clamped to P5 |
#
# `edudet.LevelMapper(k_min=2, k_max=5)` answers with an index counted from `k_min`: 0 means P2.

# %%
rois = np.array([[0, 0, 100, 100],
                 [0, 0, 112, 112],
                 [0, 0, 224, 224],
                 [0, 0, 500, 300],
                 [0, 0, 448, 448],
                 [0, 0, 1000, 1000]], dtype=np.float32)
mapper = edudet.LevelMapper(k_min=2, k_max=5)
fpn_index = mapper(rois)
print(mapper)
print("level index:", fpn_index)
print("level      :", ["P%d" % (2 + i) for i in fpn_index])

# %% [markdown]
# ## 2. mmdetection's `finest_scale = 56`
#
# mmdetection writes the same mapping as ranges of the scale, starting from `finest_scale = 56`:
#
# `level = floor(log2(s / 56))`, clamped to `[0, num_levels - 1]`:
# scale `< 112` -> 0 (P2), `112 - 224` -> 1 (P3), `224 - 448` -> 2 (P4), `>= 448` -> 3 (P5).
#
# Why the two coincide: subtract `k_min = 2` from FPN's level and fold it into the logarithm,
#
# `floor(4 + log2(s / 224)) - 2 = floor(2 + log2(s / 224)) = floor(log2(4 s / 224)) = floor(log2(s / 56))`.
#
# `56 = 224 / 4` is simply the canonical 224 moved two levels down, to P2. The only difference is where
# each code adds its tiny `1e-6` (guarding exact powers of two against rounding), which can matter only
# within about a millionth of a boundary.

# %%
mmdet_index = edudet.map_roi_levels(rois, num_levels=4, finest_scale=56)
print("FPN eq. 1     :", fpn_index)
print("finest_scale  :", mmdet_index)

# %% [markdown]
# The same on 20 000 random RoIs with scales from 8 to 1500 pixels, and drawn as two step functions of the
# scale: they lie on top of each other.

# %%
rng = np.random.default_rng(0)
sizes = np.exp(rng.uniform(np.log(8), np.log(1500), size=(20000, 2)))
random_rois = np.concatenate([np.zeros_like(sizes), sizes], axis=1).astype(np.float32)
agree = mapper(random_rois) == edudet.map_roi_levels(random_rois, num_levels=4)
print(f"the two rules agree on {agree.mean():.2%} of {agree.size} RoIs")

scales = np.geomspace(16, 1024, 400)
square = np.stack([np.zeros_like(scales), np.zeros_like(scales), scales, scales], axis=1)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.step(scales, mapper(square) + 2, where="post", linewidth=3, label="FPN eq. 1 (224, level 4)")
ax.step(scales, edudet.map_roi_levels(square, num_levels=4) + 2, where="post", linestyle="--",
        color="black", label="mmdetection (finest_scale = 56)")
for edge in (112, 224, 448):
    ax.axvline(edge, color="0.8", linewidth=0.8)
ax.set_xscale("log")
ax.set_xticks([16, 56, 112, 224, 448, 1024], labels=["16", "56", "112", "224", "448", "1024"])
ax.set_yticks([2, 3, 4, 5], labels=["P2", "P3", "P4", "P5"])
ax.set_title("Which level a RoI is pooled from")
ax.set_xlabel("RoI scale sqrt(w h) (pixels, log scale)")
ax.set_ylabel("pyramid level")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# Here are a few RoIs on an 800 x 1216 input, coloured by the level they are pooled from.

# %%
image_size = (800, 1216)
scene = np.array([[40, 60, 120, 130],      # scale ~ 75  -> P2
                  [200, 80, 360, 230],     # ~ 155 -> P3
                  [420, 300, 700, 620],    # ~ 300 -> P4
                  [700, 60, 1200, 700]],   # ~ 565 -> P5
                 dtype=np.float32)
scene_levels = mapper(scene) + 2
level_colors = {2: "tab:blue", 3: "tab:orange", 4: "tab:green", 5: "tab:red"}
ax = viz.image_axes(extent=(0, 0, image_size[1], image_size[0]), title="RoIs coloured by FPN level",
                    figsize=(7, 4.8))
viz.draw_boxes(scene, ax, labels=[f"P{k}" for k in scene_levels], colors=[level_colors[k] for k in scene_levels],
               linewidth=2)
plt.show()

# %% [markdown]
# ## 3. The stride of a feature map, from its shape
#
# Pooling a RoI from level `Pk` means reading the map at `x * spatial_scale`, with `spatial_scale = 1 / stride`.
# For an 800 x 1216 input, P2..P5 have shapes 200 x 304, 100 x 152, 50 x 76 and 25 x 38: the strides are
# `800 / 200 = 4`, then 8, 16 and 32. torchvision never asks for them: it infers each from the shapes
# (`feature size / image size`, rounded to a power of two), and so does `edudet.infer_stride`.

# %%
feature_shapes = [(200, 304), (100, 152), (50, 76), (25, 38)]
true_strides = [edudet.infer_stride(shape, image_size) for shape in feature_shapes]
print("inferred strides:", true_strides)
print("spatial scales  :", [edudet.infer_scale(shape, image_size) for shape in feature_shapes])

# %% [markdown]
# ## 4. The stride mistake
#
# mmdetection instead takes the strides as a config list, `featmap_strides`, while the levels come from
# elsewhere. Writing `featmap_strides=[8, 16, 32, 64]` (the strides of P3..P6) for a P2..P5 pyramid raises
# no error: every map is simply read at **half** the right scale. A RoI `(x1, y1, x2, y2)` sent to P3 is read
# at `x / 16` instead of `x / 8`, which is the image region `(x1 / 2, y1 / 2, x2 / 2, y2 / 2)`: half the size,
# pulled toward the top-left corner. Such a model trains, and reaches about 0.8% mAP.
#
# By hand, the 160 x 160 RoI `(400, 240, 560, 400)` has scale 160, so it goes to P3 (true stride 8):
#
# * right: P3 cells `(400/8, 240/8, 560/8, 400/8) = (50, 30, 70, 50)`;
# * wrong (stride 16): P3 cells `(25, 15, 35, 25)`, i.e. the image region `(200, 120, 280, 200)`.

# %%
roi = np.array([[400, 240, 560, 400]], dtype=np.float32)
level = int(mapper(roi)[0]) + 2
right_stride, wrong_stride = true_strides[level - 2], [8, 16, 32, 64][level - 2]
right_cells = roi / right_stride
wrong_cells = roi / wrong_stride
print(f"level P{level}: right stride {right_stride}, wrong stride {wrong_stride}")
print("read with the right stride:", right_cells[0])
print("read with the wrong stride:", wrong_cells[0])
print("image region actually read:", (wrong_cells * right_stride)[0])

# %% [markdown]
# Drawn on P3's grid (one square per feature cell, only the top-left 60 x 90 cells shown), the wrong stride reads
# a box half as big, halfway to the corner. Every RoI in the image is misplaced the same way, and none of them
# raises an error.

# %%
ax = viz.image_axes(extent=(0, 0, 90, 60), title=f"P{level} (stride {right_stride}): where the RoI is read",
                    xlabel="x (P3 cells)", ylabel="y (P3 cells)", figsize=(8, 5.5))
viz.draw_feature_grid((60, 90), stride=1, ax=ax, color="0.85")
viz.draw_boxes(right_cells, ax, color="tab:green", linewidth=2, label="stride 8 (right)")
viz.draw_boxes(wrong_cells, ax, color="tab:red", linewidth=2, label="stride 16 (featmap_strides=[8, 16, 32, 64])")
ax.annotate("", xy=(25, 15), xytext=(50, 30), arrowprops=dict(arrowstyle="->", color="tab:red"))
ax.annotate("", xy=(0, 0), xytext=(25, 15), arrowprops=dict(arrowstyle="->", color="tab:red", linestyle=":"))
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## 5. edudet refuses it
#
# edudet infers strides from shapes wherever it can, and where a caller gives them, `edudet.check_strides`
# compares them with what the shapes imply and raises a `ValueError` naming the level.

# %%
print("the right strides pass:", edudet.check_strides([4, 8, 16, 32], feature_shapes, image_size,
                                                      names=["P2", "P3", "P4", "P5"]))
try:
    edudet.check_strides([8, 16, 32, 64], feature_shapes, image_size, names=["P2", "P3", "P4", "P5"])
except ValueError as error:
    refusal = str(error)
    print("refused:", refusal)

# %% [markdown]
# ## 6. Strides or scales: maskrcnn-benchmark's `POOLER_SCALES`
#
# The same four numbers are written two ways. mmdetection writes each level's **stride**,
# `featmap_strides=[4, 8, 16, 32]`; maskrcnn-benchmark (and the first detectron) writes its **scale**,
# `POOLER_SCALES = (1/4, 1/8, 1/16, 1/32)`: `scale = 1 / stride`, the factor that takes an image coordinate to a
# feature coordinate (`x_feature = x_image * scale`). `edudet.MultiScaleRoIAlign` takes either, as
# `featmap_strides=` or `scales=`, and checks either against the shapes.

# %%
names = ["P2", "P3", "P4", "P5"]
featmap_strides = [4, 8, 16, 32]
POOLER_SCALES = [1 / stride for stride in featmap_strides]
print("level  featmap_strides  POOLER_SCALES")
for name, stride, pooler_scale in zip(names, featmap_strides, POOLER_SCALES):
    print(f"{name:5s}  {stride:15d}  1/{stride} = {pooler_scale:g}")

rng = np.random.default_rng(1)
features = {name: rng.standard_normal((1, 8, h, w)).astype(np.float32) for name, (h, w) in zip(names, feature_shapes)}
by_strides = edudet.MultiScaleRoIAlign(names, 7, 2, featmap_strides=featmap_strides)(features, [scene], [image_size])
by_scales = edudet.MultiScaleRoIAlign(names, 7, 2, scales=POOLER_SCALES)(features, [scene], [image_size])
print("pooled", by_scales.shape, "- the same features either way:", np.array_equal(by_strides, by_scales))

# %% [markdown]
# Swapping them is an easy slip: `POOLER_SCALES` pasted into a `featmap_strides` field reads P2 at `x / 0.25`,
# sixteen times too far; strides pasted into a scales field read it at `x * 4`. No stride is below 1 and no scale
# above it, so edudet names the slip when it sees one:

# %%
mixups = {}
for slip, kwargs in [("POOLER_SCALES given as featmap_strides", dict(featmap_strides=POOLER_SCALES)),
                     ("featmap_strides given as scales", dict(scales=featmap_strides))]:
    try:
        edudet.MultiScaleRoIAlign(names, 7, 2, **kwargs)(features, [scene], [image_size])
    except ValueError as error:
        mixups[slip] = str(error)
        print(f"{slip}:\n  {error}\n")

# %% [markdown]
# ## 7. One level too many, or one too few
#
# mmdetection's `SingleRoIExtractor` makes one RoIAlign per entry of `featmap_strides`, maps RoIs with
# `num_levels = len(featmap_strides)`, and pools level `k` from the neck's `k`-th map: it uses the **first
# `len(featmap_strides)` maps** it is given, and nothing compares the list with the maps.
#
# * **One too short**, `[4, 8, 16]` for P2..P5: P5 is never read. Every RoI of scale 224 or more is pooled from
#   P4 (the finest_scale rule clamps at `num_levels - 1`). It trains, a little worse, with no message.
# * **One too long**, `[4, 8, 16, 32, 64]`: RoIs of scale 896 or more (`56 * 2**4`) now ask for a fifth map. If
#   the neck returns a P6 meant for the RPN only, they are silently pooled from it; if it returns four maps, the
#   first batch with such a large object stops with an `IndexError`, maybe hours into training.
#
# Here is which map each rule reads, for RoIs of scale 80 to 926 on the four maps P2..P5:

# %%
def mmdet_reads(rois, featmap_strides, maps=("P2", "P3", "P4", "P5")):
    """The map mmdetection's SingleRoIExtractor pools each RoI from: the first len(featmap_strides) maps."""
    levels = edudet.map_roi_levels(rois, num_levels=len(featmap_strides))
    return [maps[k] if k < len(maps) else "no map: IndexError" for k in levels]


sized_rois = np.array([[0, 0, 80, 80], [0, 0, 150, 150], [0, 0, 300, 300], [0, 0, 600, 600],
                       [100, 10, 1200, 790]], dtype=np.float32)            # scales 80, 150, 300, 600, 926
sized_scales = np.sqrt((sized_rois[:, 2] - sized_rois[:, 0]) * (sized_rois[:, 3] - sized_rois[:, 1]))
reads = {str(strides): mmdet_reads(sized_rois, strides) for strides in ([4, 8, 16, 32], [4, 8, 16], [4, 8, 16, 32, 64])}
print("RoI scale           " + "".join(f"{s:>20.0f}" for s in sized_scales))
for strides, maps_read in reads.items():
    print(f"{strides:20s}" + "".join(f"{m:>20s}" for m in maps_read))

# %% [markdown]
# edudet asks for one entry per named map and says so when the counts differ; the maps it pools from are the ones
# `featmap_names` names, never "the first few" (a `"P6"` in the features dict is simply not used).

# %%
length_errors = {}
for strides in ([4, 8, 16], [4, 8, 16, 32, 64]):
    try:
        edudet.MultiScaleRoIAlign(names, 7, 2, featmap_strides=strides)
    except ValueError as error:
        length_errors[len(strides)] = str(error)
        print(f"featmap_strides={strides}: {error}")
with_p6 = dict(features, P6=rng.standard_normal((1, 8, 13, 19)).astype(np.float32))
ignores_p6 = edudet.MultiScaleRoIAlign(names, 7, 2, featmap_strides=featmap_strides)(with_p6, [scene], [image_size])
print("with an extra P6 in the dict, the same result:", np.array_equal(ignores_p6, by_strides))

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** Which level `k` (2 for P2 ... 5 for P5) does FPN's equation 1 give a **150 x 90** RoI?

# %%
from edudet.lessons.check import check, hint

my_level_k = ...  # your answer: 2, 3, 4 or 5
check("roi_level", my_level_k)

# %% [markdown]
# **2.** Write maskrcnn-benchmark's `POOLER_SCALES` for P2..P5 as a list of four numbers.

# %%
my_pooler_scales = ...  # your answer: [s2, s3, s4, s5]
check("pooler_scales", my_pooler_scales)

# %% [markdown]
# ## Check yourself

# %%
assert list(fpn_index) == [0, 1, 2, 2, 3, 3]                  # P2, P3, P4, P4, P5, P5 (from the table)
assert np.array_equal(fpn_index, mmdet_index)                # the two rules are one rule
assert agree.all()
assert np.isclose(np.floor(4 + np.log2(100 / 224)), 2)       # 100 x 100 -> P2
assert list(scene_levels) == [2, 3, 4, 5]
assert true_strides == [4, 8, 16, 32]
assert level == 3 and np.allclose(right_cells, [[50, 30, 70, 50]]) and np.allclose(wrong_cells, [[25, 15, 35, 25]])
assert np.allclose(wrong_cells * right_stride, roi / 2)      # half the RoI, toward the top-left corner
assert "P2" in refusal and "8" in refusal and "4" in refusal
assert POOLER_SCALES == [0.25, 0.125, 0.0625, 0.03125] and np.array_equal(by_strides, by_scales)
assert "did you pass scales (1/stride)?" in mixups["POOLER_SCALES given as featmap_strides"]
assert "did you pass strides where scales (1/stride) are expected?" in mixups["featmap_strides given as scales"]
assert reads["[4, 8, 16, 32]"] == ["P2", "P3", "P4", "P5", "P5"]
assert reads["[4, 8, 16]"] == ["P2", "P3", "P4", "P4", "P4"]                     # P5 never read
assert reads["[4, 8, 16, 32, 64]"] == ["P2", "P3", "P4", "P5", "no map: IndexError"]  # scale 926 >= 896
assert "3 entries for 4" in length_errors[3] and "5 entries for 4" in length_errors[5] and np.array_equal(ignores_p6, by_strides)
print("all checks passed")
