"""MultiScaleRoIAlign and roi_grid_to_image: hand cases, properties, parity with torchvision, bad input."""
import importlib
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edudet
from edudet import MultiScaleRoIAlign, roi_grid_to_image
from edudet.ops import roi_align
from helpers import import_torchvision

BACKENDS = importlib.import_module("edudet.ops.roi_align")._roi_align.backends
NAMES = ["p2", "p3", "p4", "p5"]


def pyramid(rng, num_images=2, channels=3, image_hw=(256, 320), strides=(4, 8, 16, 32), dtype=np.float32):
    h, w = image_hw
    return OrderedDict((f"p{int(np.log2(s))}",
                        rng.standard_normal((num_images, channels, h // s, w // s)).astype(dtype)) for s in strides)


def boxes_in(rng, k, image_hw, min_side=4, max_side=250):
    wh = rng.uniform(min_side, max_side, size=(k, 2))
    xy = rng.uniform(0, 1, size=(k, 2)) * np.maximum(np.array(image_hw[::-1]) - wh, 0)
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# roi_grid_to_image
# ---------------------------------------------------------------------------------------------------------
def test_grid_to_image_hand_values():
    boxes = np.array([[10, 20, 38, 48], [0, 0, 7, 14]], np.float32)
    points = np.array([[0, 0], [27, 27], [13.5, 13.5]])
    out = roi_grid_to_image(points, boxes, 28)
    # box 0: 28 px over 28 cells, 1 px per cell: cell 0 -> 10 + 0.5 = 10.5, cell 27 -> 37.5, 13.5 -> 24 (centre)
    np.testing.assert_allclose(out[0], [[10.5, 20.5], [37.5, 47.5], [24, 34]])
    # box 1: 7 x 14 px on 28 cells -> 0.25 px and 0.5 px per cell: cell 0 -> (0.125, 0.25)
    np.testing.assert_allclose(out[1, 0], [0.125, 0.25])
    # a (rows, cols) = (7, 14) grid on box 1: cell x 13 -> 13.5 * 7 / 14 = 6.75; cell y 6 -> 6.5 * 14 / 7 = 13
    np.testing.assert_allclose(roi_grid_to_image([[13, 6]], boxes[1:], (7, 14)), [[[6.75, 13]]])
    assert out.dtype == np.float32


def test_grid_to_image_matches_where_roi_align_samples():
    # aligned=True RoIAlign with 1 sample per bin reads the map exactly at the bin centres: on the ramp
    # f(y, x) = x + 10 y, whose pixel centres sit at (x + 0.5, y + 0.5) in image coordinates, bin (i, j)
    # must read f at roi_grid_to_image's point minus the half-pixel
    y, x = np.mgrid[0:16, 0:16]
    fmap = (x + 10.0 * y)[None, None]
    box = np.array([[2.0, 3.0, 11.0, 13.0]])
    out = roi_align(fmap, np.concatenate([[[0]], box], axis=1), (4, 3), 1.0, 1, aligned=True)[0, 0]
    cells = np.stack(np.meshgrid(np.arange(3), np.arange(4)), axis=-1).reshape(-1, 2)  # (x_f, y_f), row-major
    points = roi_grid_to_image(cells, box, (4, 3))[0] - 0.5
    np.testing.assert_allclose(out.ravel(), points[:, 0] + 10 * points[:, 1], atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 30))
def test_grid_to_image_spans_the_box_symmetrically(seed, m):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-50, 50, size=(5, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 40, size=(5, 2))], axis=1)
    out = roi_grid_to_image([[0, 0], [m - 1, m - 1], [-0.5, -0.5], [m - 0.5, m - 0.5]], boxes, m)
    # first and last cell centres are mirror images about the box centre; cell edges -0.5 and M - 0.5 are
    # the box edges
    np.testing.assert_allclose(out[:, 0] + out[:, 1], boxes[:, :2] + boxes[:, 2:], atol=1e-9)
    np.testing.assert_allclose(out[:, 2], boxes[:, :2], atol=1e-9)
    np.testing.assert_allclose(out[:, 3], boxes[:, 2:], atol=1e-9)


def test_grid_to_image_bad_input():
    with pytest.raises(ValueError, match="grid_points must have shape"):
        roi_grid_to_image(np.zeros((3, 3)), np.zeros((2, 4)), 7)
    with pytest.raises(ValueError, match="grid_points must have shape"):
        roi_grid_to_image(np.zeros((3, 4, 2)), np.zeros((2, 4)), 7)
    with pytest.raises(ValueError, match=r"grid_size\[0\] must be >= 1"):
        roi_grid_to_image(np.zeros((1, 2)), np.zeros((2, 4)), 0)
    with pytest.raises(ValueError, match="NaN or inf"):
        roi_grid_to_image(np.full((1, 2), np.nan), np.zeros((2, 4)), 7)


# ---------------------------------------------------------------------------------------------------------
# MultiScaleRoIAlign: hand cases
# ---------------------------------------------------------------------------------------------------------
def test_each_box_is_pooled_from_its_fpn_level():
    # level maps filled with their level number: a box pooled inside the image returns that number.
    # FPN eq. 1: level floor(4 + log2(sqrt(area) / 224)): side 56 -> 2, 112 -> 3, 224 -> 4, 448 -> 5,
    # and 30 -> clamped up to 2, 900 -> clamped down to 5
    image_hw = (1024, 1024)
    features = OrderedDict((f"p{k}", np.full((1, 2, 1024 >> k, 1024 >> k), float(k), np.float32)) for k in (2, 3, 4, 5))
    sides = np.array([56, 112, 224, 448, 30, 900, 111.9], np.float32)
    boxes = np.stack([np.full_like(sides, 10), np.full_like(sides, 20), 10 + sides, 20 + sides], axis=1)
    pooler = MultiScaleRoIAlign(NAMES, 3, 2)
    out = pooler(features, [boxes], [image_hw])
    assert out.shape == (7, 2, 3, 3)
    np.testing.assert_allclose(out[:, 0, 1, 1], [2, 3, 4, 5, 2, 5, 2], atol=1e-6)
    assert pooler.scales == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    assert (pooler.map_levels.k_min, pooler.map_levels.k_max) == (2, 5)


def test_one_level_is_roi_align_at_the_inferred_scale():
    rng = np.random.default_rng(0)
    features = {"feat": rng.standard_normal((2, 3, 25, 40)).astype(np.float32)}
    boxes = [boxes_in(rng, 4, (200, 320)), boxes_in(rng, 3, (180, 300))]
    out = MultiScaleRoIAlign(["feat"], (2, 3), 0)(features, boxes, [(200, 320), (180, 300)])
    expected = roi_align(features["feat"], boxes, (2, 3), 1 / 8, 0, False)
    np.testing.assert_array_equal(out, expected)


def test_explicit_strides_agree_with_inference_and_wrong_ones_raise():
    rng = np.random.default_rng(1)
    features = pyramid(rng)
    boxes = [boxes_in(rng, 6, (256, 320)), boxes_in(rng, 5, (256, 320))]
    shapes = [(256, 320), (240, 300)]
    inferred = MultiScaleRoIAlign(NAMES, 7, 2)(features, boxes, shapes)
    explicit = MultiScaleRoIAlign(NAMES, 7, 2, featmap_strides=[4, 8, 16, 32])
    np.testing.assert_array_equal(explicit(features, boxes, shapes), inferred)
    assert explicit.scales == [0.25, 0.125, 0.0625, 0.03125]
    # mmdetection's classic mistake: P2..P5 declared with strides 8..64
    wrong = MultiScaleRoIAlign(NAMES, 7, 2, featmap_strides=[8, 16, 32, 64])
    with pytest.raises(ValueError, match="stride mismatch at p2: stride 8 was given .* imply stride 4"):
        wrong(features, boxes, shapes)


def test_scales_are_pooler_scales_and_a_mixup_is_named():
    """maskrcnn-benchmark's POOLER_SCALES (1/stride) give the same pooling as featmap_strides."""
    rng = np.random.default_rng(4)
    features = pyramid(rng)
    boxes = [boxes_in(rng, 6, (256, 320)), boxes_in(rng, 5, (256, 320))]
    shapes = [(256, 320), (240, 300)]
    by_strides = MultiScaleRoIAlign(NAMES, 7, 2, featmap_strides=[4, 8, 16, 32])
    by_scales = MultiScaleRoIAlign(NAMES, 7, 2, scales=[1 / 4, 1 / 8, 1 / 16, 1 / 32])
    np.testing.assert_array_equal(by_scales(features, boxes, shapes), by_strides(features, boxes, shapes))
    assert by_scales.scales == [0.25, 0.125, 0.0625, 0.03125]  # 1/4 .. 1/32, exact in binary
    assert "scales=[0.25" in repr(by_scales)
    # POOLER_SCALES given where strides belong: 0.25 < 1 cannot be a stride
    with pytest.raises(ValueError, match=r"stride 0.25 was given .* did you pass scales \(1/stride\)\? "
                                         r"Strides are \[4, 8, 16, 32\]"):
        MultiScaleRoIAlign(NAMES, 7, 2, featmap_strides=[0.25, 0.125, 0.0625, 0.03125])(features, boxes, shapes)
    # and the reverse: strides given as scales
    with pytest.raises(ValueError, match=r"scale 4 was given .* imply scale 0.25 \(1/4\); .* did you pass "
                                         r"strides where scales \(1/stride\) are expected"):
        MultiScaleRoIAlign(NAMES, 7, 2, scales=[4, 8, 16, 32])(features, boxes, shapes)
    # a right-sized but wrong scale list is refused without the mix-up hint (0.125 for P2 is P3's scale)
    with pytest.raises(ValueError, match=r"scale mismatch at p2: scale 0.125 .* imply scale 0.25") as info:
        MultiScaleRoIAlign(NAMES, 7, 2, scales=[1 / 8, 1 / 16, 1 / 32, 1 / 64])(features, boxes, shapes)
    assert "did you pass" not in str(info.value)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(featmap_strides=[4, 8, 16], scales=[0.25, 0.125, 0.0625]), ValueError, "not both"),
    # mmdetection silently pools from the first len(featmap_strides) maps; here the lengths must match
    (dict(featmap_strides=[4, 8, 16]), ValueError, r"featmap_strides has 3 entries for 4 featmap_names"),
    (dict(featmap_strides=[4, 8, 16, 32, 64]), ValueError, r"featmap_strides has 5 entries for 4"),
    (dict(scales=[0.25, 0.125, 0.0625]), ValueError, r"scales has 3 entries for 4 featmap_names"),
    (dict(scales=[0.25, 0.125, 0.0625, 0]), ValueError, "scales entries"),
    (dict(scales=[0.25, 0.125, 0.0625, float("nan")]), ValueError, "scales entries"),
    (dict(scales=0.25), TypeError, "scales must be a list"),
    (dict(featmap_strides="4816"), TypeError, "featmap_strides must be a list"),
])
def test_strides_and_scales_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        MultiScaleRoIAlign(NAMES, 7, 2, **kwargs)


