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
# # A trained detector: the shipped shapes Mask R-CNN, its detections and its COCO mAP
#
# Lessons 7 and 9 ran detectors on random weights: every shape was right, the boxes meant nothing. edudet
# ships one detector that was really trained: a light Mask R-CNN (ResNet-18 body, 64-channel FPN) that
# `tools/train_shapes.py` trained with torchvision on the generated shapes of `edudet.data.shapes`, then
# converted with `python -m edudet convert`. This lesson looks at the data, runs the model in NumPy, and
# measures it the way detection papers do: COCO's average precision (AP), computed by `edudet.eval`.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from edudet import models, ops, viz
from edudet.data import CLASSES, ShapesDataset
from edudet.eval import mean_average_precision

# %% [markdown]
# ## 1. The data: generated, exact, remade from an index
#
# `ShapesDataset(n, seed=s)[i]` draws image `i` from `(s, i)`: circles, squares and triangles, overlapping, on a
# textured background. Its target holds the *visible* part of each shape: a mask, and the box tight to that mask
# (`x2` = last column + 1). Nothing is stored: the same index always gives the same image and target.
# The training run used data seed 1; the evaluation images below come from seed 2, never seen in training.

# %%
record = models.shapes_record()
evaluation = ShapesDataset(20, image_size=record["image_size"], seed=record["evaluation"]["data_seed"])
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), layout="constrained")
for i, ax in enumerate(axes):
    image, target = evaluation[i]
    viz.draw_image(image, ax=ax, title=f"evaluation image {i}: {len(target['labels'])} shapes")
    viz.draw_boxes(target["boxes"], ax=ax, labels=[CLASSES[k] for k in target["labels"]], color="tab:green")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
plt.show()

# %% [markdown]
# ## 2. The model and what its training recorded
#
# `models.shapes_detector()` loads the shipped `.npz` (its conv and linear weights stored as float16 to halve the
# file, computed in float32). The JSON next to it records the run: data seed, steps, and the mAP that these
# weights reach through edudet's NumPy forward pass on 50 evaluation images (the test suite checks it again).

# %%
model = models.shapes_detector()
print(model)
training = record["training"]
print(f"trained on {training['images']} generated images: {training['steps']} steps of {training['batch_size']}, "
      f"data seed {training['data_seed']}")
print("recorded on 50 evaluation images:", record["evaluation"]["edudet"])

# %% [markdown]
# ## 3. One image, detections against the ground truth
#
# The model returns boxes, labels, scores and masks (probabilities, `(K, 1, H, W)`), sorted by score. Detections
# with a score above 0.5 are drawn next to the truth; the table pairs each with the ground truth it overlaps most.

# %%
image, target = evaluation[0]
detections = model([image])[0]
confident = detections["scores"] > 0.5
boxes, labels = detections["boxes"][confident], detections["labels"][confident]
iou = ops.box_iou(boxes, target["boxes"])
for k in range(len(boxes)):
    best = int(np.argmax(iou[k]))
    print(f"{CLASSES[labels[k]]:9s} score {detections['scores'][k]:.3f}  best ground truth: "
          f"{CLASSES[target['labels'][best]]:9s} IoU {iou[k, best]:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), layout="constrained")
viz.draw_image(image, ax=axes[0], title="ground truth")
viz.draw_boxes(target["boxes"], ax=axes[0], labels=[CLASSES[k] for k in target["labels"]], color="tab:green")
viz.draw_image(image, ax=axes[1], title=f"{len(boxes)} detections with score > 0.5, masks > 0.5")
overlay = np.zeros((*image.shape[:2], 4))
for k, mask in enumerate(detections["masks"][confident][:, 0]):
    overlay[mask > 0.5] = (*plt.get_cmap("tab10")(k % 10)[:3], 0.5)
axes[1].imshow(overlay, extent=(0, image.shape[1], image.shape[0], 0))
viz.draw_boxes(boxes, ax=axes[1], labels=[CLASSES[k] for k in labels], scores=detections["scores"][confident],
               color="tab:red")
for ax in axes:
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
plt.show()

# %% [markdown]
# ## 4. COCO's average precision
#
# For one class and one IoU threshold, sort all detections of all images by score. Walk down the list: a
# detection is a **true positive** when it overlaps a not-yet-claimed ground truth of its class by at least the
# threshold, otherwise a **false positive**. Precision and recall after each step trace a curve; AP is the area
# under it (COCO samples precision at 101 recall points, after making it non-increasing). **AP50** uses IoU 0.5;
# **AP** averages the thresholds 0.50, 0.55, ..., 0.95, so it rewards tight boxes; everything is averaged over the
# classes. `mean_average_precision` follows pycocotools exactly (the tests compare them).

# %%
predictions = [model([evaluation[i][0]])[0] for i in range(len(evaluation))]
truths = [{"boxes": evaluation[i][1]["boxes"], "labels": evaluation[i][1]["labels"]} for i in range(len(evaluation))]
stats = mean_average_precision(predictions, truths)
for key in ("AP", "AP50", "AP75", "APs", "APm", "AR100"):
    print(f"{key:6s} {stats[key]:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
keys = ["AP", "AP50", "AP75", "APs", "APm"]
axes[0].bar(keys, [stats[k] for k in keys], color="tab:blue")
axes[0].set_title("COCO metrics on 20 evaluation images")
axes[0].set_xlabel("metric")
axes[0].set_ylabel("value")
axes[0].set_ylim(0, 1)
per_class = stats["per_category"]
axes[1].bar([CLASSES[c] for c in per_class], list(per_class.values()), color="tab:orange")
axes[1].set_title("AP (IoU 0.50:0.95) per class")
axes[1].set_xlabel("class")
axes[1].set_ylabel("AP")
axes[1].set_ylim(0, 1)
plt.show()

# %% [markdown]
# AP75 is lower than AP50: most shapes are found, but a box within a few pixels of the truth is not always
# within 75% IoU of it, and small shapes (area below 32 x 32, `APs`) are the hardest: one pixel of error is a
# large part of their size.

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** Five detections, sorted by score, are TP, TP, FP, TP, FP against 4 ground-truth objects. What are
# `(precision, recall)` after the third detection?

# %%
from edudet.lessons.check import check, hint

my_precision_recall = ...  # your answer: (precision, recall)
check("precision_recall", my_precision_recall)

# %% [markdown]
# **2.** A detection overlaps its object with IoU exactly 0.5. Is it a true positive for AP50? (`True` or
# `False`)

# %%
my_counts_at_ap50 = ...  # your answer: True or False
check("ap50_tie", my_counts_at_ap50)

# %% [markdown]
# ## Check yourself

# %%
assert detections["masks"].shape == (len(detections["boxes"]), 1, 256, 256)
assert np.all(np.diff(detections["scores"]) <= 0)                    # sorted by decreasing score
assert set(np.unique(detections["labels"])) <= {1, 2, 3}             # circle, square, triangle; 0 is background
assert stats["AP50"] >= 0.85                                        # the detector works
assert stats["AP50"] >= stats["AP75"] >= 0 and stats["AP50"] >= stats["AP"]   # a stricter threshold never helps
assert np.all(iou.max(axis=1) > 0.5)                                 # every confident detection is on a shape
print("all checks passed")
