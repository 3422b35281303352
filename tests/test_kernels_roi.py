"""The RoIAlign / RoIPool kernels as a library: users' own Numba, Cython and CUDA code (docs/kernels/roi_*.md)."""
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edudet import ops
from helpers import assert_child_ok, require

numba = pytest.importorskip("numba")
from numba import njit  # noqa: E402

from numba import cuda  # noqa: E402

from edudet.kernels import roi_align_cuda, roi_align_numba, roi_pool_numba  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs" / "kernels"


def doc_examples(name):
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), re.S)


@pytest.mark.parametrize("name, index", [("roi_align.md", 0), ("roi_align.md", 1), ("roi_align.md", 2),
                                         ("roi_pool.md", 0)],
                         ids=["align-numba", "align-cython", "align-cuda", "pool-numba"])
def test_doc_examples_run(name, index):
    example = doc_examples(name)[index]
    if "cimport" in example:
        require("Cython", "the Cython user-code example")
        pytest.importorskip("edudet.kernels.roi_align_cython")
    assert_child_ok("print('example', %r, %d, flush=True)\n" % (name, index) + example, timeout=600)


# --- user @njit code ----------------------------------------------------------------------------------------

@njit
def user_align(fmap, rois, ph, pw, scale, ratio, aligned, max_mode):
    return roi_align_numba.roi_align(fmap, rois, ph, pw, scale, ratio, aligned, max_mode)


@njit
def user_pool(fmap, rois, ph, pw, scale):
    return roi_pool_numba.roi_pool(fmap, rois, ph, pw, scale)


@njit
def user_samples(plane, ys, xs):
    out = np.empty(len(ys), dtype=plane.dtype)
    for i in range(len(ys)):
        out[i] = roi_align_numba.bilinear(plane, ys[i], xs[i])
    return out


def test_bilinear_by_hand():
    plane = np.array([[0.0, 1.0], [2.0, 3.0]])
    ys = np.array([0.5, 0.25, -0.5, -1.5, 1.0, 5.0, np.nan])
    xs = np.array([0.5, 0.0, 0.0, 0.0, 1.75, 0.0, 0.0])
    # (0.5, 0.5): the mean 1.5; (0.25, 0): 0.75 * 0 + 0.25 * 2 = 0.5; y = -0.5 is within a pixel: clamped to
    # row 0 -> 0; y = -1.5 is outside -> 0; (1, 1.75): x at the last column clamps to 1 -> 3; y = 5 > H -> 0;
    # NaN reads nothing
    assert user_samples(plane, ys, xs).tolist() == [1.5, 0.5, 0.0, 0.0, 3.0, 0.0, 0.0]


def test_roi_align_by_hand():
    # a 1 x 1 output over the whole 2 x 2 ramp, aligned, 2 x 2 samples at 0.25 / 0.75 (after the -0.5 shift,
    # positions -0.25 and 0.25 -> clamped 0 and 0.25): mean of f(y, x) = 2y + x over them
    fmap = np.array([[[[0.0, 1.0], [2.0, 3.0]]]])
    rois = np.array([[0, 0.0, 0.0, 1.0, 1.0]])
    # samples at y, x in {0, 0.25}: 2y + x -> 0, 0.25, 0.5, 0.75: mean 0.375
    assert user_align(fmap, rois, 1, 1, 1.0, 2, True, False)[0, 0, 0, 0] == 0.375
    assert user_align(fmap, rois, 1, 1, 1.0, 2, True, True)[0, 0, 0, 0] == 0.75


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       ratio=st.integers(-1, 3), aligned=st.booleans(), max_mode=st.booleans(),
       scale=st.sampled_from([1.0, 0.5, 0.25, 2.0]), ph=st.integers(1, 6), pw=st.integers(1, 6))
