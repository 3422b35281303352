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
# # RoIPool vs RoIAlign: rounded grid cells, sampling points, aligned=True's half pixel, the error on a ramp
#
# A two-stage detector cuts a fixed-size feature (7 x 7, say) out of a feature map for every region of
# interest (RoI). Fast R-CNN's **RoIPool** snaps the region to whole feature cells and takes a maximum per bin;
# Mask R-CNN's **RoIAlign** reads bilinear samples at exact positions and averages them. This lesson draws where
# each one reads, and measures what the rounding costs on a feature map whose values we know exactly: a ramp.
# It uses the feature-map stride and `spatial_scale` of lesson 5.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from edudet import ops, viz

# %% [markdown]
# ## 1. A feature map we can check by eye
#
# A 64 x 64 image and a 16 x 16 feature map of stride 4 (`spatial_scale = 1/4`). Feature cell `(i, j)` covers the
# image square `[4j, 4j + 4] x [4i, 4i + 4]`. Its value is the image `x` coordinate of its centre,
# `4 (j + 0.5)`: a ramp from 2 to 62. On a ramp, the exact average over any region is the ramp at the region's
# centre, and the exact maximum is the ramp at its right edge, so every error below can be read off in pixels.

# %%
height = width = 16
spatial_scale = 1 / 4
ramp = np.tile(4 * (np.arange(width) + 0.5), (height, 1)).astype(np.float32)
feature_map = ramp[None, None]  # (N, C, H, W) = (1, 1, 16, 16)
print(feature_map.shape, "values from", ramp.min(), "to", ramp.max())

# %%
fig, ax = plt.subplots(figsize=(5.5, 4.5))
image = ax.imshow(ramp, extent=(0, width, height, 0), cmap="viridis")
fig.colorbar(image, ax=ax, label="value = image x of the cell centre")
ax.set_title("The ramp feature map (16 x 16, stride 4)")
ax.set_xlabel("x (feature cells)")
ax.set_ylabel("y (feature cells)")
plt.show()

# %% [markdown]
# ## 2. RoIPool: two roundings
#
# Take the RoI `(10, 13, 45, 42)` in image coordinates and a 2 x 2 output. On the feature map it is
# `(2.5, 3.25, 11.25, 10.5)`. RoIPool first **rounds the corners** (half away from zero):
# `(3, 3, 11, 11)`, and counts the far corner *inclusive*: `11 - 3 + 1 = 9` cells per side. Then it cuts 9 cells
# into 2 bins of 4.5 and **rounds the bin edges outward**: bin 0 spans cells `floor(0) = 0 .. ceil(4.5) = 5`, bin 1
# `floor(4.5) = 4 .. ceil(9) = 9`, both shifted by the start 3: columns `[3, 8)` and `[7, 12)`. The bins overlap on
# column 7, and together they cover `[3, 12)` where the RoI covers `[2.5, 11.25]`.

# %%
roi = np.array([10, 13, 45, 42], dtype=np.float32)
pool_bins = viz.roi_pool_bins(roi, (2, 2), spatial_scale, (height, width))
print("RoI on the feature map:", roi * spatial_scale)
print("bins as (row_start, row_end, col_start, col_end):")
print(pool_bins.reshape(4, 4))

# %%
ax = viz.draw_roi_pool_bins(roi, (2, 2), spatial_scale, (height, width),
                            title="RoIPool: the whole cells each of the 2 x 2 bins takes the max over")
viz.draw_feature_grid((height, width), stride=1, ax=ax)
ax.set_xlim(0, width)
ax.set_ylim(height, 0)
ax.legend(loc="lower left", fontsize=8)
plt.show()

