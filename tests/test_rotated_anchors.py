"""Rotated anchors (detectron2's ``RotatedAnchorGenerator``): a hand case, an exact in-test reference, properties.

detectron2 is not installable here, so its published semantics are written out below as a loop-by-loop
reference (`_detectron2_semantics`: cell anchors in Python floats, sizes outer, ratios middle, angles inner;
centres ``offset * stride + j * stride``; one rounding to float32), sharing no code with `edudet.rotated_anchors`.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edudet import AnchorGenerator, ops
from edudet.rotated_anchors import RotatedAnchorGenerator, _rotated_grid_anchors, rotated_cell_anchors

BACKENDS = _rotated_grid_anchors.backends


def _detectron2_semantics(sizes, ratios, angles, stride, offset, shape):
    """detectron2's anchors of one level as a float32 (h * w * A, 5) array, written as plain loops."""
    cells = []
    for size in sizes:
        for ratio in ratios:
            w = math.sqrt(size ** 2.0 / ratio)
            for angle in angles:
                cells.append((w, ratio * w, angle))
    rows = []
    for i in range(shape[0]):
        for j in range(shape[1]):
            cx, cy = np.float32(offset * stride + j * stride), np.float32(offset * stride + i * stride)
            rows.extend((cx, cy, w, h, a) for w, h, a in cells)
    return np.array(rows, dtype=np.float32).reshape(-1, 5)


def test_by_hand():
    # sizes [32], ratios [0.5, 2], angles [0, 90], stride 16, offset 0.5, on a 2 x 1 map (h = 2, w = 1):
    # ratio 0.5: w = sqrt(32**2 / 0.5) = sqrt(2048) = 32 * sqrt(2) = 45.2548..., h = 0.5 * w = 16 * sqrt(2);
    # ratio 2:   w = sqrt(1024 / 2) = sqrt(512) = 16 * sqrt(2) = 22.6274...,   h = 2 * w = 32 * sqrt(2).
    # No rounding (torchvision would round 22.63 to 23). Locations row-major: (i, j) = (0, 0) has centre
    # ((0 + 0.5) * 16, (0 + 0.5) * 16) = (8, 8), (1, 0) has (8, 24); per location sizes > ratios > angles.
    r2 = math.sqrt(2.0)
    generator = RotatedAnchorGenerator(sizes=[32], aspect_ratios=[0.5, 2], angles=[0, 90], strides=[16])
    (anchors,) = generator([(2, 1)], dtype=np.float64)
    cells = [(32 * r2, 16 * r2, 0), (32 * r2, 16 * r2, 90), (16 * r2, 32 * r2, 0), (16 * r2, 32 * r2, 90)]
    expected = [(8, 8, *c) for c in cells] + [(8, 24, *c) for c in cells]
    assert anchors.shape == (8, 5) and anchors.dtype == np.float64
    assert anchors == pytest.approx(np.array(expected, dtype=np.float64), rel=1e-15, abs=0)
    assert generator.num_cell_anchors == [4]
    # float32 by default: the float64 values rounded once
    assert np.array_equal(generator([(2, 1)])[0], anchors.astype(np.float32))


def test_docstring_example_and_offset_zero():
    generator = RotatedAnchorGenerator(sizes=[32], aspect_ratios=[1.0], angles=[0, 45], strides=[16])
    assert generator([(1, 2)])[0].tolist() == [[8, 8, 32, 32, 0], [8, 8, 32, 32, 45], [24, 8, 32, 32, 0],
                                               [24, 8, 32, 32, 45]]
    # offset 0 (detectron2's config default): the first centre is the image's corner
    generator = RotatedAnchorGenerator(sizes=[8], aspect_ratios=[1.0], angles=[30], strides=[4], offset=0)
    assert generator([(2, 2)])[0][:, :2].tolist() == [[0, 0], [4, 0], [0, 4], [4, 4]]


def test_broadcast_rule_is_detectron2s():
    # a flat list is every level's list (not one entry per level, as torchvision reads sizes)
    generator = RotatedAnchorGenerator(sizes=[32, 64], aspect_ratios=[[1.0]], angles=[0, 90], strides=[8, 16])
    assert generator.sizes == ((32, 64), (32, 64)) and generator.aspect_ratios == ((1.0,), (1.0,))
    assert generator.num_cell_anchors == [4, 4]
    generator = RotatedAnchorGenerator(sizes=[[32], [64]], aspect_ratios=[0.5, 1, 2], angles=[[-90, 0, 90], [0]],
                                       strides=[8, 16])
    assert generator.num_cell_anchors == [9, 3]
    with pytest.raises(ValueError, match="sizes gives 3 levels but strides has 2"):
        RotatedAnchorGenerator(sizes=[[32], [64], [128]], aspect_ratios=[1], angles=[0], strides=[8, 16])


