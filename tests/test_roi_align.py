"""RoIAlign: hand cases, properties on every backend, parity with torchvision, bad input."""
import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet.ops import roi_align
from helpers import assert_child_ok, import_torchvision

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


# ---------------------------------------------------------------------------------------------------------
# extreme and non-finite input (issue 12): refused by name at the boundary, never read out of bounds
# ---------------------------------------------------------------------------------------------------------
def test_rois_beyond_the_coordinate_limit_are_refused_in_every_mode_on_every_backend():
    # issue 12, finding 3: +-3e38 (float32) / +-1e308 (float64) rois with sampling_ratio > 0 gave NaN sample
    # positions -> INT64_MIN indices -> reads outside the map (NaN from an all-ones map in max mode). Run in
    # a child: before the fix this read out of bounds
    assert_child_ok("""
        import numpy as np
        from edudet.ops import roi_align
        import importlib
        backends = importlib.import_module("edudet.ops.roi_align")._roi_align.backends
        assert "cuda" in backends, backends
        cases = [
            ("float32 +-3e38", np.float32, [0, -3e38, -3e38, 3e38, 3e38], 1.0),
            ("float64 +-1e308", np.float64, [0, -1e308, -1e308, 1e308, 1e308], 1.0),
            ("float64 just over 1e15", np.float64, [0, 0, 0, 1.0000001e15, 4], 1.0),
            ("float64 1e10 * spatial_scale 1e10", np.float64, [0, 0, 0, 1e10, 1e10], 1e10),
            ("float32 scale 1e300 overflows float32", np.float32, [0, 0, 0, 2, 2], 1e300),
        ]
        for backend in backends:
            for name, dtype, roi, scale in cases:
                for pool_mode in ("avg", "max"):
                    for sampling_ratio in (2, 1, 0, -1):
                        print(backend, name, pool_mode, sampling_ratio, flush=True)
                        try:
                            out = roi_align(np.ones((1, 1, 8, 8), dtype), np.array([roi], dtype), 2, scale,
                                            sampling_ratio, True, pool_mode, backend=backend)
                        except ValueError as err:
                            assert "boxes" in str(err) and ("1e+15" in str(err) or "overflows" in str(err)), err
                        else:
                            raise AssertionError(f"accepted, returned {out.ravel()}")
        print("done")
    """)


@pytest.mark.parametrize("backend", BACKENDS)
def test_coordinates_up_to_the_limit_work(backend):
    # 1e15 is accepted: sample positions stay finite. A (0, 0, 1e15, 4) box, 1 x 2 bins, 1 sample per bin,
    # not aligned: x samples at 2.5e14 and 7.5e14 are outside the 8-px map (count 0), so both bins are 0;
    # a (-1e15, 0, 1e15, 4) box puts its right bin's sample at x = 5e14: also 0, the left at -5e14: 0
    fmap = np.ones((1, 1, 4, 8))
    out = roi_align(fmap, rois((0, 0, 1e15, 4), (-1e15, 0, 1e15, 4), dtype=np.float64), (1, 2), 1.0, 1,
                    backend=backend)
    np.testing.assert_array_equal(out, np.zeros((2, 1, 1, 2)))
    # and a 2e15-wide box with 4 samples per bin: none lands on the map either
    out = roi_align(fmap.astype(np.float32), rois((-1e15, -1e15, 1e15, 1e15)), 1, 1.0, 4, True, "max",
                    backend=backend)
    np.testing.assert_array_equal(out, [[[[0]]]])


