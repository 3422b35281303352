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
# # Boxes, IoU and box coding: formats, IoU by hand, GIoU, and (10, 10, 5, 5) deltas decoded with a clip
#
# Every detector speaks in boxes. This lesson walks through the three things it does with them
# before anything else: writes them down (formats), compares them (IoU and GIoU), and predicts them
# relative to a reference box (box coding). Every number below is worked out by hand first, then
# computed with `edudet`, then drawn.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import edudet
from edudet import ops, viz

# %% [markdown]
# ## 1. Three ways to write a box
#
# edudet, like torchvision, uses **continuous coordinates**: `x` grows to the right, `y` grows *down*,
# and pixel `(row i, column j)` covers the square `[j, j+1] x [i, i+1]`. A box is four numbers:
#
# | format | numbers | our box |
# | --- | --- | --- |
# | `xyxy` | corners `(x1, y1, x2, y2)` | `(10, 20, 50, 60)` |
# | `xywh` | top-left corner and size `(x1, y1, w, h)` | `(10, 20, 40, 40)` |
# | `cxcywh` | centre and size `(cx, cy, w, h)` | `(30, 40, 40, 40)` |
#
# The width is `x2 - x1 = 50 - 10 = 40`, with **no `+1`**: a box from 10 to 50 is 40 units wide
# (old Caffe code counted pixels and added 1; torchvision does not).

# %%
box_xyxy = np.array([[10.0, 20.0, 50.0, 60.0]])
box_xywh = ops.box_convert(box_xyxy, "xyxy", "xywh")
box_cxcywh = ops.box_convert(box_xyxy, "xyxy", "cxcywh")
print("xyxy  :", box_xyxy[0])
print("xywh  :", box_xywh[0])
print("cxcywh:", box_cxcywh[0])
print("area  :", ops.box_area(box_xyxy)[0])

# %% [markdown]
# The same box, drawn with its corners and its centre marked. Note the `y` axis points down.

# %%
ax = viz.image_axes(extent=(0, 0, 70, 75), title="One box, three formats")
viz.draw_boxes(box_xyxy, ax, color="tab:blue", linewidth=2)
ax.plot([10, 50], [20, 60], "o", color="tab:blue")
ax.annotate("(x1, y1) = (10, 20)", (10, 20), textcoords="offset points", xytext=(4, -12))
ax.annotate("(x2, y2) = (50, 60)", (50, 60), textcoords="offset points", xytext=(-70, 8))
ax.plot([30], [40], "x", color="tab:red", markersize=10)
ax.annotate("centre (30, 40)", (30, 40), textcoords="offset points", xytext=(6, 4), color="tab:red")
plt.show()

# %% [markdown]
# ## 2. IoU, worked by hand
#
# Intersection over union: `IoU(A, B) = area(A ∩ B) / area(A ∪ B)`, 1 for identical boxes,
# 0 for boxes that do not overlap. Take three 40 x 40 boxes:
#
# * `A = (10, 10, 50, 50)`, `B = (30, 30, 70, 70)`, `C = (50, 40, 90, 80)`, each of area 1600.
# * `A ∩ B = (30, 30, 50, 50)`, a 20 x 20 square: 400. Union `1600 + 1600 - 400 = 2800`.
#   **IoU(A, B) = 400 / 2800 = 1/7 ≈ 0.142857.**
# * `B ∩ C = (50, 40, 70, 70)`: 20 x 30 = 600. Union `3200 - 600 = 2600`.
#   **IoU(B, C) = 600 / 2600 = 3/13 ≈ 0.230769.**
# * `A ∩ C`: `A` ends at `x = 50` where `C` starts, so the intersection is 0 wide:
#   **IoU(A, C) = 0** (touching is not overlapping).
#
# The intersection's corners are `max` of the top-left corners and `min` of the bottom-right ones;
# a negative width or height is clipped to 0. `ops.box_iou` does this for every pair at once.

# %%
boxes = np.array([[10.0, 10.0, 50.0, 50.0],   # A
                  [30.0, 30.0, 70.0, 70.0],   # B
                  [50.0, 40.0, 90.0, 80.0]])  # C
names = ["A", "B", "C"]
iou = ops.box_iou(boxes, boxes)
print(np.round(iou, 6))

# %% [markdown]
# Left: the three boxes with the two intersections shaded. Right: the IoU matrix, symmetric, with 1 on
# the diagonal.

# %%
fig, (ax_boxes, ax_matrix) = plt.subplots(1, 2, figsize=(11, 4.5))
viz.image_axes(ax_boxes, extent=(0, 0, 100, 90), title="Boxes A, B, C and their intersections")
viz.draw_boxes(boxes, ax_boxes, labels=names, linewidth=2)
viz.draw_boxes(np.array([[30.0, 30.0, 50.0, 50.0], [50.0, 40.0, 70.0, 70.0]]), ax_boxes,
               color="tab:gray", fill=True, alpha=0.4)
viz.heatmap(iou, ax_matrix, xlabels=names, ylabels=names, vmin=0, vmax=1, fmt="{:.3f}",
            title="IoU matrix (ops.box_iou)", xlabel="box", ylabel="box", colorbar_label="IoU")
