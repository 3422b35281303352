"""edudet.kernels.matching_*: the fused IoU + Matcher kernels called as a user would (Numba, Cython, CUDA),
checked against `edudet.Matcher`; structural checks at every entry; the debug mode.

The examples of docs/kernels/matching.md are copied here verbatim (their printed values asserted after them).
"""
import numpy as np
import pytest

from edudet import Matcher
from edudet.matcher import _match_boxes
from edudet.ops import box_iou
from helpers import assert_child_ok, random_boxes, require

BACKENDS = _match_boxes.backends

try:  # a module global: the CUDA simulator swaps `cuda` in a kernel's globals, not in a function's locals
    from numba import cuda
except ImportError:  # pragma: no cover
    cuda = None


def _random_case(seed, n_gt=7, n=300, dtype=np.float32):
    rng = np.random.default_rng(seed)
    gt = random_boxes(rng, n_gt, 200.0, 8, 80, dtype)
    boxes = np.concatenate([random_boxes(rng, n, 200.0, 8, 80, dtype), gt[:3]])  # exact ties with gts
    return gt, boxes


# ---------------------------------------------------------------- structural checks at every entry

@pytest.mark.parametrize("gt, boxes, match", [
    (np.zeros((2, 4), np.float32), np.zeros((3, 5), np.float32), "boxes"),
    (np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32), "gt"),
    (np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float64), "same float dtype"),
    (np.zeros((2, 4), np.float32), np.zeros((4, 3), np.float32).T, "boxes"),  # (3, 4), not C-contiguous
    (np.zeros((4, 2), np.float32).T, np.zeros((3, 4), np.float32), "gt"),
])
def test_structural_checks_raise_at_every_entry(gt, boxes, match):
    for backend in BACKENDS:
        if backend == "numpy":
            continue  # the reference trusts Matcher.match_boxes, as documented
        with pytest.raises(ValueError, match=match):
            _match_boxes.get(backend)(gt, boxes, np.float32(0.7), np.float32(0.3), True)


def test_numba_refuses_nan_and_inf_by_name():
    require("numba", "the Numba kernel tests")
    from edudet.kernels.matching_numba import match_boxes

    good = np.array([[0, 0, 10, 10]], np.float32)
    with pytest.raises(ValueError, match="gt contains NaN or inf"):
        match_boxes(np.array([[0, 0, np.inf, 10]], np.float32), good, 0.7, 0.3, True)
    with pytest.raises(ValueError, match="boxes contains NaN or inf"):
        match_boxes(good, np.array([[0, np.nan, 10, 10]], np.float32), 0.7, 0.3, True)


def test_debug_mode_refuses_nan_in_cython_and_cuda():
    assert_child_ok("""
        os.environ["EDUDET_CHECK_KERNELS"] = "1"
        import numpy as np
        from edudet.matcher import _match_boxes
        gt = np.array([[0, 0, 10, 10]], np.float32)
        boxes = np.array([[0, 0, 10, 10], [np.nan, 0, 1, 1]], np.float32)
        for backend in ("cython", "cuda"):
            if backend not in _match_boxes.backends:
                continue
            print("case", backend, flush=True)
            try:
                _match_boxes.get(backend)(gt, boxes, np.float32(0.7), np.float32(0.3), True)
            except ValueError as err:
                assert "NaN" in str(err), err
            else:
                raise AssertionError(backend + " accepted NaN boxes in debug mode")
    """)


# ---------------------------------------------------------------- user code: Numba

def test_numba_user_code_docs_example():
    require("numba", "the Numba kernel tests")
    import numpy as np
    from numba import njit
    from edudet.kernels.matching_numba import match_boxes

    @njit
    def rpn_matches(gt, anchors):
        return match_boxes(gt, anchors, np.float32(0.7), np.float32(0.3), True)

    gt = np.array([[0, 0, 10, 10]], dtype=np.float32)
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 20], [20, 20, 30, 30]], dtype=np.float32)
    print(rpn_matches(gt, anchors))   # IoUs 1, 0.5, 0 -> [ 0 -2 -1]

    np.testing.assert_array_equal(rpn_matches(gt, anchors), [0, -2, -1])
    for seed in range(3):  # random images, ties included, against the checked layer
        gt, boxes = _random_case(seed)
        np.testing.assert_array_equal(rpn_matches(gt, boxes),
                                      Matcher(0.7, 0.3, True).match_boxes(gt, boxes, backend="numpy"))


# ---------------------------------------------------------------- user code: Cython