def test_numba_roi_align_equals_reference(seed, dtype, ratio, aligned, max_mode, scale, ph, pw):
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((2, 3, int(rng.integers(1, 18)), int(rng.integers(1, 18)))).astype(dtype)
    boxes = rng.uniform(-10, 40, (5, 4))
    boxes[:, 2:] += boxes[:, :2] * rng.uniform(-0.2, 1)
    rois = np.concatenate([rng.integers(0, 2, (5, 1)), boxes], axis=1).astype(dtype)
    mode = "max" if max_mode else "avg"
    got = user_align(fmap, rois, ph, pw, scale, ratio, aligned, max_mode)
    # the same code as edudet's numba backend behind the same plan: the same bits
    assert np.array_equal(got, ops.roi_align(fmap, rois, (ph, pw), scale, ratio, aligned, mode, backend="numba"))
    expected = ops.roi_align(fmap, rois, (ph, pw), scale, ratio, aligned, mode, backend="numpy")
    if max_mode:  # a maximum of the same samples: bit-identical to the reference
        assert np.array_equal(got, expected)
    else:  # merged per-pixel weights add in another order than the reference's samples: a few ulps
        tol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       ratio=st.integers(-1, 5), aligned=st.booleans(), ph=st.integers(1, 6), pw=st.integers(1, 6))
def test_njit_plan_merging_equals_the_numpy_one(seed, dtype, ratio, aligned, ph, pw):
    # the public njit roi_align merges its samples per pixel in njit (`_bin_weights`, `_row_slots`); the
    # Cython twin uses the NumPy versions in `_roi_common`: both must give the same bits, or the backends drift
    from edudet.kernels._roi_common import bin_weights, row_slots
    from edudet.ops.roi_align import sampling_plan

    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(1, 30)), int(rng.integers(1, 30))
    boxes = rng.uniform(-10, 40, (6, 4))
    boxes[:, 2:] += boxes[:, :2] * rng.uniform(-0.2, 1)
    plan = sampling_plan(boxes.astype(dtype), height, width, (ph, pw), 1.0, ratio, aligned)
    for axis, pooled, size in ((plan.rows, ph, height), (plan.cols, pw, width)):
        expected = bin_weights(axis, pooled, size)
        got = roi_align_numba._bin_weights(axis.grid, axis.offsets, axis.low, axis.high, axis.w_low, axis.w_high,
                                           pooled, size)
        for g, e in zip(got, expected):
            assert g.dtype == e.dtype and np.array_equal(g, e)
        if axis is plan.rows:
            for g, e in zip(roi_align_numba._row_slots(got[0], got[1], ph, height), row_slots(expected, ph, height)):
                assert np.array_equal(g, e)


def test_merged_weights_by_hand():
    # one RoI, one bin, 2 samples along an axis of 4 pixels at 0.25 and 0.75: both read pixels 0 and 1 with
    # weights (0.75, 0.25) and (0.25, 0.75): merged, pixel 0 gets 0.75 + 0.25 = 1 and pixel 1 gets 0.25 + 0.75
    low, high = np.array([0, 0]), np.array([1, 1])
    w_low, w_high = np.array([0.75, 0.25]), np.array([0.25, 0.75])
    offsets, pixel, weight = roi_align_numba._bin_weights(np.array([2]), np.array([0, 2]), low, high, w_low, w_high,
                                                          1, 4)
    assert offsets.tolist() == [0, 2] and pixel.tolist() == [0, 1] and weight.tolist() == [1.0, 1.0]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       scale=st.sampled_from([1.0, 0.5, 0.25, 2.0]), ph=st.integers(1, 6), pw=st.integers(1, 6))
def test_numba_roi_pool_equals_reference(seed, dtype, scale, ph, pw):
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((2, 2, int(rng.integers(1, 18)), int(rng.integers(1, 18)))).astype(dtype)
    boxes = rng.uniform(-10, 40, (5, 4))
    boxes[:, 2:] += boxes[:, :2] * rng.uniform(-0.2, 1)
    rois = np.concatenate([rng.integers(0, 2, (5, 1)), boxes], axis=1).astype(dtype)
    assert np.array_equal(user_pool(fmap, rois, ph, pw, scale),
                          ops.roi_pool(fmap, rois, (ph, pw), scale, backend="numpy"))


def test_empty_rois_give_empty_output():
    fmap = np.zeros((1, 3, 4, 4), np.float32)
    rois = np.zeros((0, 5), np.float32)
    assert user_align(fmap, rois, 2, 3, 1.0, 2, False, False).shape == (0, 3, 2, 3)
    assert user_pool(fmap, rois, 2, 3, 1.0).shape == (0, 3, 2, 3)


