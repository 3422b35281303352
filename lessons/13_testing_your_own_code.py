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
# # Testing your own detector code: strategies draw valid and nasty boxes, oracles explain the first difference
#
# You wrote your own NMS (or RoIAlign, or box coder) in NumPy, PyTorch or C++. How do you know it is right?
# Hand cases catch the bugs you thought of. A property test catches the others: draw many inputs, compare
# with a trusted reference, and when they disagree, shrink the input to the smallest one that still fails.
# `edudet.testing` gives you both halves: hypothesis **strategies** that draw valid detection data (with
# switches for the nasty cases) and **oracles** that compare with edudet's reference, which matches
# torchvision, and say in words what went wrong. This lesson uses NMS from lesson 4 and RoIAlign from lesson 6.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from edudet import ops, viz
from edudet.testing import assert_nms_equal, assert_roi_align_close
from edudet.testing import strategies as eds

# %% [markdown]
# ## 1. Boxes that are valid by construction
#
# `eds.boxes()` draws (N, 4) `(x1, y1, x2, y2)` arrays with `x2 >= x1` and `y2 >= y1`, inside a 100 x 100
# image. Each switch adds one kind of trouble: `degenerate=True` zero widths or heights, `duplicates=True`
# exact copies (IoU 1, ties everywhere), `out_of_image=True` boxes past the border, and `extreme=True`
# coordinates up to 1e15 (the largest edudet accepts) and tiny or subnormal ones whose areas underflow to 0.
# `draw_examples` draws a few outside a test, the same ones on every run.

# %%
switches = {"ordinary": {}, "degenerate=True": {"degenerate": True},
            "duplicates=True": {"duplicates": True}, "out_of_image=True": {"out_of_image": True}}
drawn = {name: eds.draw_examples(eds.boxes(n=(5, 8), **options), 30)[-1] for name, options in switches.items()}
fig, axes = plt.subplots(1, 4, figsize=(16, 4.5))
for ax, (name, boxes) in zip(axes, drawn.items()):
    viz.image_axes(ax=ax, extent=(-60, -60, 220, 220), title=name)
    ax.add_patch(plt.Rectangle((0, 0), 100, 100, fill=False, linestyle="--", color="gray"))
    viz.draw_boxes(boxes, ax, labels=[str(i) for i in range(len(boxes))])
plt.show()

# %%
extreme = eds.draw_examples(eds.boxes(n=(3, 6), dtype=np.float64, extreme=True), 40)[-1]
print(extreme)
print("largest magnitude:", np.abs(extreme).max(), " smallest non-zero:", np.abs(extreme[extreme != 0]).min())

# %% [markdown]
# ## 2. A naive NMS, checked by the oracle
#
# The greedy loop of lesson 4 in 15 lines. `assert_nms_equal(keep, boxes, scores, iou_threshold)` runs
# edudet's reference and returns quietly when the kept indices agree, order included. `eds.nms_cases()`
# draws boxes, scores with frequent ties, and thresholds that include the edges 0 and 1.

# %%
def greedy_nms(boxes, scores, iou_threshold, order_of=lambda s: np.argsort(-s, kind="stable"), suppresses=np.greater):
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in order_of(scores):
        if suppressed[i]:
            continue
        keep.append(i)
        inter = (np.clip(np.minimum(x2[i], x2) - np.maximum(x1[i], x1), 0, None)
                 * np.clip(np.minimum(y2[i], y2) - np.maximum(y1[i], y1), 0, None))
        union = areas[i] + areas - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        suppressed |= suppresses(iou, np.float64(iou_threshold))  # compared in float64, as torchvision
    return np.array(keep, dtype=np.int64)


cases = eds.draw_examples(eds.nms_cases(duplicates=True, degenerate=True), 100)
for case in cases:
    assert_nms_equal(greedy_nms(*case), *case)
print(f"{len(cases)} drawn cases, all equal to edudet's NMS")

# %% [markdown]
# ## 3. One character wrong: `>=` instead of `>`
#
# NMS suppresses a box when its IoU with a kept box is **strictly** greater than the threshold. With `>=`,
# most random cases still pass: the IoU has to equal the threshold exactly. `minimal_example` searches the
# strategy for a case where the two versions disagree and shrinks it, as hypothesis does with a failing test.

# %%
def greedy_nms_ge(boxes, scores, iou_threshold):
    return greedy_nms(boxes, scores, iou_threshold, suppresses=np.greater_equal)


def disagrees(wrong):
    return lambda case: not np.array_equal(wrong(*case), greedy_nms(*case))


def smallest_disagreement(wrong, seeds=range(8)):
    # shrinking stops at a local minimum, and which one depends on the search's path: rerun the search from
    # other seeds until it reaches two boxes (no disagreement needs fewer), keeping the smallest case found
    best = None
    for seed in seeds:
        case = eds.minimal_example(eds.nms_cases(duplicates=True), disagrees(wrong), random_seed=seed)
        if best is None or (len(case.boxes), -case.iou_threshold) < (len(best.boxes), -best.iou_threshold):
            best = case
        if len(best.boxes) <= 2:
            return best
    return best


ge_case = smallest_disagreement(greedy_nms_ge)
print(ge_case)
try:
    assert_nms_equal(greedy_nms_ge(*ge_case), *ge_case)
except AssertionError as error:
    ge_message = str(error)
print(ge_message)

