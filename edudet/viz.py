"""Drawing helpers shared by the lessons and the demo: boxes, anchors, points, feature-map grids,
RoIAlign sampling points, RoIPool bins and heat maps.

Every function takes an optional matplotlib ``ax`` (a new figure is made when it is None) and returns
the ax it drew on, so calls chain onto one picture. Coordinates are image coordinates: continuous,
``x`` to the right, ``y`` down, pixel ``(row i, column j)`` covering ``[j, j + 1] x [i, i + 1]`` (the
convention of the boxes, so a box ``(0, 0, W, H)`` covers a W x H image exactly). Every figure gets a
title and labelled axes (defaults that a caller may override).

matplotlib is imported inside the functions, so ``import edudet`` stays light.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._validate import as_boxes, as_real_array, check_allocation, check_scalar

__all__ = [
    "image_axes",
    "draw_image",
    "draw_boxes",
    "draw_anchors",
    "draw_points",
    "draw_feature_grid",
    "roi_align_sampling_points",
    "draw_sampling_grid",
    "roi_pool_bins",
    "draw_roi_pool_bins",
    "heatmap",
]

_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
            "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _feature_size(feature_shape, name: str = "feature_shape") -> tuple[int, int]:
    """The last two entries of ``(..., h, w)`` as positive ints, checked by name."""
    try:
        h, w = tuple(feature_shape)[-2:]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a shape (..., h, w), got {feature_shape!r}") from None
    return check_scalar(h, f"{name}[-2]", low=1, integer=True), check_scalar(w, f"{name}[-1]", low=1, integer=True)


def _one_roi(roi) -> tuple[float, float, float, float]:
    """``(x1, y1, x2, y2)`` as four floats, finite and within the coordinate bound (`as_boxes`)."""
    array = as_real_array(roi, "roi")
    if array.size != 4:
        raise ValueError(f"roi must be one box (x1, y1, x2, y2), got shape {tuple(array.shape)}")
    box = as_boxes(array.reshape(1, 4), "roi", dtype=np.float64)
    return tuple(float(v) for v in box[0])


def _label_axes(ax, title: str | None, xlabel: str, ylabel: str):
    """Set a title and axis labels, keeping any a caller (or an earlier helper) set already."""
    if title is not None:
        ax.set_title(title)
    elif not ax.get_title():
        ax.set_title("edudet")
    if not ax.get_xlabel():
        ax.set_xlabel(xlabel)
    if not ax.get_ylabel():
        ax.set_ylabel(ylabel)
    return ax


def image_axes(ax=None, extent: Sequence[float] | None = None, title: str | None = None,
               xlabel: str = "x (pixels)", ylabel: str = "y (pixels)", figsize=(6, 5)):
    """An ax in image coordinates: equal aspect, ``y`` pointing down.

    extent: ``(x_min, y_min, x_max, y_max)`` to show, or None to keep matplotlib's limits.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    ax.set_aspect("equal")
    if extent is not None:
        x_min, y_min, x_max, y_max = extent
        ax.set_xlim(x_min, x_max)
        ax.set_ylim(y_max, y_min)  # y grows downward, as in an image
    elif not ax.yaxis_inverted():
        ax.invert_yaxis()
    return _label_axes(ax, title, xlabel, ylabel)


