"""edudet.models.transform: normalise, resize, batch, and boxes back to the original image."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet.models.transform import GeneralizedRCNNTransform, as_image_list, resize_boxes
from tests.helpers import import_torchvision


# ---- hand cases -----------------------------------------------------------------------------------
def test_resized_size_hand():
    t = GeneralizedRCNNTransform(min_size=800, max_size=1333)
    # 480 x 640: s = min(800 / 480, 1333 / 640) = min(1.6667, 2.0828) -> 800 x floor(1066.67) = 1066
    assert t.resized_size(480, 640) == (800, 1066)
    # 100 x 1000 (very wide): s = min(8, 1.333) = 1.333 -> floor(133.3) = 133 x 1333
    assert t.resized_size(100, 1000) == (133, 1333)


def test_batch_pads_to_multiple_of_32_hand():
    t = GeneralizedRCNNTransform(min_size=64, max_size=1000)
    images = [np.full((3, 48, 64), 0.5, np.float32), np.full((3, 60, 40), 0.5, np.float32)]
    batch, sizes, originals = t(images)
    # image 0: s = 64 / 48 -> 64 x 85; image 1: s = 64 / 40 -> 96 x 64; batch: ceil to 32 of (96, 85) = (96, 96)
    assert sizes == [(64, 85), (96, 64)] and originals == [(48, 64), (60, 40)]
    assert batch.shape == (2, 3, 96, 96) and batch.dtype == np.float32
    # normalised 0.5 in channel 0: (0.5 - 0.485) / 0.229 = 0.0655; padding stays 0
    np.testing.assert_allclose(batch[0, 0, 0, 0], (0.5 - 0.485) / 0.229, rtol=1e-6)
    assert (batch[0, :, 64:] == 0).all() and (batch[1, :, :, 64:] == 0).all()


def test_resize_boxes_hand():
    # resized 320 x 426 -> original 300 x 400: x * 400/426, y * 300/320
    boxes = np.array([[42.6, 32.0, 426.0, 320.0]], np.float32)
    np.testing.assert_allclose(resize_boxes(boxes, (320, 426), (300, 400)), [[40.0, 30.0, 400.0, 300.0]], rtol=1e-6)


def test_uint8_hwc_is_scaled():
    image = np.zeros((4, 5, 3), np.uint8)
    image[..., 1] = 255
    (out,) = as_image_list([image])
    assert out.shape == (3, 4, 5) and out.dtype == np.float32
    assert out[1].min() == 1.0 and out[0].max() == 0.0


# ---- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("images,error,match", [
    ([], ValueError, "empty"),
    ([np.zeros((4, 5), np.float32)], ValueError, r"images\[0\] must be \(3, H, W\)"),
    ([np.zeros((1, 4, 5), np.float32)], ValueError, "3 channels"),
    ([np.zeros((4, 5, 4), np.uint8)], ValueError, r"\(H, W, 3\)"),
    ([np.full((3, 4, 5), np.nan, np.float32)], ValueError, "NaN"),
    ([np.zeros((3, 4, 5), bool)], TypeError, "dtype"),
    ([np.zeros((3, 4, 5), np.int32)], TypeError, "integer"),
    ("image.png", TypeError, "list"),
])
def test_bad_images(images, error, match):
    with pytest.raises(error, match=match):
        as_image_list(images)


def test_bad_sizes():
    with pytest.raises(ValueError, match="min_size"):
        GeneralizedRCNNTransform(min_size=0)
    with pytest.raises(ValueError, match="image_std"):
        GeneralizedRCNNTransform(image_std=(0.2, 0.0, 0.2))


# ---- properties -----------------------------------------------------------------------------------
@given(st.integers(8, 300), st.integers(8, 300), st.integers(16, 96), st.integers(16, 200))
def test_resized_size_respects_bounds(h, w, min_size, max_size):
    t = GeneralizedRCNNTransform(min_size=min_size, max_size=max_size)
    rh, rw = t.resized_size(h, w)
    # the long side never exceeds max_size; the short side reaches min_size unless max_size stops it
    assert max(rh, rw) <= max_size
    assert min(rh, rw) <= min_size
    assert min(rh, rw) == min_size or max(rh, rw) >= max_size - 1 or min(rh, rw) == min_size - 1


@given(st.integers(8, 200), st.integers(8, 200), st.integers(1, 400), st.integers(1, 400))
def test_resize_boxes_round_trip(h, w, h2, w2):
    boxes = np.array([[1.0, 2.0, 5.0, 7.0]], np.float32)
    back = resize_boxes(resize_boxes(boxes, (h, w), (h2, w2)), (h2, w2), (h, w))
    np.testing.assert_allclose(back, boxes, rtol=1e-5)


# ---- parity with torchvision ----------------------------------------------------------------------
def _torchvision_batch(torch, images, min_size, max_size, threads=2):
    """torchvision's GeneralizedRCNNTransform on `images`, torch on `threads` threads: (batch as NumPy, image
    sizes as (H, W) tuples, the torchvision transform, its ImageList)."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform as TVTransform

    tv = TVTransform(min_size, max_size, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # import_torchvision pins 1; torch's default is one per core
    try:
        with torch.no_grad():
            image_list, _ = tv([torch.from_numpy(i) for i in images])
    finally:
        torch.set_num_threads(before)
    return image_list.tensors.numpy(), [tuple(s) for s in image_list.image_sizes], tv, image_list


@pytest.mark.parametrize("shapes", [[(300, 400)], [(375, 500), (200, 333)], [(64, 48)]])
def test_transform_matches_torchvision(shapes):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(len(shapes))
    images = [rng.random((3, h, w)).astype(np.float32) for h, w in shapes]
    expected, expected_sizes, tv, image_list = _torchvision_batch(torch, images, 320, 512)
    batch, sizes, _ = GeneralizedRCNNTransform(320, 512)(images)
    assert sizes == expected_sizes
    np.testing.assert_array_equal(batch, expected)  # bit for bit (layers.interpolate_bilinear)
    boxes = rng.uniform(0, 300, (5, 4)).astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]
    expected = tv.postprocess([{"boxes": torch.from_numpy(boxes)}], image_list.image_sizes, shapes)[0]["boxes"]
    np.testing.assert_array_equal(resize_boxes(boxes, sizes[0], shapes[0]), expected.numpy())