@pytest.mark.parametrize("kernel", ["align", "pool"])
def test_structural_and_roi_checks_raise(kernel):
    fmap = np.zeros((2, 3, 8, 8), np.float32)
    rois = np.array([[1, 0, 0, 4, 4]], np.float32)

    def call(f, r):
        if kernel == "align":
            return roi_align_numba.roi_align(f, r, 2, 2, 1.0, 2, False, False)
        return roi_pool_numba.roi_pool(f, r, 2, 2, 1.0)

    call(fmap, rois)  # fine
    bad_nan = rois.copy()
    bad_nan[0, 3] = np.nan
    bad_index = rois.copy()
    bad_index[0, 0] = 2  # N = 2 images
    for f, r, message in ((fmap, rois[:, :4].copy(), r"\(K, 5\)"),
                          (fmap, np.ascontiguousarray(np.repeat(rois, 4, axis=0)[::2]), None),
                          (fmap, np.repeat(rois, 4, axis=0)[::2], "C-contiguous"),
                          (fmap, rois.astype(np.float64), "same dtype"),
                          (fmap, bad_nan, "finite"),
                          (fmap, bad_index, "batch index")):
        if message is None:
            call(f, r)  # the contiguous copy is fine
            continue
        with pytest.raises(ValueError, match=message):
            call(f, r)
    # the number of dimensions is part of a Numba type: a 3-D map fails when the call is compiled
    with pytest.raises(numba.core.errors.TypingError):
        call(fmap[0], rois)


def test_adaptive_grid_beyond_the_limit_raises():
    fmap = np.zeros((1, 1, 4, 4))
    rois = np.array([[0, 0, 0, 5000.0, 1.0]])  # 5000 pixels in one bin: ceil(5000 / 1) > 4096
    with pytest.raises(ValueError, match="4096"):
        user_align(fmap, rois, 1, 1, 1.0, 0, True, False)
    with pytest.raises(ValueError, match="4096"):
        user_align(fmap, rois, 1, 1, 1.0, 5000, True, False)


# --- user .pyx cimporting the .pxd functions (child interpreter: a compiler or a bad pointer must not crash us)