def test_empty_boxes_and_unused_maps():
    rng = np.random.default_rng(2)
    features = pyramid(rng)
    features["pool"] = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)  # not named: ignored
    out = MultiScaleRoIAlign(NAMES, (7, 5), 2)(features, [np.zeros((0, 4)), np.zeros((0, 4))], [(256, 320)] * 2)
    assert out.shape == (0, 3, 7, 5) and out.dtype == np.float32


def test_bad_input():
    rng = np.random.default_rng(3)
    features = pyramid(rng)
    boxes = [boxes_in(rng, 2, (256, 320))] * 2
    shapes = [(256, 320)] * 2
    with pytest.raises(ValueError, match="no map named"):
        MultiScaleRoIAlign(["p2", "p9"], 7, 2)(features, boxes, shapes)
    bad = dict(features, p3=features["p3"][:, :2])
    with pytest.raises(ValueError, match="every level must match"):
        MultiScaleRoIAlign(NAMES, 7, 2)(bad, boxes, shapes)
    with pytest.raises(TypeError, match="boxes must be a list"):
        MultiScaleRoIAlign(NAMES, 7, 2)(features, np.zeros((2, 4)), shapes)
    with pytest.raises(ValueError, match="image_shapes has 1 entries"):
        MultiScaleRoIAlign(NAMES, 7, 2)(features, boxes, shapes[:1])
    with pytest.raises(ValueError, match="featmap_strides has 3 entries"):
        MultiScaleRoIAlign(NAMES, 7, 2, featmap_strides=[4, 8, 16])
    with pytest.raises(TypeError, match="featmap_names must be a list of str"):
        MultiScaleRoIAlign("p2", 7, 2)
    with pytest.raises(ValueError, match="output_size"):
        MultiScaleRoIAlign(NAMES, 0, 2)
    with pytest.raises(ValueError, match="NaN or inf"):
        MultiScaleRoIAlign(NAMES, 7, 2)(features, [np.full((1, 4), np.nan), boxes[1]], shapes)