@pytest.mark.parametrize("shape,min_size,resized", [
    ((20, 30), 64, (64, 96)),  # s = 64 / 20 = 3.2: 64 x 96, 160 > 128: torch's separable kernel
    ((20, 30), 32, (32, 48)),  # s = 1.6: 32 + 48 <= 128: its four-corner kernel
    ((64, 48), 32, (42, 32)),  # s = 32 / 48: floor(42.67) = 42, downsampled, four corners
    ((9, 9), 40, (40, 40)),    # s = 4.444: 80, four corners
    ((7, 50), 32, (32, 228)),  # s = 32 / 7 = 4.571: floor(228.57) = 228, separable
    ((5, 3), 64, (106, 64)),   # s = 21.33: floor(106.67) = 106, 170: separable
])
def test_transform_on_small_images_matches_torchvision(shape, min_size, resized):
    torch, torchvision = import_torchvision()
    images = [np.random.default_rng(list(shape)).random((3, *shape)).astype(np.float32)]
    batch, sizes, _ = GeneralizedRCNNTransform(min_size, 1000)(images)
    assert sizes == [resized]
    expected, expected_sizes, _, _ = _torchvision_batch(torch, images, min_size, 1000)
    assert expected_sizes == sizes
    np.testing.assert_array_equal(batch, expected)
    if sum(resized) <= 128:  # the four-corner kernel runs on any thread count: torch on one thread agrees too
        np.testing.assert_array_equal(batch, _torchvision_batch(torch, images, min_size, 1000, threads=1)[0])