# %% [markdown]
# ## 3. RoIAlign: sampling points, no rounding
#
# RoIAlign cuts the exact region into equal bins and reads each bin at a regular grid of points, by bilinear
# interpolation of the four nearest cells. With `sampling_ratio = 2` each bin gets 2 x 2 points. With
# `sampling_ratio <= 0` (adaptive, torchvision's default) it takes `ceil(bin size)` points per axis: the region is
# 8.75 x 7.25 cells, so bins of 4.375 x 3.625 cells get `ceil(4.375) = 5` columns and `ceil(3.625) = 4` rows of
# points, 20 per bin. (Drawn here with `aligned=True`; section 4 explains the flag.)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
for ax, ratio in zip(axes, (2, -1)):
    name = "sampling_ratio = 2" if ratio > 0 else "adaptive (sampling_ratio = -1)"
    viz.draw_sampling_grid(roi, (2, 2), spatial_scale, sampling_ratio=ratio, aligned=True, ax=ax,
                           title=f"RoIAlign sampling points, {name}")
    viz.draw_feature_grid((height, width), stride=1, ax=ax)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
axes[0].legend(loc="lower left", fontsize=8)
plt.show()

_, _, points_ratio2 = viz.roi_align_sampling_points(roi, (2, 2), spatial_scale, sampling_ratio=2, aligned=True)
_, _, points_adaptive = viz.roi_align_sampling_points(roi, (2, 2), spatial_scale, sampling_ratio=-1, aligned=True)
print("points per bin:", points_ratio2.shape[2], "and", points_adaptive.shape[2])

# %% [markdown]
# ## 4. `aligned=True`: the half-pixel shift
#
# The kernel interpolates with cell `j`'s value placed at coordinate `j`, but in continuous image coordinates the
# cell's centre is at `j + 0.5`. The original RoIAlign (`aligned=False`) ignores that, so it samples every RoI
# **half a feature cell right and down** of where it lies. `aligned=True` (Detectron2's fix) subtracts 0.5 from
# the scaled box first. On P2 (stride 4) that is a 2-pixel shift in the image; on P5 (stride 32), 16 pixels.
# (`aligned=False` also enlarges RoIs smaller than one cell to one cell.)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
for ax, aligned in zip(axes, (False, True)):
    viz.draw_sampling_grid(roi, (2, 2), spatial_scale, sampling_ratio=2, aligned=aligned, ax=ax,
                           title=f"RoIAlign, sampling_ratio = 2, aligned={aligned}")
    viz.draw_feature_grid((height, width), stride=1, ax=ax)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
axes[0].legend(loc="lower left", fontsize=8)
plt.show()

# %% [markdown]
# ## 5. What each one returns on the ramp
#
# A simpler RoI, `(12, 12, 44, 44)`, is `(3, 3, 11, 11)` on the map: two bins of 4 x 4 cells, centred at
# `x = 5` and `x = 9` cells, i.e. image `x = 20` and `36`. By hand:
#
# * RoIAlign, `aligned=True`: bilinear interpolation is exact on a ramp, and the points are symmetric about each
#   bin's centre, so each bin returns the ramp at its centre: **20, 36**. Exact.
# * RoIAlign, `aligned=False`: the same half-cell to the right: `4 (5.5) = 22`, `4 (9.5) = 38`: **+2** pixels.
# * RoIPool: corners stay `(3, 3, 11, 11)`, 9 cells, bins `[3, 8)` and `[7, 12)`; the max of a ramp is its
#   rightmost cell: `4 (7 + 0.5) = 30` and `4 (11 + 0.5) = 46`. The exact maxima over the bins' true extents
#   (right edges at 7 and 11 cells) are 28 and 44: **+2**, and it moves in jumps, as the next cell shows.

# %%
simple_roi = np.array([[0, 12, 12, 44, 44]], dtype=np.float32)  # [batch_index, x1, y1, x2, y2]
align_true = ops.roi_align(feature_map, simple_roi, (2, 2), spatial_scale, sampling_ratio=2, aligned=True)[0, 0]
align_false = ops.roi_align(feature_map, simple_roi, (2, 2), spatial_scale, sampling_ratio=2, aligned=False)[0, 0]
pooled = ops.roi_pool(feature_map, simple_roi, (2, 2), spatial_scale)[0, 0]
print("RoIAlign aligned=True :", align_true[0])
print("RoIAlign aligned=False:", align_false[0])
print("RoIPool               :", pooled[0])

