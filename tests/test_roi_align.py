"""RoIAlign: hand cases, properties on every backend, parity with torchvision, bad input."""
import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet.ops import roi_align
from helpers import import_torchvision

roi_align_module = importlib.import_module("edudet.ops.roi_align")
BACKENDS = roi_align_module._roi_align.backends
CPU_BACKENDS = [b for b in BACKENDS if b != "cuda"]


def ramp(height=4, width=4, dtype=np.float32):
    """f(y, x) = x + 10 y as a (1, 1, H, W) map: bilinear samples of it are exact, x + 10 y at the sample."""
    y, x = np.mgrid[0:height, 0:width]
    return (x + 10 * y).astype(dtype)[None, None]


def rois(*boxes, batch_index=0, dtype=np.float32):
    return np.array([[batch_index, *b] for b in boxes], dtype=dtype)


# ---------------------------------------------------------------------------------------------------------
# hand cases
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_ramp_aligned_two_by_two(backend):
    # aligned: box (0, 0, 4, 4) -> (-0.5, -0.5, 3.5, 3.5); roi 4, bin 2, 2 samples per bin at offsets
    # 0.5 and 1.5 -> x (and y) in {0, 1} for bin 0 and {2, 3} for bin 1; mean of x + 10 y over a bin:
    # bin (0, 0): 0.5 + 10 * 0.5 = 5.5; (0, 1): 2.5 + 5 = 7.5; (1, 0): 0.5 + 25 = 25.5; (1, 1): 27.5
    out = roi_align(ramp(), rois((0, 0, 4, 4)), 2, sampling_ratio=2, aligned=True, backend=backend)
    np.testing.assert_array_equal(out, [[[[5.5, 7.5], [25.5, 27.5]]]])
    assert out.dtype == np.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_arange_5x5_adaptive_grid(backend):
    fmap = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)  # f(y, x) = x + 5 y
    # not aligned: box (1, 1, 3, 3), roi 2, bin 0.5, grid ceil(2 / 4) = 1 sample at the bin centre:
    # x = 1 + 0.5 pw + 0.25 = 1.25, 1.75, 2.25, 2.75; first row y = 1.25 -> 6.25 + x = 7.5, 8, 8.5, 9
    out = roi_align(fmap, rois((1, 1, 3, 3)), 4, sampling_ratio=0, aligned=False, backend=backend)
    np.testing.assert_allclose(out[0, 0, 0], [7.5, 8, 8.5, 9], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[0, 0, :, 0], [7.5, 10, 12.5, 15], rtol=0, atol=1e-12)  # rows step 0.5 * 5
    # aligned: box -> (0.5, 0.5, 2.5, 2.5): x = 0.75, 1.25, 1.75, 2.25; y = 0.75 -> 3.75 + x = 4.5, 5, 5.5, 6
    out = roi_align(fmap, rois((1, 1, 3, 3)), 4, sampling_ratio=0, aligned=True, backend=backend)
    np.testing.assert_allclose(out[0, 0, 0], [4.5, 5, 5.5, 6], rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_mode_takes_the_largest_sample(backend):
    # same samples as the 5.5 case: bin (0, 0) samples x, y in {0, 1}: the largest is 1 + 10 = 11, etc.
    out = roi_align(ramp(), rois((0, 0, 4, 4)), 2, sampling_ratio=2, aligned=True, pool_mode="max", backend=backend)
    np.testing.assert_array_equal(out, [[[[11, 13], [31, 33]]]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_samples_outside_count_as_zero_and_near_border_reads_the_border(backend):
    ones = np.ones((1, 1, 4, 4), np.float32)
    # box (4, 0, 8, 4), 1 x 2 output, 1 sample per bin (not aligned): samples at x = 5 (> W = 4: outside,
    # reads 0) and x = 7 (outside); y = 2 inside -> both bins 0
    out = roi_align(ones, rois((4, 0, 8, 4)), (1, 2), sampling_ratio=1, backend=backend)
    np.testing.assert_array_equal(out, [[[[0, 0]]]])
    # box (-2, 0, 2, 4), 1 x 2 output: samples at x = -1 (on the limit: clamped to 0, reads 1) and x = 1
    out = roi_align(ones, rois((-2, 0, 2, 4)), (1, 2), sampling_ratio=1, backend=backend)
    np.testing.assert_array_equal(out, [[[[1, 1]]]])
    # box (-4, 0, 4, 4), 1 x 2 output, 2 samples per bin in x: x = -3 and -1 in bin 0 -> (0 + 1) / 2 per row
    out = roi_align(ones, rois((-4, 0, 4, 4)), (1, 2), sampling_ratio=2, backend=backend)
    np.testing.assert_array_equal(out, [[[[0.5, 1]]]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_boxes(backend):
    fmap = ramp(dtype=np.float64)
    # not aligned: a zero-size box at (1, 1) is stretched to 1 x 1: one bin, 1 sample (grid ceil(1/1)) at
    # (1.5, 1.5) -> 1.5 + 15 = 16.5
    out = roi_align(fmap, rois((1, 1, 1, 1)), 1, sampling_ratio=-1, backend=backend)
    np.testing.assert_array_equal(out, [[[[16.5]]]])
    # aligned, adaptive: a zero-size box has grid ceil(0) = 0 samples -> 0
    out = roi_align(fmap, rois((1, 1, 1, 1)), 2, sampling_ratio=-1, aligned=True, backend=backend)
    np.testing.assert_array_equal(out, np.zeros((1, 1, 2, 2)))
    # aligned, 2 x 2 fixed samples: every sample is the point (0.5, 0.5) -> 0.5 + 5 = 5.5
    out = roi_align(fmap, rois((1, 1, 1, 1)), 1, sampling_ratio=2, aligned=True, backend=backend)
    np.testing.assert_array_equal(out, [[[[5.5]]]])


def test_spatial_scale_and_batch_index_pick_the_region():
    fmap = np.stack([ramp()[0], 100 + ramp()[0]])  # image 1 = image 0 + 100
    # box (0, 0, 8, 8) at scale 0.5 is (0, 0, 4, 4) on the map: the 5.5 case again, + 100 on image 1
    out = roi_align(fmap, rois((0, 0, 8, 8), batch_index=1), 2, spatial_scale=0.5, sampling_ratio=2, aligned=True)
    np.testing.assert_array_equal(out, [[[[105.5, 107.5], [125.5, 127.5]]]])
    listed = roi_align(fmap, [np.zeros((0, 4)), np.array([[0, 0, 8, 8]])], 2, 0.5, 2, True)
    np.testing.assert_array_equal(listed, out)


def test_empty_and_dtypes():
    out = roi_align(np.zeros((2, 3, 5, 5), np.float64), np.zeros((0, 5)), (2, 4))
    assert out.shape == (0, 3, 2, 4) and out.dtype == np.float64
    out = roi_align(np.zeros((2, 3, 5, 5), np.float32), [np.zeros((0, 4)), np.zeros((0, 4))], 2)
    assert out.shape == (0, 3, 2, 2) and out.dtype == np.float32
    out = roi_align(np.arange(16).reshape(1, 1, 4, 4), rois((0, 0, 4, 4), dtype=np.float64), 2, 1.0, 2, True)
    assert out.dtype == np.float32  # integer maps compute in float32; boxes follow the map's dtype
    np.testing.assert_array_equal(out, [[[[2.5, 4.5], [10.5, 12.5]]]])  # f = x + 4 y: 0.5 + 2, 2.5 + 2, ...


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("boxes, match", [
    (np.array([[0, 0, 2, 2.0]]), "no batch index"),
    (np.array([[1, 0, 0, 2, 2.0]]), r"batch index\) must hold integers in \[0, 1\)"),
    (np.array([[-1, 0, 0, 2, 2.0]]), "batch index"),
    (np.array([[0.5, 0, 0, 2, 2.0]]), "batch index"),
    (np.array([[0, 0, np.nan, 2, 2.0]]), "NaN or inf"),
    (np.array([[0, 0, 0, np.inf, 2.0]]), "NaN or inf"),
    (np.zeros((2, 6)), r"\(K, 5\)"),
    ([np.zeros((1, 4)), np.zeros((1, 4))], "only 1 images"),
    ([np.zeros((1, 5))], r"boxes\[0\] must have shape \(N, 4\)"),
])
def test_bad_boxes(boxes, match):
    with pytest.raises(ValueError, match=match):
        roi_align(np.zeros((1, 1, 4, 4)), boxes, 2)


def test_bad_arguments():
    fmap, boxes = np.zeros((1, 1, 4, 4)), rois((0, 0, 2, 2))
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, H, W\)"):
        roi_align(np.zeros((1, 4, 4)), boxes, 2)
    with pytest.raises(ValueError, match="H >= 1"):
        roi_align(np.zeros((1, 1, 0, 4)), boxes, 2)
    with pytest.raises(TypeError, match="input must have a real numeric dtype"):
        roi_align(np.zeros((1, 1, 4, 4), bool), boxes, 2)
    with pytest.raises(ValueError, match=r"output_size\[0\] must be >= 1"):
        roi_align(fmap, boxes, 0)
    with pytest.raises(ValueError, match=r"output_size\[1\] must be >= 1"):
        roi_align(fmap, boxes, (2, -1))
    with pytest.raises(ValueError, match="output_size must be an int or a pair"):
        roi_align(fmap, boxes, (2, 2, 2))
    with pytest.raises(ValueError, match="spatial_scale must be > 0"):
        roi_align(fmap, boxes, 2, spatial_scale=-0.25)
    with pytest.raises(ValueError, match="sampling_ratio must be an integer"):
        roi_align(fmap, boxes, 2, sampling_ratio=1.5)
    with pytest.raises(TypeError, match="aligned must be a bool"):
        roi_align(fmap, boxes, 2, aligned="yes")
    with pytest.raises(ValueError, match="pool_mode must be 'avg' or 'max'"):
        roi_align(fmap, boxes, 2, pool_mode="sum")
    with pytest.raises(ValueError, match="not usable here"):
        roi_align(fmap, boxes, 2, backend="tpu")
    with pytest.raises(ValueError, match="more than"):
        roi_align(fmap, rois((0, 0, 1e9, 1e9)), 1, sampling_ratio=0)


# ---------------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------------
def random_rois(rng, k, num_images, height, width, spread=2.0):
    """Boxes (scale 1) anywhere from `spread` pixels outside the map to inside, some of zero size."""
    xy = rng.uniform(-spread, [width + spread, height + spread], size=(k, 2))
    wh = rng.uniform(0, max(height, width), size=(k, 2)) * (rng.uniform(size=(k, 1)) > 0.1)
    return np.concatenate([rng.integers(0, num_images, (k, 1)), xy, xy + wh], axis=1)


@given(seed=st.integers(0, 2**32 - 1), aligned=st.booleans(), sampling_ratio=st.sampled_from([-1, 0, 1, 2, 3]),
       value=st.floats(-100, 100), dtype=st.sampled_from([np.float32, np.float64]))
def test_constant_map_gives_the_constant_inside(seed, aligned, sampling_ratio, value, dtype):
    rng = np.random.default_rng(seed)
    fmap = np.full((1, 2, 6, 7), value, dtype=dtype)
    x1, y1 = rng.uniform(0, [6, 5], size=(4, 2)).T
    x2, y2 = rng.uniform(x1, 6), rng.uniform(y1, 5)  # inside [0, W - 1] x [0, H - 1]: no sample leaves the map
    boxes = np.stack([np.zeros(4), x1, y1, x2, y2], axis=1)
    out = roi_align(fmap, boxes, (3, 2), 1.0, sampling_ratio, aligned, backend="numpy")
    if aligned and sampling_ratio <= 0:  # boxes thinner than a bin row have no samples -> 0
        empty = ((y2 - y1) <= 0) | ((x2 - x1) <= 0)
        out = out[~empty]
    np.testing.assert_allclose(out, value, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)


@given(seed=st.integers(0, 2**32 - 1), aligned=st.booleans(), sampling_ratio=st.sampled_from([-1, 0, 2]),
       pool_mode=st.sampled_from(["avg", "max"]), dtype=st.sampled_from([np.float32, np.float64]))
def test_every_cpu_backend_equals_the_reference(seed, aligned, sampling_ratio, pool_mode, dtype):
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    boxes = random_rois(rng, 12, 2, 14, 18).astype(dtype)
    expected = roi_align(fmap, boxes, (3, 4), 0.5, sampling_ratio, aligned, pool_mode, backend="numpy")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for backend in CPU_BACKENDS:
        out = roi_align(fmap, boxes, (3, 4), 0.5, sampling_ratio, aligned, pool_mode, backend=backend)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, expected, rtol=tol, atol=tol, err_msg=backend)


@pytest.mark.skipif("cuda" not in BACKENDS, reason="numba.cuda not usable")
@given(seed=st.integers(0, 2**32 - 1), aligned=st.booleans(), sampling_ratio=st.sampled_from([-1, 2]),
       pool_mode=st.sampled_from(["avg", "max"]))
def test_cuda_equals_the_reference(seed, aligned, sampling_ratio, pool_mode):
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((2, 2, 4, 5)).astype(np.float32)  # tiny: the simulator is slow
    boxes = random_rois(rng, 3, 2, 4, 5).astype(np.float32)
    args = (fmap, boxes, 2, 1.0, sampling_ratio, aligned, pool_mode)
    np.testing.assert_allclose(roi_align(*args, backend="cuda"), roi_align(*args, backend="numpy"),
                               rtol=1e-5, atol=1e-5)


@given(seed=st.integers(0, 2**32 - 1), shift=st.tuples(st.integers(0, 3), st.integers(0, 3)),
       aligned=st.booleans(), sampling_ratio=st.sampled_from([-1, 2]))
def test_translation_by_whole_pixels(seed, shift, aligned, sampling_ratio):
    rng = np.random.default_rng(seed)
    dx, dy = shift
    fmap = rng.standard_normal((1, 2, 8, 9))
    shifted = np.zeros((1, 2, 8 + dy, 9 + dx))
    shifted[..., dy:, dx:] = fmap  # shifted[y + dy, x + dx] = fmap[y, x]
    # boxes at least one pixel inside the top-left edges: no sample is clamped there, so both maps agree
    x1, y1 = rng.uniform(1, [8, 7], size=(5, 2)).T
    boxes = np.stack([np.zeros(5), x1, y1, x1 + rng.uniform(0, 6, 5), y1 + rng.uniform(0, 6, 5)], axis=1)
    to_image = np.array([1, 2, 2, 2, 2])  # spatial_scale 0.5: 2 image px per feature px
    moved = boxes + [0, dx, dy, dx, dy]
    out = roi_align(fmap, boxes * to_image, (2, 3), 0.5, sampling_ratio, aligned)
    out_moved = roi_align(shifted, moved * to_image, (2, 3), 0.5, sampling_ratio, aligned)
    np.testing.assert_allclose(out_moved, out, rtol=1e-9, atol=1e-9)


@given(seed=st.integers(0, 2**32 - 1), aligned=st.booleans(), sampling_ratio=st.sampled_from([-1, 2]))
def test_max_mode_bounds_the_average(seed, aligned, sampling_ratio):
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((1, 2, 6, 6))
    boxes = random_rois(rng, 6, 1, 6, 6)
    avg = roi_align(fmap, boxes, 2, 1.0, sampling_ratio, aligned, "avg")
    top = roi_align(fmap, boxes, 2, 1.0, sampling_ratio, aligned, "max")
    assert np.all(top >= avg - 1e-12)


# ---------------------------------------------------------------------------------------------------------
# parity with torchvision
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 2])
def test_parity_with_torchvision(dtype, aligned, sampling_ratio):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng([int(aligned), sampling_ratio + 1, np.dtype(dtype).itemsize])
    fmap = rng.standard_normal((2, 3, 15, 19)).astype(dtype)
    # scale 1/4: image 60 x 76; boxes partly and wholly outside, zero-size ones, sides up to 70 px
    boxes = random_rois(rng, 60, 2, 60, 76, spread=30).astype(dtype)
    boxes[:3, 3:] = boxes[:3, 1:3]  # zero-size
    expected = torchvision.ops.roi_align(torch.from_numpy(fmap), torch.from_numpy(boxes), (5, 4), 0.25,
                                         sampling_ratio, aligned).numpy()
    per_image = [boxes[boxes[:, 0] == i, 1:] for i in range(2)]
    expected_listed = torchvision.ops.roi_align(torch.from_numpy(fmap), [torch.from_numpy(b) for b in per_image],
                                                (5, 4), 0.25, sampling_ratio, aligned).numpy()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for backend in CPU_BACKENDS:
        out = roi_align(fmap, boxes, (5, 4), 0.25, sampling_ratio, aligned, backend=backend)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, expected, rtol=0, atol=tol, err_msg=backend)
        listed = roi_align(fmap, per_image, (5, 4), 0.25, sampling_ratio, aligned, backend=backend)
        np.testing.assert_allclose(listed, expected_listed, rtol=0, atol=tol, err_msg=backend)


def test_parity_on_a_big_adaptive_case():
    # large RoIs: adaptive grids of up to ~15 x 15 samples per bin, summed in different orders by each backend
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(7)
    fmap = rng.standard_normal((1, 4, 40, 50)).astype(np.float32)
    boxes = random_rois(rng, 30, 1, 160, 200, spread=20).astype(np.float32)
    expected = torchvision.ops.roi_align(torch.from_numpy(fmap), torch.from_numpy(boxes), 7, 0.25, -1, True).numpy()
    for backend in CPU_BACKENDS:
        out = roi_align(fmap, boxes, 7, 0.25, -1, True, backend=backend)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5, err_msg=backend)
