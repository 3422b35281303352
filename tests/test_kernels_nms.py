"""The NMS kernels as a library: called from users' own Numba, Cython and CUDA code (docs/kernels/nms.md)."""
import re
from pathlib import Path

import numpy as np
import pytest

from edudet import ops
from edudet.ops.nms import batched_nms_numpy, nms_numpy, soft_nms_numpy
from helpers import assert_child_ok, random_boxes, require

numba = pytest.importorskip("numba")
from numba import njit  # noqa: E402

from edudet.kernels import nms_numba  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "kernels" / "nms.md"


@pytest.mark.parametrize("index", range(3), ids=["numba", "cython", "cuda"])
def test_doc_examples_run(index):
    example = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[index]
    if "cimport" in example:
        require("Cython", "the Cython user-code example")
        pytest.importorskip("edudet.kernels.nms_cython")
    assert_child_ok("print('example', %d, flush=True)\n" % index + example, timeout=600)


@njit
def user_offset_and_match(boxes, scores, idxs, threshold):
    return (nms_numba.nms(boxes, scores, threshold, 1), nms_numba.batched_nms(boxes, scores, idxs, threshold, 1),
            nms_numba.nms_match_flat(boxes, scores, threshold))


def test_user_njit_offset_and_nms_match_by_hand():
    # [0,0,9,9] vs [5,5,14,14]: IoU 25/175 = 0.143 with offset 1 (> 0.12: suppressed; offset 0 gives 0.11);
    # nms_match at 0.12 with its offset-0 IoU 16/146 = 0.11 < 0.12: two groups
    boxes = np.array([[0, 0, 9, 9], [5, 5, 14, 14]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    keep, batched, (members, starts) = user_offset_and_match(boxes, scores, np.array([0, 0]), 0.12)
    assert keep.tolist() == [0] and batched.tolist() == [0]
    assert members.tolist() == [0, 1] and starts.tolist() == [0, 1, 2]
    _, _, (members, starts) = user_offset_and_match(boxes, scores, np.array([0, 0]), 0.1)  # 0.11 >= 0.1
    assert members.tolist() == [0, 1] and starts.tolist() == [0, 2]
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 200, image_size=200.0, dtype=np.float64)
    scores = rng.random(200)
    members, starts = user_offset_and_match(boxes, scores, np.zeros(200, np.int64), 0.3)[2]
    expected = ops.nms_match(np.concatenate([boxes, scores[:, None]], axis=1), 0.3, backend="numpy")
    assert [members[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])] == [g.tolist() for g in expected]