def draw_image(image, ax=None, title: str | None = None, cmap: str | None = "gray", **imshow_kwargs):
    """Show an (H, W) or (H, W, 3) image so that pixel ``(i, j)`` covers ``[j, j + 1] x [i, i + 1]``.

    Boxes drawn afterwards with `draw_boxes` then sit exactly where their coordinates say.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"image must have shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    height, width = image.shape[:2]
    ax = image_axes(ax, extent=(0, 0, width, height), title=title)
    ax.imshow(image, extent=(0, width, height, 0), cmap=cmap if image.ndim == 2 else None,
              interpolation="nearest", **imshow_kwargs)
    return ax


def _colors_for(n: int, color, colors) -> list:
    if colors is not None:
        colors = list(colors)
        if len(colors) != n:
            raise ValueError(f"colors has {len(colors)} entries but there are {n} boxes; they must match")
        return colors
    if color is not None:
        return [color] * n
    return [_PALETTE[i % len(_PALETTE)] for i in range(n)]


def draw_boxes(boxes, ax=None, *, labels: Sequence[str] | None = None, scores=None, color=None,
               colors: Sequence | None = None, linestyle: str = "-", linewidth: float = 1.5,
               alpha: float = 1.0, fill: bool = False, label: str | None = None, title: str | None = None):
    """Draw (N, 4) ``(x1, y1, x2, y2)`` boxes as rectangles, optionally captioned.

    labels: N captions (e.g. class names), scores: (N,) numbers appended to the captions;
    color: one colour for all, colors: one per box (default: a cycling palette);
    label: a legend entry for the whole set. Returns the ax.
    """
    from matplotlib.patches import Rectangle

    boxes = as_boxes(boxes)
    n = boxes.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries but boxes has {n}; they must match")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.shape[0] != n:
            raise ValueError(f"scores has {scores.shape[0]} entries but boxes has {n}; they must match")
    fresh = ax is None
    ax = image_axes(ax, title=title)
    box_colors = _colors_for(n, color, colors)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(np.float64)):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=fill, edgecolor=box_colors[i],
                               facecolor=box_colors[i] if fill else "none", linestyle=linestyle,
                               linewidth=linewidth, alpha=alpha, label=label if i == 0 else None))
        caption = [] if labels is None else [str(labels[i])]
        if scores is not None:
            caption.append(f"{scores[i]:.2f}")
        if caption:
            ax.text(x1, y1, " ".join(caption), color="white", fontsize=8, va="bottom", ha="left",
                    bbox=dict(facecolor=box_colors[i], edgecolor="none", alpha=0.8, pad=1))
    if fresh and n:  # a new ax knows nothing of the boxes' extent: fit it, with a margin
        margin = 0.05 * max(float(np.ptp(boxes[:, 0::2])), float(np.ptp(boxes[:, 1::2])), 1.0)
        ax.set_xlim(boxes[:, 0].min() - margin, boxes[:, 2].max() + margin)
        ax.set_ylim(boxes[:, 3].max() + margin, boxes[:, 1].min() - margin)
    return ax


def draw_anchors(anchors, ax=None, *, centers: bool = True, color=None, colors=None,
                 linestyle: str = "--", linewidth: float = 1.0, label: str | None = None,
                 title: str | None = None):
    """Draw (N, 4) anchor boxes dashed, with a dot at each anchor's centre (where it sits on the grid)."""
    anchors = as_boxes(anchors, "anchors")
    ax = draw_boxes(anchors, ax, color=color, colors=colors, linestyle=linestyle, linewidth=linewidth,
                    label=label, title=title)
    if centers and anchors.shape[0]:
        ctr = 0.5 * (anchors[:, :2] + anchors[:, 2:])
        ax.scatter(ctr[:, 0], ctr[:, 1], s=6, color="black" if color is None else color, zorder=3)
    return ax


def draw_points(points, ax=None, *, values=None, color=None, marker: str = "o", size: float = 12,
                cmap: str = "viridis", vmin=None, vmax=None, label: str | None = None,
                title: str | None = None, colorbar: bool = False, colorbar_label: str | None = None,
                zorder: float = 3):
    """Scatter (N, 2) ``(x, y)`` points; with `values` (N,), colour each point by its value.

    `zorder` 3 draws the points over boxes (patches, 1) and lines (2); 0.5 keeps them under boxes but over an image (0).
    """
    points = as_boxes(points, "points", width=2)
    ax = image_axes(ax, title=title)
    if values is not None:
        values = as_real_array(values, "values").reshape(-1)
        if values.shape[0] != points.shape[0]:
            raise ValueError(f"values has {values.shape[0]} entries but points has {points.shape[0]}")
        mappable = ax.scatter(points[:, 0], points[:, 1], c=values, cmap=cmap, vmin=vmin, vmax=vmax,
                              marker=marker, s=size, label=label, zorder=zorder)
        if colorbar:
            bar = ax.figure.colorbar(mappable, ax=ax)
            if colorbar_label:
                bar.set_label(colorbar_label)
    else:
        ax.scatter(points[:, 0], points[:, 1], color=color, marker=marker, s=size, label=label, zorder=zorder)
    return ax


