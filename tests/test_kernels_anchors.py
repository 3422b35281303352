"""edudet.kernels.anchors_*: the anchor-grid kernels called as a user would (Numba, Cython, CUDA), checked
against `edudet.AnchorGenerator` / `grid_anchors_numpy`; structural checks; the debug mode.

The examples of docs/kernels/anchors.md are copied here verbatim (their printed values asserted after them).
"""
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edudet import AnchorGenerator
from edudet.anchors import _grid_anchors, grid_anchors_numpy
from helpers import assert_child_ok, require

try:  # a module global: the CUDA simulator swaps `cuda` in a kernel's globals, not in a function's locals
    from numba import cuda
except ImportError:  # pragma: no cover
    cuda = None

BACKENDS = _grid_anchors.backends
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _inputs(generator, shapes, strides):
    return (generator._base_anchors, generator._base_counts, np.array(shapes, dtype=np.int64),
            np.array(strides, dtype=np.int64), np.float32(generator.center_offset))


# ---------------------------------------------------------------- hand case, every backend

def test_hand_case_every_backend():
    # base [-16, -16, 16, 16] on a 2 x 3 map, stride 8: location (1, 1) is row 1 * 3 + 1 = 4 and shifts by
    # (8, 8): [-8, -8, 24, 24]; with center_offset 0.5 the shift is 8 + 0.5 * 8 = 12: [-4, -4, 28, 28]
    for offset, expected in ((0.0, [-8, -8, 24, 24]), (0.5, [-4, -4, 28, 28])):
        generator = AnchorGenerator(((32,),), ((1.0,),), center_offset=offset)
        for backend in BACKENDS:
            anchors = generator((16, 24), [(2, 3)], backend=backend)
            assert anchors.shape == (6, 4) and anchors.dtype == np.float32
            np.testing.assert_array_equal(anchors[4], expected, err_msg=backend)


# ---------------------------------------------------------------- property: every backend equals the reference

@given(height=st.integers(8, 120), width=st.integers(8, 120), ks=st.lists(st.integers(0, 4), min_size=1, max_size=3),
       sizes=st.lists(st.integers(1, 300), min_size=1, max_size=2),
       ratios=st.lists(st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.3]), min_size=1, max_size=2),
       offset=st.sampled_from([0.0, 0.5, 0.37]), rounding=st.booleans(), float64=st.booleans())
