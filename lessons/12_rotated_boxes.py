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
# # Rotated boxes: (cx, cy, w, h, angle in degrees), the exact IoU of two rotated rectangles, detectron2's angle vs mmcv's, rotated NMS
#
# Aerial images, text lines and parked cars are long, thin and diagonal: an axis-aligned box around them is
# mostly background, and two neighbours' boxes overlap although the objects do not. Oriented detectors
# (detectron2's RRPN, mmrotate) predict a **rotated box** instead. This lesson fixes the format and the angle
# convention, computes the IoU of two rotated rectangles by hand (their intersection is a convex polygon),
# checks it against `ops.box_iou_rotated`, and runs rotated NMS. It uses IoU from lesson 1 and NMS from
# lesson 4.

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Polygon

from edudet import ops, viz


def draw_rotated(boxes, ax, color="tab:blue", labels=None, fill=False, **kwargs):
    """Draw (N, 5) rotated boxes as polygons, with a dot in the middle of each box's +w/2 side."""
    for k, corners in enumerate(ops.rotated_box_corners(boxes)):
        ax.add_patch(Polygon(corners, closed=True, fill=fill, edgecolor=color, facecolor=color,
                             alpha=0.35 if fill else 1.0, **kwargs))
        w_side = (corners[1] + corners[2]) / 2  # the middle of the side at +w/2 (the right side at angle 0)
        ax.plot(*w_side, "o", color=color, markersize=4)
        if labels is not None:
            ax.text(*corners.mean(axis=0), labels[k], color=color, ha="center", va="center")
    return ax


# %% [markdown]
# ## 1. The format and the angle
#
# A rotated box is `(cx, cy, w, h, angle)`: the `w x h` axis-aligned box centred at `(cx, cy)` (w along x),
# turned about its centre by `angle` **degrees, counter-clockwise as you look at the image** (x to the right,
# y **down**). That is detectron2's `RotatedBoxes` convention, and edudet's. A corner at offset `(dx, dy)` from
# the centre goes to
#
# $$x = c_x + dx\cos\theta + dy\sin\theta, \qquad y = c_y - dx\sin\theta + dy\cos\theta .$$
#
# At 90 degrees the side that faced right faces **up** (towards smaller y). The dots below mark that side.

# %%
angles = [0.0, 30.0, 90.0, -30.0]
demo = np.array([[60 + 110 * k, 60, 80, 30, a] for k, a in enumerate(angles)])
ax = viz.image_axes(extent=(0, 0, 460, 130), title="(cx, cy, 80, 30, angle): counter-clockwise on screen",
                    figsize=(11, 3.5))
draw_rotated(demo, ax, labels=[f"{a:+.0f}°" for a in angles])
plt.show()
print(np.round(ops.rotated_box_corners(demo[2:3])[0], 6))  # 90 degrees: the w side is on top now

# %% [markdown]
# ## 2. The intersection is a convex polygon
#
# Each rectangle is the set of points on the inner side of its four edges, so their intersection is too:
# clip rectangle A by each edge of B in turn (**Sutherland-Hodgman**), keeping the part on B's inner side.
# A point p is on the inner side of edge a -> b when `cross(b - a, p - a) >= 0` (the corners go round in
# the positive sense). Where an edge of A crosses the line, the crossing point is added. Then the area of
# the polygon is the **shoelace formula** `1/2 sum(x_i y_(i+1) - x_(i+1) y_i)`.
#
# First the classic: a unit square and the same square turned 45 degrees about its centre. The turned
# square's corners stick out past each side by `(sqrt2 - 1) / 2 = 0.2071` as four small right triangles of
# area `0.2071^2 = 0.0429` each, so the intersection is a regular octagon of area `1 - 4 * 0.0429 =
# 2 (sqrt2 - 1) = 0.8284`; the union is `2 - 0.8284 = 1.1716`, and IoU = `0.8284 / 1.1716 = 1 / sqrt2 = 0.7071`.

