"""AnchorGenerator and grid_points: hand cases, properties, parity with torchvision's AnchorGenerator."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet import AnchorGenerator, grid_points
from helpers import import_torchvision

FPN_SIZES = ((32,), (64,), (128,), (256,), (512,))
FPN_RATIOS = ((0.5, 1.0, 2.0),) * 5
FPN_SHAPES = [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]


# ---------------------------------------------------------------- hand cases

def test_base_anchors_of_size_32():
    # ratio 0.5: h = 32 * sqrt(.5) = 22.63, w = 32 / sqrt(.5) = 45.25 -> halves 22.63 / 11.31 -> round 23 / 11
    gen = AnchorGenerator(((32,),), ((0.5, 1.0, 2.0),))
    np.testing.assert_array_equal(gen.cell_anchors[0], [[-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23]])
    assert gen.num_anchors_per_location() == [3]


def test_the_15_fpn_base_anchors():
    # torchvision's Faster R-CNN FPN cell anchors: half-sizes s/2 * (1/sqrt(r), sqrt(r)) rounded half to even
    expected = [
        [-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23],
        [-45, -23, 45, 23], [-32, -32, 32, 32], [-23, -45, 23, 45],
        [-91, -45, 91, 45], [-64, -64, 64, 64], [-45, -91, 45, 91],
        [-181, -91, 181, 91], [-128, -128, 128, 128], [-91, -181, 91, 181],
        [-362, -181, 362, 181], [-256, -256, 256, 256], [-181, -362, 181, 362],
    ]
    gen = AnchorGenerator(FPN_SIZES, FPN_RATIOS)
    np.testing.assert_array_equal(np.concatenate(gen.cell_anchors), expected)
    assert gen.num_anchors_per_location() == [3] * 5


def test_rounding_is_half_to_even():
    # size 45, ratio 1: the half-size 22.5 rounds to 22 (torch.round), not 23; size 47: 23.5 -> 24
    gen = AnchorGenerator(((45, 47),), ((1.0,),))
    np.testing.assert_array_equal(gen.cell_anchors[0], [[-22, -22, 22, 22], [-24, -24, 24, 24]])
    unrounded = AnchorGenerator(((45,),), ((1.0,),), rounding=False)
    np.testing.assert_array_equal(unrounded.cell_anchors[0], [[-22.5, -22.5, 22.5, 22.5]])


def test_2x2_map_on_8x8_image():
    # stride 8 // 2 = 4; location (0, 1) shifts by (4, 0): [-23 + 4, -11, 23 + 4, 11] = [-19, -11, 27, 11]
    gen = AnchorGenerator(((32,),), ((0.5, 1.0, 2.0),))
    anchors = gen((8, 8), [(2, 2)])
    assert anchors.shape == (12, 4) and anchors.dtype == np.float32
    np.testing.assert_array_equal(anchors[3], [-19, -11, 27, 11])
    # location (1, 0) (third, row-major) shifts by (0, 4): the square anchor is [-16, -12, 16, 20]
    np.testing.assert_array_equal(anchors[7], [-16, -12, 16, 20])


def test_ceil_shapes_use_integer_strides_like_torchvision():
    # P6 of an 800 x 1216 image is ceil(800 / 64) = 13 x 19: torchvision's stride is 800 // 13 = 61, 1216 // 19 = 64
    gen = AnchorGenerator(((512,),), ((1.0,),))
    anchors = gen((800, 1216), [(13, 19)])
    np.testing.assert_array_equal(anchors[1], [-256 + 64, -256, 256 + 64, 256])
    np.testing.assert_array_equal(anchors[19], [-256, -256 + 61, 256, 256 + 61])
    # explicit (checked) strides use the power of two instead
    np.testing.assert_array_equal(gen((800, 1216), [(13, 19)], strides=[64])[19], [-256, -256 + 64, 256, 256 + 64])


def test_center_offset_moves_anchors_by_half_a_stride():
    gen = AnchorGenerator(((16,),), ((1.0,),), center_offset=0.5)
    np.testing.assert_array_equal(gen((16, 16), [(2, 2)])[:2], [[-4, -4, 12, 12], [4, -4, 20, 12]])


def test_grid_points_offsets():
    # stride 8 on a 2 x 2 map: centres at 4 and 12; offset 0 (torchvision FCOS) at 0 and 8
    np.testing.assert_array_equal(grid_points((16, 16), [(2, 2)])[0], [[4, 4], [12, 4], [4, 12], [12, 12]])
    np.testing.assert_array_equal(grid_points((16, 16), [(2, 2)], offset="fcos")[0], [[4, 4], [12, 4], [4, 12], [12, 12]])
    np.testing.assert_array_equal(grid_points((16, 16), [(2, 2)], offset=0)[0], [[0, 0], [8, 0], [0, 8], [8, 8]])
    # odd stride 3: "fcos" adds 3 // 2 = 1, offset 0.5 adds 1.5
    np.testing.assert_array_equal(grid_points((6, 6), [(2, 2)], offset="fcos")[0], [[1, 1], [4, 1], [1, 4], [4, 4]])
    np.testing.assert_array_equal(grid_points((6, 6), [(2, 2)])[0], [[1.5, 1.5], [4.5, 1.5], [1.5, 4.5], [4.5, 4.5]])


def test_grid_points_per_level_and_float64():
    points = grid_points((64, 64), [(8, 8), (4, 4)], strides=[8, 16], dtype=np.float64)
    assert [p.shape for p in points] == [(64, 2), (16, 2)] and points[1].dtype == np.float64
    np.testing.assert_array_equal(points[1][-1], [56, 56])  # (3 + .5) * 16


# ---------------------------------------------------------------- bad input

def test_stride_misconfiguration_is_refused():
    # mmdetection's featmap_strides=[8, 16, 32, 64] given for P2..P5 (true 4, 8, 16, 32)
    gen = AnchorGenerator(FPN_SIZES[:4], FPN_RATIOS[:4])
    with pytest.raises(ValueError, match=r"level 0: stride 8 was given .* imply stride 4"):
        gen((800, 1216), FPN_SHAPES[:4], strides=[8, 16, 32, 64])
    with pytest.raises(ValueError, match=r"level 0: stride 8 was given .* imply stride 4"):
        grid_points((800, 1216), FPN_SHAPES[:4], strides=[8, 16, 32, 64])


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=(800, 1216), feature_shapes=[(201, 304)]), "not the image shape"),
    (dict(image_size=(800, 1216), feature_shapes=[(200, 152)]), "not the image shape"),  # different k per axis
    (dict(image_size=(800, 1216), feature_shapes=[(200, 304), (100, 152)]), "2 feature maps"),
    (dict(image_size=(0, 1216), feature_shapes=[(200, 304)]), "image_size"),
    (dict(image_size=(800, 1216), feature_shapes=[(200, 304)], strides=[4, 8]), "strides"),
])
def test_bad_shapes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AnchorGenerator(((32,),), ((1.0,),))(**kwargs)


def test_bad_construction():
    with pytest.raises(ValueError, match="sizes"):
        AnchorGenerator(((-32,),), ((1.0,),))
    with pytest.raises(ValueError, match="aspect_ratios"):
        AnchorGenerator(((32,),), ((0.0,),))
    with pytest.raises(ValueError, match="levels"):
        AnchorGenerator(((32,), (64,)), ((1.0,), (1.0,), (1.0,)))
    with pytest.raises(TypeError, match="dtype"):
        AnchorGenerator(((32,),), ((1.0,),))((8, 8), [(2, 2)], dtype=np.int32)
    with pytest.raises(ValueError, match="offset"):
        grid_points((8, 8), [(2, 2)], offset="centre")
    with pytest.raises(TypeError, match="feature_shapes"):
        grid_points((8, 8), np.array([2, 2]))


# ---------------------------------------------------------------- properties

level_k = st.integers(0, 4)


@given(height=st.integers(1, 300), width=st.integers(1, 300), ks=st.lists(level_k, min_size=1, max_size=3),
       ceil=st.booleans(), sizes=st.lists(st.integers(1, 400), min_size=1, max_size=3),
       ratios=st.lists(st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0]), min_size=1, max_size=3))
def test_anchor_layout(height, width, ks, ceil, sizes, ratios):
    # floor(H / 2**k) == 0 is no feature map: 1 is then ceil(H / 2**k), also accepted
    div = lambda n, k: -(-n // 2 ** k) if ceil else max(n // 2 ** k, 1)  # noqa: E731
    shapes = [(div(height, k), div(width, k)) for k in ks]
    gen = AnchorGenerator((tuple(sizes),) * len(ks), (tuple(ratios),) * len(ks))
    anchors = gen((height, width), shapes)
    per_location = len(sizes) * len(ratios)
    assert anchors.shape == (sum(h * w for h, w in shapes) * per_location, 4)
    assert gen.num_anchors_per_level(shapes) == [h * w * per_location for h, w in shapes]
    start = 0
    for (h, w), base in zip(shapes, gen.cell_anchors):
        level = anchors[start:start + h * w * per_location].reshape(h, w, per_location, 4)
        start += h * w * per_location
        # every location holds the base anchors shifted by (j * (W // w), i * (H // h))
        shift = level - base[None, None]
        np.testing.assert_array_equal(shift[..., 0], shift[..., 2])
        np.testing.assert_array_equal(shift[:, :, 0, 0], np.broadcast_to(np.arange(w) * (width // w), (h, w)))
        np.testing.assert_array_equal(shift[:, :, 0, 1], np.broadcast_to((np.arange(h) * (height // h))[:, None], (h, w)))
    np.testing.assert_array_equal(gen((height, width), shapes, dtype=np.float64), anchors)


@given(sizes=st.lists(st.floats(4, 600), min_size=1, max_size=3), ratios=st.lists(st.floats(0.2, 5), min_size=1, max_size=3))
def test_base_anchors_are_centred_with_the_requested_shape(sizes, ratios):
    gen = AnchorGenerator((tuple(sizes),), (tuple(ratios),), rounding=False)
    base = gen.cell_anchors[0].astype(np.float64)
    np.testing.assert_array_equal(base[:, :2], -base[:, 2:])  # zero-centred
    w, h = base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]
    expected_ratio = np.repeat(ratios, len(sizes))  # ratios outer, sizes inner
    np.testing.assert_allclose(h / w, expected_ratio, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(w * h), np.tile(sizes, len(ratios)), rtol=1e-5)


# ---------------------------------------------------------------- parity with torchvision

def _torchvision_anchors(sizes, ratios, image_size, shapes, dtype):
    torch, _ = import_torchvision()
    from torchvision.models.detection.anchor_utils import AnchorGenerator as TvAnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    images = ImageList(torch.zeros(2, 3, *image_size), [image_size, image_size])
    maps = [torch.zeros(2, 1, h, w, dtype=dtype) for h, w in shapes]
    return [a.numpy() for a in TvAnchorGenerator(sizes, ratios)(images, maps)]


def test_parity_fpn_800x1216():
    torch, _ = import_torchvision()
    expected = _torchvision_anchors(FPN_SIZES, FPN_RATIOS, (800, 1216), FPN_SHAPES, torch.float32)
    got = AnchorGenerator(FPN_SIZES, FPN_RATIOS)((800, 1216), FPN_SHAPES, num_images=2)
    assert len(got) == 2 and got[0].shape == (242991, 4)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("seed", range(6))
def test_parity_random(seed):
    torch, _ = import_torchvision()
    rng = np.random.default_rng(seed)
    levels = int(rng.integers(1, 4))
    sizes = tuple(tuple(int(s) for s in rng.integers(1, 500, rng.integers(1, 4))) for _ in range(levels))
    ratios = tuple(tuple(float(r) for r in rng.uniform(0.1, 4, rng.integers(1, 4)).round(3)) for _ in range(levels))
    image_size = (int(rng.integers(16, 700)), int(rng.integers(16, 700)))
    ks = sorted(rng.integers(0, 5, levels))
    shapes = [(-(-image_size[0] // 2 ** k), -(-image_size[1] // 2 ** k)) for k in ks]
    dtype = np.float64 if seed % 2 else np.float32
    expected = _torchvision_anchors(sizes, ratios, image_size, shapes, torch.float64 if seed % 2 else torch.float32)[0]
    got = AnchorGenerator(sizes, ratios)(image_size, shapes, dtype=dtype)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_parity_torchvision_fcos_points():
    # torchvision's FCOS decodes from the centres of its (8, 16, ...)-sized square anchors: offset 0
    torch, _ = import_torchvision()
    sizes, shapes = ((8,), (16,), (32,)), [(100, 152), (50, 76), (25, 38)]
    anchors = np.concatenate(_torchvision_anchors(sizes, ((1.0,),) * 3, (800, 1216), shapes, torch.float32)[:1])
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    np.testing.assert_array_equal(np.concatenate(grid_points((800, 1216), shapes, offset=0)), centres)


# ---------------------------------------------------------------- extreme parameters (issue 12, findings 13, 14)

@pytest.mark.parametrize("call, error, match", [
    (lambda: AnchorGenerator(np.array(32), ((1.0,),)), TypeError, "sizes must be a list"),
    (lambda: AnchorGenerator(((32,),), 1.0), TypeError, "aspect_ratios must be a list"),
    (lambda: AnchorGenerator(((float("nan"),),), ((1.0,),)), ValueError, r"sizes\[0\]\[0\] must be finite"),
    (lambda: AnchorGenerator(((1e20,),), ((1.0,),)), ValueError, "coordinate limit"),
    (lambda: AnchorGenerator(((32,),), ((1e40,),)), ValueError, r"aspect_ratios\[0\]\[0\] must be <="),
    (lambda: AnchorGenerator(((32,),), ((1e-40,),)), ValueError, "coordinate limit"),  # w = 32 / sqrt(0) = inf
    (lambda: AnchorGenerator(((32,),), ((1.0,),), rounding="no"), TypeError, "rounding"),
    (lambda: AnchorGenerator(((32,),), ((1.0,),), center_offset=float("inf")), ValueError, "center_offset"),
    (lambda: AnchorGenerator(((32,),), ((1.0,),))((8, 8), [(2, 2)], num_images=2**64), ValueError, "num_images"),
    (lambda: AnchorGenerator(((32,),), ((1.0,),))((8, 8), [(2, 2)], num_images=np.nan), ValueError, "num_images"),
    (lambda: AnchorGenerator(((32,),), ((1.0,),))((8, np.nan), [(2, 2)]), ValueError, r"image_size\[1\]"),
    (lambda: AnchorGenerator(((32,),), ((1.0,),))(np.array(8), [(2, 2)]), ValueError, "image_size"),
    (lambda: AnchorGenerator(((32,),), ((1.0,),))((8, 8), [(2, 2)], strides=np.array(4)), TypeError, "strides"),
    (lambda: AnchorGenerator(((32,),), ((1.0,),))((8, 8), [(2, 2)], dtype="garbage"), TypeError, "dtype"),
    (lambda: grid_points((8, 8), [(2, 2)], offset=float("nan")), ValueError, "offset must be finite"),
    (lambda: grid_points((8, 2**64), [(2, 2)]), ValueError, r"image_size\[1\] must fit"),
])
def test_bad_parameters_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_array_parameters_are_accepted():
    # numpy arrays and 0-d arrays where lists and numbers are expected
    gen = AnchorGenerator(np.array([[32.0]]), np.array([0.5, 1.0, 2.0]))
    np.testing.assert_array_equal(gen.cell_anchors[0], AnchorGenerator(((32,),), ((0.5, 1.0, 2.0),)).cell_anchors[0])
    anchors = gen((np.int64(8), np.array(8)), [(2, 2)], strides=np.array([4]), num_images=np.array(2))
    assert len(anchors) == 2 and anchors[0].shape == (12, 4)
    assert grid_points((16, 16), [(2, 2)], dtype=np.dtype("float64"))[0].dtype == np.float64


def test_anchor_memory_is_checked_before_allocating():
    # a 2**40-px image with a stride-8 level: (2**37)**2 = 2**74 anchors, refused by name with the sizes (the
    # child-interpreter test in test_targets runs this under a memory cap)
    with pytest.raises(ValueError, match=r"A = 18889465931478580854784 .*GiB"):
        AnchorGenerator(((32,),), ((1.0,),))((2**40, 2**40), [(2**40 // 8, 2**40 // 8)])
