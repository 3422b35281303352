"""The box kernels as a library: called from users' own Numba, Cython and CUDA code (docs/kernels/boxes.md)."""
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edudet
from edudet import ops
from edudet.ops.boxes import box_iou_numpy, generalized_box_iou_numpy
from helpers import assert_child_ok, random_boxes, require

numba = pytest.importorskip("numba")
from numba import njit  # noqa: E402

from edudet.kernels import boxes_numba  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "kernels" / "boxes.md"


def doc_examples(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


@pytest.mark.parametrize("index", range(3), ids=["numba", "cython", "cuda"])
def test_doc_examples_run(index):
    example = doc_examples(DOC)[index]
    if "cimport" in example:
        require("Cython", "the Cython user-code example")
        pytest.importorskip("edudet.kernels.boxes_cython")
    print(assert_child_ok("print('example', %d, flush=True)\n" % index + example, timeout=600))


# --- user @njit code calling every public Numba kernel ------------------------------------------------------

@njit
def user_calls(boxes1, boxes2, fmt):
    """What a user's own njit code does: every public kernel, plus the inline pair IoU in a loop."""
    pairs = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    for i in range(boxes1.shape[0]):
        for j in range(boxes2.shape[0]):
            pairs[i, j] = boxes_numba.iou_xyxy(boxes1[i], boxes2[j])
    return (boxes_numba.box_iou(boxes1, boxes2), boxes_numba.generalized_box_iou(boxes1, boxes2),
            boxes_numba.box_area(boxes1), boxes_numba.box_convert(boxes1, "xyxy", fmt), pairs)


def test_user_njit_by_hand():
    # [0,0,10,10] vs [1,1,11,11]: inter 9*9 = 81, union 100 + 100 - 81 = 119; vs [20,20,30,30]: 0, and the
    # enclosing box [0,0,30,30] of area 900 gives GIoU 0 - (900 - 200) / 900 = -7/9
    a = np.array([[0, 0, 10, 10]], dtype=np.float64)
    b = np.array([[1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float64)
    iou, giou, area, converted, pairs = user_calls(a, b, "cxcywh")
    np.testing.assert_allclose(iou, [[81 / 119, 0]], rtol=1e-15)
    np.testing.assert_allclose(giou, [[81 / 119 - (121 - 119) / 121, -7 / 9]], rtol=1e-15)
    assert area.tolist() == [100.0] and converted.tolist() == [[5, 5, 10, 10]]
    assert np.array_equal(pairs, iou)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_user_njit_equals_ops_bitwise(dtype, fmt):
    rng = np.random.default_rng(7)
    a, b = random_boxes(rng, 37, dtype=dtype), random_boxes(rng, 301, dtype=dtype)
    a[3] = [5, 5, 5, 5]  # a zero-area box: union 0 against itself
    iou, giou, area, converted, pairs = user_calls(a, b, fmt)
    assert iou.dtype == giou.dtype == area.dtype == converted.dtype == dtype
    assert np.array_equal(iou, box_iou_numpy(a, b)) and np.array_equal(pairs, iou)
    assert np.array_equal(giou, generalized_box_iou_numpy(a, b))
    assert np.array_equal(area, ops.box_area(a, backend="numpy"))
    assert np.array_equal(converted, ops.box_convert(a, "xyxy", fmt, backend="numpy"))


@given(st.integers(0, 2**32 - 1), st.sampled_from(["xyxy", "xywh", "cxcywh"]),
       st.sampled_from(["xyxy", "xywh", "cxcywh"]), st.sampled_from([np.float32, np.float64]))
def test_box_area_convert_giou_backends_equal_reference(seed, in_fmt, out_fmt, dtype):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((int(rng.integers(0, 40)), 4)) * 10.0 ** rng.integers(-3, 12)).astype(dtype)
    a[:, 2:] = np.maximum(a[:, 2:], a[:, :2])  # GIoU wants x2 >= x1
    for backend in edudet.backends_for("box_area"):
        assert np.array_equal(ops.box_area(a, backend=backend), ops.box_area(a, backend="numpy"))
    for backend in edudet.backends_for("box_convert"):
        got = ops.box_convert(a, in_fmt, out_fmt, backend=backend)
        assert got.dtype == dtype and np.array_equal(got, ops.box_convert(a, in_fmt, out_fmt, backend="numpy"))
    for backend in edudet.backends_for("generalized_box_iou"):
        assert np.array_equal(ops.generalized_box_iou(a, a[:7], backend=backend),
                              ops.generalized_box_iou(a, a[:7], backend="numpy"))


def test_ops_fast_validation_still_refuses_bad_boxes_by_name():
    # box_area and box_convert validate clean float arrays with one min and one max: NaN, inf and coordinates
    # beyond 1e15 must still raise as_boxes' messages
    good = np.zeros((3, 4), np.float32)
    for bad, match in ((np.nan, r"boxes\d? contains NaN or inf"), (np.inf, r"boxes\d? contains NaN or inf"),
                       (2e15, r"boxes\d? has a coordinate of magnitude 2e\+15")):
        boxes = good.copy()
        boxes[1, 2] = bad
        for call in (lambda: ops.box_area(boxes), lambda: ops.box_convert(boxes, "xyxy", "xywh"),
                     lambda: ops.box_iou(boxes, good), lambda: ops.generalized_box_iou(good, boxes)):
            with pytest.raises(ValueError, match=match):
                call()
    assert ops.box_area(np.zeros((0, 4), np.float64)).dtype == np.float64
    assert ops.box_convert(np.zeros((0, 4), np.float32), "xyxy", "cxcywh").shape == (0, 4)


# --- structural checks at every public entry ---------------------------------------------------------------

def _bad_pairs():
    good = np.ones((5, 4))
    return [(good[:, :3], good, "boxes1 must have shape"), (good, np.ones(4), "boxes2 must (have shape|be 2-D)"),
            (good[::2], good, "boxes1 must be C-contiguous"), (np.asfortranarray(np.ones((5, 4))), good,
                                                                 "boxes1 must be C-contiguous"),
            (good, good.astype(np.float32), "boxes2 must have dtype|the same dtype"),
            (good.astype(np.int64), good.astype(np.int64), "boxes1 must be float32 or float64")]


@pytest.mark.parametrize("case", range(6))
def test_numba_entries_check_structure(case):
    boxes1, boxes2, match = _bad_pairs()[case]
    for kernel in (boxes_numba.box_iou, boxes_numba.generalized_box_iou):
        with pytest.raises(ValueError, match=match):
            kernel(boxes1, boxes2)
    if boxes1.ndim == 2 and boxes1.shape[1] == 3:
        for call in (lambda: boxes_numba.box_area(boxes1), lambda: boxes_numba.box_convert(boxes1, "xyxy", "xywh")):
            with pytest.raises(ValueError, match="boxes must have shape"):
                call()


def test_numba_entries_scan_for_nan_and_refuse_unknown_formats():
    boxes = np.ones((4, 4), np.float32)
    boxes[2, 1] = np.nan
    with pytest.raises(ValueError, match="boxes1 contains NaN or inf"):
        boxes_numba.box_iou(boxes, np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="boxes2 contains NaN or inf"):
        boxes_numba.generalized_box_iou(np.ones((1, 4), np.float32), boxes * np.float32(np.inf))
    with pytest.raises(ValueError, match="in_fmt and out_fmt must be"):
        boxes_numba.box_convert(np.ones((1, 4)), "xyxy", "yxyx")


@pytest.mark.parametrize("backend", ["cython", "cuda"])
@pytest.mark.parametrize("case", range(6))
def test_cython_and_cuda_entries_check_structure(backend, case):
    module = pytest.importorskip(f"edudet.kernels.boxes_{backend}")
    boxes1, boxes2, match = _bad_pairs()[case]
    with pytest.raises(ValueError, match=match.replace("|the same dtype", "")):
        module.box_iou(boxes1, boxes2)


def test_cuda_device_arrays_in_device_arrays_out():
    from numba import cuda

    from edudet.kernels import boxes_cuda

    rng = np.random.default_rng(3)
    a, b = random_boxes(rng, 9, dtype=np.float64), random_boxes(rng, 40, dtype=np.float64)
    got = ops.box_iou(cuda.to_device(a), cuda.to_device(b))
    assert boxes_cuda.is_device_array(got) and not isinstance(got, np.ndarray)
    np.testing.assert_allclose(got.copy_to_host(), box_iou_numpy(a, b), rtol=1e-12, atol=1e-15)
    assert np.array_equal(boxes_cuda.box_iou(a, b), ops.box_iou(a, b, backend="cuda"))  # host in, host out
    empty = boxes_cuda.box_iou(cuda.to_device(a[:0]), cuda.to_device(b))
    assert boxes_cuda.is_device_array(empty) and empty.shape == (0, 40)
    with pytest.raises(ValueError, match="GPU arrays need backend='cuda'"):
        ops.box_iou(cuda.to_device(a), cuda.to_device(b), backend="numba")
    with pytest.raises(ValueError, match="boxes2 must be C-contiguous"):
        boxes_cuda.box_iou(cuda.to_device(a), cuda.to_device(b)[::2])


def test_debug_mode_checks_values_in_cython_and_cuda_entries():
    assert_child_ok("""
        import os, importlib
        os.environ["EDUDET_CHECK_KERNELS"] = "1"
        import numpy as np
        boxes = np.ones((3, 4), np.float32)
        boxes[1, 0] = np.nan
        for backend in ("cython", "cuda"):
            print(backend, flush=True)
            try:
                module = importlib.import_module(f"edudet.kernels.boxes_{backend}")
            except ImportError:
                continue
            for args, name in (((boxes, boxes[:1] * 0), "boxes1"), ((boxes[:1] * 0, boxes * 2e15), "boxes2")):
                try:
                    module.box_iou(*args)
                except ValueError as err:
                    assert name in str(err) and "EDUDET_CHECK_KERNELS" in str(err), err
                else:
                    raise AssertionError(f"{backend} accepted bad {name}")
        print("ok")
    """)


_USER_PYX_CIMPORTS_IOU_XYXY_AND_BOX_AREA_CHILD = '''
import os, subprocess, sys, tempfile
import numpy as np
from edudet import ops
source = """
# cython: language_level=3
import numpy as np
from cython cimport floating
from edudet.kernels.boxes_cython cimport iou_xyxy, box_area, iou_xyxy_offset, box_area_offset

def all_pairs(const floating[:, ::1] a, const floating[:, ::1] b):
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.asarray(a).dtype)
    cdef floating[:, ::1] o = out
    cdef Py_ssize_t i, j
    with nogil:
        for i in range(a.shape[0]):
            for j in range(b.shape[0]):
                o[i, j] = iou_xyxy(&a[i, 0], &b[j, 0])
    return out

def areas(const floating[:, ::1] boxes):
    out = np.empty(boxes.shape[0], dtype=np.asarray(boxes).dtype)
    cdef floating[::1] o = out
    with nogil:
        box_area(boxes, o)
    return out

def pixel_pairs(const floating[:, ::1] a, const floating[:, ::1] b):
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.asarray(a).dtype)
    cdef floating[:, ::1] o = out
    cdef Py_ssize_t i, j
    with nogil:
        for i in range(a.shape[0]):
            for j in range(b.shape[0]):
                o[i, j] = iou_xyxy_offset(&a[i, 0], &b[j, 0], 1)
    return out

def pixel_areas(const floating[:, ::1] boxes):
    out = np.empty(boxes.shape[0], dtype=np.asarray(boxes).dtype)
    cdef floating[::1] o = out
    with nogil:
        box_area_offset(boxes, o, 1)
    return out
"""
build = """
import numpy, edudet.kernels
from Cython.Build import cythonize
from setuptools import Extension, setup
setup(name="user_box_kernels", script_args=["build_ext", "--inplace"],
      ext_modules=cythonize([Extension("user_box_kernels", ["user_box_kernels.pyx"],
                               include_dirs=[numpy.get_include()])],
                    include_path=[edudet.kernels.get_include()]))
"""
folder = tempfile.mkdtemp()
with open(os.path.join(folder, "user_box_kernels.pyx"), "w") as f:
    f.write(source)
print("compiling", flush=True)
done = subprocess.run([sys.executable, "-c", build], cwd=folder, capture_output=True, text=True)
assert done.returncode == 0, done.stderr[-3000:]
sys.path.insert(0, folder)
import user_box_kernels as user
# by hand: 81 / 119 (see the Numba test), 0 for disjoint boxes, 0 for two zero-area boxes
a = np.array([[0, 0, 10, 10], [5, 5, 5, 5]], np.float64)
b = np.array([[1, 1, 11, 11], [20, 20, 30, 30], [5, 5, 5, 5]], np.float64)
assert user.all_pairs(a, b).tolist() == [[81 / 119, 0, 0], [0, 0, 0]]
# offset 1 (inclusive pixels), [0,0,9,9] vs [5,5,14,14]: 5*5 = 25 over 100 + 100 - 25 = 175; areas 100 and 1
c = np.array([[0, 0, 9, 9], [5, 5, 5, 5]], np.float64)
assert user.pixel_pairs(c, np.array([[5, 5, 14, 14]], np.float64)).tolist() == [[25 / 175], [1 / 100]]
assert user.pixel_areas(c).tolist() == [100, 1]
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    print("random", dtype.__name__, flush=True)
    x = (rng.uniform(0, 100, (60, 4))).astype(dtype)
    x[:, 2:] += x[:, :2]
    assert np.array_equal(user.all_pairs(x, x[:23]), ops.box_iou(x, x[:23], backend="numpy"))
    assert np.array_equal(user.areas(x), ops.box_area(x, backend="numpy"))
    assert np.array_equal(user.pixel_pairs(x, x[:23]), ops.box_iou(x, x[:23], backend="numpy", offset=1))
    assert np.array_equal(user.pixel_areas(x), ops.box_area(x, backend="numpy", offset=1))
print("ok")
'''


def test_user_pyx_cimports_iou_xyxy_and_box_area():
    require("Cython", "the Cython user-code test")
    pytest.importorskip("edudet.kernels.boxes_cython")
    assert_child_ok(_USER_PYX_CIMPORTS_IOU_XYXY_AND_BOX_AREA_CHILD, timeout=600)


# --- the pixel convention (offset) and masks_to_boxes, called from user code --------------------------------

@njit
def user_offset_calls(boxes1, boxes2):
    pairs = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    for i in range(boxes1.shape[0]):
        for j in range(boxes2.shape[0]):
            pairs[i, j] = boxes_numba.iou_xyxy_offset(boxes1[i], boxes2[j], 1)
    return (boxes_numba.box_iou(boxes1, boxes2, 1), boxes_numba.generalized_box_iou(boxes1, boxes2, 1),
            boxes_numba.box_area(boxes1, 1), pairs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_user_njit_offset_kernels_equal_ops_bitwise(dtype):
    rng = np.random.default_rng(8)
    a, b = random_boxes(rng, 23, dtype=dtype), random_boxes(rng, 101, dtype=dtype)
    a[0] = [0, 0, 9, 9]
    b[0] = [5, 5, 14, 14]
    iou, giou, area, pairs = user_offset_calls(a, b)
    assert iou.dtype == giou.dtype == area.dtype == pairs.dtype == dtype
    np.testing.assert_allclose(iou[0, 0], 25 / 175, rtol=1e-7)  # the docs' pair, inclusive pixels
    assert np.array_equal(iou, box_iou_numpy(a, b, 1)) and np.array_equal(pairs, iou)
    assert np.array_equal(giou, generalized_box_iou_numpy(a, b, 1))
    assert np.array_equal(area, ops.box_area(a, backend="numpy", offset=1))
    # the old signatures still work, with offset 0
    assert np.array_equal(boxes_numba.box_iou(a, b), box_iou_numpy(a, b))
    assert np.array_equal(boxes_numba.box_area(a), ops.box_area(a, backend="numpy"))


from numba import cuda  # noqa: E402  (a module global: the CUDA simulator swaps it inside kernels)

from edudet.kernels.boxes_cuda import iou_xyxy_offset  # noqa: E402


@cuda.jit
def diagonal_pixel_iou(boxes1, boxes2, offset, out):
    """A user's kernel: out[i] = the inclusive-pixel IoU of boxes1[i] and boxes2[i]."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = iou_xyxy_offset(boxes1[i], boxes2[i], offset[0])


@pytest.mark.skipif("cuda" not in edudet.backends_for("box_iou"), reason="numba.cuda is not usable here")
def test_cuda_user_kernel_calls_iou_xyxy_offset():
    from edudet.kernels import boxes_cuda

    a = np.array([[0, 0, 9, 9], [0, 0, 9, 9]], np.float32)
    b = np.array([[5, 5, 14, 14], [10, 0, 19, 9]], np.float32)
    out = np.zeros(2, np.float32)
    diagonal_pixel_iou[1, 32](a, b, np.ones(1, np.float32), out)
    # 25 / 175, and 0 for boxes side by side (overlap width 9 - 10 + 1 = 0)
    np.testing.assert_allclose(out, [25 / 175, 0], rtol=1e-7)
    rng = np.random.default_rng(9)
    x = random_boxes(rng, 11, dtype=np.float64)
    assert np.array_equal(boxes_cuda.box_iou(x, x[:5], 1), box_iou_numpy(x, x[:5], 1))
    assert np.array_equal(boxes_cuda.generalized_box_iou(x, x[:5], 1), generalized_box_iou_numpy(x, x[:5], 1))
    assert np.array_equal(boxes_cuda.box_areas(x, 1), ops.box_area(x, backend="numpy", offset=1))


@pytest.mark.parametrize("backend", ["numba", "cython", "cuda"])
def test_masks_to_boxes_entries_check_structure(backend):
    module = pytest.importorskip(f"edudet.kernels.boxes_{backend}")
    masks = np.zeros((2, 4, 6), np.uint8)
    masks[1, 2, 3] = 1
    assert module.masks_to_boxes(masks).tolist() == [[0, 0, 0, 0], [3, 2, 3, 2]]
    assert module.masks_to_boxes(masks.astype(bool)).tolist() == [[0, 0, 0, 0], [3, 2, 3, 2]]
    with pytest.raises(ValueError, match="masks must (have shape|be 3-D)"):
        module.masks_to_boxes(masks[0])
    with pytest.raises(ValueError, match="masks must be C-contiguous"):
        module.masks_to_boxes(masks[:, :, ::2])
    with pytest.raises(ValueError, match="masks must be uint8 or bool"):
        module.masks_to_boxes(masks.astype(np.float32))


@pytest.mark.parametrize("backend", ["cython", "cuda"])
def test_cython_and_cuda_giou_and_area_entries_check_structure(backend):
    module = pytest.importorskip(f"edudet.kernels.boxes_{backend}")
    for case in range(6):
        boxes1, boxes2, match = _bad_pairs()[case]
        with pytest.raises(ValueError, match=match.replace("|the same dtype", "")):
            module.generalized_box_iou(boxes1, boxes2)
    with pytest.raises(ValueError, match="boxes must have shape"):
        module.box_areas(np.ones((3, 5)))
    with pytest.raises(ValueError, match="boxes must be float32 or float64"):
        module.box_areas(np.ones((3, 4), np.int64))
