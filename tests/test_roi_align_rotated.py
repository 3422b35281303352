"""RoIAlignRotated (detectron2's ``ROIAlignRotated``): hand cases on ramps, properties, every backend.

No detectron2 or mmcv is installable here, so the checks are self-contained: hand-computed reads of ramp
feature maps (where bilinear sampling is exact), `roi_align` at angle 0, every backend bitwise equal to
the NumPy reference, and extreme or hand-made inputs in a child interpreter.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edudet import ops
from edudet.ops.roi_align_rotated import _roi_align_rotated, rotated_sampling_plan
from helpers import assert_child_ok

def _ramps(height=10, width=10):
    """(1, 2, H, W): channel 0 holds each pixel's column index x, channel 1 its row index y."""
    cols = np.tile(np.arange(width, dtype=np.float64), (height, 1))
    rows = np.tile(np.arange(height, dtype=np.float64)[:, None], (1, width))
    return np.stack([cols, rows])[None]


BACKENDS = _roi_align_rotated.backends


@pytest.mark.parametrize("backend", BACKENDS)
def test_roi_align_rotated_by_hand_on_ramps(backend):
    # RoI (5, 5, 4, 2, 90), aligned: centre 5 - 0.5 = 4.5 in index coordinates; 1 x 2 bins of 2 x 1 pixels,
    # 2 x 2 samples each. Bin 0 samples xx = -2 + 0.5, -2 + 1.5 = -1.5, -0.5 and yy = -0.5, 0.5; turned by
    # 90 degrees (cos 0, sin 1): x = yy + 4.5 -> 4.0, 5.0 (mean 4.5), y = -xx + 4.5 -> 6.0, 5.0 (mean 5.5).
    # Bin 1: xx = 0.5, 1.5 -> y = 4.0, 3.0 (mean 3.5). The w axis now points up the screen (smaller y).
    out = ops.roi_align_rotated(_ramps(), [[0, 5, 5, 4, 2, 90]], (1, 2), 1.0, 2, backend=backend)
    assert out.shape == (1, 2, 1, 2) and out.dtype == np.float64
    assert out[0, 0, 0] == pytest.approx([4.5, 4.5], abs=1e-12)
    assert out[0, 1, 0] == pytest.approx([5.5, 3.5], abs=1e-12)
    # aligned=False: no half-pixel shift, centre (5, 5): every read moves by +0.5
    legacy = ops.roi_align_rotated(_ramps(), [[0, 5, 5, 4, 2, 90]], (1, 2), 1.0, 2, aligned=False, backend=backend)
    assert legacy[0, 1, 0] == pytest.approx([6.0, 4.0], abs=1e-12)
    # a sample more than one pixel off the map reads 0: a RoI far outside gives 0
    assert np.array_equal(ops.roi_align_rotated(_ramps(), [[0, 50, 50, 2, 2, 30]], 2, backend=backend),
                          np.zeros((1, 2, 2, 2)))


def test_roi_align_rotated_at_angle_0_is_roi_align():
    rng = np.random.default_rng(3)
    features = rng.standard_normal((2, 3, 17, 23))
    k = 30
    rois = np.column_stack([rng.integers(0, 2, k), rng.uniform(-5, 100, (k, 2)), rng.uniform(0, 40, (k, 2)),
                            np.zeros(k)])
    xyxy = np.column_stack([rois[:, 0], rois[:, 1] - rois[:, 3] / 2, rois[:, 2] - rois[:, 4] / 2,
                            rois[:, 1] + rois[:, 3] / 2, rois[:, 2] + rois[:, 4] / 2])
    for scale, ratio, aligned in ((0.25, 2, True), (0.5, -1, True), (0.25, 0, False), (1.0, 3, False)):
        # aligned=False grows a side under 1 feature pixel to 1 about the centre here (mmcv's rotated op),
        # from x1 in roi_align (torchvision): the two agree where no side is that small
        same = aligned | (rois[:, 3:5].min(axis=1) * scale >= 1)
        ours = ops.roi_align_rotated(features, rois[same], (4, 3), scale, ratio, aligned)
        plain = ops.roi_align(features, xyxy[same], (4, 3), scale, ratio, aligned)
        assert same.sum() > 15 and np.allclose(ours, plain, rtol=0, atol=1e-12)


