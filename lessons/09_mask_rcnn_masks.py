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
# # Mask R-CNN masks: from the 28 x 28 mask head output back to the image with paste_masks_in_image
#
# Mask R-CNN (He et al., 2017) adds a mask head to Faster R-CNN: for every detected box it pools a 14 x 14
# feature with RoIAlign (lesson 6), and predicts a **28 x 28** grid of mask logits per class, in the *box's* frame.
# To draw a mask, that small grid must be put back where the box is, at the image's resolution. This lesson
# follows `ops.paste_masks_in_image` step by step on a hand-made mask head output, and checks the pixels by hand.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from edudet import ops, viz

# %% [markdown]
# ## 1. The mask head's output
#
# For each detection the head gives `num_classes` grids of 28 x 28 logits; only the grid of the detected class is
# kept, and a sigmoid turns it into probabilities. Here we make one by hand: an elliptical blob, the kind of output
# a mask head gives for a roundish object. Grid cell `(i, j)` covers `1/28` of the box per side.

# %%
M = 28
v, u = np.mgrid[0:M, 0:M] + 0.5                       # cell centres, in cells
logits = 6 * (1 - ((u - 14) / 11) ** 2 - ((v - 14) / 8) ** 2)
probabilities = 1 / (1 + np.exp(-logits))
masks = probabilities[None, None].astype(np.float32)  # (K, 1, 28, 28) with K = 1 detection
print(masks.shape, "probability at the centre:", masks[0, 0, 14, 14].round(4), "at a corner:", masks[0, 0, 0, 0].round(6))

# %%
fig, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
image = ax.imshow(masks[0, 0], cmap="viridis", vmin=0, vmax=1, extent=(0, M, M, 0))
fig.colorbar(image, ax=ax, label="mask probability")
ax.set_title("Mask head output for one detection (28 x 28)")
ax.set_xlabel("x (mask cells)")
ax.set_ylabel("y (mask cells)")
plt.show()

# %% [markdown]
# ## 2. Pad, grow, snap
#
# `paste_masks_in_image` follows torchvision's recipe:
#
# 1. **pad** the grid with one cell of zeros per side, 28 -> 30, so the pasted mask fades to 0 at its border;
# 2. **grow** the box about its centre by the same proportion, `30 / 28`, so that the 28 real cells still cover the
#    original box;
# 3. **snap** the grown box's corners to integers (truncation), and count its far corner inclusively:
#    `x2 - x1 + 1` pixels wide.
#
# By hand, the detection `(10, 20, 66, 76)`: a 56 x 56 box centred on `(38, 48)`. Grown by 30/28, its half-side is
# `28 * 30 / 28 = 30`: `(8, 18, 68, 78)`, already whole pixels, `68 - 8 + 1 = 61` pixels per side.

# %%
box = np.array([[10, 20, 66, 76]], dtype=np.float32)
image_shape = (100, 120)
scale = (M + 2) / M
centre = (box[0, :2] + box[0, 2:]) / 2
half = (box[0, 2:] - box[0, :2]) / 2 * scale
grown = np.trunc(np.concatenate([centre - half, centre + half]))
print("grown, snapped box:", grown, " width in pixels:", grown[2] - grown[0] + 1)

# %% [markdown]
# ## 3. Resize and paste
#
# The padded 30 x 30 grid is resized to the 61 x 61 pixels of the grown box by **bilinear interpolation with
# `align_corners=False`**: box pixel `p` reads the grid at `(p + 0.5) * 30 / 61 - 0.5` (PyTorch's rule), so grid
# cell `i`'s centre lands at `(i + 0.5) * 61 / 30` pixels into the box. Pixels outside the box, and the part of the
# box outside the image, stay 0. The result is one full-image mask per detection, `(K, 1, H, W)`.

# %%
pasted = ops.paste_masks_in_image(masks, box, image_shape)
print(pasted.shape, pasted.dtype, "max", pasted.max().round(4))

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 5))
viz.draw_image(pasted[0, 0], axes[0], title="Pasted probabilities (100 x 120 image)", cmap="viridis")
viz.draw_boxes(box, axes[0], color="white", linewidth=1.5, label="detection box")
viz.draw_boxes(grown[None], axes[0], color="tab:orange", linestyle="--", label="grown by 30/28, snapped")
axes[0].legend(loc="lower right", fontsize=8)
binary = pasted[0, 0] > 0.5
viz.draw_image(binary, axes[1], title="Mask at threshold 0.5, drawn over the box")
viz.draw_boxes(box, axes[1], color="tab:red", linewidth=1.5)
plt.show()