USER_PYX = '''
# cython: language_level=3
from libc.stdint cimport int64_t
from edudet.kernels.matching_cython cimport best_match, match_boxes_serial

def first_best(const float[:, ::1] gt, float x1, float y1, float x2, float y2):
    cdef float iou
    cdef int64_t k
    with nogil:
        k = best_match(gt, x1, y1, x2, y2, &iou)
    return k, iou

def match_images(list gts, list boxes, list bests, list gt_bests, list outs):
    cdef const float[:, ::1] g
    cdef const float[:, ::1] b
    cdef float[::1] best, gt_best
    cdef int64_t[::1] out
    for i in range(len(gts)):   # the same call can run inside your own prange over images
        g, b, best, gt_best, out = gts[i], boxes[i], bests[i], gt_bests[i], outs[i]
        with nogil:
            match_boxes_serial(g, b, 0.7, 0.3, True, best, gt_best, out)
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
        with open(os.path.join(tmp, "user_match.pyx"), "w") as f:
            f.write({USER_PYX!r})
        os.chdir(tmp)
        print("case compile", flush=True)
        setup(ext_modules=cythonize([Extension("user_match", ["user_match.pyx"],
                                               include_dirs=[numpy.get_include()])],
                                    include_path=[edudet.kernels.get_include()], quiet=True),
              script_args=["build_ext", "--inplace", "-q"])
        sys.path.insert(0, tmp)
        import numpy as np
        import user_match
        from edudet import Matcher
        from edudet.ops import box_iou
        print("case best_match", flush=True)
        gt = np.array([[0, 0, 10, 10], [0, 0, 10, 20]], np.float32)
        # box (0, 0, 10, 20): IoU 100 / 200 = 0.5 with gt 0, 1 with gt 1
        assert user_match.first_best(gt, 0, 0, 10, 20) == (1, 1.0)
        # box (0, 0, 10, 10): IoU 1 with gt 0, 0.5 with gt 1: the first best is 0
        assert user_match.first_best(gt, 0, 0, 10, 10) == (0, 1.0)
        print("case images", flush=True)
        rng = np.random.default_rng(0)
        gts, boxes = [], []
        for _ in range(3):
            xy = rng.uniform(0, 150, (40, 2)); wh = rng.uniform(8, 60, (40, 2))
            b = np.concatenate([xy, xy + wh], 1).astype(np.float32)
            gts.append(np.ascontiguousarray(b[:5])); boxes.append(b)   # boxes 0..4 tie with their own gt
        outs = [np.empty(len(b), np.int64) for b in boxes]
        user_match.match_images(gts, boxes, [np.empty(len(b), np.float32) for b in boxes],
                                [np.empty(len(g), np.float32) for g in gts], outs)
        for g, b, out in zip(gts, boxes, outs):
            expected = Matcher(0.7, 0.3, True).match_boxes(g, b, backend="numpy")
            assert (out == expected).all(), (out, expected)
            argmax = box_iou(g, b).argmax(axis=0)
            first = [user_match.first_best(g, *row)[0] for row in b.tolist()]
            assert (np.array(first) == argmax).all()
        print("ok")
    """, timeout=600)


# ---------------------------------------------------------------- user code: CUDA (simulator in CI)

def test_cuda_user_kernel_docs_example():
    if "cuda" not in BACKENDS:
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    import numpy as np  # (the docs' `from numba import cuda` is this module's global import)
    from edudet.kernels.matching_cuda import best_match, match_boxes

    gt = cuda.to_device(np.array([[0, 0, 10, 10]], dtype=np.float32))
    boxes = cuda.to_device(np.array([[0, 0, 10, 10], [0, 0, 10, 20], [20, 20, 30, 30]], dtype=np.float32))
    print(match_boxes(gt, boxes, np.float32(0.7), np.float32(0.3), False).copy_to_host())   # [ 0 -2 -1]

    @cuda.jit
    def argmax_kernel(gt, boxes, iou, index):
        i = cuda.grid(1)
        if i < boxes.shape[0]:
            iou[i], index[i] = best_match(gt, boxes[i])

    iou, index = cuda.device_array(3, np.float32), cuda.device_array(3, np.int64)
    argmax_kernel[1, 32](gt, boxes, iou, index)
    print(iou.copy_to_host(), index.copy_to_host())   # [1.  0.5 0. ] [0 0 0]

    np.testing.assert_array_equal(match_boxes(gt, boxes, np.float32(0.7), np.float32(0.3), False).copy_to_host(),
                                  [0, -2, -1])
    np.testing.assert_array_equal(iou.copy_to_host(), [1, 0.5, 0])
    np.testing.assert_array_equal(index.copy_to_host(), [0, 0, 0])
    # random input: the device function and device arrays in/out against the checked layer
    host_gt, host_boxes = _random_case(1, n_gt=4, n=40)
    d_gt, d_boxes = cuda.to_device(host_gt), cuda.to_device(host_boxes)
    n = host_boxes.shape[0]
    iou, index = cuda.device_array(n, np.float32), cuda.device_array(n, np.int64)
    argmax_kernel[2, 32](d_gt, d_boxes, iou, index)
    ious = box_iou(host_gt, host_boxes)
    np.testing.assert_array_equal(index.copy_to_host(), ious.argmax(axis=0))
    np.testing.assert_array_equal(iou.copy_to_host(), ious.max(axis=0))
    out = match_boxes(d_gt, d_boxes, np.float32(0.7), np.float32(0.3), True)
    assert not isinstance(out, np.ndarray)  # a device array: no host round trip
    np.testing.assert_array_equal(out.copy_to_host(), Matcher(0.7, 0.3, True).match_boxes(host_gt, host_boxes))
    host_out = match_boxes(host_gt, host_boxes, np.float32(0.7), np.float32(0.3), True)
    assert isinstance(host_out, np.ndarray)  # host in, host out, as before