@settings(max_examples=20)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(-10, 60), st.floats(-10, 60), st.floats(0, 30),
                          st.floats(0, 30), st.floats(-360, 360)), min_size=0, max_size=6),
       st.sampled_from([-1, 0, 1, 2]), st.booleans(), st.sampled_from([0.25, 0.5, 1.0]))
def test_roi_align_rotated_backends_agree_and_read_ramps_exactly(rows, ratio, aligned, scale):
    rois = np.array(rows, dtype=np.float64).reshape(-1, 6)
    features = np.concatenate([_ramps(24, 30), _ramps(24, 30)])
    expected = ops.roi_align_rotated(features, rois, (2, 3), scale, ratio, aligned, backend="numpy")
    for backend in BACKENDS:
        assert np.array_equal(ops.roi_align_rotated(features, rois, (2, 3), scale, ratio, aligned, backend=backend),
                              expected)
    # on a ramp, bilinear reads are exact: where every sample is well inside, a bin is its mean sample position,
    # i.e. (for a symmetric grid) the bin centre turned about the RoI centre
    for k, (_, cx, cy, w, h, angle) in enumerate(rois):
        offset = 0.5 if aligned else 0.0
        rw, rh = w * scale, h * scale
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        reach = math.hypot(rw, rh) / 2
        centre = (cx * scale - offset, cy * scale - offset)
        if not (0 <= centre[0] - reach and centre[0] + reach <= 29 and 0 <= centre[1] - reach
                and centre[1] + reach <= 23) or (ratio <= 0 and min(rw / 3, rh / 2) == 0):
            continue
        for ph in range(2):
            for pw in range(3):
                yy = -rh / 2 + (ph + 0.5) * rh / 2
                xx = -rw / 2 + (pw + 0.5) * rw / 3
                assert expected[k, 0, ph, pw] == pytest.approx(yy * s + xx * c + centre[0], abs=1e-9)
                assert expected[k, 1, ph, pw] == pytest.approx(yy * c - xx * s + centre[1], abs=1e-9)