plt.show()

# %% [markdown]
# ## 3. What IoU cannot see, and GIoU
#
# Every pair of disjoint boxes has IoU 0, whether they nearly touch or sit far apart, so IoU alone
# gives a regression loss no direction to move in. **Generalized IoU** (Rezatofighi et al., 2019)
# subtracts the share of the smallest enclosing box `E` that the union leaves empty:
#
# `GIoU = IoU - (area(E) - area(A ∪ B)) / area(E)`, in `[-1, 1]`.
#
# By hand, against `A = (10, 10, 50, 50)`:
#
# * `B = (30, 30, 70, 70)`: `E = (10, 10, 70, 70)`, area 3600; union 2800.
#   `GIoU = 1/7 - 800/3600 = 1/7 - 2/9 ≈ -0.079365`.
# * `D = (60, 10, 100, 50)` (10 px to the right of A): `E = (10, 10, 100, 50)`, area 90 x 40 = 3600;
#   union 3200. `GIoU = 0 - 400/3600 = -1/9 ≈ -0.111111`.
# * `F = (110, 10, 150, 50)` (60 px away): `E` is 140 x 40 = 5600; `GIoU = -2400/5600 = -3/7 ≈ -0.428571`.
#
# IoU is 0 for both `D` and `F`; GIoU tells them apart.

# %%
box_a = boxes[:1]
others = np.array([[30.0, 30.0, 70.0, 70.0],     # B
                   [60.0, 10.0, 100.0, 50.0],    # D
                   [110.0, 10.0, 150.0, 50.0]])  # F
print("IoU :", np.round(ops.box_iou(box_a, others)[0], 6))
print("GIoU:", np.round(ops.generalized_box_iou(box_a, others)[0], 6))

# %% [markdown]
# Slide a copy of `A` horizontally past `A` and watch both measures: IoU is flat at 0 once the boxes part,
# GIoU keeps falling the further they go.

# %%
shifts = np.linspace(-120, 120, 241)
sliding = box_a + np.stack([shifts, np.zeros_like(shifts), shifts, np.zeros_like(shifts)], axis=1)
iou_curve = ops.box_iou(box_a, sliding)[0]
giou_curve = ops.generalized_box_iou(box_a, sliding)[0]

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(shifts, iou_curve, label="IoU")
ax.plot(shifts, giou_curve, label="GIoU")
ax.axvspan(-40, 40, color="0.9", label="boxes overlap")
ax.set_title("A against a copy of A shifted horizontally")
ax.set_xlabel("shift (pixels)")
ax.set_ylabel("similarity")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. Box coding: predicting a box relative to an anchor
#
# A detector does not output corners. It outputs four **deltas** `(dx, dy, dw, dh)` that move a reference
# box `p` (an anchor, or a proposal) onto the object `g` (R-CNN, Girshick et al., 2014). With
# weights `(wx, wy, ww, wh)`:
#
# `dx = wx (g_cx - p_cx) / p_w`, `dy = wy (g_cy - p_cy) / p_h`, `dw = ww log(g_w / p_w)`, `dh = wh log(g_h / p_h)`.
#
# Dividing by the anchor's size makes the shift scale-free; the log makes growing and shrinking symmetric.
# torchvision's Faster R-CNN box head uses weights **(10, 10, 5, 5)**: Fast R-CNN normalised its regression
# targets to unit spread by dividing by standard deviations of about 0.1 (shift) and 0.2 (log size), and the
# weights are those divisions written as multiplications (1/0.1 = 10, 1/0.2 = 5).
#
# By hand, anchor `p = (10, 10, 50, 30)` (w 40, h 20, centre (30, 20)) and object `g = (20, 5, 60, 45)`
# (w 40, h 40, centre (40, 25)):
#
# * `dx = 10 * (40 - 30) / 40 = 2.5`
# * `dy = 10 * (25 - 20) / 20 = 2.5`
# * `dw = 5 * log(40 / 40) = 0`
# * `dh = 5 * log(40 / 20) = 5 log 2 ≈ 3.465736`

# %%
coder = edudet.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
anchor = np.array([[10.0, 10.0, 50.0, 30.0]])
target = np.array([[20.0, 5.0, 60.0, 45.0]])
deltas = coder.encode(target, anchor)  # torchvision's order: (reference boxes, proposals)
print(coder)
print("deltas :", np.round(deltas[0], 6))
decoded = coder.decode(deltas, anchor)
print("decoded:", decoded[0])

# %% [markdown]
# Decoding inverts the encoding: the centre moves by `dx / wx` anchor widths, the size is multiplied by
# `exp(dw / ww)`. Below, the anchor (dashed), the object (solid) and the centre shift the deltas describe.

