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
# # The Faster R-CNN forward pass: one image traced through transform, backbone, FPN, RPN and box head
#
# Lessons 1 to 6 built the pieces: boxes and deltas, anchors, NMS, level mapping, RoIAlign. Faster R-CNN
# (Ren et al., 2015) with an FPN (Lin et al., 2017) chains them: resize and normalise the image, compute a feature
# pyramid, let the region proposal network (RPN) score every anchor and keep the best 1000 proposals, pool each
# proposal with RoIAlign from the level lesson 5 picks, and let the box head classify and refine it.
# `edudet.models` runs all of it in NumPy. This lesson runs one image through it, prints the shape of every
# stage's output, and draws each one.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import edudet
from edudet import models, viz
from edudet.demo import sample_image

# %% [markdown]
# ## 1. The model and the sample image
#
# `models.fasterrcnn_resnet50_fpn` takes torchvision's keywords. With `weights=None` it is filled with seeded
# **random** weights drawn with torchvision's initialisation rules: every shape and every step is real, but the
# boxes at the end are not objects. For real detections, convert torchvision's checkpoint once with
# `python -m edudet convert fasterrcnn_resnet50_fpn_coco.pth frcnn.npz` and pass `weights="frcnn.npz"`.
# To keep this lesson quick on a CPU we shrink the input: `min_size=320` (torchvision's default is 800).
#
# The sample image is the one `python -m edudet demo` uses: four coloured shapes on a textured background,
# generated (nothing is downloaded), 480 x 640 pixels.

# %%
model = models.fasterrcnn_resnet50_fpn(weights=None, min_size=320, max_size=512)
print(model)
image = sample_image(480, 640, seed=0)  # (H, W, 3) uint8
print("image:", image.shape, image.dtype)

# %% [markdown]
# ## 2. One traced forward pass
#
# `model(images, trace=True)` returns `(detections, trace)`, where the trace is a table of every stage's outputs
# and time. Here we use the context-manager form, `with models.trace(keep_arrays=True) as recorder:`, which records
# the same table and also keeps the arrays, so that we can draw them.

# %%
with models.trace(keep_arrays=True) as recorder:
    detections = model([image])
print(recorder.table())

# %% [markdown]
# ## 3. The shapes, by hand
#
# * **transform**: the shorter side 480 is scaled to 320 (factor 2/3; the longer side, 426, stays under 512), so
#   480 x 640 becomes 320 x 426; the batch is then padded to a multiple of 32 (the coarsest stride): **320 x 448**.
# * **backbone.body** (ResNet-50): C2..C5 at strides 4, 8, 16, 32 with 256, 512, 1024, 2048 channels:
#   C2 is `320/4 x 448/4 =` **80 x 112**.
# * **backbone.fpn**: P2..P5 with 256 channels each, same sizes, plus P6 (`pool`) by max-pooling P5: **5 x 7**.
# * **rpn.head**: per location 3 objectness logits and 3 x 4 deltas (three anchors, lesson 2).
# * **rpn.anchors**: `(80*112 + 40*56 + 20*28 + 10*14 + 5*7) * 3 = 11 935 * 3 =` **35 805** anchors.
# * **rpn.filter_proposals**: the top anchors per level, decoded (lesson 1), clipped, NMS at 0.7 (lesson 4):
#   at most **1000** proposals.
# * **roi_heads**: each proposal pooled to 256 x 7 x 7 (RoIAlign on the level of lesson 5), two fully connected
#   layers (1024), then 91 class scores and 91 x 4 deltas; per-class NMS at 0.5 keeps at most **100** detections.

# %%
shapes = {name: shape for stage in recorder.stages for name, shape in stage.outputs.items()}
for name in ("images", "C[0]", "P[0]", "P[pool]", "objectness[0]", "anchors", "proposals[0]", "box_features",
             "class_logits"):
    print(f"{name:15s} {shapes[name]}")

# %% [markdown]
# ## 4. The input the network sees
#
# The transform resizes and normalises (ImageNet mean and standard deviation per channel). Drawn back in colour:

# %%
batch = recorder["transform"].arrays["images"][0]                 # (3, 320, 448), normalised
shown = batch.transpose(1, 2, 0)
shown = (shown - shown.min()) / (shown.max() - shown.min())
fig, axes = plt.subplots(1, 2, figsize=(13, 5))
viz.draw_image(image, axes[0], title=f"original, {image.shape[0]} x {image.shape[1]}")
viz.draw_image(shown, axes[1], title=f"after the transform, {batch.shape[1]} x {batch.shape[2]} (padded)")
plt.show()

# %% [markdown]
# ## 5. The feature pyramid
#
# Each FPN level is a 256-channel map; below, the mean absolute activation over channels, each level at its own
# resolution (stride 4 to 64). Each cell sees a patch of the image around it; the coarser the level, the larger
# the patch. (With random weights the maps mean little; trained weights make them light up on objects.)