def test_bad_input_is_refused_by_name():
    ok = dict(sizes=[32], aspect_ratios=[1.0], angles=[0], strides=[16])
    for key, value, pattern in (("sizes", [0], r"sizes\[0\]\[0\] must be > 0"),
                                ("sizes", [np.nan], r"sizes\[0\]\[0\] must be finite"),
                                ("sizes", [2e15], r"sizes\[0\]\[0\] must be <="),
                                ("aspect_ratios", [-1], r"aspect_ratios\[0\]\[0\] must be >="),
                                ("angles", [np.inf], r"angles\[0\]\[0\] must be finite"),
                                ("strides", [0], r"strides\[0\] must be >= 1"),
                                ("strides", [1.5], r"strides\[0\] must be an integer"),
                                ("offset", 1.0, r"offset must be < 1"),
                                ("sizes", [[]], r"sizes\[0\] must be a non-empty list"),
                                ("sizes", [1e14, 1e14], None)):
        if pattern is None:  # a side of 1e14 / sqrt(1e-30) is refused as beyond the coordinate limit
            with pytest.raises(ValueError, match="coordinate limit"):
                RotatedAnchorGenerator(**{**ok, "sizes": [1e14], "aspect_ratios": [1e-30]})
            continue
        with pytest.raises(ValueError, match=pattern):
            RotatedAnchorGenerator(**{**ok, key: value})
    with pytest.raises(TypeError, match="strides must be a non-empty list"):
        RotatedAnchorGenerator(**{**ok, "strides": 16})
    generator = RotatedAnchorGenerator(**ok)
    with pytest.raises(ValueError, match="got 2 feature shapes but 1 strides"):
        generator([(2, 2), (1, 1)])
    with pytest.raises(ValueError, match=r"feature_shapes\[0\] must be >= 0"):
        generator([(-1, 2)])
    with pytest.raises(ValueError, match="coordinate limit"):
        RotatedAnchorGenerator(**{**ok, "strides": [10**14]})([(100, 1)])
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        generator([(2, 2)], dtype=np.int32)
    with pytest.raises(ValueError, match="not usable here"):
        generator([(2, 2)], backend="cython")  # no Cython twin: named, with the usable ones


@pytest.mark.parametrize("backend", BACKENDS)
def test_allocation_limit_and_empty_maps(monkeypatch, backend):
    generator = RotatedAnchorGenerator(sizes=[32], aspect_ratios=[1.0], angles=[0, 90], strides=[16])
    (empty,) = generator([(0, 5)], backend=backend)
    assert empty.shape == (0, 5) and empty.dtype == np.float32
    import edudet._validate as validate
    monkeypatch.setattr(validate, "MAX_ALLOCATION_BYTES", 2**20)
    with pytest.raises(ValueError, match="RotatedAnchorGenerator's level 0 anchors"):
        generator([(1000, 1000)])


def test_feature_maps_themselves_may_be_given():
    generator = RotatedAnchorGenerator(sizes=[32], aspect_ratios=[1.0], angles=[0], strides=[8, 16])
    maps = [np.zeros((1, 4, 6, 5)), np.zeros((1, 4, 3, 3))]
    assert [a.shape for a in generator(maps)] == [(30, 5), (9, 5)]
    assert [a.shape for a in generator([m.shape for m in maps])] == [(30, 5), (9, 5)]


_levels = st.lists(st.tuples(st.lists(st.floats(1, 600), min_size=1, max_size=3),
                             st.lists(st.floats(0.1, 10), min_size=1, max_size=3),
                             st.lists(st.floats(-180, 180), min_size=1, max_size=3),
                             st.sampled_from([4, 8, 16, 32, 64]), st.integers(0, 5), st.integers(0, 5)),
                   min_size=1, max_size=3)