def test_transform_matches_torch_on_several_threads_not_one():
    # torch resizes a 3-channel image with its four-corner kernel on one thread and its separable one on
    # several, for outputs above 128 pixels (H + W): the transform reproduces several (torch's default on a
    # multi-core machine); layers.interpolate_bilinear(single_thread=True) gives the other
    torch, torchvision = import_torchvision()
    from edudet.models.layers import interpolate_bilinear

    images = [np.random.default_rng(5).random((3, 40, 60)).astype(np.float32)]
    transform = GeneralizedRCNNTransform(96, 1000)
    batch, sizes, _ = transform(images)
    several = _torchvision_batch(torch, images, 96, 1000, threads=2)[0]
    one = _torchvision_batch(torch, images, 96, 1000, threads=1)[0]
    np.testing.assert_array_equal(batch, several)
    assert (batch != one).any()
    single = interpolate_bilinear(transform.normalize(images[0]), sizes[0], single_thread=True)
    np.testing.assert_array_equal(single, one[0, :, : sizes[0][0], : sizes[0][1]])


# ---- issue 12: thin images, out-of-range float images, named integer arguments -----------------------------
@pytest.mark.parametrize("shape,resized", [
    # (3, 1, 10000): s = min(800 / 1, 1333 / 10000) = 0.1333 -> floor(1 x 0.1333) = 0 rows
    ((3, 1, 10000), "0 x 1333"),
    # (3, 6000, 3): s = min(800 / 3, 1333 / 6000) = 0.2222 -> floor(3 x 0.2222) = 0 columns
    ((3, 6000, 3), "1333 x 0"),
])
def test_too_thin_image_is_refused_by_name(shape, resized):
    t = GeneralizedRCNNTransform(min_size=800, max_size=1333)
    images = [np.full((3, 32, 32), 0.5, np.float32), np.zeros(shape, np.float32)]
    with pytest.raises(ValueError, match=rf"images\[1\] of {shape[1]} x {shape[2]} pixels would be resized to "
                                         rf"{resized}"):
        t(images)


def test_thin_image_refusal_matches_torchvision():
    torch, torchvision = import_torchvision()
    from torchvision.models.detection.transform import GeneralizedRCNNTransform as TorchTransform

    theirs = TorchTransform(800, 1333, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()
    with pytest.raises(RuntimeError, match="greater than 0"):  # torchvision cannot resize it either
        theirs([torch.zeros(3, 1, 10000)])
    # a little thicker and both work: (3, 8, 10000): s = 1333 / 10000, floor(8 x 0.1333) = floor(1.066) = 1 row
    ours, sizes, _ = GeneralizedRCNNTransform(800, 1333)([np.zeros((3, 8, 10000), np.float32)])
    image_list, _ = theirs([torch.zeros(3, 8, 10000)])
    assert sizes == [tuple(image_list.image_sizes[0])] == [(1, 1333)]


def test_float_image_above_one_warns():
    with pytest.warns(UserWarning, match=r"images\[0\] is a float image with values up to 255.*divided by 255"):
        as_image_list([np.full((3, 4, 5), 255.0, np.float32)])
    with pytest.warns(UserWarning, match=r"images\[1\].*already normalised"):
        as_image_list([np.zeros((3, 4, 5)), np.full((3, 4, 5), -2.0)])


def test_float_image_in_range_does_not_warn():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_image_list([np.ones((3, 4, 5)), np.zeros((3, 4, 5), np.float32), np.full((3, 4, 5), 1.005)])
        as_image_list([np.full((4, 5, 3), 255, np.uint8)])  # uint8 0-255 is the other accepted form


@pytest.mark.parametrize("keyword,value,error", [
    ("min_size", np.nan, ValueError), ("min_size", 2**64, ValueError), ("max_size", np.inf, ValueError),
    ("max_size", 0, ValueError), ("size_divisible", 1.5, ValueError), ("min_size", "800", TypeError),
])
def test_transform_integer_arguments_are_named(keyword, value, error):
    with pytest.raises(error, match=keyword):
        GeneralizedRCNNTransform(**{keyword: value})


def test_transform_zero_d_and_bad_mean_std():
    t = GeneralizedRCNNTransform(min_size=np.array(64), max_size=np.int32(100))
    assert (t.min_size, t.max_size) == (64, 100) and type(t.min_size) is int
    with pytest.raises(ValueError, match="image_mean must be finite"):
        GeneralizedRCNNTransform(image_mean=(0.5, np.nan, 0.5))
    with pytest.raises(ValueError, match="image_std must be positive and finite"):
        GeneralizedRCNNTransform(image_std=(0.5, np.inf, 0.5))
