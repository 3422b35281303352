"""edudet.data.shapes: hand-drawn shapes first, then properties of generated images, then bad arguments."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edudet
from edudet.data import CLASSES, ShapesDataset, make_image
from edudet.data.shapes import _rasterise, _shape_area, _tight_boxes, _visible_masks

SIZE = 32
CENTRES = np.arange(SIZE, dtype=np.float32) + np.float32(0.5)
X = np.broadcast_to(CENTRES[None, :], (SIZE, SIZE))
Y = np.broadcast_to(CENTRES[:, None], (SIZE, SIZE))


# ---------------------------------------------------------------------------------------------------------
# hand-computed cases
# ---------------------------------------------------------------------------------------------------------

def test_classes_follow_torchvision_background_convention():
    assert CLASSES == ("__background__", "circle", "square", "triangle")
    assert ShapesDataset.CLASSES is CLASSES
    assert edudet.data.ShapesDataset is ShapesDataset  # reachable through the lazy top-level package


def test_circle_by_hand():
    # centre (16, 16), radius 4: pixel centres sit at offsets +-0.5, +-1.5, +-2.5, +-3.5 from the centre.
    # per quadrant, a^2 + b^2 <= 16: a=0.5 -> b<=3.97: 4; a=1.5 -> b<=3.71: 4; a=2.5 -> b<=3.12: 3;
    # a=3.5 -> b<=1.94: 2; 13 per quadrant, 52 pixels (pi * 16 = 50.3)
    mask = _rasterise(1, (16.0, 16.0, 4.0, 0.0), X, Y)
    assert mask.sum() == 52
    np.testing.assert_array_equal(_tight_boxes(mask[None].astype(np.uint8)), [[12, 12, 20, 20]])


def test_axis_aligned_square_by_hand():
    # circumradius 4*sqrt(2) at angle -pi/4 puts the side normals at 0, 90, 180, 270 degrees and the sides
    # at the inradius 4: |dx| <= 4 and |dy| <= 4 holds for offsets +-0.5 .. +-3.5, 8 x 8 = 64 pixels
    mask = _rasterise(2, (16.0, 16.0, 4.0 * np.sqrt(2.0), -np.pi / 4), X, Y)
    assert mask.sum() == 64
    assert mask[12:20, 12:20].all()
    np.testing.assert_array_equal(_tight_boxes(mask[None].astype(np.uint8)), [[12, 12, 20, 20]])


def test_triangle_by_hand():
    # however it is rotated, an equilateral triangle of circumradius 8 holds its centre, stays within 8 of
    # it, and covers about its area (3 sqrt(3) / 4) 8^2 = 83.1 pixels: the count can differ from the area by
    # at most the pixels its perimeter (3 sqrt(3) 8 = 41.6) crosses
    for angle in (0.0, 0.7, 2.0):
        mask = _rasterise(3, (16.0, 16.0, 8.0, angle), X, Y)
        assert mask[15, 15] and mask[16, 16]
        assert np.all(((X - 16) ** 2 + (Y - 16) ** 2)[mask] <= 64)
        assert abs(mask.sum() - 3 * np.sqrt(3) / 4 * 64) < 42


def test_shape_areas_by_hand():
    # circle pi r^2; square (circumradius r) side r*sqrt(2): 2 r^2; equilateral triangle (3 sqrt(3) / 4) r^2
    assert _shape_area(1, (0, 0, 2.0, 0)) == pytest.approx(4 * np.pi)
    assert _shape_area(2, (0, 0, 2.0, 0)) == pytest.approx(8.0)
    assert _shape_area(3, (0, 0, 2.0, 0)) == pytest.approx(3 * np.sqrt(3))


def test_occlusion_by_hand():
    square = (2, (16.0, 16.0, 4.0 * np.sqrt(2.0), -np.pi / 4))  # pixels 12..19 x 12..19
    # a circle covered on its left half by the square on top: 26 of its 52 pixels show (50% hidden: kept)
    half_hidden_circle = (1, (20.0, 16.0, 4.0, 0.0))
    kept = _visible_masks([half_hidden_circle, square], SIZE, max_hidden=0.6)
    assert [index for index, _ in kept] == [0, 1]
    circle_visible = kept[0][1]
    assert circle_visible.sum() == 26  # the columns 20..23 of the circle: 13 + 13 pixels
    assert not (circle_visible & kept[1][1]).any()  # visible parts never overlap
    # the box of the visible part, not of the whole circle: x from 20 (first visible column) to 24
    np.testing.assert_array_equal(_tight_boxes(circle_visible[None].astype(np.uint8)), [[20, 12, 24, 20]])
    # with at most 40% hidden allowed the same circle is dropped, and nothing else changes
    kept = _visible_masks([half_hidden_circle, square], SIZE, max_hidden=0.4)
    assert [index for index, _ in kept] == [1] and kept[0][1].sum() == 64
    # a circle entirely under the square is never painted; a shape on top is never hidden
    kept = _visible_masks([(1, (16.0, 16.0, 2.0, 0.0)), square], SIZE, max_hidden=0.6)
    assert [index for index, _ in kept] == [1]


def test_dropping_a_shape_uncovers_the_one_below():
    # bottom: circle centre (8, 16) r 4, columns 4..11, rows 12..19, 52 pixels
    # middle: square columns 6..13, rows 12..19 (inradius 4): alone it would hide 42 of the circle's 52 pixels
    # top: square columns 9..20, rows 10..21 (inradius 6): shows 3 of the middle's 8 columns, 24 of 64
    # pixels < 40%, so the middle square is dropped (never painted) and the circle is judged against the top
    # one alone: it loses columns 9, 10, 11 (8 + 6 + 4 = 18 pixels) and keeps 34 of 52 (65% visible)
    circle = (1, (8.0, 16.0, 4.0, 0.0))
    middle = (2, (10.0, 16.0, 4.0 * np.sqrt(2.0), -np.pi / 4))
    top = (2, (15.0, 16.0, 6.0 * np.sqrt(2.0), -np.pi / 4))
    kept = _visible_masks([circle, middle, top], SIZE, max_hidden=0.6)
    assert [index for index, _ in kept] == [0, 2]
    assert kept[0][1].sum() == 34 and kept[1][1].sum() == 144  # the top square shows whole: 12 x 12
    np.testing.assert_array_equal(_tight_boxes(kept[0][1][None].astype(np.uint8)), [[4, 12, 9, 20]])


# ---------------------------------------------------------------------------------------------------------
# properties of generated images
# ---------------------------------------------------------------------------------------------------------

def check_target(image, target, image_size):
    assert image.shape == (image_size, image_size, 3) and image.dtype == np.uint8
    boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
    k = len(labels)
    assert boxes.shape == (k, 4) and boxes.dtype == np.float32
    assert labels.shape == (k,) and labels.dtype == np.int64
    assert masks.shape == (k, image_size, image_size) and masks.dtype == np.uint8
    assert np.all((labels >= 1) & (labels <= 3))
    assert set(np.unique(masks)) <= {0, 1}
    assert np.all(masks.sum(axis=0) <= 1)  # visible parts never overlap
    for box, mask in zip(boxes, masks):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert rows.size > 0
        # tight: the first pixel column is x1, the last is x2 - 1 (continuous coordinates), same for rows
        np.testing.assert_array_equal(box, [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        assert np.all((box >= 0) & (box <= image_size)) and box[2] > box[0] and box[3] > box[1]
        # the mask is what was painted: one flat colour plus a little noise (std 4, clipped at 0 and 255),
        # so no pixel strays 7.5 std from the median colour (background and other shapes would)
        pixels = image[mask.astype(bool)].astype(np.float64)
        assert np.abs(pixels - np.median(pixels, axis=0)).max() <= 30


def test_dataset_items():
    dataset = ShapesDataset(6, seed=3)
    assert len(dataset) == 6 and "num_images=6" in repr(dataset)
    counts = []
    for image, target in dataset:  # iteration stops at IndexError
        check_target(image, target, 256)
        counts.append(len(target["labels"]))
    assert len(counts) == 6 and max(counts) >= 3


def test_determinism_by_index():
    dataset = ShapesDataset(5, image_size=64, seed=7)
    image, target = dataset[3]
    again_image, again_target = ShapesDataset(5, image_size=64, seed=7)[3]
    remade_image, remade_target = make_image((7, 3), image_size=64)
    for other_image, other_target in ((again_image, again_target), (remade_image, remade_target)):
        np.testing.assert_array_equal(image, other_image)
        for key in ("boxes", "labels", "masks"):
            np.testing.assert_array_equal(target[key], other_target[key])
    np.testing.assert_array_equal(dataset[-2][0], image)  # negative indices count from the end
    assert not np.array_equal(dataset[2][0], image)  # another index, another image
    assert not np.array_equal(ShapesDataset(5, image_size=64, seed=8)[3][0], image)  # another seed too


@given(seed=st.integers(0, 2**32), image_size=st.sampled_from([32, 48, 64]),
       max_hidden=st.floats(0.0, 0.95))
def test_any_seed_gives_consistent_targets(seed, image_size, max_hidden):
    image, target = make_image(seed, image_size=image_size, max_hidden=max_hidden)
    check_target(image, target, image_size)


def test_object_count_bounds():
    counts = [len(make_image(s, image_size=64, min_objects=1, max_objects=2)[1]["labels"]) for s in range(20)]
    assert max(counts) <= 2
    counts = [len(make_image(s, min_objects=12, max_objects=12)[1]["labels"]) for s in range(10)]
    assert max(counts) <= 12 and min(counts) >= 5  # hidden shapes are dropped, but most of 12 survive


def test_all_classes_and_sizes_appear():
    labels, sides = [], []
    for i in range(10):
        _, target = make_image(i)
        labels.extend(target["labels"])
        sides.extend((target["boxes"][:, 2:] - target["boxes"][:, :2]).max(axis=1))
    assert set(labels) == {1, 2, 3}
    assert min(sides) < 16 and max(sides) > 60  # several sizes, small and large


# ---------------------------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_images": -1}, "num_images"),
        ({"num_images": 2.5}, "num_images"),
        ({"num_images": 3, "image_size": 16}, "image_size"),
        ({"num_images": 3, "seed": -1}, "seed"),
        ({"num_images": 3, "min_objects": 0}, "min_objects"),
        ({"num_images": 3, "min_objects": 5, "max_objects": 4}, "min_objects"),
        ({"num_images": 3, "max_hidden": 1.0}, "max_hidden"),
        ({"num_images": 3, "max_hidden": -0.1}, "max_hidden"),
        ({"num_images": 3, "max_hidden": float("nan")}, "max_hidden"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShapesDataset(**kwargs)


def test_bad_make_image_arguments():
    with pytest.raises(ValueError, match="seed"):
        make_image(-3)
    with pytest.raises(ValueError, match="seed"):
        make_image(())
    with pytest.raises(ValueError, match="seed"):
        make_image((1, 2.5))
    with pytest.raises(ValueError, match="image_size"):
        make_image(0, image_size=0)
    with pytest.raises(TypeError, match="seed"):
        make_image("zero")


def test_bad_index():
    dataset = ShapesDataset(3, image_size=32)
    with pytest.raises(IndexError, match="3 images"):
        dataset[3]
    with pytest.raises(IndexError):
        dataset[-4]
    with pytest.raises(TypeError, match="index"):
        dataset[1.0]
    assert len(ShapesDataset(0)) == 0 and list(ShapesDataset(0)) == []


# issue 12: integer arguments given NaN, inf, 2**64 or a 0-d array: a named error, never a raw NumPy one
@pytest.mark.parametrize("kwargs, match", [
    ({"num_images": float("nan")}, "num_images"),
    ({"num_images": float("inf")}, "num_images"),
    ({"num_images": 2**64}, "num_images"),
    ({"num_images": 3, "image_size": float("nan")}, "image_size"),
    ({"num_images": 3, "seed": 2**64}, "seed"),
    ({"num_images": 3, "seed": float("inf")}, "seed"),
    ({"num_images": 3, "max_objects": 2**70}, "max_objects"),
])
def test_non_finite_and_huge_integers_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShapesDataset(**kwargs)


def test_zero_d_arrays_are_accepted():
    dataset = ShapesDataset(np.array(2), image_size=np.array(32), seed=np.int64(4))
    assert len(dataset) == 2 and dataset.image_size == 32 and type(dataset.num_images) is int
    image, _ = dataset[np.int64(1)]
    np.testing.assert_array_equal(image, make_image((4, 1), image_size=32)[0])


def test_sizes_that_cannot_fit_are_refused_before_allocating():
    # 10**6 x 10**6 x 3 float32 = 1.1e4 GiB
    with pytest.raises(ValueError, match="image_size.*GiB"):
        make_image(0, image_size=10**6)
    # 10**9 masks of 64 x 64 bytes = 3815 GiB
    with pytest.raises(ValueError, match="max_objects.*GiB"):
        make_image(0, image_size=64, max_objects=10**9)