def test_roi_align_rotated_validation_and_empties():
    features = np.zeros((1, 2, 5, 5), dtype=np.float32)
    out = ops.roi_align_rotated(features, np.zeros((0, 6)), 3)
    assert out.shape == (0, 2, 3, 3) and out.dtype == np.float32
    assert ops.roi_align_rotated(features, [[0, 2, 2, 1, 1, 10]], 2).dtype == np.float32
    with pytest.raises(ValueError, match=r"rois must have shape \(K, 6\)"):
        ops.roi_align_rotated(features, np.zeros((1, 5)), 2)
    with pytest.raises(ValueError, match="batch index"):
        ops.roi_align_rotated(features, [[1, 2, 2, 1, 1, 0]], 2)
    with pytest.raises(ValueError, match="negative width or height"):
        ops.roi_align_rotated(features, [[0, 2, 2, -1, 1, 0]], 2)
    with pytest.raises(ValueError, match="rois contains NaN"):
        ops.roi_align_rotated(features, [[0, 2, 2, 1, np.nan, 0]], 2)
    with pytest.raises(ValueError, match="spatial_scale must be > 0"):
        ops.roi_align_rotated(features, [[0, 2, 2, 1, 1, 0]], 2, spatial_scale=0)
    with pytest.raises(ValueError, match="samples per bin"):
        ops.roi_align_rotated(features, [[0, 2, 2, 1e6, 1, 0]], 2, sampling_ratio=-1)
    with pytest.raises(ValueError, match="input contains NaN"):
        ops.roi_align_rotated(np.full((1, 1, 2, 2), np.nan), [[0, 1, 1, 1, 1, 0]], 2)
    with pytest.raises(TypeError, match="aligned must be a bool"):
        ops.roi_align_rotated(features, [[0, 2, 2, 1, 1, 0]], 2, aligned=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_roi_align_rotated_by_hand_at_45_degrees(backend):
    # RoI (5, 5, 2, 2, 45), aligned, 1 x 2 bins, one sample each: centre 4.5, 4.5 in index coordinates;
    # the samples sit at xx = -0.5, 0.5 along w, yy = 0. Turned by 45 degrees (cos = sin = sqrt(0.5)):
    # x = yy * sin + xx * cos + 4.5 = 4.5 -/+ 0.353553..., y = yy * cos - xx * sin + 4.5 = 4.5 +/- 0.353553...
    # so the w axis points right and up the screen (y down), detectron2's counter-clockwise angle.
    half = 0.5 * math.sqrt(0.5)
    out = ops.roi_align_rotated(_ramps(), [[0, 5, 5, 2, 2, 45]], (1, 2), 1.0, 1, backend=backend)
    assert out[0, 0, 0] == pytest.approx([4.5 - half, 4.5 + half], abs=1e-12)  # x of each bin
    assert out[0, 1, 0] == pytest.approx([4.5 + half, 4.5 - half], abs=1e-12)  # y of each bin


def test_every_backend_equals_the_reference_on_random_float32_and_float64_maps():
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        features = rng.standard_normal((2, 3, 19, 27)).astype(dtype)
        k = 12  # small: the CUDA backend runs in numba's simulator here
        rois = np.column_stack([rng.integers(0, 2, k), rng.uniform(-10, 60, (k, 2)), rng.uniform(0, 30, (k, 2)),
                                rng.uniform(-400, 400, k)])
        for ratio, aligned, scale in ((-1, True, 0.5), (2, False, 0.25), (0, True, 1.0)):
            expected = ops.roi_align_rotated(features, rois, (3, 2), scale, ratio, aligned, backend="numpy")
            assert expected.dtype == dtype
            for backend in BACKENDS:
                got = ops.roi_align_rotated(features, rois, (3, 2), scale, ratio, aligned, backend=backend)
                assert got.dtype == dtype and np.array_equal(got, expected), (backend, dtype, ratio, aligned)
            # the kernels' own float64 sums, before the cast back to float32: a kernel that multiplied in
            # float32 (the CUDA simulator did, with a Python-float weight times a float32 pixel) differs here
            plan = rotated_sampling_plan(rois[:, 1:], (3, 2), scale, ratio, aligned)
            index = rois[:, 0].astype(np.int64)
            sums = _roi_align_rotated.get("numpy")(features, index, plan, (3, 2))
            for backend in BACKENDS:
                assert np.array_equal(_roi_align_rotated.get(backend)(features, index, plan, (3, 2)), sums), backend


def test_every_backend_is_the_default_or_named():
    assert {"numpy", "numba"} <= set(BACKENDS)
    features = np.ones((1, 1, 4, 4))
    # backend=None is the fastest CPU one; a mean of ones is one wherever every sample is on the map
    assert np.array_equal(ops.roi_align_rotated(features, [[0, 2, 2, 2, 2, 30]], 2), np.ones((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="not usable here"):
        ops.roi_align_rotated(features, [[0, 2, 2, 2, 2, 30]], 2, backend="tpu")


def test_huge_output_is_refused_before_allocating(monkeypatch):
    monkeypatch.setenv("EDUDET_MAX_BYTES", str(2**20))
    import edudet._validate as validate
    monkeypatch.setattr(validate, "MAX_ALLOCATION_BYTES", 2**20, raising=False)
    with pytest.raises(ValueError, match="roi_align_rotated"):
        ops.roi_align_rotated(np.zeros((1, 64, 4, 4)), np.zeros((100, 6)), 7)


def test_extreme_and_hand_made_inputs_never_crash_in_a_child_interpreter():
    assert_child_ok("""
import numpy as np
from edudet import ops
from edudet.ops.roi_align_rotated import _roi_align_rotated, rotated_sampling_plan

backends = _roi_align_rotated.backends
print("backends", backends, flush=True)
cases = {
    "coordinates at the 1e15 limit": [[0, 1e15, -1e15, 1e15, 1e15, 1e15], [0, -1e15, 3, 2, 1e15, -1e15]],
    "tiny sides 1e-300 and subnormal": [[0, 2, 2, 1e-300, 1e-300, 30], [0, 2, 2, 5e-324, 0, -90]],
    "zero-size RoIs and a map corner": [[0, 0, 0, 0, 0, 0], [0, 4, 4, 0, 8, 45], [0, 4, 4, 1e-30, 1e-30, 10]],
    "angles far beyond 360": [[0, 2, 2, 3, 3, 1e12], [0, 2, 2, 3, 3, -7e14]],
}
for dtype, big in ((np.float32, 3e38), (np.float64, 1e308)):
    maps = {"ordinary": np.arange(2 * 4 * 4, dtype=dtype).reshape(1, 2, 4, 4),
            "huge values": (np.full((1, 2, 4, 4), big) * np.where(np.arange(16) % 2, 1, -1).reshape(4, 4)
                            ).astype(dtype),
            "subnormal values": np.full((1, 2, 4, 4), np.finfo(dtype).smallest_subnormal, dtype=dtype),
            "one pixel": np.ones((1, 2, 1, 1), dtype=dtype)}
    for map_name, features in maps.items():
        for name, rois in cases.items():
            settings = ((2, True), (-1, True), (3, False)) if map_name == "ordinary" else ((2, True),)
            for ratio, aligned in settings:
                print(dtype.__name__, map_name, name, ratio, aligned, flush=True)
                try:
                    expected = ops.roi_align_rotated(features, rois, (2, 3), 1.0, ratio, aligned, backend="numpy")
                except ValueError as err:  # e.g. an adaptive grid of 1e15 samples: refused by name
                    assert "samples per bin" in str(err), err
                    for backend in backends:
                        try:
                            ops.roi_align_rotated(features, rois, (2, 3), 1.0, ratio, aligned, backend=backend)
                        except ValueError:
                            continue
                        raise AssertionError(f"{backend} accepted what numpy refused")
                    continue
                assert expected.dtype == dtype
                for backend in backends:
                    if backend == "cuda" and ratio != 2:  # the simulator is slow: one setting per case there
                        continue
                    got = ops.roi_align_rotated(features, rois, (2, 3), 1.0, ratio, aligned, backend=backend)
                    assert np.array_equal(got, expected, equal_nan=True), (backend, got, expected)

# hand-made plans given to the compiled kernels directly: refused, never read outside the map
import importlib
features = np.zeros((1, 1, 4, 4))
good = rotated_sampling_plan(np.array([[2.0, 2, 2, 2, 30]]), (2, 2), 1.0, 2, True)
bad = {"NaN in the plan": (np.array([0]), np.where(np.arange(11) == 1, np.nan, good)),
       "batch index out of range": (np.array([5]), good),
       "negative batch index": (np.array([-1]), good),
       "plan with 5 columns": (np.array([0]), np.ascontiguousarray(good[:, :5])),
       "grid of 1e18 samples": (np.array([0]), np.where(np.arange(11) == 8, 1e18, good)),
       "float32 plan": (np.array([0]), good.astype(np.float32))}
for module in ("roi_align_rotated_numba", "roi_align_rotated_cython", "roi_align_rotated_cuda"):
    try:
        kernel = importlib.import_module("edudet.kernels." + module).roi_align_rotated
    except ImportError:
        continue
    for name, (index, plan) in bad.items():
        print(module, name, flush=True)
        try:
            kernel(features, index, np.ascontiguousarray(plan) if plan.dtype == np.float64 else plan, (2, 2))
        except ValueError:
            continue
        raise AssertionError(f"{module} accepted {name}")
print("done")
""")