def test_sample_positions_never_index_outside_the_map():
    # the plan is where positions become indices: NaN, +-inf and huge positions (from a direct caller that
    # skipped the checks) read nothing; every index lies in [0, size - 1]. Before: NaN -> INT64_MIN
    with np.errstate(invalid="ignore", over="ignore"):
        start = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 2.25], np.float32)
        bin_size = np.array([1, 1, 1, 1e30, 1, np.nan], np.float32)
        axis = roi_align_module._axis_samples(start, bin_size, np.full(6, 2, np.int64), 3, 5, np.float32)
    for index in (axis.low, axis.high):
        assert index.min() >= 0 and index.max() <= 4
    assert np.isfinite(axis.w_low).all() and np.isfinite(axis.w_high).all()
    nonzero = (axis.w_low != 0) | (axis.w_high != 0)
    assert not nonzero[:30].any()  # RoIs 0..4: every sample outside (or NaN) reads nothing


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_a_hand_made_plan_that_reads_outside_is_refused_by_the_kernel(backend):
    # kernels called directly (no public op): a plan with the INT64_MIN index the old plan produced, or an
    # index past the map, raises before any read. In a child: before the fix this read out of bounds
    assert_child_ok(f"""
        import importlib
        import numpy as np
        module = importlib.import_module("edudet.ops.roi_align")
        kernel = module._roi_align.get({backend!r})
        fmap = np.ones((1, 1, 4, 4), np.float32)
        boxes = np.array([[0, 0, 2, 2]], np.float32)
        for what, value in [("low", np.iinfo(np.int64).min), ("high", 4), ("low", -1)]:
            for max_mode in (False, True):
                print(what, value, max_mode, flush=True)
                plan = module.sampling_plan(boxes, 4, 4, (2, 2), 1.0, 2, False)
                getattr(plan.cols, what)[1] = value
                try:
                    kernel(fmap, np.zeros(1, np.int64), plan, max_mode)
                except ValueError as err:
                    assert "plan.cols." + what in str(err), err
                else:
                    raise AssertionError("a plan reading outside the map was accepted")
        print("batch index", flush=True)
        plan = module.sampling_plan(boxes, 4, 4, (2, 2), 1.0, 2, False)
        try:
            kernel(fmap, np.array([3], np.int64), plan, False)
        except ValueError as err:
            assert "batch_index" in str(err), err
        else:
            raise AssertionError("batch index 3 of 1 image was accepted")
    """)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_write_into_a_given_out_and_refuse_a_wrong_one(backend):
    # `out=`: the kernel fills a caller's array (the pooler reuses one between forward passes) with the values it
    # would return, every element: a buffer full of NaN must come back without one, the empty-grid RoI's bins 0.
    # A wrong out (shape, dtype, layout, read-only) is refused by name before any write; in a child, since the
    # kernels write without bounds checks
    assert_child_ok(f"""
        import importlib
        import numpy as np
        module = importlib.import_module("edudet.ops.roi_align")
        kernel = module._roi_align.get({backend!r})
        rng = np.random.default_rng(0)
        fmap = rng.normal(size=(2, 3, 9, 11)).astype(np.float32)
        # the last box has negative size with aligned=True and an adaptive grid: no samples, its bins are 0
        boxes = np.array([[0, 0, 4, 4], [1, 2, 8, 6], [3, 3, 2, 2]], np.float32)
        batch_index = np.array([1, 0, 1], np.int64)
        plan = module.sampling_plan(boxes, 9, 11, (2, 3), 1.0, -1, True)  # adaptive grid: 0 for box 2
        for max_mode in (False, True):
            fresh = kernel(fmap, batch_index, plan, max_mode)
            out = np.full((3, 3, 2, 3), np.nan, np.float32)
            assert kernel(fmap, batch_index, plan, max_mode, out) is out
            np.testing.assert_array_equal(out, fresh)
            assert (out[2] == 0).all() and not np.isnan(out).any()
        for bad in (np.zeros((3, 3, 2, 2), np.float32), np.zeros((3, 3, 2, 3), np.float64),
                    np.zeros((3, 3, 3, 2), np.float32).transpose(0, 1, 3, 2), np.zeros((3, 3, 2, 3), np.float32)):
            if bad.flags.c_contiguous and bad.shape == (3, 3, 2, 3) and bad.dtype == np.float32:
                bad.flags.writeable = False
            try:
                kernel(fmap, batch_index, plan, False, bad)
            except ValueError as err:
                assert "out must be a writable C-contiguous float32 array of shape (3, 3, 2, 3)" in str(err), err
            else:
                raise AssertionError(f"out {{bad.dtype}} {{bad.shape}} accepted")
    """)


