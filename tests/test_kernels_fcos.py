"""edudet.kernels.fcos_targets_*: the FCOS assignment kernels called as a user would (Numba, Cython, CUDA),
checked against `edudet.targets.fcos_assign_numpy`; structural checks at every entry; the debug mode.

The examples of docs/kernels/fcos_targets.md are copied here verbatim (their printed values asserted after them).
"""
import numpy as np
import pytest

from edudet.anchors import grid_points
from edudet.targets import FCOS_INF, _fcos_assign, fcos_assign_numpy
from helpers import assert_child_ok, random_boxes, require

BACKENDS = _fcos_assign.backends

try:  # a module global: the CUDA simulator swaps `cuda` in a kernel's globals, not in a function's locals
    from numba import cuda
except ImportError:  # pragma: no cover
    cuda = None


def _level_inputs(dtype=np.float32, seed=0, n_gt=6):
    """Points of a 64 x 64 image on strides 8 and 16, per-point radius 1.5 * stride and ranges, random gts."""
    points = np.concatenate(grid_points((64, 64), [(8, 8), (4, 4)], dtype=dtype))
    stride = np.repeat(np.array([8, 16], dtype), [64, 16])
    low = np.repeat(np.array([-1, 24], dtype), [64, 16])
    high = np.repeat(np.array([24, np.inf], dtype), [64, 16])
    gt = random_boxes(np.random.default_rng(seed), n_gt, 64.0, 4, 50, dtype)
    return points, gt, stride * dtype(1.5), low, high


# ---------------------------------------------------------------- structural checks at every entry

def _args(**change):
    n = 3
    args = dict(points=np.zeros((n, 2), np.float32), gt=np.array([[0, 0, 10, 10]], np.float32),
                radius_stride=np.ones(n, np.float32), range_low=np.zeros(n, np.float32),
                range_high=np.full(n, 64, np.float32), center_sampling=False, no_candidate_area=np.float32(np.inf))
    args.update(change)
    return args


@pytest.mark.parametrize("change, match", [
    (dict(points=np.zeros((3, 3), np.float32)), "points"),
    (dict(gt=np.zeros((1, 5), np.float32)), "gt"),
    (dict(radius_stride=np.ones(2, np.float32)), "radius_stride"),  # 3 points, 2 radii: no read past the end
    (dict(range_high=np.ones(4, np.float32)), "range_high"),
    (dict(gt=np.array([[0, 0, 10, 10]], np.float64)), "float dtype"),
    (dict(points=np.zeros((2, 3), np.float32).T), "points"),  # (3, 2), not C-contiguous
])
def test_structural_checks_raise_at_every_entry(change, match):
    for backend in BACKENDS:
        if backend == "numpy":
            continue  # the reference trusts fcos_targets, as documented
        with pytest.raises(ValueError, match=match):
            _fcos_assign.get(backend)(**_args(**change))


def test_numba_refuses_nan_by_name():
    require("numba", "the Numba kernel tests")
    from edudet.kernels.fcos_targets_numba import fcos_assign

    with pytest.raises(ValueError, match="NaN or inf"):
        fcos_assign(**_args(points=np.array([[0, 0], [np.nan, 1], [2, 2]], np.float32)))
    # infinite range ends are legitimate (the last level's FCOS_INF)
    assert fcos_assign(**_args(range_high=np.full(3, np.inf, np.float32))).tolist() == [-1, -1, -1]


def test_debug_mode_refuses_nan_in_cython_and_cuda():
    assert_child_ok("""
        os.environ["EDUDET_CHECK_KERNELS"] = "1"
        import numpy as np
        from edudet.targets import _fcos_assign
        n = 2
        args = (np.array([[5, 5], [np.nan, 1]], np.float32), np.array([[0, 0, 10, 10]], np.float32),
                np.ones(n, np.float32), np.zeros(n, np.float32), np.full(n, 64, np.float32), False,
                np.float32(np.inf))
        for backend in ("cython", "cuda"):
            if backend not in _fcos_assign.backends:
                continue
            print("case", backend, flush=True)
            try:
                _fcos_assign.get(backend)(*args)
            except ValueError as err:
                assert "NaN" in str(err), err
            else:
                raise AssertionError(backend + " accepted NaN points in debug mode")
    """)