# %% [markdown]
# ## 4. Checking the pixels by hand: a mask of ones
#
# Paste an all-ones 28 x 28 mask into the same box and read the middle row (`y = 48`). Box pixel `p` is image pixel
# `x = 8 + p` and reads the padded grid at `src = (p + 0.5) * 30 / 61 - 0.5`; cells 0 and 29 are the zero padding,
# cells 1..28 are ones. So:
#
# * `x = 9` (`p = 1`): `src = 1.5 * 30/61 - 0.5 = 0.2377`: between cell 0 (0) and cell 1 (1): **0.2377**;
# * `x = 10` (`p = 2`): `src = 0.7295`: **0.7295**, the first pixel above 0.5;
# * `x = 11 .. 65`: `src` between 1 and 28: **exactly 1**;
# * `x = 66`: mirror image of `x = 10`: 0.7295; `x = 67`: 0.2377; `x = 68` onwards: 0.
#
# At threshold 0.5 the mask spans `x = 10 .. 66`: **57 pixels** for a 56-pixel box. The inclusive `+ 1` of step 3 is
# a leftover of the pixel-counting convention of older code, kept for exact agreement with torchvision.

# %%
ones = np.ones((1, 1, M, M), dtype=np.float32)
pasted_ones = ops.paste_masks_in_image(ones, box, image_shape)[0, 0]
middle_row = pasted_ones[48]
print("x = 8..13 :", middle_row[8:14].round(4))
print("x = 63..68:", middle_row[63:69].round(4))
above_half = np.flatnonzero(middle_row > 0.5)
print("pixels above 0.5:", above_half[0], "to", above_half[-1], f"({above_half.size} pixels)")

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.step(np.arange(image_shape[1]) + 0.5, middle_row, where="mid", label="pasted all-ones mask, row y = 48")
ax.axvspan(10, 66, color="tab:red", alpha=0.1, label="detection box x = 10 .. 66")
ax.axhline(0.5, color="0.6", linestyle=":", label="threshold 0.5")
ax.set_xlim(0, 80)
ax.set_title("One row of a pasted mask of ones: the border fades over two pixels")
ax.set_xlabel("x (pixels; pixel x covers [x, x + 1])")
ax.set_ylabel("mask value")
ax.legend(fontsize=8, loc="center right")
plt.show()

# %% [markdown]
# ## 5. Boxes at the image border
#
# Only the visible part of each box is computed: a detection hanging over the image's edge gets the part of its mask
# that is inside, with the same values it would have in a larger image.

# %%
edge_box = np.array([[90, 60, 146, 116]], dtype=np.float32)   # the same 56 x 56 box, over the right and bottom edges
clipped = ops.paste_masks_in_image(masks, edge_box, image_shape)[0, 0]
wide = ops.paste_masks_in_image(masks, edge_box, (100, 200))[0, 0]
print("same values as in a wider image:", np.array_equal(clipped, wide[:, :120]))

ax = viz.draw_image(clipped > 0.5, title="A detection over the edges keeps its visible part (grey: outside the image)")
viz.draw_boxes(edge_box, ax, color="tab:red", linewidth=1.5)
ax.set_facecolor("0.8")
ax.set_xlim(0, 150)
ax.set_ylim(120, 0)
plt.show()

# %% [markdown]
# ## Check yourself

# %%
assert masks.shape == (1, 1, 28, 28) and pasted.shape == (1, 1, 100, 120)
assert grown.tolist() == [8, 18, 68, 78]
assert pasted[0, 0, :18].max() == 0 and pasted[0, 0, 79:].max() == 0     # nothing outside the grown box
assert pasted[0, 0, :, :8].max() == 0 and pasted[0, 0, :, 69:].max() == 0
assert np.isclose(middle_row[9], 1.5 * 30 / 61 - 0.5, atol=1e-5)
assert np.isclose(middle_row[10], 2.5 * 30 / 61 - 0.5, atol=1e-5)
assert np.all(middle_row[11:66] == 1) and middle_row[8] == 0 and middle_row[68] == 0
assert above_half[0] == 10 and above_half[-1] == 66 and above_half.size == 57
assert np.array_equal(clipped, wide[:, :120])
print("all checks passed")