def test_cython_fast_path_never_multiplies_padding_by_an_inf():
    # issue 12, finding 4: the unrolled Cython path padded each bin to 4 entries with pixel 0, weight 0:
    # an inf in column 0 made 0 * inf = NaN in bins that never read column 0. Box x 3..7 (aligned: 2.5..6.5)
    # reads columns 2..6 only: every bin is the mean of ones = 1, as the reference and numba say
    if "cython" not in BACKENDS:
        pytest.skip("cython backend not built")
    fmap = np.ones((1, 1, 6, 8), np.float32)
    fmap[0, 0, :, 0] = np.inf
    plan = roi_align_module.sampling_plan(np.array([[3, 1, 7, 5]], np.float32), 6, 8, (2, 2), 1.0, 2, True)
    for backend in BACKENDS:
        out = roi_align_module._roi_align.get(backend)(fmap, np.zeros(1, np.int64), plan, False)
        np.testing.assert_array_equal(out, np.ones((1, 1, 2, 2)), err_msg=backend)


@given(seed=st.integers(0, 2**32 - 1), sampling_ratio=st.sampled_from([1, 2, -1]), aligned=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_cython_average_equals_numba_wherever_numba_is_finite(seed, sampling_ratio, aligned, dtype):
    # kernels called directly on maps with inf and NaN (the public op refuses those): a bin is finite in
    # Cython exactly where it is in Numba, and then the same bits (the same entries summed in the same order);
    # Cython's padding never carries an inf into a bin that does not read it (it may turn a bin's inf to NaN)
    if not {"cython", "numba"} <= set(BACKENDS):
        pytest.skip("needs the cython and numba backends")
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    fmap.ravel()[rng.integers(0, fmap.size, 6)] = rng.choice([np.inf, -np.inf, np.nan], 6)
    boxes = random_rois(rng, 10, 2, 7, 9).astype(dtype)
    plan = roi_align_module.sampling_plan(boxes[:, 1:], 7, 9, (3, 2), 1.0, sampling_ratio, aligned)
    batch_index = boxes[:, 0].astype(np.int64)
    expected = roi_align_module._roi_align.get("numba")(fmap, batch_index, plan, False)
    out = roi_align_module._roi_align.get("cython")(fmap, batch_index, plan, False)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(out), finite)
    np.testing.assert_array_equal(out[finite], expected[finite])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pool_mode", ["avg", "max"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_map_is_refused(backend, pool_mode, bad):
    # issue 12, finding 9: NaN/inf maps were accepted and put NaN in different bins per backend
    fmap = np.ones((2, 1, 4, 4), np.float32)
    fmap[1, 0, 3, 3] = bad  # on image 1, which no box reads: still refused, as the README promises
    with pytest.raises(ValueError, match="input contains NaN or inf"):
        roi_align(fmap, rois((0, 0, 2, 2)), 2, sampling_ratio=-1, pool_mode=pool_mode, backend=backend)


