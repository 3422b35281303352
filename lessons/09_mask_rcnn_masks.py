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
# # Mask R-CNN masks: from the 28 x 28 mask head output back to the image with paste_masks_in_image, and a mask cell's image point
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
# ## 6. A mask cell, a feature cell, back in the image: `roi_grid_to_image`
#
# Which image point does mask cell `(x_f, y_f)` stand for? The box is cut into 28 equal slices per side, and cell
# `x_f` is the **centre** of slice `x_f`:
#
# `x_img = x1 + (x_f + 0.5) * w / 28` (and the same for `y`).
#
# The tempting `x1 + x_f * w / 28` is the slice's left edge: every cell drawn or compared there sits **half a
# cell** up and to the left, `0.5 * w / 28` pixels. For our 56-pixel box a cell is 2 pixels, so the slip is 1
# pixel; for a 280-pixel box it is 5. The same rule maps a cell of the 14 x 14 RoIAlign grid the mask head reads
# (a *feature* cell) back to the image, with 14 slices instead of 28. `edudet.roi_grid_to_image` is that rule.

# %%
from edudet import roi_grid_to_image

mask_cells = np.array([[0, 0], [5, 5], [27, 27]], dtype=np.float32)        # (x_f, y_f)
right_points = roi_grid_to_image(mask_cells, box, M)[0]
wrong_points = box[0, :2] + mask_cells * (box[0, 2:] - box[0, :2]) / M      # the tempting formula
feature_cell = roi_grid_to_image([[0, 0]], box, 14)[0, 0]                    # RoIAlign grid cell (0, 0)
for cell, right_xy, wrong_xy in zip(mask_cells, right_points, wrong_points):
    print(f"mask cell {cell.astype(int)}: right {right_xy}, tempting {wrong_xy}, off by {right_xy - wrong_xy} px")
print("feature cell (0, 0) of the 14 x 14 grid is centred at", feature_cell)

# %% [markdown]
# Measured, not just computed: paste a mask that is 1 in cell (5, 5) only and 0 elsewhere, and find where its
# pixels land in the image (their weighted centre, pixel `x` standing for `x + 0.5`). The right formula
# lands within a fifth of a pixel of it (what remains is the paste's inclusive `+ 1` pixel of step 2); the
# tempting one is a full cell-half further off.

# %%
one_cell = np.zeros((1, 1, M, M), dtype=np.float32)
one_cell[0, 0, 5, 5] = 1                                                    # row y_f = 5, column x_f = 5
landed = ops.paste_masks_in_image(one_cell, box, image_shape)[0, 0]
rows, cols = np.mgrid[0:image_shape[0], 0:image_shape[1]] + 0.5
measured = np.array([(landed * cols).sum(), (landed * rows).sum()]) / landed.sum()
error_right = np.abs(measured - right_points[1]).max()
error_wrong = np.abs(measured - wrong_points[1]).max()
print(f"cell (5, 5) lands at {measured.round(3)}; right formula {right_points[1]} ({error_right:.2f} px off), "
      f"tempting {wrong_points[1]} ({error_wrong:.2f} px off)")

# %%
fig, ax = plt.subplots(figsize=(10, 6), layout="constrained")
viz.draw_image(landed, ax, title="Mask cells mapped back: x1 + (x_f + 0.5) w/28 (right) vs x1 + x_f w/28",
               cmap="Blues")                                                # the pasted one-cell mask
for edge in np.arange(M + 1) * 2.0:                                         # mask cell edges: 2 px apart
    ax.axvline(box[0, 0] + edge, color="0.85", linewidth=0.6)
    ax.axhline(box[0, 1] + edge, color="0.85", linewidth=0.6)
cell_grid = np.stack(np.meshgrid(np.arange(M), np.arange(M)), axis=-1).reshape(-1, 2).astype(np.float32)
right_all = roi_grid_to_image(cell_grid, box, M)[0]
wrong_all = box[0, :2] + cell_grid * (box[0, 2:] - box[0, :2]) / M
viz.draw_boxes(box, ax, color="tab:red", linewidth=1.5, label="detection box")
ax.scatter(*right_all.T, s=6, color="tab:green", label="x1 + (x_f + 0.5) w/28: cell centres")
ax.scatter(*wrong_all.T, s=6, marker="x", color="tab:orange", label="x1 + x_f w/28: shifted half a cell")
ax.scatter(*measured, s=80, facecolors="none", edgecolors="tab:blue", linewidth=2, label="cell (5, 5), measured")
ax.set_xlim(8, 24)
ax.set_ylim(34, 18)
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=9)
plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** A detection's box has `x1 = 10` and width 56; its mask is 28 x 28. At which image `x` is the centre of
# mask cell `x_f = 0`? (`roi_grid_to_image` above knows; try without it.)

# %%
from edudet.lessons.check import check, hint

my_cell_x = ...  # your answer: an image x coordinate
check("mask_cell", my_cell_x)

# %% [markdown]
# **2.** For a box **112** pixels wide, how many image pixels apart are the tempting `x1 + x_f * w / 28` and the
# right `x1 + (x_f + 0.5) * w / 28`?

# %%
my_shift_pixels = ...  # your answer: pixels
check("half_cell", my_shift_pixels)

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
assert right_points.tolist() == [[11, 21], [21, 31], [65, 75]]     # 10 + (x_f + 0.5) * 2, 20 + (y_f + 0.5) * 2
assert np.allclose(right_points - wrong_points, 0.5 * 56 / 28)    # half a cell: 1 px for a 56-px box
assert feature_cell.tolist() == [12, 22]                           # 10 + 0.5 * 56 / 14
assert error_right < 0.25 and error_wrong > 1.0                    # measured on the pasted mask
print("all checks passed")