# ---------------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------------
@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), sampling_ratio=st.sampled_from([-1, 2]))
def test_every_backend_equals_the_reference(seed, sampling_ratio):
    rng = np.random.default_rng(seed)
    features = pyramid(rng, channels=2, image_hw=(64, 96))
    boxes = [boxes_in(rng, 3, (64, 96), max_side=60), boxes_in(rng, 2, (64, 96), max_side=60)]
    shapes = [(64, 96), (60, 90)]
    expected = MultiScaleRoIAlign(NAMES, 2, sampling_ratio, backend="numpy")(features, boxes, shapes)
    for backend in BACKENDS:
        out = MultiScaleRoIAlign(NAMES, 2, sampling_ratio, backend=backend)(features, boxes, shapes)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5, err_msg=backend)


@given(seed=st.integers(0, 2**32 - 1))
def test_rows_follow_the_boxes(seed):
    rng = np.random.default_rng(seed)
    features = pyramid(rng, channels=2)
    boxes = [boxes_in(rng, 5, (256, 320)), boxes_in(rng, 4, (256, 320))]
    pooler = MultiScaleRoIAlign(NAMES, 3, 2)
    together = pooler(features, boxes, [(256, 320)] * 2)
    perm = rng.permutation(5)
    permuted = pooler(features, [boxes[0][perm], boxes[1]], [(256, 320)] * 2)
    np.testing.assert_array_equal(permuted[:5], together[:5][perm])
    np.testing.assert_array_equal(permuted[5:], together[5:])