def test_a_finite_map_whose_squares_overflow_is_accepted():
    # the finiteness check is one dot product x . x; 1e20 ** 2 overflows float32, so the exact check decides
    fmap = np.full((1, 1, 4, 4), 1e20, np.float32)
    out = roi_align(fmap, rois((0, 0, 4, 4)), 2, 1.0, 2, True)
    np.testing.assert_allclose(out, 1e20, rtol=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(output_size=np.nan), ValueError, r"output_size\[0\] must be finite"),
    (dict(output_size=(2, np.inf)), ValueError, r"output_size\[1\] must be finite"),
    (dict(output_size=2**64), ValueError, r"output_size\[0\] must fit in a 64-bit integer"),
    (dict(output_size=np.zeros((2, 2))), TypeError, r"output_size\[0\] must be a real number"),
    (dict(sampling_ratio=np.nan), ValueError, "sampling_ratio must be finite"),
    (dict(sampling_ratio=np.inf), ValueError, "sampling_ratio must be finite"),
    (dict(sampling_ratio=2**64), ValueError, "sampling_ratio must fit in a 64-bit integer"),
    (dict(sampling_ratio=10**6), ValueError, "sampling_ratio must be <= 4096"),
    (dict(sampling_ratio=4097), ValueError, "sampling_ratio must be <= 4096"),
    (dict(spatial_scale=np.nan), ValueError, "spatial_scale must be finite"),
    (dict(spatial_scale=np.inf), ValueError, "spatial_scale must be finite"),
    (dict(spatial_scale=10**400), ValueError, "spatial_scale is too large"),
    (dict(pool_mode=np.array(["avg", "max"])), ValueError, "pool_mode must be 'avg' or 'max'"),
    (dict(aligned=np.array([True])), TypeError, "aligned must be a bool"),
])
def test_bad_parameters_are_named(kwargs, error, match):
    # issue 12, finding 13: these raised "cannot convert float NaN to integer", OverflowError, "len() of
    # unsized object" or NumPy's "truth value of an array" instead of naming the argument
    args = dict(input=np.zeros((1, 1, 4, 4)), boxes=rois((0, 0, 2, 2)), output_size=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        roi_align(**args)


def test_zero_d_array_parameters_are_unwrapped():
    fmap, boxes = ramp(), rois((0, 0, 4, 4))
    expected = roi_align(fmap, boxes, 2, 1.0, 2, True)
    out = roi_align(fmap, boxes, np.array(2), np.array(1.0), np.array(2), np.bool_(True))
    np.testing.assert_array_equal(out, expected)  # the 5.5 case: [[5.5, 7.5], [25.5, 27.5]]


def test_the_adaptive_grid_is_bounded():
    # issue 12, finding 14: a bin over 4096 feature pixels would need more than 4096 adaptive samples per axis
    fmap = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="more than 4096 feature pixels per bin"):
        roi_align(fmap, rois((0, 0, 4097, 2)), 1, 1.0, -1)
    # exactly 4096 pixels per bin is allowed: grid ceil(8192 / 2) = 4096 columns of samples, all but those on
    # the 4 x 4 map outside; x = 0.5 + i (i < 4) are inside: the mean over 4096 x 1 samples of zeros is 0
    out = roi_align(fmap, rois((0, 0, 8192, 1)), (1, 2), 1.0, -1, True)
    np.testing.assert_array_equal(out, np.zeros((1, 1, 1, 2)))


def test_sizes_that_cannot_fit_are_refused_before_allocating(monkeypatch):
    validate = importlib.import_module("edudet._validate")
    fmap, boxes = np.zeros((1, 2, 4, 4), np.float32), rois((0, 0, 2, 2))
    # a (1, 2, 2**20, 2**20) float32 output is 8 TiB
    with pytest.raises(ValueError, match=r"roi_align's \(K, C, PH, PW\) output .* 8192.0 GiB"):
        roi_align(fmap, boxes, 2**20)
    # 1 x 2**20 bins of 4096 samples: a 4 MiB output but a plan of 2**32 column samples
    with pytest.raises(ValueError, match="roi_align's sampling plan"):
        roi_align(fmap, boxes, (1, 2**20), 1.0, 4096)
    monkeypatch.setattr(validate, "MAX_ALLOCATION_BYTES", 1000)  # EDUDET_MAX_BYTES, read at import
    with pytest.raises(ValueError, match="EDUDET_MAX_BYTES"):
        roi_align(fmap, boxes, 12)  # 2 * 144 * 4 = 1152 bytes


@given(seed=st.integers(0, 2**32 - 1), pool_mode=st.sampled_from(["avg", "max"]),
       dtype=st.sampled_from([np.float32, np.float64]), max_elements=st.sampled_from([1, 5, 37, 400]))
def test_the_chunked_reference_equals_the_unchunked_one(seed, pool_mode, dtype, max_elements):
    # the NumPy reference splits big RoIs into pieces of bin columns, sample rows and channels; forcing tiny
    # pieces must give the same result: maxima exactly, averages up to rounding (another summation order)
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((2, 3, 9, 11)).astype(dtype)
    boxes = random_rois(rng, 6, 2, 18, 22).astype(dtype)
    plan = roi_align_module.sampling_plan(boxes[:, 1:], 9, 11, (3, 2), 0.5, -1, True)
    batch_index = boxes[:, 0].astype(np.int64)
    whole = roi_align_module.roi_align_numpy(fmap, batch_index, plan, pool_mode == "max", max_elements=10**9)
    pieces = roi_align_module.roi_align_numpy(fmap, batch_index, plan, pool_mode == "max", max_elements=max_elements)
    if pool_mode == "max":
        np.testing.assert_array_equal(pieces, whole)
    else:
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(pieces, whole, rtol=tol, atol=tol)


