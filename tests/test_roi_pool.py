"""RoIPool: hand cases, properties on every backend, parity with torchvision, bad input."""
import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet.ops import roi_pool
from helpers import assert_child_ok, import_torchvision

roi_pool_module = importlib.import_module("edudet.ops.roi_pool")
BACKENDS = roi_pool_module._roi_pool.backends
CPU_BACKENDS = [b for b in BACKENDS if b != "cuda"]


def grid(height, width, dtype=np.float32):
    """arange(H * W) as a (1, 1, H, W) map: f(y, x) = x + W y, largest at the bottom-right of any window."""
    return np.arange(height * width, dtype=dtype).reshape(1, 1, height, width)


def rois(*boxes, batch_index=0, dtype=np.float32):
    return np.array([[batch_index, *b] for b in boxes], dtype=dtype)


# ---------------------------------------------------------------------------------------------------------
# hand cases
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_arange_4x4_two_by_two(backend):
    # box (0, 0, 3, 3): region 3 - 0 + 1 = 4 pixels per axis, bin 2: bins [0, 2) and [2, 4); the max of
    # each 2 x 2 block of x + 4 y is its bottom-right: (1, 1) -> 5, (3, 1) -> 7, (1, 3) -> 13, (3, 3) -> 15
    out = roi_pool(grid(4, 4), rois((0, 0, 3, 3)), 2, backend=backend)
    np.testing.assert_array_equal(out, [[[[5, 7], [13, 15]]]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_rounding_is_half_away_from_zero(backend):
    fmap = grid(6, 6)  # f = x + 6 y
    # end 2.5 rounds to 3 (NumPy's half-to-even would give 2): the region is pixels 0..3 -> max f(3, 3) = 21
    np.testing.assert_array_equal(roi_pool(fmap, rois((0, 0, 2.5, 2.5)), 1, backend=backend), [[[[21]]]])
    # start 0.5 rounds to 1 and end 1.5 to 2: pixels 1..2, 2 bins of 1: f(1, 1) = 7 and f(2, 1) = 8 on row 1
    out = roi_pool(fmap, rois((0.5, 0.5, 1.5, 1.5)), 2, backend=backend)
    np.testing.assert_array_equal(out, [[[[7, 8], [13, 14]]]])
    # at spatial_scale 0.5: (5, 5, 7, 7) -> (2.5, 2.5, 3.5, 3.5) -> pixels 3..4 -> max f(4, 4) = 28
    np.testing.assert_array_equal(roi_pool(fmap, rois((5, 5, 7, 7)), 1, 0.5, backend=backend), [[[[28]]]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bins_clip_to_the_map_and_empty_bins_are_zero(backend):
    fmap = grid(4, 4) + 1  # all positive, so a 0 can only come from an empty bin
    # box (2, 0, 5, 3): region x 2..5 (4 px), bins [2, 4) and [4, 6) -> the second is clipped to [4, 4): empty
    out = roi_pool(fmap, rois((2, 0, 5, 3)), (1, 2), backend=backend)
    np.testing.assert_array_equal(out, [[[[16, 0]]]])  # max of x in {2, 3}, y in 0..3: f(3, 3) + 1 = 16
    # a box wholly outside pools nothing
    np.testing.assert_array_equal(roi_pool(fmap, rois((10, 10, 12, 12)), 2, backend=backend), np.zeros((1, 1, 2, 2)))
    # a malformed box (x2 < x1) is one pixel wide: region 2..2
    np.testing.assert_array_equal(roi_pool(fmap, rois((2, 0, 1, 0)), 1, backend=backend), [[[[3]]]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_is_skipped_and_the_floor_is_minus_flt_max(backend):
    # the kernels themselves (the public op refuses NaN maps): NaN never wins torchvision's strict `>`
    fmap = np.array([[[[1.0, np.nan], [-2.0, 0.5]]]], np.float32)
    bins = roi_pool_module.pooling_bins(np.array([[0, 0, 1, 1]], np.float32), 2, 2, (1, 1), 1.0)
    out = roi_pool_module._roi_pool.get(backend)(fmap, np.zeros(1, np.int64), bins)
    np.testing.assert_array_equal(out, [[[[1.0]]]])
    # torchvision starts every bin at -FLT_MAX, in float64 too: values below it are never picked
    tiny = np.full((1, 1, 2, 2), -1e300)
    out = roi_pool(tiny, rois((0, 0, 1, 1), dtype=np.float64), 1, backend=backend)
    np.testing.assert_array_equal(out, [[[[np.finfo(np.float32).min]]]])


def test_round_half_away_from_zero():
    values = np.array([2.5, -2.5, 0.5, -0.5, 1.49999, 0.49999997, 3.0], np.float32)
    np.testing.assert_array_equal(roi_pool_module.round_half_away_from_zero(values), [3, -3, 1, -1, 1, 0, 3])


def test_empty_dtypes_and_list_format():
    out = roi_pool(np.zeros((2, 3, 5, 5)), np.zeros((0, 5)), (2, 4))
    assert out.shape == (0, 3, 2, 4) and out.dtype == np.float64
    fmap = np.concatenate([grid(4, 4, np.int64), grid(4, 4, np.int64) + 100])
    out = roi_pool(fmap, [np.zeros((0, 4)), np.array([[0, 0, 3, 3]])], 2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[[105, 107], [113, 115]]]])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(boxes=np.array([[0, 0, 2, 2.0]])), ValueError, "no batch index"),
    (dict(boxes=np.array([[3, 0, 0, 2, 2.0]])), ValueError, "batch index"),
    (dict(boxes=np.array([[0, np.nan, 0, 2, 2.0]])), ValueError, "NaN or inf"),
    (dict(input=np.zeros((4, 4))), ValueError, r"\(N, C, H, W\)"),
    (dict(output_size=0), ValueError, "output_size"),
    (dict(spatial_scale=-1.0), ValueError, "spatial_scale must be > 0"),
    (dict(backend="gpu"), ValueError, "not usable here"),
    (dict(backend=1), TypeError, "backend must be a str"),
])
def test_bad_input(kwargs, error, match):
    args = dict(input=np.zeros((1, 1, 4, 4)), boxes=rois((0, 0, 2, 2)), output_size=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        roi_pool(**args)


# ---------------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------------
def random_rois(rng, k, num_images, height, width, spread=2.0):
    xy = rng.uniform(-spread, [width + spread, height + spread], size=(k, 2))
    wh = rng.uniform(0, max(height, width), size=(k, 2)) * (rng.uniform(size=(k, 1)) > 0.1)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    boxes[: k // 4] = np.round(boxes[: k // 4]) + 0.5  # exact halves: the rounding rule matters
    return np.concatenate([rng.integers(0, num_images, (k, 1)), boxes], axis=1)


@given(seed=st.integers(0, 2**32 - 1), value=st.floats(-1e6, 1e6), dtype=st.sampled_from([np.float32, np.float64]))
def test_constant_map_gives_the_constant_inside(seed, value, dtype):
    rng = np.random.default_rng(seed)
    fmap = np.full((1, 2, 6, 7), value, dtype=dtype)
    x1, y1 = rng.uniform(0, [6, 5], size=(5, 2)).T
    boxes = np.stack([np.zeros(5), x1, y1, rng.uniform(x1, 6), rng.uniform(y1, 5)], axis=1)
    # one bin over a region of >= 1 pixel inside the map: never empty, its max is the constant
    out = roi_pool(fmap, boxes, 1, backend="numpy")
    np.testing.assert_array_equal(out, np.full_like(out, value))


@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       scale=st.sampled_from([1.0, 0.5, 0.25]))
def test_every_backend_equals_the_reference(seed, dtype, scale):
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    boxes = random_rois(rng, 10, 2, 7 / scale, 9 / scale).astype(dtype)
    expected = roi_pool(fmap, boxes, (3, 2), scale, backend="numpy")
    for backend in CPU_BACKENDS:
        np.testing.assert_array_equal(roi_pool(fmap, boxes, (3, 2), scale, backend=backend), expected, backend)


@pytest.mark.skipif("cuda" not in BACKENDS, reason="numba.cuda not usable")
@given(seed=st.integers(0, 2**32 - 1))
def test_cuda_equals_the_reference(seed):
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((2, 2, 4, 5)).astype(np.float32)
    boxes = random_rois(rng, 3, 2, 4, 5).astype(np.float32)
    np.testing.assert_array_equal(roi_pool(fmap, boxes, 2, backend="cuda"), roi_pool(fmap, boxes, 2, backend="numpy"))


@given(seed=st.integers(0, 2**32 - 1), shift=st.tuples(st.integers(0, 3), st.integers(0, 3)))
def test_translation_by_whole_pixels(seed, shift):
    rng = np.random.default_rng(seed)
    dx, dy = shift
    fmap = rng.standard_normal((1, 2, 8, 9))
    shifted = np.full((1, 2, 8 + dy, 9 + dx), -5.0)
    shifted[..., dy:, dx:] = fmap
    boxes = random_rois(rng, 6, 1, 8, 9, spread=0)
    boxes[:, 1:] = np.clip(boxes[:, 1:], 0, None)  # nothing left of / above the map: both maps agree
    moved = boxes + [0, dx, dy, dx, dy]
    np.testing.assert_array_equal(roi_pool(shifted, moved, (2, 3)), roi_pool(fmap, boxes, (2, 3)))


@given(seed=st.integers(0, 2**32 - 1))
def test_one_bin_is_the_max_of_the_finer_bins(seed):
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((1, 2, 8, 8))
    x1, y1 = rng.integers(0, 6, size=(2, 5))
    boxes = np.stack([np.zeros(5), x1, y1, x1 + rng.integers(1, 8 - x1), y1 + rng.integers(1, 8 - y1)], axis=1)
    # regions inside the map with >= 2 pixels per axis: the 2 x 2 bins cover the region, none is empty
    coarse = roi_pool(fmap, boxes, 1)
    fine = roi_pool(fmap, boxes, 2)
    np.testing.assert_array_equal(coarse[..., 0, 0], fine.max(axis=(2, 3)))


# ---------------------------------------------------------------------------------------------------------
# parity with torchvision
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_parity_with_torchvision(dtype, scale):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng([int(scale * 4), np.dtype(dtype).itemsize])
    fmap = rng.standard_normal((2, 3, 15, 19)).astype(dtype)
    boxes = random_rois(rng, 60, 2, 15 / scale, 19 / scale, spread=8 / scale).astype(dtype)
    boxes[:3, 3:] = boxes[:3, 1:3]  # zero-size
    expected = torchvision.ops.roi_pool(torch.from_numpy(fmap), torch.from_numpy(boxes), (5, 4), scale).numpy()
    per_image = [boxes[boxes[:, 0] == i, 1:] for i in range(2)]
    expected_listed = torchvision.ops.roi_pool(torch.from_numpy(fmap), [torch.from_numpy(b) for b in per_image],
                                               (5, 4), scale).numpy()
    for backend in CPU_BACKENDS:
        out = roi_pool(fmap, boxes, (5, 4), scale, backend=backend)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, expected, backend)
        np.testing.assert_array_equal(roi_pool(fmap, per_image, (5, 4), scale, backend=backend), expected_listed)


# ---------------------------------------------------------------------------------------------------------
# extreme and non-finite input (issue 12): refused by name at the boundary, never read out of bounds
# ---------------------------------------------------------------------------------------------------------
def test_rois_beyond_the_coordinate_limit_are_refused_on_every_backend():
    # issue 12, finding 3 (roi_pool's share): +-3e38 / +-1e308 rois were clipped silently to +-2**30;
    # now refused by name, given or after spatial_scale. In a child, every backend
    assert_child_ok("""
        import importlib
        import numpy as np
        from edudet.ops import roi_pool
        backends = importlib.import_module("edudet.ops.roi_pool")._roi_pool.backends
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
                print(backend, name, flush=True)
                try:
                    out = roi_pool(np.ones((1, 1, 8, 8), dtype), np.array([roi], dtype), 2, scale, backend=backend)
                except ValueError as err:
                    assert "boxes" in str(err) and ("1e+15" in str(err) or "overflows" in str(err)), err
                else:
                    raise AssertionError(f"accepted, returned {out.ravel()}")
        print("done")
    """)


@pytest.mark.parametrize("backend", BACKENDS)
def test_coordinates_beyond_two_to_the_30_are_exact(backend):
    # the bins used to clip corners to +-2**30, moving every bin edge of a bigger region. Row region 0..0;
    # columns: start -2**31, end 3 * 2**31 -> 2**33 + 1 pixels, 4 bins of 2147483648.25: bin 0 covers
    # [0, ceil(2147483648.25)) - 2**31 = [-2**31, 1) -> pixel 0; bin 1 [2**31, 4294967297) - 2**31 -> the
    # whole 8-px row; bins 2, 3 start at 2**31 and beyond: empty. On f = x + 1: [1, 8, 0, 0]
    # (the clipped region gave [0, 1, 8, 0])
    fmap = np.arange(1, 9, dtype=np.float64).reshape(1, 1, 1, 8)
    out = roi_pool(fmap, rois((-2.0**31, 0, 3 * 2.0**31, 0), dtype=np.float64), (1, 4), backend=backend)
    np.testing.assert_array_equal(out, [[[[1, 8, 0, 0]]]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_map_is_refused(backend, bad):
    # issue 12, finding 9: the README promises NaN input raises; a NaN map was pooled silently
    fmap = np.ones((1, 2, 4, 4), np.float32)
    fmap[0, 1, 3, 3] = bad
    with pytest.raises(ValueError, match="input contains NaN or inf"):
        roi_pool(fmap, rois((0, 0, 1, 1)), 2, backend=backend)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(output_size=np.nan), ValueError, r"output_size\[0\] must be finite"),
    (dict(output_size=2**64), ValueError, r"output_size\[0\] must fit in a 64-bit integer"),
    (dict(output_size=(2, 1.5)), ValueError, r"output_size\[1\] must be an integer"),
    (dict(spatial_scale=np.nan), ValueError, "spatial_scale must be finite"),
    (dict(spatial_scale=np.array([0.5])), TypeError, "spatial_scale must be a real number"),
    (dict(output_size=2**20), ValueError, r"roi_pool's \(K, C, PH, PW\) output"),
])
def test_bad_parameters_are_named(kwargs, error, match):
    # issue 12, findings 13 and 14: named errors instead of NumPy's, sizes checked before allocating
    args = dict(input=np.zeros((1, 1, 4, 4)), boxes=rois((0, 0, 2, 2)), output_size=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        roi_pool(**args)


def test_zero_d_array_parameters_are_unwrapped():
    # the 2 x 2 case of test_arange_4x4_two_by_two: [[5, 7], [13, 15]]
    out = roi_pool(grid(4, 4), rois((0, 0, 3, 3)), np.array(2), np.array(1.0))
    np.testing.assert_array_equal(out, [[[[5, 7], [13, 15]]]])


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_hand_made_bins_that_read_outside_are_refused_by_the_kernel(backend):
    # kernels called directly: bins past the map or a batch index past N raise before any read
    assert_child_ok(f"""
        import importlib
        import numpy as np
        module = importlib.import_module("edudet.ops.roi_pool")
        kernel = module._roi_pool.get({backend!r})
        fmap = np.ones((1, 1, 4, 4), np.float32)
        for what, value in [("h_end", 5), ("w_start", -1), ("w_end", 2**62), ("h_start", -2**63)]:
            print(what, value, flush=True)
            bins = module.pooling_bins(np.array([[0, 0, 2, 2]], np.float32), 4, 4, (2, 2), 1.0)
            getattr(bins, what)[0, 1] = value
            try:
                kernel(fmap, np.zeros(1, np.int64), bins)
            except ValueError as err:
                assert "bins." + what in str(err), err
            else:
                raise AssertionError("bins reading outside the map were accepted")
        print("batch index", flush=True)
        bins = module.pooling_bins(np.array([[0, 0, 2, 2]], np.float32), 4, 4, (2, 2), 1.0)
        try:
            kernel(fmap, np.array([1], np.int64), bins)
        except ValueError as err:
            assert "batch_index" in str(err), err
        else:
            raise AssertionError("batch index 1 of 1 image was accepted")
    """)


def test_extreme_finite_rois_give_the_reference_or_the_same_error_on_every_backend():
    # hypothesis in a child: corners from subnormal to 1e300, float32 and float64; every backend (CUDA in the
    # simulator, tiny map) equals the NumPy reference exactly or raises the same ValueError
    assert_child_ok("""
        import importlib
        import numpy as np
        from hypothesis import given, settings, HealthCheck, strategies as st
        from edudet.ops import roi_pool
        backends = importlib.import_module("edudet.ops.roi_pool")._roi_pool.backends
        magnitudes = st.sampled_from([0.0, 5e-324, 1e-310, 1e-45, 1e-30, 0.5, 2.5, 3.0, 1e3, 3e9, 1e14, 1e15,
                                      1.0000001e15, 1e30, 3e38, 1e300])
        coordinate = st.builds(lambda m, sign, jitter: sign * m * jitter, magnitudes, st.sampled_from([-1, 1]),
                               st.sampled_from([1.0, 0.75, 1.5]))

        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(corners=st.lists(st.tuples(coordinate, coordinate, coordinate, coordinate), min_size=1, max_size=3),
               dtype=st.sampled_from([np.float32, np.float64]), scale=st.sampled_from([1.0, 0.25, 1e-300, 1e10]),
               output_size=st.sampled_from([1, 2, (1, 3)]), seed=st.integers(0, 2**16))
        def check(corners, dtype, scale, output_size, seed):
            fmap = np.random.default_rng(seed).standard_normal((1, 2, 3, 4)).astype(dtype)
            with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: refused as such
                boxes = np.array([[0, *c] for c in corners], dtype=np.float64).astype(dtype)
            print("case", repr(boxes.tolist()), dtype.__name__, scale, output_size, flush=True)
            outcomes = {}
            for backend in backends:
                try:
                    outcomes[backend] = roi_pool(fmap, boxes, output_size, scale, backend=backend)
                except ValueError as err:
                    outcomes[backend] = str(err)
            reference = outcomes["numpy"]
            for backend, outcome in outcomes.items():
                if isinstance(reference, str):
                    assert outcome == reference, (backend, outcome, reference)
                else:
                    assert not isinstance(outcome, str), (backend, outcome)
                    assert outcome.dtype == dtype, backend
                    np.testing.assert_array_equal(outcome, reference, err_msg=backend)

        check()
        print("done")
    """)


# ------------------------------------------------------------------------------ issue 16: float16 like torchvision

@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_input_gives_float16(backend):
    # a 4 x 4 map of x + 10 y; box [0,0,3,3] in 2 x 2 bins of 2 x 2 pixels: the maxima sit at the bins'
    # bottom-right pixels (1,1) = 11, (3,1) = 13, (1,3) = 31, (3,3) = 33
    y, x = np.mgrid[0:4, 0:4]
    fmap = (x + 10 * y).astype(np.float16)[None, None]
    out = roi_pool(fmap, np.array([[0, 0, 0, 3, 3]], np.float16), 2, backend=backend)
    assert out.dtype == np.float16 and out[0, 0].tolist() == [[11, 13], [31, 33]]
    empty = roi_pool(fmap, np.zeros((0, 5)), 2, backend=backend)
    assert empty.shape == (0, 1, 2, 2) and empty.dtype == np.float16


def test_float16_parity_with_torchvision():
    # a max of float16 values is exact: equal to torchvision's float16 result (scale 0.5 is exact in float16)
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(2)
    fmap = (rng.random((2, 3, 16, 16)) * 10).astype(np.float16)
    rois = np.concatenate([rng.integers(0, 2, (30, 1)), rng.uniform(0, 12, (30, 2)),
                           rng.uniform(12, 30, (30, 2))], axis=1).astype(np.float16)
    theirs = torchvision.ops.roi_pool(torch.from_numpy(fmap), torch.from_numpy(rois), 4, 0.5)
    ours = roi_pool(fmap, rois, 4, 0.5)
    assert theirs.dtype == torch.float16 and ours.dtype == np.float16
    assert np.array_equal(ours, theirs.numpy())