# ---------------------------------------------------------------------------------------------------------
# parity with torchvision
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_parity_with_torchvision_on_a_four_level_pyramid(dtype, sampling_ratio):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng([sampling_ratio + 1, np.dtype(dtype).itemsize])
    features = pyramid(rng, channels=4, image_hw=(320, 416), dtype=dtype)
    boxes = [boxes_in(rng, 40, (320, 416), min_side=2, max_side=400).astype(dtype),
             boxes_in(rng, 25, (300, 400), min_side=2, max_side=400).astype(dtype)]
    boxes[0][:2, 2:] = boxes[0][:2, :2]  # zero-size boxes go to the finest level
    shapes = [(320, 416), (300, 400)]
    tv_pooler = torchvision.ops.MultiScaleRoIAlign(NAMES, 7, sampling_ratio)
    expected = tv_pooler(OrderedDict((k, torch.from_numpy(v)) for k, v in features.items()),
                         [torch.from_numpy(b) for b in boxes], shapes).numpy()
    pooler = MultiScaleRoIAlign(NAMES, 7, sampling_ratio)
    out = pooler(features, boxes, shapes)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    assert pooler.scales == tv_pooler.scales


def test_exported_at_top_level():
    assert edudet.MultiScaleRoIAlign is MultiScaleRoIAlign and edudet.roi_grid_to_image is roi_grid_to_image


# ----------------------------------------------------------------- issue 16: empty input and float16, as torchvision

def test_zero_boxes_and_zero_images_give_empty_results():
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(0)
    features = pyramid(rng)
    names = list(features)
    pooler = MultiScaleRoIAlign(names, 7, 2)
    boxes = [np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)]
    out = pooler(features, boxes, [(256, 320), (256, 320)])
    theirs = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)(
        OrderedDict((k, torch.from_numpy(v)) for k, v in features.items()),
        [torch.from_numpy(b) for b in boxes], [(256, 320), (256, 320)])
    assert out.shape == tuple(theirs.shape) == (0, 3, 7, 7) and out.dtype == np.float32
    # zero images: torchvision raises ("images list should not be empty"); edudet gives empty output
    empty = {k: v[:0] for k, v in features.items()}
    out = MultiScaleRoIAlign(names, (7, 5), 2)(empty, [], [])
    assert out.shape == (0, 3, 7, 5) and out.dtype == np.float32
    out = MultiScaleRoIAlign(names, 7, 2)({k: v.astype(np.float64) for k, v in empty.items()}, [], [])
    assert out.shape == (0, 3, 7, 7) and out.dtype == np.float64


def test_float16_features_give_float16_like_torchvision():
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(3)
    features = {k: v.astype(np.float16) for k, v in pyramid(rng).items()}
    names = list(features)
    boxes = [np.array([[10, 10, 60, 50], [0, 0, 250, 200]], np.float16), np.array([[5, 5, 30, 30]], np.float16)]
    shapes = [(256, 320), (256, 320)]
    ours = MultiScaleRoIAlign(names, 7, 2)(features, boxes, shapes)
    theirs = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)(
        OrderedDict((k, torch.from_numpy(v)) for k, v in features.items()), [torch.from_numpy(b) for b in boxes],
        shapes)
    assert ours.dtype == np.float16 and theirs.dtype == torch.float16 and ours.shape == tuple(theirs.shape)
    # edudet pools in float32 and rounds once; torchvision rounds every step to float16 (see roi_align)
    in_float32 = MultiScaleRoIAlign(names, 7, 2)({k: v.astype(np.float32) for k, v in features.items()},
                                                 [b.astype(np.float32) for b in boxes], shapes)
    assert np.allclose(ours.astype(np.float32), in_float32, rtol=2**-10, atol=2**-14)
    assert np.allclose(ours.astype(np.float32), theirs.float().numpy(), atol=0.05)
    assert MultiScaleRoIAlign(names, 7, 2)(features, [np.zeros((0, 4))] * 2, shapes).dtype == np.float16