# %%
def cross(u, v):
    return u[0] * v[1] - u[1] * v[0]


def clip_polygon(polygon, a, b):
    """The part of convex `polygon` (list of points) on the inner side of the line a -> b."""
    kept = []
    for p, q in zip(polygon, polygon[1:] + polygon[:1]):
        side_p, side_q = cross(b - a, p - a), cross(b - a, q - a)
        if side_p >= 0:
            kept.append(p)
        if side_p * side_q < 0:  # p and q on opposite sides: add the crossing point
            kept.append(p + side_p / (side_p - side_q) * (q - p))
    return kept


def intersection_polygon(box_a, box_b):
    polygon = list(ops.rotated_box_corners(box_a[None])[0])
    corners_b = ops.rotated_box_corners(box_b[None])[0]
    for k in range(4):
        polygon = clip_polygon(polygon, corners_b[k], corners_b[(k + 1) % 4])
    return np.array(polygon).reshape(-1, 2)


def shoelace(polygon):
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


square = np.array([0.0, 0.0, 1.0, 1.0, 0.0])
turned = np.array([0.0, 0.0, 1.0, 1.0, 45.0])
octagon = intersection_polygon(square, turned)
octagon_area = shoelace(octagon)
octagon_iou = octagon_area / (1.0 + 1.0 - octagon_area)
print(f"{len(octagon)} corners, area {octagon_area:.6f} (2(sqrt2 - 1) = {2 * (math.sqrt(2) - 1):.6f})")
print(f"IoU by hand {octagon_iou:.6f}, ops.box_iou_rotated {ops.box_iou_rotated(square[None], turned[None])[0, 0]:.6f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
viz.image_axes(axes[0], extent=(-0.8, -0.8, 0.8, 0.8), title=f"square and its 45° turn: IoU = {octagon_iou:.4f}")
draw_rotated(np.array([square]), axes[0], color="tab:blue")
draw_rotated(np.array([turned]), axes[0], color="tab:orange")
axes[0].add_patch(Polygon(octagon, closed=True, color="tab:green", alpha=0.4, label="intersection"))
axes[0].legend(loc="lower right")

box_a = np.array([50.0, 50.0, 60.0, 30.0, 20.0])
box_b = np.array([70.0, 60.0, 50.0, 40.0, -35.0])
polygon = intersection_polygon(box_a, box_b)
inter = shoelace(polygon)
union = 60 * 30 + 50 * 40 - inter
my_iou = inter / union
viz.image_axes(axes[1], extent=(10, 10, 110, 100), title=f"any two boxes: {len(polygon)}-gon, IoU = {my_iou:.4f}")
draw_rotated(np.array([box_a]), axes[1], color="tab:blue", labels=["A"])
draw_rotated(np.array([box_b]), axes[1], color="tab:orange", labels=["B"])
axes[1].add_patch(Polygon(polygon, closed=True, color="tab:green", alpha=0.4))
axes[1].plot(*polygon.T, "k.", markersize=8)
fig.tight_layout()
plt.show()
print(f"intersection {inter:.4f}, union {union:.4f}, IoU {my_iou:.6f}")
print(f"ops.box_iou_rotated: {ops.box_iou_rotated(box_a[None], box_b[None])[0, 0]:.6f}")

# %% [markdown]
# ## 3. The same area without building the polygon, and why edudet builds it anyway
#
# The polygon has 0 to 8 corners, a different count for every pair: awkward to vectorise. **Green's theorem**
# avoids it: the boundary of A ∩ B is the part of A's edges inside B plus the part of B's edges inside A, and
# a straight piece `p + t d` for `t` in `[t0, t1]` adds `(t1 - t0) cross(p, d) / 2` to the area (the
# shoelace term of that piece). Clipping one edge to a rectangle is four half-plane tests on `t`
# (Cyrus-Beck), so every pair is the same fixed 2 x 4 x 4 grid of tiny computations. Below: the pieces of A's
# edges inside B (blue) and of B's edges inside A (orange), and their sum.
#
# It is exact in exact arithmetic, and fragile in floating point: each piece is clipped on its own, so where
# an edge of A nearly lies on an edge of B (equal angles: duplicate detections!) rounding can end A's piece
# and start B's at different points; the boundary is then open, and the missing bit is weighted by the
# distance to the origin. `ops.box_iou_rotated` therefore clips the polygon (section 2): a corner it creates is
# shared by both edges that meet there, so the polygon always closes.

# %%
def clip_edge(p, d, corners):
    """[t0, t1] of the part of edge p + t d (t in [0, 1]) inside the rectangle `corners` (or None)."""
    t0, t1 = 0.0, 1.0
    for k in range(4):
        a, e = corners[k], corners[(k + 1) % 4] - corners[k]
        num, den = cross(e, p - a), cross(e, d)  # inside where num + t * den >= 0
        if den == 0:
            if num < 0:
                return None
        elif den > 0:
            t0 = max(t0, -num / den)
        else:
            t1 = min(t1, -num / den)
    return (t0, t1) if t1 > t0 else None


corners_a, corners_b = (ops.rotated_box_corners(b[None])[0] for b in (box_a, box_b))
pieces, green_area = [], 0.0
for mine, other, colour in ((corners_a, corners_b, "tab:blue"), (corners_b, corners_a, "tab:orange")):
    for k in range(4):
        p, d = mine[k], mine[(k + 1) % 4] - mine[k]
        span = clip_edge(p, d, other)
        if span is not None:
            green_area += 0.5 * (span[1] - span[0]) * cross(p, d)
            pieces.append((p + span[0] * d, p + span[1] * d, colour))
print(f"Green's theorem: {green_area:.6f}   shoelace of the polygon: {inter:.6f}")

ax = viz.image_axes(extent=(10, 10, 110, 100), title="boundary of A ∩ B = A's edges in B + B's edges in A",
                    figsize=(6, 5))
draw_rotated(np.array([box_a, box_b]), ax, color="0.7")
for start, end, colour in pieces:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color=colour, lw=2.5))
plt.show()

