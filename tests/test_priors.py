"""Priors of other detector families: SSD default boxes, YOLO anchors, mmdetection's points and valid flags.

Hand cases first (arithmetic in the comments), then properties, then parity with torchvision's
DefaultBoxGenerator (mmdetection is not installed: its generators are checked against hand-computed values).
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet.priors import (YOLOV3_BASE_SIZES, YOLOV3_STRIDES, DefaultBoxGenerator, MlvlPointGenerator,
                           YOLOAnchorGenerator, valid_flags)
from helpers import import_torchvision

SSD300 = dict(aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
              scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300])
SSD300_SHAPES = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
SSDLITE = dict(aspect_ratios=[[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95)
SSDLITE_SHAPES = [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]


# ---------------------------------------------------------------- SSD default boxes: hand cases

def test_scales_from_min_and_max_ratio():
    # 6 maps, 0.2 .. 0.95: s_k = 0.2 + 0.75 * k / 5 = 0.2, 0.35, 0.5, 0.65, 0.8, 0.95, then 1.0 for s'_6
    gen = DefaultBoxGenerator(**SSDLITE)
    np.testing.assert_allclose(gen.scales, [0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0], rtol=1e-15)
    # one map: [min_ratio, max_ratio], so s'_1 = sqrt(0.15 * 0.9)
    assert DefaultBoxGenerator([[2]]).scales == (0.15, 0.9)


def test_one_location_all_four_boxes_in_order():
    # 100 x 100 image, one 1 x 1 map: centre (0.5, 0.5) * 100 = (50, 50); s = 0.5 -> 50 px square [25, 25, 75, 75];
    # s' = sqrt(0.5 * 0.5) = 0.5 -> the same square; ratio 2: w = 0.5 * sqrt(2) = 0.7071 -> 70.71 px,
    # h = 0.5 / sqrt(2) = 0.3536 -> 35.36 px: [50 - 35.36, 50 - 17.68, 50 + 35.36, 50 + 17.68]; then transposed
    gen = DefaultBoxGenerator([[2]], scales=[0.5, 0.5])
    half_w, half_h = 50 * math.sqrt(2) / 2, 50 / math.sqrt(2) / 2
    expected = [[25, 25, 75, 75], [25, 25, 75, 75],
                [50 - half_w, 50 - half_h, 50 + half_w, 50 + half_h],
                [50 - half_h, 50 - half_w, 50 + half_h, 50 + half_w]]
    np.testing.assert_allclose(gen((100, 100), [(1, 1)]), expected, rtol=1e-6)
    assert gen.num_anchors_per_location() == [4]


def test_extra_box_is_geometric_mean_of_this_and_next_scale():
    # s_1 = 0.2, s_2 = 0.8: s'_1 = sqrt(0.16) = 0.4 -> a 40 px square about (50, 50) of a 100 px image
    gen = DefaultBoxGenerator([[]], scales=[0.2, 0.8])
    np.testing.assert_allclose(gen((100, 100), [(1, 1)]), [[40, 40, 60, 60], [30, 30, 70, 70]], rtol=1e-6)


def test_steps_place_centres_at_step_multiples():
    # SSD300's 38 x 38 map with step 8: centre of column j is (j + 0.5) * 8 / 300 of the image = (j + 0.5) * 8 px:
    # column 0 at 4 px, column 37 at 300 px (the 38 cells span 304 px); without steps (j + 0.5) / 38 * 300
    # puts column 0 at 3.947 px and column 37 at 296.05 px
    with_steps = DefaultBoxGenerator([[]], scales=[0.1, 0.1], steps=[8]).default_boxes((300, 300), [(38, 38)])
    without = DefaultBoxGenerator([[]], scales=[0.1, 0.1]).default_boxes((300, 300), [(38, 38)])
    # each location has 2 boxes: location (0, 37) is row 37, boxes 74 and 75
    np.testing.assert_allclose(with_steps[[0, 74], 0] * 300, [4, 300], rtol=1e-6)
    np.testing.assert_allclose(without[[0, 74], 0] * 300, [300 / 76, 300 * 75 / 76], rtol=1e-6)


def test_non_square_image_scales_x_by_width_and_y_by_height():
    # H = 200, W = 100, a 1 x 2 map: centres x = 0.25 * 100 = 25 and 0.75 * 100 = 75, y = 0.5 * 200 = 100;
    # s = 0.2 -> 20 px wide (of W) and 40 px tall (of H): [15, 80, 35, 120] and [65, 80, 85, 120]
    boxes = DefaultBoxGenerator([[]], scales=[0.2, 0.2])((200, 100), [(1, 2)])
    np.testing.assert_allclose(boxes[[0, 2]], [[15, 80, 35, 120], [65, 80, 85, 120]], rtol=1e-6)


def test_clip_bounds_sizes_not_corners():
    # s = 1.5, s' = sqrt(1.5 * 2) = 1.73: clipped both become 1 -> the whole 100 px image [0, 0, 100, 100];
    # unclipped s = 1.5 -> 150 px about 50: [-25, -25, 125, 125]
    clipped = DefaultBoxGenerator([[]], scales=[1.5, 2.0])((100, 100), [(1, 1)])
    np.testing.assert_allclose(clipped, [[0, 0, 100, 100]] * 2)
    unclipped = DefaultBoxGenerator([[]], scales=[1.5, 2.0], clip=False)((100, 100), [(1, 1)])
    np.testing.assert_allclose(unclipped[0], [-25, -25, 125, 125])
    # clip keeps the size, not the corners: a full-size box at a corner location still leaves the image
    corner = DefaultBoxGenerator([[]], scales=[1.0, 1.0])((100, 100), [(2, 2)])
    np.testing.assert_allclose(corner[0], [-25, -25, 75, 75])


def test_ssd300_has_8732_boxes():
    # 38^2 * 4 + 19^2 * 6 + 10^2 * 6 + 5^2 * 6 + 3^2 * 4 + 1 * 4 = 5776 + 2166 + 600 + 150 + 36 + 4 = 8732
    gen = DefaultBoxGenerator(**SSD300)
    assert gen.num_anchors_per_location() == [4, 6, 6, 6, 4, 4]
    boxes = gen((300, 300), SSD300_SHAPES)
    assert boxes.shape == (8732, 4) and boxes.dtype == np.float32
    # the last map's only location is the image centre, its first box s_6 = 0.87 -> 261 px: 150 +- 130.5
    np.testing.assert_allclose(boxes[-4], [19.5, 19.5, 280.5, 280.5], rtol=1e-6)


def test_empty_inputs():
    assert DefaultBoxGenerator([])((300, 300), []).shape == (0, 4)
    assert DefaultBoxGenerator([])((300, 300), [], dtype=np.float64).dtype == np.float64
    # a map with no rows gives no boxes; the other map still gives its own
    boxes = DefaultBoxGenerator([[2], [2]])((300, 300), [(0, 5), (1, 1)])
    assert boxes.shape == (4, 4)
    assert DefaultBoxGenerator([[2]])((300, 300), [(1, 1)], num_images=0) == []
    copies = DefaultBoxGenerator([[2]])((300, 300), [(1, 1)], num_images=2)
    assert len(copies) == 2 and copies[0] is not copies[1]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(aspect_ratios=[[2]], scales=[0.1, 0.2, 0.3]), ValueError, "scales must have"),
    (dict(aspect_ratios=[[2]], steps=[8, 16]), ValueError, "steps must have one entry"),
    (dict(aspect_ratios=[[-2]]), ValueError, r"aspect_ratios\[0\]\[0\]"),
    (dict(aspect_ratios=[[2]], min_ratio=float("nan")), ValueError, "min_ratio"),
    (dict(aspect_ratios=[[2]], max_ratio=0), ValueError, "max_ratio"),
    (dict(aspect_ratios=[[2]], scales=[0.1, 0]), ValueError, r"scales\[1\]"),
    (dict(aspect_ratios=[[2]], steps=[0]), ValueError, r"steps\[0\]"),
    (dict(aspect_ratios=[[2]], clip=1), TypeError, "clip"),
    (dict(aspect_ratios=2), TypeError, "aspect_ratios"),
    (dict(aspect_ratios=[["a"]]), TypeError, r"aspect_ratios\[0\]\[0\]"),
])
def test_default_box_generator_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DefaultBoxGenerator(**kwargs)


def test_default_box_generator_refuses_bad_calls():
    gen = DefaultBoxGenerator([[2], [2]])
    with pytest.raises(ValueError, match="2 .*must match|must match"):
        gen((300, 300), [(10, 10)])
    with pytest.raises(ValueError, match="image_size"):
        gen((0, 300), [(10, 10), (5, 5)])
    with pytest.raises(ValueError, match=r"feature_shapes\[1\]"):
        gen((300, 300), [(10, 10), (-5, 5)])
    with pytest.raises(TypeError, match="dtype"):
        gen((300, 300), [(10, 10), (5, 5)], dtype=np.int32)
    with pytest.raises(TypeError, match="dtype"):  # np.dtype(None) would be float64
        gen((300, 300), [(10, 10), (5, 5)], dtype=None)
    with pytest.raises(TypeError, match=r"aspect_ratios\[0\] must be a list of aspect ratios"):
        DefaultBoxGenerator([2])
    # (N, C, h, w) shapes of real feature maps are accepted, as torchvision reads feature_map.shape[-2:]
    assert gen((300, 300), [(1, 256, 10, 10), (1, 256, 5, 5)]).shape == ((100 + 25) * 4, 4)
    with pytest.raises(ValueError, match="coordinate limit"):
        DefaultBoxGenerator([[2]], scales=[1e12, 1e12], clip=False)((10_000, 10_000), [(1, 1)])
    with pytest.raises(ValueError, match="coordinate limit"):
        DefaultBoxGenerator([[2]], steps=[1e13])((1000, 1000), [(1000, 1000)])


# ---------------------------------------------------------------- SSD default boxes: properties

@st.composite
def ssd_configs(draw):
    levels = draw(st.integers(1, 4))
    ratios = [draw(st.lists(st.sampled_from([1.5, 2, 3, 4]), max_size=2)) for _ in range(levels)]
    scales = draw(st.none() | st.lists(st.floats(0.05, 1.2), min_size=levels + 1, max_size=levels + 1))
    steps = draw(st.none() | st.lists(st.integers(1, 64), min_size=levels, max_size=levels))
    shapes = [(draw(st.integers(0, 9)), draw(st.integers(0, 9))) for _ in range(levels)]
    size = (draw(st.integers(1, 400)), draw(st.integers(1, 400)))
    kwargs = dict(aspect_ratios=ratios, scales=scales, steps=steps, clip=draw(st.booleans()))
    if scales is None:
        low = draw(st.floats(0.05, 0.5))
        kwargs.update(min_ratio=low, max_ratio=low + draw(st.floats(0.0, 0.5)))
    return kwargs, size, shapes, draw(st.sampled_from([np.float32, np.float64]))


@given(ssd_configs())
def test_ssd_boxes_count_symmetry_grid_and_clip(config):
    kwargs, (height, width), shapes, dtype = config
    gen = DefaultBoxGenerator(**kwargs)
    boxes = gen((height, width), shapes, dtype=dtype)
    cxcywh = gen.default_boxes((height, width), shapes, dtype=dtype)
    per_location = gen.num_anchors_per_location()
    assert boxes.shape == (sum(h * w * n for (h, w), n in zip(shapes, per_location)), 4) == cxcywh.shape
    assert boxes.dtype == dtype
    # every box is symmetric about its location's centre, and has the default box's size
    np.testing.assert_allclose((boxes[:, 0] + boxes[:, 2]) / 2, cxcywh[:, 0] * width, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose((boxes[:, 1] + boxes[:, 3]) / 2, cxcywh[:, 1] * height, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], cxcywh[:, 2] * width, rtol=1e-5, atol=1e-3)
    if kwargs["clip"]:  # sizes in [0, 1] of the image
        assert np.all((cxcywh[:, 2:] >= 0) & (cxcywh[:, 2:] <= 1))
        assert np.all(boxes[:, 2] - boxes[:, 0] <= width * (1 + 1e-6))
    start = 0
    for k, ((h, w), n) in enumerate(zip(shapes, per_location)):
        level = cxcywh[start:start + h * w * n].reshape(h, w, n, 4).astype(np.float64)
        start += h * w * n
        # centres on the grid: cx * f_w - 0.5 is the column index (f_w = W / step with steps, else w)
        f_h, f_w = (height / kwargs["steps"][k], width / kwargs["steps"][k]) if kwargs["steps"] else (h, w)
        np.testing.assert_allclose(level[..., 0] * f_w - 0.5, np.arange(w)[None, :, None] + 0 * level[..., 0],
                                   atol=1e-4 * max(1, w))
        np.testing.assert_allclose(level[..., 1] * f_h - 0.5, np.arange(h)[:, None, None] + 0 * level[..., 1],
                                   atol=1e-4 * max(1, h))
        # every location has the same boxes, in the same order
        if h * w:
            assert np.all(level[..., 2:] == level[:1, :1, :, 2:])


# ---------------------------------------------------------------- SSD default boxes: parity with torchvision

def _torchvision_boxes(kwargs, image_size, shapes, dtype):
    torch, _ = import_torchvision()
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator as TvDefaultBoxGenerator
    from torchvision.models.detection.image_list import ImageList

    gen = TvDefaultBoxGenerator(**kwargs)
    images = ImageList(torch.zeros(1, 1, *image_size), [tuple(image_size)])
    torch_dtype = torch.float32 if dtype == np.float32 else torch.float64
    maps = [torch.zeros(1, 1, *shape, dtype=torch_dtype) for shape in shapes]
    return gen(images, maps)[0].numpy(), gen._grid_default_boxes(shapes, list(image_size), torch_dtype).numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("kwargs, image_size, shapes", [
    (SSD300, (300, 300), SSD300_SHAPES),
    (SSDLITE, (320, 320), SSDLITE_SHAPES),
    (dict(aspect_ratios=[[2, 3], [2]], steps=[7, 13]), (250, 333), [(36, 48), (20, 26)]),
])
def test_parity_with_torchvision_ssd_configurations(kwargs, image_size, shapes, clip, dtype):
    expected, expected_cxcywh = _torchvision_boxes(dict(kwargs, clip=clip), image_size, shapes, dtype)
    gen = DefaultBoxGenerator(**kwargs, clip=clip)
    boxes = gen(image_size, shapes, dtype=dtype)
    assert boxes.dtype == expected.dtype
    np.testing.assert_array_equal(boxes, expected)  # bit for bit: the same float32 steps
    np.testing.assert_array_equal(gen.default_boxes(image_size, shapes, dtype=dtype), expected_cxcywh)


@given(ssd_configs())
def test_parity_with_torchvision_random_configurations(config):
    kwargs, image_size, shapes, dtype = config
    shapes = [(max(h, 1), max(w, 1)) for h, w in shapes]  # torchvision's meshgrid needs at least one cell
    expected, _ = _torchvision_boxes(kwargs, image_size, shapes, dtype)
    np.testing.assert_array_equal(DefaultBoxGenerator(**kwargs)(image_size, shapes, dtype=dtype), expected)


# ---------------------------------------------------------------- YOLO anchors: hand cases

def test_yolo_stride_12_hand_case():
    # stride 12: base anchor centred at 12 / 2 = 6: (10, 13) -> [6 - 5, 6 - 6.5, 6 + 5, 6 + 6.5] = [1, -0.5, 11, 12.5];
    # column 1 shifts x by 12: [13, -0.5, 23, 12.5]
    gen = YOLOAnchorGenerator([12], [[(10, 13)]])
    np.testing.assert_array_equal(gen.base_anchors[0], [[1, -0.5, 11, 12.5]])
    (level,) = gen.grid_priors([(1, 2)])
    np.testing.assert_array_equal(level, [[1, -0.5, 11, 12.5], [13, -0.5, 23, 12.5]])


def test_yolov3_defaults_on_416():
    # 416 / 8, 16, 32 = 52, 26, 13 cells: (52^2 + 26^2 + 13^2) * 3 = (2704 + 676 + 169) * 3 = 10647 anchors
    gen = YOLOAnchorGenerator(YOLOV3_STRIDES, YOLOV3_BASE_SIZES)
    anchors = gen([(52, 52), (26, 26), (13, 13)], image_size=(416, 416))
    assert anchors.shape == (10647, 4) and gen.num_base_priors == [3, 3, 3]
    # first anchor: centre (4, 4), (10, 13) -> [4 - 5, 4 - 6.5, 4 + 5, 4 + 6.5]
    np.testing.assert_array_equal(anchors[0], [-1, -2.5, 9, 10.5])
    # anchors of one location are listed in base_sizes' order: (16, 30) then (33, 23) about (4, 4)
    np.testing.assert_array_equal(anchors[1:3], [[-4, -11, 12, 19], [-12.5, -7.5, 20.5, 15.5]])
    # last anchor: cell (12, 12) of stride 32, centre 12 * 32 + 16 = 400, (373, 326) -> 400 -+ 186.5, 400 -+ 163
    np.testing.assert_array_equal(anchors[-1], [213.5, 237, 586.5, 563])


def test_yolo_odd_and_rectangular_strides():
    # stride 7: centre of column 2 is 2 * 7 + 3.5 = 17.5; a (4, 4) anchor is [15.5, 1.5, 19.5, 5.5] in row 0
    (level,) = YOLOAnchorGenerator([7], [[4]]).grid_priors([(1, 3)])
    np.testing.assert_array_equal(level[2], [15.5, 1.5, 19.5, 5.5])
    # (stride_w, stride_h) = (12, 24): cell (1, 1) is centred at (12 + 6, 24 + 12) = (18, 36)
    (level,) = YOLOAnchorGenerator([(12, 24)], [[(2, 2)]]).grid_priors([(2, 2)])
    np.testing.assert_array_equal(level[3], [17, 35, 19, 37])


def test_yolo_center_offset_zero_puts_anchors_on_cell_corners():
    # center_offset 0: column 1 of stride 24 is centred at x = 24: (8, 8) -> [20, -4, 28, 4]
    (level,) = YOLOAnchorGenerator([24], [[8]], center_offset=0).grid_priors([(1, 2)])
    np.testing.assert_array_equal(level[1], [20, -4, 28, 4])


def test_yolo_base_anchors_are_float32_before_the_shift_like_mmdetection():
    # mmdetection builds the base anchors as a float32 tensor, then adds shifts in the output dtype: with a
    # 10.3 px anchor at stride 12, x1 = float32(6 - 5.15) = 0.85000002 even in float64, plus 12 in column 1
    (level,) = YOLOAnchorGenerator([12], [[(10.3, 2)]]).grid_priors([(1, 2)], dtype=np.float64)
    base_x1 = float(np.float32(6 - 0.5 * 10.3))
    assert base_x1 != 6 - 0.5 * 10.3
    np.testing.assert_array_equal(level[:, 0], [base_x1, base_x1 + 12])


def test_yolo_valid_flags_repeat_per_anchor():
    # stride 12, pad (30, 20): ceil(30 / 12) = 3 rows and ceil(20 / 12) = 2 columns of a 4 x 3 map are valid;
    # each location's flag is repeated for its 2 anchors
    gen = YOLOAnchorGenerator([12], [[(5, 5), (9, 9)]])
    (flags,) = gen.valid_flags([(4, 3)], (30, 20))
    expected = np.zeros((4, 3), dtype=bool)
    expected[:3, :2] = True
    np.testing.assert_array_equal(flags, np.repeat(expected.reshape(-1), 2))


def test_yolo_refuses_bad_arguments():
    with pytest.raises(ValueError, match="same number of anchors"):
        YOLOAnchorGenerator([8, 16], [[(1, 2)], [(1, 2), (3, 4)]])
    with pytest.raises(ValueError, match="must match"):
        YOLOAnchorGenerator([8, 16], [[(1, 2)]])
    with pytest.raises(ValueError, match=r"base_sizes\[0\]\[0\]\[1\]"):
        YOLOAnchorGenerator([8], [[(1, -2)]])
    with pytest.raises(ValueError, match=r"strides\[0\]"):
        YOLOAnchorGenerator([0], [[(1, 2)]])
    with pytest.raises(ValueError, match=r"strides\[0\]"):
        YOLOAnchorGenerator([8.5], [[(1, 2)]])
    with pytest.raises(ValueError, match="center_offset"):
        YOLOAnchorGenerator([8], [[(1, 2)]], center_offset=2)
    gen = YOLOAnchorGenerator([12, 24], [[3], [6]])
    with pytest.raises(ValueError, match="must match"):
        gen([(8, 8)])
    # strides 12, 24 on a 96 px image need 8 and 4 cells: maps listed in the other order are refused, naming level 0
    assert gen([(8, 8), (4, 4)], image_size=(96, 96)).shape == (80, 4)
    with pytest.raises(ValueError, match="stride mismatch at level 0"):
        gen([(4, 4), (8, 8)], image_size=(96, 96))
    with pytest.raises(ValueError, match="coordinate limit"):
        YOLOAnchorGenerator([10**15], [[3]])([(2, 2)])
    with pytest.raises(ValueError, match="pad_shape"):
        gen.valid_flags([(8, 8), (4, 4)], (96,))


def test_yolo_empty():
    assert YOLOAnchorGenerator([], [])([]).shape == (0, 4)
    assert YOLOAnchorGenerator([8], [[3]])([(0, 4)], dtype=np.float64).shape == (0, 4)


# ---------------------------------------------------------------- YOLO anchors: properties

@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(0, 6), st.integers(0, 6)),
                min_size=1, max_size=3),
       st.lists(st.tuples(st.integers(1, 64), st.integers(1, 64)), min_size=1, max_size=3),
       st.sampled_from([np.float32, np.float64]))
def test_yolo_counts_centres_and_sizes(levels, sizes, dtype):
    strides = [(sw, sh) for sw, sh, _, _ in levels]
    shapes = [(h, w) for _, _, h, w in levels]
    gen = YOLOAnchorGenerator(strides, [sizes] * len(levels))
    priors = gen.grid_priors(shapes, dtype=dtype)
    points = MlvlPointGenerator(strides).grid_priors(shapes, dtype=dtype)
    for level, pts, (h, w), (sw, sh), flags_a, flags_p in zip(
            priors, points, shapes, strides, gen.valid_flags(shapes, (50, 70)),
            MlvlPointGenerator(strides).valid_flags(shapes, (50, 70))):
        assert level.shape == (h * w * len(sizes), 4) and level.dtype == dtype
        # centres: the cell centres (j + 0.5) * stride, exactly the points of MlvlPointGenerator(offset=0.5)
        centres = ((level[:, :2] + level[:, 2:]) / 2).reshape(h * w, len(sizes), 2)
        np.testing.assert_array_equal(centres, np.broadcast_to(pts[:, None, :], centres.shape))
        # sizes: base_sizes in order, at every location; boxes are symmetric about the centre
        np.testing.assert_array_equal((level[:, 2:] - level[:, :2]).reshape(h * w, len(sizes), 2),
                                      np.broadcast_to(np.array(sizes, dtype=dtype), (h * w, len(sizes), 2)))
        # an anchor is valid exactly when its location's point is
        np.testing.assert_array_equal(flags_a, np.repeat(flags_p, len(sizes)))


# ---------------------------------------------------------------- MlvlPointGenerator and valid_flags

def test_points_stride_12_with_stride():
    # (j + 0.5) * 12: 6, 18 in x and y, row-major; with_stride appends (stride_w, stride_h) = (12, 12)
    (level,) = MlvlPointGenerator([12]).grid_priors([(2, 2)], with_stride=True)
    np.testing.assert_array_equal(level, [[6, 6, 12, 12], [18, 6, 12, 12], [6, 18, 12, 12], [18, 18, 12, 12]])


def test_points_offset_zero_and_rectangular_strides():
    # offset 0, (stride_w, stride_h) = (8, 12): x = 0, 8, 16; y = 0, 12
    gen = MlvlPointGenerator([(8, 12)], offset=0)
    (level,) = gen.grid_priors([(2, 3)], with_stride=True)
    np.testing.assert_array_equal(level[:, :2], [[0, 0], [8, 0], [16, 0], [0, 12], [8, 12], [16, 12]])
    np.testing.assert_array_equal(level[:, 2:], [[8, 12]] * 6)


def test_points_several_levels_concatenated():
    # strides 12 and 24 on a 48 px image: 4 x 4 and 2 x 2 points = 20; the first of level 1 at (12, 12)
    gen = MlvlPointGenerator([12, 24])
    points = gen([(4, 4), (2, 2)], image_size=(48, 48))
    assert points.shape == (20, 2)
    np.testing.assert_array_equal(points[16], [12, 12])
    with pytest.raises(ValueError, match="stride mismatch at level 1"):
        gen([(4, 4), (4, 4)], image_size=(48, 48))


def test_points_offset_computed_in_float32_like_mmdetection():
    # mmdetection adds the offset in torch's default float32, then casts: float64 output equals the float32 points
    gen = MlvlPointGenerator([7], offset=0.3)
    (p32,) = gen.grid_priors([(5, 300)])
    (p64,) = gen.grid_priors([(5, 300)], dtype=np.float64)
    assert p64.dtype == np.float64
    np.testing.assert_array_equal(p64, p32.astype(np.float64))
    np.testing.assert_allclose(p64[299, 0], 299.3 * 7, rtol=1e-6)


def test_point_valid_flags_hand_case():
    # stride 12, a 4 x 4 map, pad (30, 40): ceil(30 / 12) = 3 rows, ceil(40 / 12) = 4 columns -> 12 valid points
    (flags,) = MlvlPointGenerator([12]).valid_flags([(4, 4)], (30, 40))
    assert flags.dtype == bool and flags.shape == (16,)
    np.testing.assert_array_equal(flags.reshape(4, 4).sum(axis=1), [4, 4, 4, 0])
    # a pad beyond the map caps at the map: everything valid; mmdetection 2's (h, w, channels) is accepted
    (flags,) = MlvlPointGenerator([12]).valid_flags([(4, 4)], (100, 100, 3))
    assert flags.all()


def test_valid_flags_function():
    # a 2 x 3 map with a 1 x 2 valid region, 2 priors per location: [T, T, T, T, F, F] then 6 x F
    np.testing.assert_array_equal(valid_flags((2, 3), (1, 2)), [True, True, False, False, False, False])
    np.testing.assert_array_equal(valid_flags((2, 3), (1, 2), num_base_priors=2), [True] * 4 + [False] * 8)
    assert valid_flags((0, 3), (0, 3)).shape == (0,)
    with pytest.raises(ValueError, match="must not exceed"):
        valid_flags((2, 3), (3, 3))
    with pytest.raises(ValueError, match="num_base_priors"):
        valid_flags((2, 3), (1, 1), num_base_priors=0)
    with pytest.raises(ValueError, match="featmap_size"):
        valid_flags((2, -3), (1, 1))


def test_points_refuse_bad_arguments_and_handle_empty():
    with pytest.raises(ValueError, match="offset"):
        MlvlPointGenerator([8], offset=-0.5)
    with pytest.raises(ValueError, match=r"strides\[1\]\[0\]"):
        MlvlPointGenerator([8, (0, 8)])
    with pytest.raises(ValueError, match=r"strides\[0\]"):
        MlvlPointGenerator([(8, 8, 8)])
    with pytest.raises(TypeError, match="strides"):
        MlvlPointGenerator(8)
    with pytest.raises(TypeError, match="with_stride"):
        MlvlPointGenerator([8]).grid_priors([(2, 2)], with_stride="yes")
    with pytest.raises(ValueError, match=r"featmap_sizes\[0\]"):
        MlvlPointGenerator([8]).grid_priors([(2,)])
    assert MlvlPointGenerator([])([]).shape == (0, 2)
    assert MlvlPointGenerator([])([], with_stride=True).shape == (0, 4)
    assert MlvlPointGenerator([8])([(3, 0)]).shape == (0, 2)


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50), st.integers(0, 12), st.integers(0, 12)),
                max_size=4),
       st.sampled_from([0.0, 0.5]), st.booleans(), st.sampled_from([np.float32, np.float64]))
def test_points_counts_and_grid(levels, offset, with_stride, dtype):
    strides = [(sw, sh) for sw, sh, _, _ in levels]
    shapes = [(h, w) for _, _, h, w in levels]
    points = MlvlPointGenerator(strides, offset)(shapes, dtype=dtype, with_stride=with_stride)
    assert points.shape == (sum(h * w for h, w in shapes), 4 if with_stride else 2) and points.dtype == dtype
    start = 0
    for (h, w), (sw, sh) in zip(shapes, strides):
        level = points[start:start + h * w].reshape(h, w, points.shape[1])
        start += h * w
        # on the grid: x / stride_w - offset is the column, y / stride_h - offset the row
        np.testing.assert_array_equal(level[..., 0], np.broadcast_to((np.arange(w) + offset) * sw, (h, w)))
        np.testing.assert_array_equal(level[..., 1], np.broadcast_to(((np.arange(h) + offset) * sh)[:, None], (h, w)))
        if with_stride:
            assert np.all(level[..., 2] == sw) and np.all(level[..., 3] == sh)


def test_public_names():
    import edudet

    for name in ("DefaultBoxGenerator", "YOLOAnchorGenerator", "MlvlPointGenerator", "valid_flags"):
        assert getattr(edudet, name) is getattr(__import__("edudet.priors", fromlist=[name]), name)