def test_the_reference_pools_a_huge_box_in_bounded_memory():
    # issue 12, finding 14: the reference built every sample of a RoI at once (7.7 GB for one 20,000-px box
    # with adaptive sampling). A 3,000-px box, 7 x 7 adaptive (grid 429, 9 million samples a channel), pieces
    # of 2**16 samples: its peak stays a few MB, where the whole RoI at once needed ~700 MB
    import tracemalloc

    fmap = np.random.default_rng(0).standard_normal((1, 1, 40, 50)).astype(np.float32)
    plan = roi_align_module.sampling_plan(np.array([[-1000, -1000, 2000, 2000]], np.float32), 40, 50, (7, 7),
                                          1.0, -1, True)
    assert plan.rows.grid[0] == 429
    tracemalloc.start()
    out = roi_align_module.roi_align_numpy(fmap, np.zeros(1, np.int64), plan, False, max_elements=1 << 16)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * 2**20, peak
    np.testing.assert_allclose(out, roi_align(fmap, np.array([[0, -1000, -1000, 2000, 2000]], np.float32), 7,
                                              1.0, -1, True, backend=CPU_BACKENDS[-1]), rtol=1e-4, atol=1e-6)


def test_extreme_finite_rois_give_the_reference_or_the_same_error_on_every_backend():
    # hypothesis in a child (a crash would take the child, not pytest): box corners from subnormal to just
    # over 1e15, float32 and float64, every mode; every backend (CUDA in the simulator, on a tiny map) either
    # equals the NumPy reference or raises the same ValueError
    assert_child_ok("""
        import importlib
        import numpy as np
        from hypothesis import given, settings, HealthCheck, strategies as st
        from edudet.ops import roi_align
        backends = importlib.import_module("edudet.ops.roi_align")._roi_align.backends
        magnitudes = st.sampled_from([0.0, 5e-324, 1e-310, 1e-45, 1e-30, 1e-7, 0.5, 3.0, 7.5, 1e3, 1e7, 3e9,
                                      1e14, 1e15, 1.0000001e15, 1e16, 1e30, 3e38, 1e300])
        coordinate = st.builds(lambda m, sign, jitter: sign * m * jitter, magnitudes, st.sampled_from([-1, 1]),
                               st.sampled_from([1.0, 0.75, 1.5]))

        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(corners=st.lists(st.tuples(coordinate, coordinate, coordinate, coordinate), min_size=1, max_size=3),
               dtype=st.sampled_from([np.float32, np.float64]), sampling_ratio=st.sampled_from([-1, 0, 1, 2, 3]),
               aligned=st.booleans(), pool_mode=st.sampled_from(["avg", "max"]),
               scale=st.sampled_from([1.0, 0.25, 1e-300, 1e10]), seed=st.integers(0, 2**16))
        def check(corners, dtype, sampling_ratio, aligned, pool_mode, scale, seed):
            fmap = np.random.default_rng(seed).standard_normal((1, 2, 3, 4)).astype(dtype)
            with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: refused as such
                boxes = np.array([[0, *c] for c in corners], dtype=np.float64).astype(dtype)
            args = (fmap, boxes, (2, 1), scale, sampling_ratio, aligned, pool_mode)
            print("case", repr(boxes.tolist()), dtype.__name__, args[3:], flush=True)
            outcomes = {}
            for backend in backends:
                try:
                    outcomes[backend] = roi_align(*args, backend=backend)
                except ValueError as err:
                    outcomes[backend] = str(err)
            reference = outcomes["numpy"]
            tol = 1e-4 if dtype == np.float32 else 1e-10
            for backend, outcome in outcomes.items():
                if isinstance(reference, str):
                    assert outcome == reference, (backend, outcome, reference)
                else:
                    assert not isinstance(outcome, str), (backend, outcome)
                    assert outcome.dtype == dtype and np.isfinite(outcome).all(), backend
                    np.testing.assert_allclose(outcome, reference, rtol=tol, atol=tol, err_msg=backend)

        check()
        print("done")
    """)