# %%
levels = ["0", "1", "2", "3", "pool"]
fig, axes = plt.subplots(1, 5, figsize=(20, 4.6))
for ax, level, name in zip(axes, levels, ["P2", "P3", "P4", "P5", "P6"]):
    fmap = recorder["backbone.fpn"].arrays[f"P[{level}]"][0]
    ax.imshow(np.abs(fmap).mean(axis=0), cmap="magma")
    ax.set_title(f"{name}: {fmap.shape[1]} x {fmap.shape[2]}")
    ax.set_xlabel("x (feature cells)")
    ax.set_ylabel("y (feature cells)")
fig.suptitle("FPN features: mean |activation| over 256 channels")
plt.show()

# %% [markdown]
# ## 6. Objectness, proposals and detections
#
# Left: the RPN's objectness on P2, the sigmoid of the best of the three anchors' logits at each location.
# Middle: the 50 best of the 1000 proposals, on the transformed image. Right: the final detections, mapped back
# to the original image by `transform.postprocess` (scaled back by 3/2). With random weights, these are where a
# detector *would* put its boxes; every array has the meaning and shape it has in a trained model.

# %%
logits = recorder["rpn.head"].arrays["objectness[0]"][0]            # (3, 80, 112)
objectness = 1 / (1 + np.exp(-logits.max(axis=0)))
proposals = recorder["rpn.filter_proposals"].arrays["proposals[0]"]
final = detections[0]
print("proposals:", proposals.shape, " detections:", final["boxes"].shape,
      " best score:", final["scores"][:1], " label:", final["labels"][:1])

fig, axes = plt.subplots(1, 3, figsize=(19, 5))
axes[0].imshow(objectness, cmap="viridis", extent=(0, batch.shape[2], batch.shape[1], 0))
viz.image_axes(axes[0], title="RPN objectness on P2 (best of 3 anchors)")
viz.draw_image(shown, axes[1], title="50 best proposals (transformed image)")
viz.draw_boxes(proposals[:50], axes[1], color="tab:orange", linewidth=0.8)
viz.draw_image(image, axes[2], title="10 best detections (original image)")
viz.draw_boxes(final["boxes"][:10], axes[2], labels=[f"class {c}" for c in final["labels"][:10]],
               scores=final["scores"][:10], color="tab:green")
plt.show()

# %% [markdown]
# ## 7. Where the time goes
#
# The trace also times every stage: on a CPU the ResNet body's convolutions dominate.

# %%
names = [stage.name for stage in recorder.stages]
milliseconds = [1000 * stage.seconds for stage in recorder.stages]
fig, ax = plt.subplots(figsize=(8, 4))
ax.barh(names[::-1], milliseconds[::-1], color="tab:blue")
ax.set_title(f"Time per stage ({recorder.total_seconds:.1f} s in all, this machine)")
ax.set_xlabel("milliseconds")
ax.set_ylabel("stage")
plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** A 600 x 900 image goes through the transform (`min_size=800`, `max_size=1333`, batches my_padded to a
# multiple of 32). What is the my_padded size `(height, width)` the backbone sees?

# %%
from edudet.lessons.check import check, hint

my_padded = ...  # your answer: (height, width)
check("padded_size", my_padded)

# %% [markdown]
# **2.** The box head predicts deltas `(1, 0, 0, 0)` for the proposal `(0, 0, 100, 100)`; the box coder's
# weights are `(10, 10, 5, 5)`. Which box does it decode to?

# %%
my_decoded = ...  # your answer: [x1, y1, x2, y2]
check("decode_box", my_decoded)

# %% [markdown]
# ## Check yourself

# %%
assert shapes["images"] == (1, 3, 320, 448)                       # 480 x 640 -> 320 x 426 -> padded 320 x 448
assert shapes["C[0]"] == (1, 256, 80, 112) and shapes["C[3]"] == (1, 2048, 10, 14)
assert [shapes[f"P[{k}]"][2:] for k in levels] == [(80, 112), (40, 56), (20, 28), (10, 14), (5, 7)]
assert shapes["objectness[0]"] == (1, 3, 80, 112) and shapes["deltas[0]"] == (1, 12, 80, 112)
assert shapes["anchors"] == (35805, 4)
assert proposals.shape[0] <= 1000 and shapes["box_features"] == (proposals.shape[0], 256, 7, 7)
assert shapes["class_logits"] == (proposals.shape[0], 91)
assert final["boxes"].shape[0] <= 100 and final["boxes"].shape[1] == 4
assert np.all(final["boxes"] >= 0) and np.all(final["boxes"][:, 2] <= 640) and np.all(final["boxes"][:, 3] <= 480)
assert np.all(np.diff(final["scores"]) <= 0)                      # sorted by decreasing score
print("all checks passed")