# ---------------------------------------------------------------- user code: Numba

def test_numba_user_code_docs_example():
    require("numba", "the Numba kernel tests")
    import numpy as np
    from numba import njit
    from edudet.kernels.fcos_targets_numba import fcos_assign

    @njit
    def assign_level(points, gt, stride):
        n = points.shape[0]
        radius = np.full(n, stride * 1.5, dtype=np.float32)
        low, high = np.zeros(n, dtype=np.float32), np.full(n, 64, dtype=np.float32)
        return fcos_assign(points, gt, radius, low, high, True, np.float32(np.inf))

    points = np.array([[5, 5], [10, 10], [50, 50]], dtype=np.float32)
    gt = np.array([[0, 0, 20, 20]], dtype=np.float32)
    print(assign_level(points, gt, 8))   # centre square [10 - 12, 10 + 12] clipped to the box: [ 0  0 -1]

    np.testing.assert_array_equal(assign_level(points, gt, 8), [0, 0, -1])

    @njit
    def user_assign(points, gt, radius, low, high, center_sampling):
        return fcos_assign(points, gt, radius, low, high, center_sampling, np.float32(np.inf))

    for seed in range(3):
        args = _level_inputs(seed=seed)
        for center_sampling in (False, True):
            np.testing.assert_array_equal(user_assign(*args, center_sampling),
                                          fcos_assign_numpy(*args, center_sampling, np.float32(FCOS_INF)))


# ---------------------------------------------------------------- user code: Cython

USER_PYX = '''
# cython: language_level=3
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from edudet.kernels.fcos_targets_cython cimport fcos_assign_point

def assign(const float[:, ::1] points, const float[:, ::1] gt, int64_t[::1] out):
    cdef Py_ssize_t p
    with nogil:
        for p in range(points.shape[0]):   # stride 8 x radius 1.5 = 12, range [0, 64], no center sampling
            out[p] = fcos_assign_point(points[p, 0], points[p, 1], gt, 12, 0, 64, False, INFINITY)

def assign_any(const double[:, ::1] points, const double[:, ::1] gt, const double[::1] radius,
               const double[::1] low, const double[::1] high, bint center_sampling, double no_candidate_area,
               bint torchvision_rule, int64_t[::1] out):
    cdef Py_ssize_t p
    with nogil:
        for p in range(points.shape[0]):
            out[p] = fcos_assign_point(points[p, 0], points[p, 1], gt, radius[p], low[p], high[p],
                                       center_sampling, no_candidate_area, torchvision_rule)
'''