# %% [markdown]
# Shrunk to two boxes whose IoU equals the threshold exactly (with this seed: two copies of the unit box at
# threshold 1; IoU 1 is not *greater* than 1, so both stay). Small enough to check by hand, and the message
# names the pair, their IoU and the rule.
#
# ## 4. Ties: which of two equal scores goes first?
#
# py-faster-rcnn sorted with `scores.argsort()[::-1]`: equal scores come out by *decreasing* index.
# torchvision (and edudet) sort stably, so equal scores are visited by increasing index. Only ties tell them apart.

# %%
def greedy_nms_reversed(boxes, scores, iou_threshold):
    return greedy_nms(boxes, scores, iou_threshold, order_of=lambda s: s.argsort()[::-1])


tie_case = smallest_disagreement(greedy_nms_reversed)
try:
    assert_nms_equal(greedy_nms_reversed(*tie_case), *tie_case)
except AssertionError as error:
    tie_message = str(error)
print(tie_message)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
for ax, (title, case, wrong) in zip(axes, [(">= instead of >", ge_case, greedy_nms_ge),
                                           ("reversed ties", tie_case, greedy_nms_reversed)]):
    viz.image_axes(ax=ax, extent=(-0.5, -0.5, 2, 2), title=f"{title}, iou_threshold={case.iou_threshold}")
    right, yours = set(greedy_nms(*case).tolist()), set(wrong(*case).tolist())
    # copies coincide: draw each a little larger so that every outline shows
    spread = case.boxes + np.arange(len(case.boxes))[:, None] * np.array([-0.15, -0.15, 0.15, 0.15])
    viz.draw_boxes(spread, ax, labels=[f"box {i}" for i in range(len(case.boxes))], scores=case.scores)
    for i in range(len(case.boxes)):
        ax.text(-0.4, 1.6 + 0.2 * i, f"box {i}: edudet {'keeps' if i in right else 'drops'} it, "
                f"yours {'keeps' if i in yours else 'drops'} it", fontsize=9)
plt.show()

# %% [markdown]
# ## 5. RoIAlign's half pixel
#
# `aligned=True` shifts the scaled box by -0.5 so that pixel centres sit on integer indices (lesson 6).
# An implementation that forgets the shift is off by half a pixel everywhere. On a ramp (value = 8 x row +
# column) bilinear sampling is exact, so the shift shows as a constant: 0.5 row x 8 + 0.5 column = 4.5.

# %%
ramp = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8)
rois = np.array([[0, 1, 1, 5, 5], [0, 2, 0, 6, 4]], dtype=np.float32)
right = ops.roi_align(ramp, rois, 2, 1.0, 2, aligned=True)
forgot_the_shift = ops.roi_align(ramp, rois, 2, 1.0, 2, aligned=False)  # what the buggy version returns
try:
    assert_roi_align_close(forgot_the_shift, ramp, rois, 2, 1.0, 2, True)
except AssertionError as error:
    roi_message = str(error)
print(roi_message)

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (title, values) in zip(axes, [("aligned=True (right)", right[0, 0]), ("no half-pixel shift", forgot_the_shift[0, 0])]):
    image = ax.imshow(values, cmap="viridis", vmin=10, vmax=30)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.1f}", ha="center", va="center", color="white")
    ax.set_title(title)
    ax.set_xlabel("bin column")
    ax.set_ylabel("bin row")
fig.colorbar(image, ax=axes)
plt.show()

# %% [markdown]
# In your own tests, write the same thing with hypothesis's `@given` (see `examples/test_my_nms.py`):
#
# ```python
# @given(eds.nms_cases(duplicates=True, degenerate=True))
# def test_my_nms(case):
#     assert_nms_equal(my_nms(*case), *case)
# ```
#
# and run pytest with `--edudet-extreme` to add huge, tiny and subnormal coordinates.

# %% [markdown]
# ## Your turn
#
# Predict, compute or write, then run the cell: `check` answers at once and says what is off.
# Stuck? `hint("name")` gives one hint more each time. An exercise left at `...` is simply skipped.

# %% [markdown]
# **1.** The shrunk case of section 3: two copies of the unit box `(0, 0, 1, 1)`, NMS at `iou_threshold=1`
# with the right `>` rule. How many boxes are kept?

# %%
from edudet.lessons.check import check, hint

my_copies_kept = ...  # your answer: a number of boxes
check("copies_at_threshold_one", my_copies_kept)

# %% [markdown]
# **2.** Two identical boxes, both scored 0.9, NMS at 0.5. Which index does edudet's NMS keep?

# %%
my_tie_keep = ...  # your answer: a list of box indices
check("tie_kept", my_tie_keep)

# %% [markdown]
# ## Check yourself

# %%
assert all(np.all(b[:, 2:] >= b[:, :2]) for b in drawn.values())               # valid by construction
assert np.all((drawn["ordinary"] >= 0) & (drawn["ordinary"] <= 100))             # inside the image
assert np.abs(extreme).max() <= 1e15                                             # within edudet's limit
assert len(ge_case.boxes) == 2 and ops.box_iou(ge_case.boxes, ge_case.boxes)[0, 1] == ge_case.iou_threshold
assert list(greedy_nms(*ge_case)) == [0, 1] and list(greedy_nms_ge(*ge_case)) == [0]
assert "looks like `>=` instead of `>`" in ge_message
assert len(tie_case.boxes) == 2 and tie_case.scores[0] == tie_case.scores[1]     # a tie, nothing else
assert list(greedy_nms(*tie_case)) != list(greedy_nms_reversed(*tie_case))
assert "keeps the lower index first (stable order)" in tie_message
assert np.allclose(forgot_the_shift - right, 4.5)                                # half a pixel on the ramp
assert "looks like aligned=False vs aligned=True: a half-pixel shift" in roi_message
print("all checks passed")