@settings(max_examples=40, deadline=None)
@given(_levels, st.sampled_from([0.0, 0.5, 0.25, 0.3]))
def test_equals_detectron2s_semantics_exactly_and_lays_out_the_grid(levels, offset):
    sizes, ratios, angles, strides, heights, widths = zip(*levels)
    generator = RotatedAnchorGenerator(sizes=[list(s) for s in sizes], aspect_ratios=[list(r) for r in ratios],
                                       angles=[list(a) for a in angles], strides=list(strides), offset=offset)
    shapes = list(zip(heights, widths))
    for backend in BACKENDS:  # every backend fills the grid with the reference's values, bit for bit
        for dtype in (np.float32, np.float64):
            assert all(np.array_equal(mine, reference) and mine.dtype == dtype for mine, reference in
                       zip(generator(shapes, dtype, backend=backend), generator(shapes, dtype, backend="numpy")))
    for level, anchors in enumerate(generator(shapes)):
        h, w = shapes[level]
        a = len(sizes[level]) * len(ratios[level]) * len(angles[level])
        assert anchors.shape == (h * w * a, 5) and anchors.dtype == np.float32  # count = H * W * A
        expected = _detectron2_semantics(sizes[level], ratios[level], angles[level], strides[level], offset, (h, w))
        assert np.array_equal(anchors, expected)
        # centres on the grid: location (i, j)'s A anchors are consecutive, at ((j + offset) s, (i + offset) s)
        grid = anchors.reshape(h, w, a, 5).astype(np.float64)
        s = strides[level]
        assert np.allclose(grid[..., 0], ((np.arange(w) + offset) * s)[None, :, None], rtol=1e-7, atol=0)
        assert np.allclose(grid[..., 1], ((np.arange(h) + offset) * s)[:, None, None], rtol=1e-7, atol=0)
        # every location holds the same cell anchors; area = size**2 and h / w = ratio (sizes > ratios > angles)
        cells = grid.reshape(-1, a, 5)[:, :, 2:]
        assert np.all(cells == cells[:1])
        size_grid, ratio_grid = np.meshgrid(sizes[level], ratios[level], indexing="ij")
        per_cell = np.repeat((size_grid ** 2).reshape(-1), len(angles[level]))
        ratio_per_cell = np.repeat(ratio_grid.reshape(-1), len(angles[level]))
        if h * w:
            assert np.allclose(cells[0, :, 0] * cells[0, :, 1], per_cell, rtol=1e-6)
            assert np.allclose(cells[0, :, 1] / cells[0, :, 0], ratio_per_cell, rtol=1e-6)
            assert np.array_equal(cells[0, :, 2], np.tile(np.float32(angles[level]), a // len(angles[level])))


def _to_xyxy(anchors):
    cx, cy, w, h = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _axis_aligned_order(anchors, num_sizes, num_ratios, locations):
    """Rotated angle-0 anchors (sizes outer, ratios inner per location) in AnchorGenerator's order (ratios outer)."""
    return anchors.reshape(locations, num_sizes, num_ratios, 5).transpose(0, 2, 1, 3).reshape(-1, 5)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(4, 512), min_size=1, max_size=3), st.lists(st.floats(0.2, 5), min_size=1, max_size=3),
       st.sampled_from([4, 8, 16, 32]), st.integers(1, 4), st.integers(1, 4), st.sampled_from([0.0, 0.5]))
def test_at_angle_0_it_is_the_unrounded_axis_aligned_generator(sizes, ratios, stride, h, w, offset):
    # Where the conventions coincide: AnchorGenerator(rounding=False, center_offset=offset) with the same stride
    # gives the same boxes, ratios outer and sizes inner per location, to float32 rounding (it computes
    # size / sqrt(ratio) in float32, the rotated generator sqrt(size**2 / ratio) in float64)
    rotated = RotatedAnchorGenerator(sizes=sizes, aspect_ratios=ratios, angles=[0], strides=[stride], offset=offset)
    (anchors,) = rotated([(h, w)], dtype=np.float64)
    axis_aligned = AnchorGenerator([sizes], [ratios], rounding=False, center_offset=offset)
    boxes = axis_aligned((h * stride, w * stride), [(h, w)], strides=[stride], dtype=np.float64)
    reordered = _axis_aligned_order(anchors, len(sizes), len(ratios), h * w)
    scale = max(max(sizes) / math.sqrt(min(ratios)), h * stride, w * stride)
    assert np.allclose(_to_xyxy(reordered), boxes, rtol=0, atol=4e-7 * scale)


def test_at_angle_0_with_integer_half_sides_it_is_torchvisions_generator_exactly():
    # torchvision rounds half-sides; with ratios 0.25, 1, 4 and sizes divisible by 4 they are integers already
    # (ratio 4: w = 32 / 2 = 16, h = 32 * 2 = 64, half-sides 8 and 32), and torchvision's centres are offset 0
    sizes, ratios, stride = [32, 64, 128], [0.25, 1.0, 4.0], 16
    rotated = RotatedAnchorGenerator(sizes=sizes, aspect_ratios=ratios, angles=[0], strides=[stride], offset=0)
    (anchors,) = rotated([(3, 5)])
    boxes = AnchorGenerator([sizes], [ratios])((48, 80), [(3, 5)], strides=[stride])
    assert np.array_equal(_to_xyxy(_axis_aligned_order(anchors, 3, 3, 15)), boxes)


def test_a_turn_of_90_degrees_swaps_the_ratio():
    # (w, h, 90) covers the same region as (h, w, 0): ratio r turned by 90 is ratio 1 / r unturned
    cells = rotated_cell_anchors([32, 48], [0.5, 2.0], [0.0, 90.0])
    turned = cells[1::2]  # angle 90 of (size, ratio) pairs in order (32, .5), (32, 2), (48, .5), (48, 2)
    flat = cells[0::2][[1, 0, 3, 2]]  # angle 0 with the ratio inverted
    iou = ops.box_iou_rotated(turned, flat, backend="numpy")
    assert np.allclose(np.diag(iou), 1.0, atol=1e-12)