# %% [markdown]
# Now slide that RoI to the right by 0 to 8 image pixels (two feature cells) in steps of 1/8 pixel, and plot each
# method's error for the left bin: RoIAlign against the ramp at the bin's centre (`20 + shift`), RoIPool against
# the ramp's maximum over the bin (`28 + shift`). RoIAlign `aligned=True` is exact everywhere, `aligned=False` is
# off by a constant 2 pixels, and RoIPool's error saw-tooths by up to a whole feature cell (4 pixels) as the
# rounded corners jump from cell to cell.

# %%
shifts = np.arange(0, 8.001, 0.125)
rois = np.repeat(simple_roi, len(shifts), axis=0)
rois[:, 1] += shifts
rois[:, 3] += shifts
error_aligned = ops.roi_align(feature_map, rois, (2, 2), spatial_scale, 2, aligned=True)[:, 0, 0, 0] - (20 + shifts)
error_legacy = ops.roi_align(feature_map, rois, (2, 2), spatial_scale, 2, aligned=False)[:, 0, 0, 0] - (20 + shifts)
error_pool = ops.roi_pool(feature_map, rois, (2, 2), spatial_scale)[:, 0, 0, 0] - (28 + shifts)

fig, ax = plt.subplots(figsize=(8, 3.8))
ax.plot(shifts, error_pool, drawstyle="steps-post", label="RoIPool (max) - exact max")
ax.plot(shifts, error_legacy, label="RoIAlign aligned=False - exact mean")
ax.plot(shifts, error_aligned, label="RoIAlign aligned=True - exact mean")
ax.axhline(0, color="0.7", linewidth=0.8)
ax.set_title("Error on the ramp as the RoI slides right (left bin)")
ax.set_xlabel("shift of the RoI (image pixels)")
ax.set_ylabel("error (image pixels)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** RoIPool reads a RoI with `x1 = 10` at `spatial_scale = 1/4`. At which feature column does its first bin
# start?

# %%
from edudet.lessons.check import check, hint

my_first_column = ...  # your answer: a column index
check("roipool_start", my_first_column)

# %% [markdown]
# **2.** Fill in `my_bilinear(plane, y, x)`: read an `(H, W)` array at a real point `(y, x)` (pixel centres at
# integers), the way RoIAlign reads each sampling point. Points stay inside the plane.

# %%
def my_bilinear(plane, y, x):
    """plane: (H, W) array; (y, x): real coordinates; returns the interpolated value."""
    ...  # your code here


check("bilinear", my_bilinear)

# %% [markdown]
# ## Check yourself

# %%
assert np.allclose(roi * spatial_scale, [2.5, 3.25, 11.25, 10.5])
assert pool_bins[0, 0].tolist() == [3, 8, 3, 8] and pool_bins[1, 1].tolist() == [7, 12, 7, 12]
assert points_ratio2.shape[2] == 2 * 2 and points_adaptive.shape[2] == 5 * 4
assert np.allclose(align_true, [[20, 36], [20, 36]])                   # exact: the bin centres
assert np.allclose(align_false - align_true, 2)                        # half a cell = 2 image pixels
assert np.allclose(pooled, [[30, 46], [30, 46]])                        # rightmost whole cell
assert np.allclose(error_aligned, 0, atol=1e-4)
assert np.allclose(error_legacy, 2, atol=1e-4)
assert error_pool.min() >= -4 and error_pool.max() <= 4 and np.ptp(error_pool) > 2
# the drawn bins are the ones roi_pool reads: a map of distinct values recovers each bin's corner cell
index_map = np.arange(height * width, dtype=np.float64).reshape(1, 1, height, width)
maxima = ops.roi_pool(index_map, np.array([[0, *roi]]), (2, 2), spatial_scale)[0, 0]
expected = [[(r1 - 1) * width + (c1 - 1) for (_, r1, _, c1) in row] for row in pool_bins]
assert np.array_equal(maxima, expected)
print("all checks passed")