# %% [markdown]
# ## 4. Two angle conventions: detectron2 (degrees, counter-clockwise) and mmcv (radians, clockwise)
#
# mmcv's `box_iou_rotated` / `nms_rotated` (and mmrotate) store the angle in **radians** and, with their
# default `clockwise=True`, count it **clockwise** on the screen. The same drawn box is therefore
# `angle_detectron2 = -degrees(angle_mmcv)`. Mixing them up silently mirrors every box about its own
# axis: the IoU of a box with its "mirrored" self is not 1, and nothing raises.
# `ops.rotated_boxes_from_mmcv` / `ops.rotated_boxes_to_mmcv` convert.

# %%
mmcv_box = np.array([[60.0, 50.0, 80.0, 30.0, math.pi / 6]])  # mmcv: 30 degrees clockwise on screen
as_edudet = ops.rotated_boxes_from_mmcv(mmcv_box)
misread = mmcv_box.copy()
misread[:, 4] = np.degrees(misread[:, 4])                      # radians -> degrees, direction forgotten
print("converted:", as_edudet[0], " misread angle:", misread[0, 4])
mirror_iou = ops.box_iou_rotated(as_edudet, misread)[0, 0]
print(f"IoU of the right box and the misread one: {mirror_iou:.4f}")

ax = viz.image_axes(extent=(0, 0, 120, 100), title="mmcv angle pi/6: -30° here (orange: misread as +30°)",
                    figsize=(6, 5))
draw_rotated(as_edudet, ax, color="tab:blue", labels=["right"])
draw_rotated(misread, ax, color="tab:orange", linestyle="--")
plt.show()