def test_an_output_too_large_names_output_size():
    from edudet import ops as _ops

    for op in (_ops.roi_align, _ops.roi_pool):
        with pytest.raises(ValueError, match=r"output_size: \(PH, PW\)\) would need 1 x 1 x 1000000000"):
            op(np.ones((1, 1, 8, 8), np.float32), np.array([[0, 0, 0, 4, 4.0]], np.float32), 10**9)


# ------------------------------------------------------------------------------ issue 16: float16 like torchvision

@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_input_gives_float16_computed_in_float32(backend):
    # ramp x + 10 y: one sample per bin at the bin centre. Box [0,0,2,2] in 2 x 2 bins, sampling_ratio 1:
    # centres (0.5, 0.5), (1.5, 0.5), (0.5, 1.5), (1.5, 1.5) -> 0.5 + 5 = 5.5, 6.5, 15.5, 16.5 (exact in float16)
    fmap = ramp(dtype=np.float16)
    out = roi_align(fmap, np.array([[0, 0, 0, 2, 2]], np.float16), 2, sampling_ratio=1, backend=backend)
    assert out.dtype == np.float16
    assert out[0, 0].tolist() == [[5.5, 6.5], [15.5, 16.5]]
    empty = roi_align(fmap, np.zeros((0, 5), np.float16), (3, 2), backend=backend)
    assert empty.shape == (0, 1, 3, 2) and empty.dtype == np.float16
    # the same as float32 arithmetic rounded once to float16
    rng = np.random.default_rng(0)
    fmap = (rng.random((2, 3, 12, 12)) * 10).astype(np.float16)
    rois = np.concatenate([rng.integers(0, 2, (20, 1)), rng.uniform(0, 8, (20, 2)),
                           rng.uniform(8, 24, (20, 2))], axis=1).astype(np.float16)
    out = roi_align(fmap, rois, 3, 0.5, backend=backend)
    expected = roi_align(fmap.astype(np.float32), rois.astype(np.float32), 3, 0.5, backend="numpy")
    # float32 sums in another order may round to the other neighbour float16 (one unit apart, 2**-7 at 2..4)
    assert out.dtype == np.float16 and np.allclose(out.astype(np.float32), expected, rtol=2**-10, atol=2**-14)


def test_float16_parity_with_torchvision():
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(1)
    fmap = (rng.random((2, 3, 16, 16)) * 10).astype(np.float16)
    rois = np.concatenate([rng.integers(0, 2, (30, 1)), rng.uniform(0, 12, (30, 2)),
                           rng.uniform(12, 30, (30, 2))], axis=1).astype(np.float16)
    for aligned in (False, True):
        for sampling_ratio in (2, -1):
            ours = roi_align(fmap, rois, 4, 0.5, sampling_ratio, aligned)
            theirs = torchvision.ops.roi_align(torch.from_numpy(fmap), torch.from_numpy(rois), 4, 0.5,
                                               sampling_ratio, aligned)
            assert theirs.dtype == torch.float16 and ours.dtype == np.float16  # float16 in, float16 out
            # torchvision's CPU kernel rounds every operation to float16; edudet rounds once, at the end, so
            # it equals torchvision's float32 result rounded to float16 and differs from its float16 result by
            # torchvision's own rounding (measured up to ~0.2 on values in [0, 10] with adaptive sampling)
            in_float32 = torchvision.ops.roi_align(torch.from_numpy(fmap).float(), torch.from_numpy(rois).float(),
                                                   4, 0.5, sampling_ratio, aligned).numpy()
            assert np.allclose(ours.astype(np.float32), in_float32, rtol=2**-10, atol=2**-14)
            assert np.allclose(ours.astype(np.float32), theirs.float().numpy(), atol=0.25)