def test_cython_user_pyx_cimports_the_pxd():
    require("Cython", "the user .pyx tests")
    assert_child_ok(f"""
        import os, sys, tempfile
        import numpy
        import edudet.kernels
        from Cython.Build import cythonize
        from setuptools import Extension, setup
        tmp = tempfile.mkdtemp()
        with open(os.path.join(tmp, "user_fcos.pyx"), "w") as f:
            f.write({USER_PYX!r})
        os.chdir(tmp)
        print("case compile", flush=True)
        setup(ext_modules=cythonize([Extension("user_fcos", ["user_fcos.pyx"], include_dirs=[numpy.get_include()])],
                                    include_path=[edudet.kernels.get_include()], quiet=True),
              script_args=["build_ext", "--inplace", "-q"])
        sys.path.insert(0, tmp)
        import numpy as np
        import user_fcos
        from edudet.anchors import grid_points
        from edudet.targets import FCOS_INF, TORCHVISION_NO_MATCH, fcos_assign_numpy
        print("case hand", flush=True)
        # (5, 5) is inside [0, 0, 20, 20] (l = t = 5, r = b = 15 <= 64); (50, 50) is outside
        out = np.empty(2, np.int64)
        user_fcos.assign(np.array([[5, 5], [50, 50]], np.float32), np.array([[0, 0, 20, 20]], np.float32), out)
        assert out.tolist() == [0, -1], out
        print("case random float64", flush=True)
        rng = np.random.default_rng(0)
        points = np.concatenate(grid_points((64, 64), [(8, 8), (4, 4)], dtype=np.float64))
        n = points.shape[0]
        radius = np.repeat([12.0, 24.0], [64, 16]); low = np.repeat([-1.0, 24.0], [64, 16])
        high = np.repeat([24.0, np.inf], [64, 16])
        for seed in range(3):
            xy = rng.uniform(0, 40, (6, 2)); wh = rng.uniform(4, 40, (6, 2))
            gt = np.concatenate([xy, xy + wh], 1)
            gt[1] = gt[0]  # a tie: the first wins
            for center_sampling in (False, True):
                for torchvision_rule, no_match in ((False, FCOS_INF), (True, np.nextafter(TORCHVISION_NO_MATCH, 0))):
                    out = np.empty(n, np.int64)
                    user_fcos.assign_any(points, gt, radius, low, high, center_sampling, no_match, torchvision_rule,
                                         out)
                    expected = fcos_assign_numpy(points, gt, radius, low, high, center_sampling, no_match,
                                                 torchvision_rule)
                    assert (out == expected).all(), (out, expected)
        print("ok")
    """, timeout=600)


# ---------------------------------------------------------------- user code: CUDA (simulator in CI)

def test_cuda_user_kernel_docs_example():
    if "cuda" not in BACKENDS:
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    import numpy as np  # (the docs' `from numba import cuda` is this module's global import)
    from edudet.kernels.fcos_targets_cuda import fcos_assign, fcos_assign_point

    points = cuda.to_device(np.array([[5, 5], [50, 50]], dtype=np.float32))
    gt_host = np.array([[0, 0, 20, 20]], dtype=np.float32)
    gt, n = cuda.to_device(gt_host), 2
    radius = cuda.to_device(np.full(n, 12, np.float32))
    low, high = cuda.to_device(np.zeros(n, np.float32)), cuda.to_device(np.full(n, 64, np.float32))
    print(fcos_assign(points, gt, radius, low, high, False, np.float32(np.inf)).copy_to_host())   # [ 0 -1]

    @cuda.jit
    def assign_kernel(points, gt, areas, cx, cy, out):
        p = cuda.grid(1)
        if p < points.shape[0]:
            out[p] = fcos_assign_point(points[p, 0], points[p, 1], gt, areas, cx, cy, np.float32(12),
                                       np.float32(0), np.float32(64), False, np.float32(np.inf), False)

    areas = (gt_host[:, 2] - gt_host[:, 0]) * (gt_host[:, 3] - gt_host[:, 1])
    cx, cy = (gt_host[:, 0] + gt_host[:, 2]) / 2, (gt_host[:, 1] + gt_host[:, 3]) / 2
    out = cuda.device_array(n, np.int64)
    assign_kernel[1, 32](points, gt, cuda.to_device(areas), cuda.to_device(cx), cuda.to_device(cy), out)
    print(out.copy_to_host())   # [ 0 -1]

    np.testing.assert_array_equal(out.copy_to_host(), [0, -1])
    got = fcos_assign(points, gt, radius, low, high, False, np.float32(np.inf))
    assert not isinstance(got, np.ndarray)  # device arrays in, a device array out
    np.testing.assert_array_equal(got.copy_to_host(), [0, -1])
    # random input, device arrays in and out, against the reference
    args = _level_inputs(seed=3)
    for center_sampling in (False, True):
        expected = fcos_assign_numpy(*args, center_sampling, np.float32(FCOS_INF))
        device = fcos_assign(*[cuda.to_device(a) for a in args], center_sampling, np.float32(FCOS_INF))
        np.testing.assert_array_equal(device.copy_to_host(), expected)
        host = fcos_assign(*args, center_sampling, np.float32(FCOS_INF))
        assert isinstance(host, np.ndarray)
        np.testing.assert_array_equal(host, expected)