def draw_feature_grid(feature_shape: Sequence[int], stride: float = 1.0, ax=None, *, color="0.6",
                      linewidth: float = 0.5, centers: bool = False, title: str | None = None):
    """Draw the cells of a feature map of ``(..., h, w)`` as they lie on the image.

    Cell ``(i, j)`` of a map with stride `s` covers ``[j s, (j + 1) s] x [i s, (i + 1) s]`` of the image;
    `centers` also marks each cell's centre ``((j + 0.5) s, (i + 0.5) s)``.
    """
    h, w = _feature_size(feature_shape)
    stride = check_scalar(stride, "stride", low=0, low_inclusive=False)
    if h * w > 10**6:  # a million cells is already a solid grey square
        raise ValueError(f"feature_shape {h} x {w} has too many cells to draw (at most 10**6)")
    ax = image_axes(ax, title=title)
    for x in np.arange(w + 1) * stride:
        ax.plot([x, x], [0, h * stride], color=color, linewidth=linewidth, zorder=1)
    for y in np.arange(h + 1) * stride:
        ax.plot([0, w * stride], [y, y], color=color, linewidth=linewidth, zorder=1)
    if centers:
        jj, ii = np.meshgrid(np.arange(w), np.arange(h))
        ax.scatter((jj.ravel() + 0.5) * stride, (ii.ravel() + 0.5) * stride, s=4, color=color, zorder=1)
    return ax


def roi_align_sampling_points(roi, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
                              aligned: bool = False):
    """Where RoIAlign reads the feature map for one RoI, in the feature map's continuous coordinates.

    roi: ``(x1, y1, x2, y2)`` in image coordinates; output_size: ``(pooled_h, pooled_w)``.
    Returns ``(x_edges, y_edges, points)``: the bin edges ``(pooled_w + 1,)``, ``(pooled_h + 1,)`` and
    the sampling points ``(pooled_h, pooled_w, grid_h * grid_w, 2)`` as ``(x, y)``. Each bin is split
    into ``grid_h x grid_w`` equal cells (``sampling_ratio``, or ``ceil(bin size)`` when it is <= 0)
    and a bilinear sample is read at every cell's centre (Mask R-CNN, He et al., 2017).
    The kernel indexes pixels by their centres, so a point at index coordinate ``u`` is drawn at ``u + 0.5``;
    with ``aligned=False`` this is why the samples sit half a pixel right and down of the box.
    """
    from .ops.roi_align import MAX_SAMPLING_GRID, as_output_size

    x1, y1, x2, y2 = _one_roi(roi)
    pooled_h, pooled_w = as_output_size(output_size)
    spatial_scale = check_scalar(spatial_scale, "spatial_scale", low=0, low_inclusive=False)
    sampling_ratio = check_scalar(sampling_ratio, "sampling_ratio", high=MAX_SAMPLING_GRID, integer=True)
    offset = 0.5 if aligned else 0.0  # aligned=True: pixel i's centre is at i + 0.5, shift boxes onto centres
    start_x, start_y = x1 * spatial_scale - offset, y1 * spatial_scale - offset
    roi_w, roi_h = x2 * spatial_scale - offset - start_x, y2 * spatial_scale - offset - start_y
    if not aligned:  # the legacy kernel forces every RoI to be at least 1 x 1
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_w, bin_h = roi_w / pooled_w, roi_h / pooled_h
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_w)
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_h)
    grid_w, grid_h = max(grid_w, 1), max(grid_h, 1)  # a bin always gets at least one sample
    if max(grid_w, grid_h) > MAX_SAMPLING_GRID:
        raise ValueError(f"roi: the adaptive grid would take {max(grid_w, grid_h)} samples per bin per axis, over "
                         f"{MAX_SAMPLING_GRID}; pass a sampling_ratio")
    check_allocation((pooled_h, pooled_w, grid_h * grid_w, 2), 8, "roi_align_sampling_points' (pooled_h, pooled_w, "
                     "samples, 2) points (output_size, sampling_ratio)")
    xs = start_x + np.arange(pooled_w)[:, None] * bin_w + (np.arange(grid_w)[None, :] + 0.5) * bin_w / grid_w
    ys = start_y + np.arange(pooled_h)[:, None] * bin_h + (np.arange(grid_h)[None, :] + 0.5) * bin_h / grid_h
    # every (bin row, bin column) pairs its grid_h row offsets with its grid_w column offsets
    px = np.broadcast_to(xs[None, :, None, :], (pooled_h, pooled_w, grid_h, grid_w))
    py = np.broadcast_to(ys[:, None, :, None], (pooled_h, pooled_w, grid_h, grid_w))
    points = np.stack([px, py], axis=-1).reshape(pooled_h, pooled_w, grid_h * grid_w, 2) + 0.5
    x_edges = start_x + np.arange(pooled_w + 1) * bin_w + 0.5
    y_edges = start_y + np.arange(pooled_h + 1) * bin_h + 0.5
    return x_edges, y_edges, points