# %%
ax = viz.image_axes(extent=(0, 0, 70, 55), title="Anchor p, object g and the deltas between them")
viz.draw_anchors(anchor, ax, color="tab:blue", label="anchor p")
viz.draw_boxes(target, ax, color="tab:green", linewidth=2, label="object g")
ax.annotate("", xy=(40, 25), xytext=(30, 20), arrowprops=dict(arrowstyle="->", color="black"))
ax.text(22, 40, "dx = 2.5, dy = 2.5\ndw = 0, dh = 3.47", fontsize=9)
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## 5. Why `dw` and `dh` are clipped
#
# At the start of training, or on an odd input, a network can predict a huge `dh`. Decoding takes
# `exp(dh / wh)`: in float32, `exp(x)` overflows to `inf` once `x > 88.7`, and `inf` corners turn into NaN
# the moment anything subtracts two of them (a width, an IoU). So the decoder clamps `dw / ww` and `dh / wh`
# at `bbox_xform_clip = log(1000 / 16) ≈ 4.135`: a box may grow at most 1000 / 16 = 62.5 times its reference.
# (Only from above: a very negative delta shrinks the box towards a point, which is harmless.)
#
# By hand: deltas `(0, 0, 1000, 1000)` with weights `(10, 10, 5, 5)` give `dw / ww = 200`, clipped to 4.135.
# The anchor `(10, 10, 50, 30)` becomes `40 * 62.5 = 2500` wide and `20 * 62.5 = 1250` tall around its centre
# `(30, 20)`: `(-1220, -605, 1280, 645)`.

# %%
wild = np.array([[0.0, 0.0, 1000.0, 1000.0]], dtype=np.float32)
clipped = coder.decode(wild, anchor.astype(np.float32))
print("clipped decode  :", clipped[0])

unclipped_coder = edudet.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0), bbox_xform_clip=1e6)
with np.errstate(over="ignore"):  # the overflow is the point of this cell
    unclipped = unclipped_coder.decode(wild, anchor.astype(np.float32))
print("unclipped decode:", unclipped[0])
print("its width       :", unclipped[0, 2] - unclipped[0, 0])

# %% [markdown]
# The decoded width as the predicted `dw` grows, with and without the clip (log scale): without it the
# width runs off to `inf` (where the curve stops); with it the width levels off at 62.5 x 40 = 2500.

# %%
dw_values = np.linspace(0, 500, 501, dtype=np.float32)
codes = np.zeros((dw_values.size, 4), dtype=np.float32)
codes[:, 2] = dw_values
refs = np.repeat(anchor.astype(np.float32), dw_values.size, axis=0)
with np.errstate(over="ignore", invalid="ignore"):
    width_clipped = np.diff(coder.decode(codes, refs)[:, 0::2], axis=1)[:, 0]
    width_unclipped = np.diff(unclipped_coder.decode(codes, refs)[:, 0::2], axis=1)[:, 0]

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.semilogy(dw_values, np.where(np.isfinite(width_unclipped), width_unclipped, np.nan), label="no clip")
ax.semilogy(dw_values, width_clipped, label="clip at log(1000/16)")
ax.set_title("Decoded width of a 40-wide anchor (float32)")
ax.set_xlabel("predicted dw (weight ww = 5)")
ax.set_ylabel("decoded width (pixels)")
ax.legend()
plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** What is the IoU of `(0, 0, 4, 4)` and `(2, 2, 6, 6)`? Work it out on paper first; a fraction such
# as `1 / 3` is a fine answer.

# %%
from edudet.lessons.check import check, hint

my_iou_answer = ...  # your answer: a number
check("iou_by_hand", my_iou_answer)

# %% [markdown]
# **2.** Write `my_iou(a, b)` for two `(x1, y1, x2, y2)` boxes given as tuples, in plain Python (no edudet).
# `check` tries it on a few pairs, including two boxes that do not touch.

# %%
def my_iou(a, b):
    """IoU of two (x1, y1, x2, y2) boxes: a number in [0, 1]."""
    ...  # your code here


check("iou_function", my_iou)

# %% [markdown]
# ## Check yourself
#
# Each assert below restates a number worked out by hand above.

# %%
assert np.allclose(box_xywh, [[10, 20, 40, 40]]) and np.allclose(box_cxcywh, [[30, 40, 40, 40]])
assert ops.box_area(box_xyxy)[0] == 40 * 40                    # no +1
assert np.isclose(iou[0, 1], 400 / 2800) and np.isclose(iou[0, 1], 1 / 7)
assert np.isclose(iou[1, 2], 600 / 2600)
assert iou[0, 2] == 0.0                                        # touching edges do not overlap
assert np.allclose(iou, iou.T) and np.allclose(np.diag(iou), 1)
giou = ops.generalized_box_iou(box_a, others)[0]
assert np.allclose(giou, [1 / 7 - 800 / 3600, -400 / 3600, -2400 / 5600])
assert np.allclose(deltas, [[2.5, 2.5, 0.0, 5 * np.log(2)]])
assert np.allclose(decoded, target)                            # decode(encode(g)) == g
assert np.isclose(coder.bbox_xform_clip, np.log(1000 / 16))
assert np.allclose(clipped, [[-1220, -605, 1280, 645]], atol=1e-3)
assert np.isinf(unclipped).any()                               # what the clip prevents
print("all checks passed")