def test_every_backend_equals_the_reference(height, width, ks, sizes, ratios, offset, rounding, float64):
    shapes = [(-(-height // 2 ** k), -(-width // 2 ** k)) for k in ks]
    generator = AnchorGenerator((tuple(sizes),) * len(ks), (tuple(ratios),) * len(ks), rounding=rounding,
                                center_offset=offset)
    dtype = np.float64 if float64 else np.float32
    expected = generator((height, width), shapes, dtype=dtype, backend="numpy")
    for backend in BACKENDS:
        if backend == "cuda" and SIMULATED and expected.shape[0] > 600:
            continue  # the simulator runs each GPU thread in Python
        got = generator((height, width), shapes, dtype=dtype, backend=backend)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected, err_msg=backend)


def test_fpn_800x1216_every_cpu_backend():
    # the benchmark's workload: 242,991 anchors, equal to the reference bit for bit
    sizes, ratios = ((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5
    shapes = [(-(-800 // 2 ** k), -(-1216 // 2 ** k)) for k in range(2, 7)]
    generator = AnchorGenerator(sizes, ratios)
    expected = generator((800, 1216), shapes, backend="numpy")
    assert expected.shape == (242991, 4)
    for backend in BACKENDS:
        if backend != "cuda":
            np.testing.assert_array_equal(generator((800, 1216), shapes, backend=backend), expected, err_msg=backend)


# ---------------------------------------------------------------- structural checks at every entry

def _kernels():
    out = {}
    for backend in BACKENDS:
        out[backend] = grid_anchors_numpy if backend == "numpy" else _grid_anchors.get(backend)
    return out


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(out=np.empty((5, 4), np.float32)), "out"),  # one row short: a write would leave out
    (lambda a: a.update(out=np.empty((6, 3), np.float32)), "out"),
    (lambda a: a.update(out=np.empty((4, 6), np.float32).T), "out"),  # (6, 4), not C-contiguous
    (lambda a: a.update(base_counts=np.array([2])), "base_counts"),
    (lambda a: a.update(base_anchors=np.zeros((1, 4), np.float64)), "base_anchors"),
    (lambda a: a.update(feature_shapes=np.array([[2, 3], [1, 1]])), "feature_shapes"),
    (lambda a: a.update(strides=np.array([[8, 8, 8]])), "strides"),
    (lambda a: a.update(feature_shapes=np.array([[-2, -3]])), "feature_shapes"),
])
def test_structural_checks_raise(change, match):
    for backend, kernel in _kernels().items():
        if backend == "numpy":
            continue  # the reference trusts AnchorGenerator, as documented
        args = dict(base_anchors=np.array([[-16, -16, 16, 16]], np.float32), base_counts=np.array([1]),
                    feature_shapes=np.array([[2, 3]]), strides=np.array([[8, 8]]), center_offset=np.float32(0),
                    out=np.empty((6, 4), np.float32))
        change(args)
        with pytest.raises(ValueError, match=match):
            kernel(**args)


def test_numba_refuses_non_finite_base_anchors():
    pytest.importorskip("numba")
    from edudet.kernels.anchors_numba import grid_anchors

    with pytest.raises(ValueError, match="base_anchors contains NaN"):
        grid_anchors(np.array([[np.nan, 0, 1, 1]], np.float32), np.array([1]), np.array([[1, 1]]),
                     np.array([[8, 8]]), np.float32(0), np.empty((1, 4), np.float32))


def test_debug_mode_refuses_nan_in_cython_and_cuda():
    assert_child_ok("""
        os.environ["EDUDET_CHECK_KERNELS"] = "1"
        import numpy as np
        from edudet.anchors import _grid_anchors
        args = (np.array([[np.nan, 0, 1, 1]], np.float32), np.array([1]), np.array([[1, 1]]), np.array([[8, 8]]),
                np.float32(0), np.empty((1, 4), np.float32))
        for backend in ("cython", "cuda"):
            if backend not in _grid_anchors.backends:
                continue
            print("case", backend, flush=True)
            try:
                _grid_anchors.get(backend)(*args)
            except ValueError as err:
                assert "NaN" in str(err), err
            else:
                raise AssertionError(backend + " accepted NaN base anchors in debug mode")
    """)


# ---------------------------------------------------------------- user code: Numba (docs example, verbatim)

def test_numba_user_code_docs_example(capsys):
    require("numba", "the Numba kernel tests")
    import numpy as np
    from numba import njit
    from edudet.kernels.anchors_numba import anchor_xyxy, grid_anchors

    @njit
    def one_level(base, height, width, stride):
        out = np.empty((height * width * base.shape[0], 4), dtype=np.float32)
        counts, shapes = np.array([base.shape[0]]), np.array([[height, width]])
        return grid_anchors(base, counts, shapes, np.array([[stride, stride]]), np.float32(0), out)

    @njit
    def anchor_at(base, i, j):
        return anchor_xyxy(base[0], 8, 8, i, j, 0.0)

    base = np.array([[-16, -16, 16, 16]], dtype=np.float32)
    print(one_level(base, 2, 3, 8)[4], anchor_at(base, 1, 1))   # (i, j) = (1, 1): [-8 -8 24 24] both

    np.testing.assert_array_equal(one_level(base, 2, 3, 8)[4], [-8, -8, 24, 24])
    assert anchor_at(base, 1, 1) == (-8, -8, 24, 24)
    # against the checked layer on a real generator: every level through the user's own njit call
    generator = AnchorGenerator(((32, 64), (128,)), ((0.5, 1.0),) * 2)
    expected = generator((64, 96), [(16, 24), (8, 12)], backend="numpy")
    base_all, counts, shapes, strides, offset = _inputs(generator, [(16, 24), (8, 12)], [(4, 4), (8, 8)])

    @njit
    def user_grid(base_all, counts, shapes, strides, offset, total):
        return grid_anchors(base_all, counts, shapes, strides, offset, np.empty((total, 4), dtype=np.float32))

    np.testing.assert_array_equal(user_grid(base_all, counts, shapes, strides, offset, expected.shape[0]), expected)


# ---------------------------------------------------------------- user code: Cython (docs example, verbatim)

USER_PYX = '''
# cython: language_level=3
from edudet.kernels.anchors_cython cimport fill_anchor_rows

def one_level(const float[:, ::1] base, Py_ssize_t height, Py_ssize_t width, long stride, float[:, ::1] out):
    with nogil:
        fill_anchor_rows(base, 0, height, width, stride, stride, 0, out)
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
        with open(os.path.join(tmp, "user_anchors.pyx"), "w") as f:
            f.write({USER_PYX!r})
        os.chdir(tmp)
        print("case compile", flush=True)
        setup(ext_modules=cythonize([Extension("user_anchors", ["user_anchors.pyx"],
                                               include_dirs=[numpy.get_include()])],
                                    include_path=[edudet.kernels.get_include()], quiet=True),
              script_args=["build_ext", "--inplace", "-q"])
        sys.path.insert(0, tmp)
        import numpy as np
        import user_anchors
        from edudet import AnchorGenerator
        print("case hand", flush=True)
        base = np.array([[-16, -16, 16, 16]], dtype=np.float32)
        out = np.empty((6, 4), np.float32)
        user_anchors.one_level(base, 2, 3, 8, out)
        assert out[4].tolist() == [-8, -8, 24, 24], out  # (1, 1) shifted by (8, 8)
        print("case generator", flush=True)
        generator = AnchorGenerator(((32, 64),), ((0.5, 1.0, 2.0),))
        expected = generator((96, 128), [(12, 16)], backend="numpy")
        out = np.empty_like(expected)
        user_anchors.one_level(generator.cell_anchors[0], 12, 16, 8, out)
        assert (out == expected).all()
    """, timeout=600)


# ---------------------------------------------------------------- user code: CUDA (docs example, verbatim)

def test_cuda_user_kernel_docs_example():
    if "cuda" not in BACKENDS:
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    import numpy as np  # (the docs' `from numba import cuda` is this module's global import)
    from edudet.kernels.anchors_cuda import anchor_xyxy, grid_anchors

    base = np.array([[-16, -16, 16, 16]], dtype=np.float32)
    out = cuda.device_array((2 * 3, 4), dtype=np.float32)
    grid_anchors(base, np.array([1]), np.array([[2, 3]]), np.array([[8, 8]]), 0.0, out)
    print(out.copy_to_host()[4])   # [-8. -8. 24. 24.]

    @cuda.jit
    def shifted(base, out):
        t = cuda.grid(1)
        if t < out.shape[0]:
            x1, y1, x2, y2 = anchor_xyxy(base[0], 8, 8, t // 3, t % 3, np.float32(0))
            out[t, 0], out[t, 1], out[t, 2], out[t, 3] = x1, y1, x2, y2

    mine = cuda.device_array((6, 4), dtype=np.float32)
    shifted[1, 32](cuda.to_device(base), mine)
    print(mine.copy_to_host()[4])   # [-8. -8. 24. 24.]

    np.testing.assert_array_equal(out.copy_to_host()[4], [-8, -8, 24, 24])
    expected = AnchorGenerator(((32,),), ((1.0,),))((16, 24), [(2, 3)], backend="numpy")
    np.testing.assert_array_equal(mine.copy_to_host(), expected)
    np.testing.assert_array_equal(out.copy_to_host(), expected)