def draw_sampling_grid(roi, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
                       aligned: bool = False, ax=None, *, color="tab:red", title: str | None = None):
    """Draw one RoI's RoIAlign bins (lines) and sampling points (dots) on feature-map coordinates.

    The RoI itself is drawn dashed (scaled by `spatial_scale`); see `roi_align_sampling_points`.
    """
    x_edges, y_edges, points = roi_align_sampling_points(roi, output_size, spatial_scale, sampling_ratio, aligned)
    ax = image_axes(ax, title=title, xlabel="x (feature-map cells)", ylabel="y (feature-map cells)")
    scaled = np.asarray(roi, dtype=np.float64).reshape(1, 4) * spatial_scale
    draw_boxes(scaled, ax, color="black", linestyle="--", linewidth=1.0, label="RoI x spatial_scale")
    for x in x_edges:
        ax.plot([x, x], [y_edges[0], y_edges[-1]], color=color, linewidth=0.8)
    for y in y_edges:
        ax.plot([x_edges[0], x_edges[-1]], [y, y], color=color, linewidth=0.8)
    flat = points.reshape(-1, 2)
    ax.scatter(flat[:, 0], flat[:, 1], s=10, color=color, zorder=3, label="sampling points")
    return ax


def _round_half_away(x: float) -> int:
    """C's round(): halves go away from zero (Python's round() would go to the even neighbour)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def roi_pool_bins(roi, output_size, spatial_scale: float, feature_shape: Sequence[int]):
    """The feature cells each RoIPool bin takes its maximum over (Fast R-CNN, Girshick 2015).

    roi: ``(x1, y1, x2, y2)`` in image coordinates; feature_shape: ``(..., height, width)``.
    Returns an int64 array ``(pooled_h, pooled_w, 4)`` of ``(row_start, row_end, col_start, col_end)``
    (end exclusive). The RoI is first rounded to whole cells, ``round(x * spatial_scale)`` for both corners
    with the far one inclusive, then bin ``p`` spans ``floor(p * size / pooled)`` to
    ``ceil((p + 1) * size / pooled)`` of it, clipped to the map: two quantisations a learner can see.
    """
    from .ops.roi_align import as_output_size

    x1, y1, x2, y2 = _one_roi(roi)
    pooled_h, pooled_w = as_output_size(output_size)
    spatial_scale = check_scalar(spatial_scale, "spatial_scale", low=0, low_inclusive=False)
    height, width = _feature_size(feature_shape)
    check_allocation((pooled_h, pooled_w, 4), 8, "roi_pool_bins' (pooled_h, pooled_w, 4) bins (output_size)")
    start_x, start_y = _round_half_away(x1 * spatial_scale), _round_half_away(y1 * spatial_scale)
    end_x, end_y = _round_half_away(x2 * spatial_scale), _round_half_away(y2 * spatial_scale)
    roi_w, roi_h = max(end_x - start_x + 1, 1), max(end_y - start_y + 1, 1)
    bins = np.zeros((pooled_h, pooled_w, 4), dtype=np.int64)
    for ph in range(pooled_h):
        row_start = min(max(math.floor(ph * roi_h / pooled_h) + start_y, 0), height)
        row_end = min(max(math.ceil((ph + 1) * roi_h / pooled_h) + start_y, 0), height)
        for pw in range(pooled_w):
            col_start = min(max(math.floor(pw * roi_w / pooled_w) + start_x, 0), width)
            col_end = min(max(math.ceil((pw + 1) * roi_w / pooled_w) + start_x, 0), width)
            bins[ph, pw] = (row_start, row_end, col_start, col_end)
    return bins


def draw_roi_pool_bins(roi, output_size, spatial_scale: float, feature_shape: Sequence[int], ax=None, *,
                       title: str | None = None):
    """Shade the whole cells each RoIPool bin covers (alternating colours) under the exact RoI (dashed)."""
    from matplotlib.patches import Rectangle

    bins = roi_pool_bins(roi, output_size, spatial_scale, feature_shape)
    ax = image_axes(ax, title=title, xlabel="x (feature-map cells)", ylabel="y (feature-map cells)")
    for ph in range(bins.shape[0]):
        for pw in range(bins.shape[1]):
            r0, r1, c0, c1 = (int(v) for v in bins[ph, pw])
            colour = _PALETTE[(ph + pw) % 2 * 3]  # a checkerboard of two colours shows where bins overlap
            ax.add_patch(Rectangle((c0, r0), c1 - c0, r1 - r0, facecolor=colour, edgecolor=colour,
                                   alpha=0.25, linewidth=1.0))
    scaled = np.asarray(roi, dtype=np.float64).reshape(1, 4) * spatial_scale
    draw_boxes(scaled, ax, color="black", linestyle="--", linewidth=1.0, label="RoI x spatial_scale")
    return ax


def heatmap(values, ax=None, *, xlabels: Sequence | None = None, ylabels: Sequence | None = None,
            annotate: bool = True, fmt: str = "{:.2f}", cmap: str = "viridis", vmin=None, vmax=None,
            title: str | None = None, xlabel: str = "column", ylabel: str = "row", colorbar: bool = True,
            colorbar_label: str | None = None):
    """Show an (R, C) matrix as coloured cells, each optionally annotated with its value (e.g. an IoU matrix)."""
    import matplotlib.pyplot as plt

    values = as_real_array(values, "values")
    if values.ndim != 2:
        raise ValueError(f"values must have shape (R, C), got {values.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.6 * max(values.shape[1], 4), 1.0 + 0.5 * max(values.shape[0], 4)))
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    rows, cols = values.shape
    ax.set_xticks(range(cols), labels=[str(v) for v in xlabels] if xlabels is not None else range(cols))
    ax.set_yticks(range(rows), labels=[str(v) for v in ylabels] if ylabels is not None else range(rows))
    if annotate and values.size <= 400:  # beyond that the numbers would be unreadable anyway
        low, high = image.get_clim()
        middle = 0.5 * (low + high)
        for i in range(rows):
            for j in range(cols):
                ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8,
                        color="black" if values[i, j] > middle else "white")
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax)
        if colorbar_label:
            bar.set_label(colorbar_label)
    return _label_axes(ax, title, xlabel, ylabel)
