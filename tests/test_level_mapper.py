"""FPN level mapping and stride checks: hand cases, the stride misconfiguration, properties, parity."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet import LevelMapper, check_strides, infer_scale, infer_stride, map_roi_levels
from edudet.level_mapper import check_feature_shapes, check_scales
from helpers import import_torchvision, random_boxes

P2_P5 = [(200, 304), (100, 152), (50, 76), (25, 38)]


def square(side, x=0.0):
    return [x, x, x + side, x + side]


# ---------------------------------------------------------------- hand cases

def test_fpn_equation_1_by_hand():
    # P2..P5: k = floor(4 + log2(sqrt(area) / 224) + 1e-6), clamped to [2, 5], minus 2
    # 224 px: 4 + log2(1) = 4 -> index 2; 223 px: 4 + log2(.9955) = 3.9935 -> 3 -> index 1
    # 10 px: 4 + log2(10 / 224) = -0.49 -> clamped to 2 -> index 0; 1000 px: 6.16 -> clamped to 5 -> index 3
    # 112 px: exactly 3 -> index 1 (eps keeps the power of two from rounding down); 0 px: log2(0) = -inf -> 0
    boxes = np.array([square(224), square(223), square(10), square(1000), square(112, 5), square(0)], np.float32)
    np.testing.assert_array_equal(LevelMapper(2, 5)(boxes), [2, 1, 0, 3, 1, 0])
    assert LevelMapper(2, 5)(boxes).dtype == np.int64


def test_map_roi_levels_by_hand():
    # finest_scale 56: scale < 112 -> 0, < 224 -> 1, < 448 -> 2, else 3; (N, 5) rois carry a batch index
    rois = np.array([[0, *square(111)], [1, *square(112)], [0, *square(223)], [0, *square(224)],
                     [0, *square(447)], [0, *square(448)], [0, *square(5000)]], np.float32)
    np.testing.assert_array_equal(map_roi_levels(rois, 4), [0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(map_roi_levels(rois[:, 1:], 2), [0, 1, 1, 1, 1, 1, 1])


def test_infer_scale_and_stride_by_hand():
    # 200 / 800 = 1/4 -> P2; P6 of 800 rows has ceil(800 / 64) = 13: 13 / 800 = 2 ** -5.94 -> 1/64
    assert infer_scale((256, 200, 304), (800, 1216)) == 0.25 and infer_stride((200, 304), (800, 1216)) == 4
    assert infer_scale((13, 19), (800, 1216)) == 1 / 64 and infer_stride((13, 19), (800, 1216)) == 64
    assert check_strides([4, 8, 16, 32, 64], P2_P5 + [(13, 19)], (800, 1216)) == [4, 8, 16, 32, 64]
    # an unpadded image size (800 x 1199 padded to 1216) still infers the same strides, as torchvision's poolers
    assert check_strides([4, 8, 16, 32], P2_P5, (800, 1199)) == [4, 8, 16, 32]


def test_check_scales_by_hand_and_the_stride_scale_mixup():
    # 800 x 1216 image, P2..P5: 200/800 = 1/4, 100/800 = 1/8, 50/800 = 1/16, 25/800 = 1/32
    shapes = [(200, 304), (100, 152), (50, 76), (25, 38)]
    assert check_scales([0.25, 0.125, 0.0625, 0.03125], shapes, (800, 1216)) == [0.25, 0.125, 0.0625, 0.03125]
    # POOLER_SCALES passed as strides: the first entry, 0.25, cannot be a stride (a stride is >= 1)
    with pytest.raises(ValueError, match=r"stride 0.25 was given .*imply stride 4.* did you pass scales "
                                         r"\(1/stride\)\? Strides are \[4, 8, 16, 32\]"):
        check_strides([0.25, 0.125, 0.0625, 0.03125], shapes, (800, 1216))
    # strides passed as scales
    with pytest.raises(ValueError, match=r"scale 4 was given .*imply scale 0.25 \(1/4\).* did you pass strides "
                                         r"where scales \(1/stride\) are expected\? Scales are \[1/4, 1/8"):
        check_scales([4, 8, 16, 32], shapes, (800, 1216))
    # a wrong stride that is a stride gets no mix-up hint (mmdetection's [8, 16, 32, 64])
    with pytest.raises(ValueError, match="stride 8 was given") as info:
        check_strides([8, 16, 32, 64], shapes, (800, 1216))
    assert "did you pass" not in str(info.value)
    with pytest.raises(ValueError, match="got 3 scales for 4 feature maps"):
        check_scales([0.25, 0.125, 0.0625], shapes, (800, 1216))
    with pytest.raises(ValueError, match="scale of P5"):
        check_scales([0.25, 0.125, 0.0625, -1], shapes, (800, 1216), names=["P2", "P3", "P4", "P5"])


def test_list_input_like_torchvision():
    per_image = [np.array([square(224)], np.float32), np.array([square(10), square(1000)], np.float64)]
    np.testing.assert_array_equal(LevelMapper(2, 5)(per_image), [2, 0, 3])
    np.testing.assert_array_equal(LevelMapper(2, 5)([square(224), square(10)]), [2, 0])  # rows, not images
    assert LevelMapper(2, 5)([]).shape == (0,)


# ---------------------------------------------------------------- the stride misconfiguration

def test_wrong_strides_put_every_roi_in_the_top_left_quarter():
    # mmdetection's featmap_strides=[8, 16, 32, 64] for P2..P5 scales a RoI by 1/8 on the P2 map, whose true
    # stride is 4: every RoI of an 800 x 1216 image lands inside the top-left quarter (100 x 152) of the
    # 200 x 304 map, so the head pools features of the wrong place and training silently collapses
    rng = np.random.default_rng(0)
    rois = random_boxes(rng, 1000, image_size=800, max_side=400)
    rois[:, 0::2] *= 1216 / 800  # spread over the full width
    right_scale, wrong_scale = 1 / infer_stride(P2_P5[0], (800, 1216)), 1 / 8
    on_map_right, on_map_wrong = rois * right_scale, rois * wrong_scale
    h, w = P2_P5[0]
    assert on_map_wrong[:, 2].max() <= w / 2 and on_map_wrong[:, 3].max() <= h / 2
    assert on_map_right[:, 2].max() > w / 2 and on_map_right[:, 3].max() > h / 2  # the right scale covers the map
    # the RoI [800, 400, 1200, 800] in the bottom-right of the image: P2 cells 200..300 x 100..200 vs 100..150 x 50..100
    np.testing.assert_array_equal(np.array([800, 400, 1200, 800]) * wrong_scale, [100, 50, 150, 100])
    with pytest.raises(ValueError, match=r"stride mismatch at level 0: stride 8 was given .* imply stride 4"):
        check_strides([8, 16, 32, 64], P2_P5, (800, 1216))
    with pytest.raises(ValueError, match=r"stride mismatch at P2: stride 8"):
        check_strides([8, 16, 32, 64], P2_P5, (800, 1216), names=["P2", "P3", "P4", "P5"])


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, error, match", [
    (lambda: LevelMapper(5, 2), ValueError, "k_max must be >= k_min"),
    (lambda: LevelMapper(2, 5, canonical_scale=0), ValueError, "canonical_scale"),
    (lambda: LevelMapper(2, 5)(np.zeros((3, 5))), ValueError, r"\(N, 4\)"),
    (lambda: LevelMapper(2, 5)(np.array([[0, 0, np.nan, 1]])), ValueError, "NaN"),
    (lambda: map_roi_levels(np.zeros((3, 6)), 4), ValueError, r"\(N, 4\) or \(N, 5\)"),
    (lambda: map_roi_levels(np.zeros((3, 4)), 0), ValueError, "num_levels"),
    (lambda: check_strides([4, 8], P2_P5, (800, 1216)), ValueError, "2 strides for 4 feature maps"),
    (lambda: check_feature_shapes([(199, 304)], (800, 1216)), ValueError, "not the image shape"),
    (lambda: check_feature_shapes([(200, 152)], (800, 1216)), ValueError, "not the image shape"),
    (lambda: check_strides([-4], [(200, 304)], (800, 1216)), ValueError, "stride of level 0"),
    (lambda: check_feature_shapes([(0, 304)], (800, 1216)), ValueError, "feature shape of level 0"),
    (lambda: infer_scale((200, 304), (800,)), ValueError, "image_shape"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- properties

@given(sides=st.lists(st.floats(0, 3000), min_size=1, max_size=30), k_min=st.integers(1, 3), span=st.integers(0, 4),
       float64=st.booleans())
def test_levels_are_monotone_and_in_range(sides, k_min, span, float64):
    sides = np.sort(np.array(sides))
    boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], axis=1)
    boxes = boxes.astype(np.float64 if float64 else np.float32)
    levels = LevelMapper(k_min, k_min + span)(boxes)
    assert levels.min() >= 0 and levels.max() <= span
    assert np.all(np.diff(levels) >= 0)  # a bigger box never goes to a finer level


@given(sides=st.lists(st.floats(1, 3000), min_size=1, max_size=30))
def test_mmdetection_rule_equals_fpn_rule_on_p2_p5(sides):
    sides = np.array(sides, dtype=np.float32)
    boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], axis=1)
    scale = sides.astype(np.float64)
    near_boundary = np.abs(np.log2(scale / 56) - np.round(np.log2(scale / 56))) < 1e-5
    same = map_roi_levels(boxes, 4) == LevelMapper(2, 5)(boxes)
    assert np.all(same | near_boundary)  # the two eps placements may only disagree at a power of two


@given(k=st.integers(0, 8), height=st.integers(1, 5000), width=st.integers(1, 5000), ceil=st.booleans())
def test_strided_shapes_are_accepted_and_inferred(k, height, width, ceil):
    div = (lambda n: -(-n // 2 ** k)) if ceil else (lambda n: n // 2 ** k)
    h, w = div(height), div(width)
    if h == 0 or w == 0 or h < 8:  # tiny maps do not determine the stride (torchvision's rounding neither)
        return
    assert check_feature_shapes([(h, w)], (height, width)) == [(h, w)]
    assert infer_stride((h, w), (height, width)) == 2 ** k


# ---------------------------------------------------------------- parity with torchvision

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("levels", [(2, 5), (3, 6), (0, 0)])
def test_parity_level_mapper(dtype, levels):
    torch, _ = import_torchvision()
    from torchvision.ops.poolers import LevelMapper as TvLevelMapper

    rng = np.random.default_rng(levels[0])
    boxes = random_boxes(rng, 5000, image_size=1333, min_side=0.5, max_side=1300, dtype=dtype)
    sides = np.array([224, 223, 112, 56, 448, 896, 10, 1000], dtype=dtype)
    exact = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], axis=1)
    boxes = np.concatenate([boxes, exact, [[5, 5, 5, 9]]]).astype(dtype)  # exact powers of two and a zero area
    expected = TvLevelMapper(*levels)([torch.from_numpy(boxes)]).numpy()
    np.testing.assert_array_equal(LevelMapper(*levels)(boxes), expected)


def test_parity_infer_scale_and_setup_scales():
    torch, _ = import_torchvision()
    from torchvision.ops.poolers import _infer_scale, _setup_scales

    rng = np.random.default_rng(0)
    for _ in range(200):
        image = (int(rng.integers(32, 2000)), int(rng.integers(32, 2000)))
        k = int(rng.integers(0, 6))
        shape = (-(-image[0] // 2 ** k), -(-image[1] // 2 ** k))
        feature = torch.zeros(1, 1, *shape)
        assert infer_scale(shape, image) == _infer_scale(feature, list(image))
    features = [torch.zeros(1, 1, *s) for s in P2_P5]
    scales, mapper = _setup_scales(features, [(800, 1216)], 224, 4)
    assert [infer_scale(s, (800, 1216)) for s in P2_P5] == scales
    assert (mapper.k_min, mapper.k_max) == (2, 5)


def test_scales_that_round_to_zero_in_the_boxes_dtype_are_refused():
    # 1e-300 is 0 in float32: sqrt(0) / 0 = NaN used to become level INT64_MIN
    rois = np.array([[0.0, 0, 0, 0]], np.float32)
    with pytest.raises(ValueError, match="finest_scale=1e-300 is not a positive finite number in float32"):
        map_roi_levels(rois, 4, 1e-300)
    with pytest.raises(ValueError, match="canonical_scale=1e-300 is not a positive finite number in float32"):
        LevelMapper(2, 5, canonical_scale=1e-300)(rois)
    # the same scale is fine in float64, and a zero-area box goes to the lowest level
    assert map_roi_levels(rois.astype(np.float64), 4, 1e-300).tolist() == [0]