_USER_PYX_CHILD = '''
import os, subprocess, sys, tempfile
import numpy as np
from edudet import ops
source = """
# cython: language_level=3
import numpy as np
from cython cimport floating
from edudet.kernels.roi_align_cython cimport bilinear, roi_align_one
from edudet.kernels.roi_pool_cython cimport roi_pool_one

def align(const floating[:, :, :, ::1] fmap, const floating[:, ::1] rois, int ph, int pw, floating scale,
          int ratio, bint aligned, bint max_mode):
    out = np.empty((rois.shape[0], fmap.shape[1], ph, pw), dtype=np.asarray(fmap).dtype)
    cdef floating[:, :, :, ::1] o = out
    cdef Py_ssize_t k
    with nogil:
        for k in range(rois.shape[0]):
            roi_align_one(fmap[<Py_ssize_t>rois[k, 0]], &rois[k, 1], scale, ratio, aligned, max_mode, o[k])
    return out

def pool(const floating[:, :, :, ::1] fmap, const floating[:, ::1] rois, int ph, int pw, floating scale):
    out = np.empty((rois.shape[0], fmap.shape[1], ph, pw), dtype=np.asarray(fmap).dtype)
    cdef floating[:, :, :, ::1] o = out
    cdef Py_ssize_t k
    with nogil:
        for k in range(rois.shape[0]):
            roi_pool_one(fmap[<Py_ssize_t>rois[k, 0]], &rois[k, 1], scale, o[k])
    return out

def samples(const floating[:, ::1] plane, const floating[::1] ys, const floating[::1] xs):
    out = np.empty(ys.shape[0], dtype=np.asarray(plane).dtype)
    cdef floating[::1] o = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(ys.shape[0]):
            o[i] = bilinear(plane, ys[i], xs[i])
    return out
"""
build = """
import numpy, edudet.kernels
from Cython.Build import cythonize
from setuptools import Extension, setup
setup(name="user_roi_kernels", script_args=["build_ext", "--inplace"],
      ext_modules=cythonize([Extension("user_roi_kernels", ["user_roi_kernels.pyx"],
                               include_dirs=[edudet.kernels.get_include(), numpy.get_include()])],
                    include_path=[edudet.kernels.get_include()]))
"""
folder = tempfile.mkdtemp()
with open(os.path.join(folder, "user_roi_kernels.pyx"), "w") as f:
    f.write(source)
print("compiling", flush=True)
done = subprocess.run([sys.executable, "-c", build], cwd=folder, capture_output=True, text=True)
assert done.returncode == 0, done.stderr[-3000:]
sys.path.insert(0, folder)
import user_roi_kernels as user
print("by hand", flush=True)
plane = np.array([[0.0, 1.0], [2.0, 3.0]])
# see test_bilinear_by_hand
ys = np.array([0.5, 0.25, -0.5, -1.5, 1.0, 5.0])
xs = np.array([0.5, 0.0, 0.0, 0.0, 1.75, 0.0])
assert user.samples(plane, ys, xs).tolist() == [1.5, 0.5, 0.0, 0.0, 3.0, 0.0]
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    for trial in range(20):
        print("random", dtype.__name__, trial, flush=True)
        fmap = rng.standard_normal((2, 3, int(rng.integers(1, 18)), int(rng.integers(1, 18)))).astype(dtype)
        boxes = rng.uniform(-10, 40, (5, 4))
        boxes[:, 2:] += boxes[:, :2] * rng.uniform(-0.2, 1)
        rois = np.concatenate([rng.integers(0, 2, (5, 1)), boxes], axis=1).astype(dtype)
        ph, pw, ratio = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(-1, 3))
        scale, aligned = float(rng.choice([1.0, 0.5, 0.25])), bool(trial % 2)
        for mode in ("avg", "max"):
            got = user.align(fmap, rois, ph, pw, scale, ratio, aligned, mode == "max")
            expected = ops.roi_align(fmap, rois, (ph, pw), scale, ratio, aligned, mode, backend="numpy")
            if mode == "max":
                assert np.array_equal(got, expected)
            else:  # torchvision's order of additions: a few ulps from the reference's
                tol = 1e-5 if dtype == np.float32 else 1e-13
                np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
        assert np.array_equal(user.pool(fmap, rois, ph, pw, scale),
                              ops.roi_pool(fmap, rois, (ph, pw), scale, backend="numpy"))
print("ok")
'''


def test_user_pyx_cimports_bilinear_roi_align_one_and_roi_pool_one():
    require("Cython", "the Cython user-code test")
    pytest.importorskip("edudet.kernels.roi_align_cython")
    assert_child_ok(_USER_PYX_CHILD, timeout=600)


# --- user @cuda.jit kernel calling the public device function (simulator in CI) ------------------------------

def _user_cuda_sample():
    # the simulator resolves `cuda` in the kernel's module globals: hence the module-level import below
    @cuda.jit
    def sample(plane, ys, xs, out):
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = roi_align_cuda.bilinear(plane, ys[i], xs[i])

    return sample


def test_user_cuda_kernel_calls_bilinear():
    sample = _user_cuda_sample()
    plane = np.array([[0.0, 1.0], [2.0, 3.0]])
    ys = np.array([0.5, 0.25, -0.5, -1.5, 1.0, 5.0])
    xs = np.array([0.5, 0.0, 0.0, 0.0, 1.75, 0.0])
    out = cuda.device_array(len(ys))
    sample[1, 32](cuda.to_device(plane), cuda.to_device(ys), cuda.to_device(xs), out)
    assert out.copy_to_host().tolist() == [1.5, 0.5, 0.0, 0.0, 3.0, 0.0]  # see test_bilinear_by_hand
    rng = np.random.default_rng(1)
    plane = rng.standard_normal((5, 7))
    ys, xs = rng.uniform(-2, 7, 20), rng.uniform(-2, 9, 20)
    out = cuda.device_array(20)
    sample[1, 32](cuda.to_device(plane), cuda.to_device(ys), cuda.to_device(xs), out)
    assert np.array_equal(out.copy_to_host(), user_samples(plane, ys, xs))  # float64: the same bits