# %% [markdown]
# ## 5. Rotated NMS: why oriented detectors need it
#
# Three cars parked diagonally side by side, each found twice. Their rotated boxes barely touch, but their
# axis-aligned hulls overlap a lot: NMS on the hulls would delete real cars. `ops.nms_rotated` keeps one box
# per car (same greedy rule as lesson 4: suppress IoU > threshold, visiting by decreasing score).

# %%
cars = np.array([[40, 60, 90, 22, 45], [62, 60, 90, 22, 45], [84, 60, 90, 22, 45]], dtype=np.float64)
detections = np.concatenate([cars, cars + np.array([2, -1, 4, 1, 3])])
scores = np.array([0.9, 0.85, 0.8, 0.7, 0.75, 0.6])
keep_rotated = ops.nms_rotated(detections, scores, 0.5)
hulls = ops.rotated_box_corners(detections)
hulls_xyxy = np.concatenate([hulls.min(axis=1), hulls.max(axis=1)], axis=1)
keep_hulls = ops.nms(hulls_xyxy, scores, 0.5)
print("rotated IoU of neighbouring cars:", np.round(ops.box_iou_rotated(cars, cars)[0, 1], 3),
      " IoU of their hulls:", np.round(ops.box_iou(hulls_xyxy[:3], hulls_xyxy[:3])[0, 1], 3))
print("nms_rotated keeps", keep_rotated, "  nms on the hulls keeps", keep_hulls)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, keep, title in ((axes[0], keep_rotated, "nms_rotated: one box per car"),
                        (axes[1], keep_hulls, "nms on axis-aligned hulls: cars lost")):
    viz.image_axes(ax, extent=(0, 0, 130, 120), title=title)
    dropped = np.setdiff1d(np.arange(len(detections)), keep)
    draw_rotated(detections[dropped], ax, color="tab:red", linestyle="--")
    draw_rotated(detections[keep], ax, color="tab:green", linewidth=2)
    if ax is axes[1]:
        viz.draw_boxes(hulls_xyxy[keep], ax, color="0.5", linestyle=":")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** A 2 x 1 bar `(0, 0, 2, 1, 0)` and the same bar turned upright, `(0, 0, 2, 1, 90)`. Their IoU?
# Draw it on paper first: the intersection is the middle of a plus sign.

# %%
from edudet.lessons.check import check, hint

my_cross_iou = ...  # your answer: a number
check("rotated_cross_iou", my_cross_iou)

# %% [markdown]
# **2.** mmcv gives a box with angle `-pi / 4` (radians, its default `clockwise=True`). What is its angle in
# edudet's / detectron2's convention, in degrees?

# %%
my_angle = ...  # your answer: degrees
check("rotated_mmcv_angle", my_angle)

# %% [markdown]
# ## Check yourself

# %%
assert len(octagon) == 8 and math.isclose(octagon_area, 2 * (math.sqrt(2) - 1), abs_tol=1e-12)
assert math.isclose(octagon_iou, 1 / math.sqrt(2), abs_tol=1e-12)
assert math.isclose(ops.box_iou_rotated(square[None], turned[None])[0, 0], 1 / math.sqrt(2), abs_tol=1e-12)
assert math.isclose(ops.box_iou_rotated(box_a[None], box_b[None])[0, 0], my_iou, abs_tol=1e-9)
assert math.isclose(green_area, inter, abs_tol=1e-9)                     # Green's theorem = the shoelace
# (280, 60, 80, 30, 90): a corner (dx, dy) goes to (280 + dy, 60 - dx); the +w/2 side is at y = 20, above
assert np.allclose(ops.rotated_box_corners(demo[2:3])[0], [[265, 100], [265, 20], [295, 20], [295, 100]])
assert math.isclose(as_edudet[0, 4], -30.0) and mirror_iou < 0.7
assert list(keep_rotated) == [0, 1, 2] and len(keep_hulls) < 3
assert math.isclose(ops.box_iou_rotated([[0, 0, 2, 1, 0]], [[0, 0, 2, 1, 90]])[0, 0], 1 / 3, abs_tol=1e-6)
print("all checks passed")