@njit
def user_nms(boxes, scores, idxs, threshold):
    return (nms_numba.nms(boxes, scores, threshold), nms_numba.batched_nms(boxes, scores, idxs, threshold),
            nms_numba.soft_nms(boxes, scores, threshold, 0.5, 1e-3, 1, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_user_njit_equals_ops(dtype):
    rng = np.random.default_rng(11)
    boxes = random_boxes(rng, 300, image_size=300.0, dtype=dtype)
    scores = rng.random(300).astype(dtype)
    scores[:40] = scores[40:80]  # ties: broken by increasing index
    idxs = rng.integers(0, 4, 300)
    keep, batched, (dets, soft_keep) = user_nms(boxes, scores, idxs, 0.5)
    assert np.array_equal(keep, nms_numpy(boxes, scores, 0.5))
    assert np.array_equal(batched, batched_nms_numpy(boxes, scores, idxs, 0.5))
    ref_dets, ref_keep = soft_nms_numpy(boxes, scores, 0.5, 0.5, 1e-3, 1, 0)
    assert np.array_equal(soft_keep, ref_keep) and np.array_equal(dets, ref_dets)


def test_user_njit_by_hand():
    # IoU(0, 1) = 81 / 119 = 0.68 > 0.5: box 1 goes; box 2 is disjoint; in batched NMS box 1 has label 1: kept
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    keep, batched, _ = user_nms(boxes, scores, np.array([0, 1, 0]), 0.5)
    assert keep.tolist() == [0, 2] and batched.tolist() == [0, 1, 2]
    keep, _, _ = user_nms(boxes, scores, np.array([0, 1, 0]), 0.7)  # 0.68 is not > 0.7
    assert keep.tolist() == [0, 1, 2]


def _entries(backend):
    if backend == "numba":
        return nms_numba
    return pytest.importorskip(f"edudet.kernels.nms_{backend}")


@pytest.mark.parametrize("backend", ["numba", "cython", "cuda"])
def test_mismatched_lengths_raise_instead_of_keeping_garbage(backend):
    # Issue 13: nms_numba.nms with 200 boxes and 5 scores returned 5 keeps
    module = _entries(backend)
    rng = np.random.default_rng(0)
    boxes, scores = random_boxes(rng, 200), rng.random(200).astype(np.float32)
    with pytest.raises(ValueError, match="scores"):
        module.nms(boxes, scores[:5], 0.5)
    with pytest.raises(ValueError, match="idxs"):
        module.batched_nms(boxes, scores, np.zeros(5, np.int64), 0.5)
    with pytest.raises(ValueError, match="boxes must be C-contiguous"):
        module.nms(np.asfortranarray(boxes), scores, 0.5)
    with pytest.raises(ValueError, match="boxes must have shape"):
        module.nms(boxes[:, :3].copy(), scores, 0.5)
    with pytest.raises(ValueError, match="scores"):
        module.nms(boxes, scores.reshape(200, 1), 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        module.nms(boxes, scores, -0.5)
    if hasattr(module, "soft_nms"):
        with pytest.raises(ValueError, match="same dtype|must have dtype"):
            module.soft_nms(boxes, scores.astype(np.float64), 0.3, 0.5, 1e-3, 1, 0)
        with pytest.raises(ValueError, match="method"):
            module.soft_nms(boxes, scores, 0.3, 0.5, 1e-3, 7, 0)


def test_numba_entries_scan_for_nan():
    boxes, scores = np.ones((3, 4), np.float32), np.ones(3, np.float32)
    scores[1] = np.nan
    with pytest.raises(ValueError, match="scores contains NaN or inf"):
        nms_numba.nms(boxes, scores, 0.5)
    boxes[0, 0] = np.inf
    with pytest.raises(ValueError, match="boxes contains NaN or inf"):
        nms_numba.batched_nms(boxes, np.ones(3, np.float32), np.zeros(3, np.int64), 0.5)


def test_debug_mode_checks_values_in_cython_and_cuda_entries():
    assert_child_ok("""
        import os, importlib
        os.environ["EDUDET_CHECK_KERNELS"] = "1"
        import numpy as np
        boxes, scores = np.ones((3, 4), np.float32), np.ones(3, np.float32)
        bad_scores = scores.copy()
        bad_scores[2] = np.nan
        for backend in ("cython", "cuda"):
            print(backend, flush=True)
            try:
                module = importlib.import_module(f"edudet.kernels.nms_{backend}")
            except ImportError:
                continue
            for args, name in (((boxes, bad_scores), "scores"), ((boxes * 2e15, scores), "boxes")):
                try:
                    module.nms(*args, 0.5)
                except ValueError as err:
                    assert str(err).startswith(name) and "EDUDET_CHECK_KERNELS" in str(err), err
                else:
                    raise AssertionError(f"{backend} accepted bad {name}")
        print("ok")
    """)


def test_cuda_device_arrays_in_device_arrays_out():
    from numba import cuda

    from edudet.kernels import boxes_cuda

    rng = np.random.default_rng(5)
    boxes, scores = random_boxes(rng, 80, image_size=200.0), rng.random(80).astype(np.float32)
    idxs = rng.integers(0, 3, 80)
    keep = ops.nms(cuda.to_device(boxes), cuda.to_device(scores), 0.5)
    assert boxes_cuda.is_device_array(keep)
    assert np.array_equal(keep.copy_to_host(), nms_numpy(boxes, scores, 0.5))
    keep = ops.batched_nms(cuda.to_device(boxes), cuda.to_device(scores), cuda.to_device(idxs), 0.5)
    assert np.array_equal(keep.copy_to_host(), batched_nms_numpy(boxes, scores, idxs, 0.5))
    with pytest.raises(ValueError, match="GPU arrays need backend='cuda'"):
        ops.nms(cuda.to_device(boxes), cuda.to_device(scores), 0.5, backend="cython")
    with pytest.raises(ValueError, match="iou_threshold"):
        ops.nms(cuda.to_device(boxes), cuda.to_device(scores), -1)


_USER_PYX_CIMPORTS_NMS_SORTED_CHILD = '''
import os, subprocess, sys, tempfile
import numpy as np
from edudet import ops
source = """
# cython: language_level=3
import numpy as np
from cython cimport floating
from edudet.kernels.nms_cython cimport nms_sorted, nms_sorted_offset

def keep_mask(const floating[:, ::1] sorted_boxes, double threshold, Py_ssize_t capacity):
    keep = np.full(capacity, 7, dtype=np.uint8)
    cdef unsigned char[::1] k = keep
    cdef Py_ssize_t kept
    with nogil:
        kept = nms_sorted(sorted_boxes, threshold, k)
    return kept, keep

def keep_mask_offset(const floating[:, ::1] sorted_boxes, double threshold, int offset):
    keep = np.zeros(sorted_boxes.shape[0], dtype=np.uint8)
    cdef unsigned char[::1] k = keep
    cdef Py_ssize_t kept
    with nogil:
        kept = nms_sorted_offset(sorted_boxes, threshold, k, offset)
    return kept, keep
"""
build = """
import numpy, edudet.kernels
from Cython.Build import cythonize
from setuptools import Extension, setup
setup(name="user_nms_kernels", script_args=["build_ext", "--inplace"],
      ext_modules=cythonize([Extension("user_nms_kernels", ["user_nms_kernels.pyx"],
                               include_dirs=[numpy.get_include()])],
                    include_path=[edudet.kernels.get_include()]))
"""
folder = tempfile.mkdtemp()
with open(os.path.join(folder, "user_nms_kernels.pyx"), "w") as f:
    f.write(source)
print("compiling", flush=True)
done = subprocess.run([sys.executable, "-c", build], cwd=folder, capture_output=True, text=True)
assert done.returncode == 0, done.stderr[-3000:]
sys.path.insert(0, folder)
import user_nms_kernels as user
# by hand: [0,0,10,10] then [1,1,11,11] (IoU 81/119 > 0.5: dropped) then a disjoint box
by_hand = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float64)
kept, keep = user.keep_mask(by_hand, 0.5, 3)
assert kept == 2 and keep.tolist() == [1, 0, 1], (kept, keep)
assert user.keep_mask(by_hand, 0.5, 2)[0] == -1   # keep too short: refused, nothing written past it
assert user.keep_mask(by_hand[:0], 0.5, 0)[0] == 0
# offset: [0,0,9,9] vs [5,5,14,14]: IoU 16/146 = 0.11 (offset 0) or 25/175 = 0.14 (offset 1, inclusive pixels)
pixels = np.array([[0, 0, 9, 9], [5, 5, 14, 14]], np.float32)
assert user.keep_mask_offset(pixels, 0.12, 0)[1].tolist() == [1, 1]
assert user.keep_mask_offset(pixels, 0.12, 1)[1].tolist() == [1, 0]
assert user.keep_mask_offset(pixels, 0.12, 2)[0] == -1   # an offset other than 0 or 1 is refused
rng = np.random.default_rng(1)
for dtype in (np.float32, np.float64):
    print("random", dtype.__name__, flush=True)
    xy = rng.uniform(0, 300, (500, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 80, (500, 2))], axis=1).astype(dtype)
    scores = rng.random(500).astype(dtype)
    order = np.argsort(-scores, kind="stable")
    kept, keep = user.keep_mask(np.ascontiguousarray(boxes[order]), 0.5, 500)
    expected = ops.nms(boxes, scores, 0.5, backend="numpy")
    assert kept == len(expected) and np.array_equal(order[keep.view(bool)], expected)
print("ok")
'''


def test_user_pyx_cimports_nms_sorted():
    require("Cython", "the Cython user-code test")
    pytest.importorskip("edudet.kernels.nms_cython")
    assert_child_ok(_USER_PYX_CIMPORTS_NMS_SORTED_CHILD, timeout=600)
