"""edudet.ops.boxes: hand-computed cases, then properties, then parity with torchvision."""
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edudet import ops
from edudet.ops.boxes import _box_iou, box_iou_numpy
from helpers import assert_child_ok, import_torchvision, random_boxes

BACKENDS = _box_iou.backends  # numpy, numba, cython where built, cuda under the simulator or with a GPU
CPU_BACKENDS = [b for b in BACKENDS if b != "cuda"]
# on a real GPU, NVVM fuses area1 + area2 - w * h into an FMA (see kernels/boxes_cuda.py): allow a few ulp
GPU_FMA = os.environ.get("NUMBA_ENABLE_CUDASIM") != "1"


def assert_backend_equal(got, expected, backend):
    """Bitwise equal to the NumPy reference; within 4 ulp for the cuda backend on real hardware."""
    if backend == "cuda" and GPU_FMA:
        np.testing.assert_array_max_ulp(got, expected, maxulp=4)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=backend)


# ---------------------------------------------------------------------------------------------------------
# hand-computed cases
# ---------------------------------------------------------------------------------------------------------

def test_box_area_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 2, 4, 8], [3, 3, 3, 9]], dtype=np.float64)
    # 10*10 = 100; (4-1)*(8-2) = 3*6 = 18; zero width: 0*6 = 0
    np.testing.assert_array_equal(ops.box_area(boxes), [100.0, 18.0, 0.0])
    # xywh [1, 2, 3, 6] and cxcywh [2.5, 5, 3, 6] are the box [1, 2, 4, 8]: 3*6 = 18
    np.testing.assert_array_equal(ops.box_area([[1, 2, 3, 6]], fmt="xywh"), [18.0])
    np.testing.assert_array_equal(ops.box_area([[2.5, 5, 3, 6]], fmt="cxcywh"), [18.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_box_iou_by_hand(backend):
    a = np.array([[0, 0, 10, 10]], dtype=np.float32)
    b = np.array(
        [
            [5, 5, 15, 15],  # overlap 5*5 = 25, union 100 + 100 - 25 = 175: 25/175 = 1/7
            [0, 0, 10, 10],  # itself: 1
            [2, 2, 6, 6],  # inside: 16 / 100
            [10, 0, 20, 10],  # shares an edge: overlap 0*10 = 0
            [20, 20, 30, 30],  # far away: 0
            [5, 5, 5, 5],  # a point inside a: overlap 0, union 100: 0
        ],
        dtype=np.float32,
    )
    iou = ops.box_iou(a, b, backend=backend)
    assert iou.shape == (1, 6) and iou.dtype == np.float32
    np.testing.assert_allclose(iou[0], [1 / 7, 1, 0.16, 0, 0, 0], rtol=1e-7, atol=0)
    assert iou[0, 1] == 1.0  # exact: the intersection is computed like the area


@pytest.mark.parametrize("backend", BACKENDS)
def test_box_iou_of_two_degenerate_boxes_is_zero_not_nan(backend):
    # union = 0 + 0 - 0 = 0: torchvision divides 0 / 0 = NaN; edudet defines it as 0
    points = np.array([[1, 1, 1, 1], [2, 2, 2, 5]], dtype=np.float64)
    iou = ops.box_iou(points, points, backend=backend)
    assert iou.dtype == np.float64
    np.testing.assert_array_equal(iou, np.zeros((2, 2)))


def test_box_iou_formats_by_hand():
    # [0, 0, 10, 10] and [5, 5, 15, 15] again, as xywh and as cxcywh: 1/7 either way
    assert ops.box_iou([[0, 0, 10, 10]], [[5, 5, 10, 10]], fmt="xywh")[0, 0] == pytest.approx(1 / 7)
    assert ops.box_iou([[5, 5, 10, 10]], [[10, 10, 10, 10]], fmt="cxcywh")[0, 0] == pytest.approx(1 / 7)


def test_generalized_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10]], dtype=np.float64)
    b = np.array(
        [
            [5, 5, 15, 15],  # iou 1/7; enclosing 15*15 = 225, union 175: 1/7 - 50/225 = 1/7 - 2/9 = -5/63
            [0, 0, 10, 10],  # itself: 1 - 0 = 1
            [20, 0, 30, 10],  # iou 0; enclosing 30*10 = 300, union 200: 0 - 100/300 = -1/3
        ]
    )
    np.testing.assert_allclose(ops.generalized_box_iou(a, b)[0], [-5 / 63, 1, -1 / 3], rtol=1e-12)
    # two distinct points: iou 0 (not NaN), enclosing 1*1 = 1, union 0: 0 - 1/1 = -1
    np.testing.assert_array_equal(ops.generalized_box_iou([[0, 0, 0, 0]], [[1, 1, 1, 1]]), [[-1.0]])
    # the same point twice: enclosing area 0, the penalty is taken as 0 (torchvision: NaN)
    np.testing.assert_array_equal(ops.generalized_box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]]), [[0.0]])


def test_box_convert_by_hand():
    xyxy = np.array([[1, 2, 5, 10]], dtype=np.float32)
    # xywh: (1, 2, 5-1, 10-2) = (1, 2, 4, 8); cxcywh: ((1+5)/2, (2+10)/2, 4, 8) = (3, 6, 4, 8)
    np.testing.assert_array_equal(ops.box_convert(xyxy, "xyxy", "xywh"), [[1, 2, 4, 8]])
    np.testing.assert_array_equal(ops.box_convert(xyxy, "xyxy", "cxcywh"), [[3, 6, 4, 8]])
    np.testing.assert_array_equal(ops.box_convert([[3, 6, 4, 8]], "cxcywh", "xyxy"), xyxy)
    np.testing.assert_array_equal(ops.box_convert([[1, 2, 4, 8]], "xywh", "cxcywh"), [[3, 6, 4, 8]])
    np.testing.assert_array_equal(ops.box_convert([[3, 6, 4, 8]], "cxcywh", "xywh"), [[1, 2, 4, 8]])
    same = ops.box_convert(xyxy, "xyxy", "xyxy")
    assert same is not xyxy and same.dtype == np.float32  # a copy, like torchvision's clone()


def test_clip_boxes_to_image_by_hand():
    boxes = np.array([[-5, -5, 850, 300], [10, 620, 20, 700]], dtype=np.float32)
    # size = (height 600, width 800): x in [0, 800], y in [0, 600]
    out = ops.clip_boxes_to_image(boxes, (600, 800))
    np.testing.assert_array_equal(out, [[0, 0, 800, 300], [10, 600, 20, 600]])
    assert boxes[0, 0] == -5  # the input is not modified


def test_remove_small_boxes_by_hand():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 2, 10], [0, 0, 10, 2.9], [5, 5, 8, 8]], dtype=np.float32)
    # sizes 10x10, 2x10, 10x2.9, 3x3: with min_size 3 keep boxes 0 and 3 (3 >= 3 counts)
    keep = ops.remove_small_boxes(boxes, 3)
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, [0, 3])
    np.testing.assert_array_equal(ops.remove_small_boxes(boxes, 0), [0, 1, 2, 3])


# ---------------------------------------------------------------------------------------------------------
# empty input, dtypes
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_inputs_give_empty_outputs(backend):
    empty = np.zeros((0, 4), dtype=np.float64)
    some = np.array([[0, 0, 1, 1]], dtype=np.float64)
    for a, b, shape in ((empty, some, (0, 1)), (some, empty, (1, 0)), (empty, empty, (0, 0))):
        out = ops.box_iou(a, b, backend=backend)
        assert out.shape == shape and out.dtype == np.float64
    assert ops.generalized_box_iou(empty, some).shape == (0, 1)
    assert ops.box_area(empty).shape == (0,)
    assert ops.box_convert(empty, "xyxy", "cxcywh").shape == (0, 4)
    assert ops.clip_boxes_to_image(empty, (10, 10)).shape == (0, 4)
    keep = ops.remove_small_boxes(empty, 1.0)
    assert keep.shape == (0,) and keep.dtype == np.int64


def test_dtypes_are_preserved_and_integers_become_float32():
    ints = np.array([[0, 0, 10, 10]], dtype=np.int64)
    f32 = ints.astype(np.float32)
    f64 = ints.astype(np.float64)
    assert ops.box_area(ints).dtype == np.float32
    assert ops.box_area(f64).dtype == np.float64
    assert ops.box_iou(ints, ints).dtype == np.float32
    assert ops.box_iou(f32, f32).dtype == np.float32
    assert ops.box_iou(f32, f64).dtype == np.float64  # promoted, as torchvision
    assert ops.generalized_box_iou(ints, f32).dtype == np.float32
    assert ops.box_convert(ints, "xyxy", "cxcywh").dtype == np.float32
    assert ops.clip_boxes_to_image(f64, (5, 5)).dtype == np.float64


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((3, 3)), ValueError, r"boxes1 must have shape \(N, 4\), got \(3, 3\)"),
        (np.zeros(4), ValueError, r"boxes1 must have shape \(N, 4\)"),
        (np.zeros((2, 2, 4)), ValueError, r"boxes1 must have shape \(N, 4\)"),
        (np.array([[0, 0, np.nan, 1]]), ValueError, "boxes1 contains NaN or inf"),
        (np.array([[0, 0, np.inf, 1]]), ValueError, "boxes1 contains NaN or inf"),
        (np.ones((1, 4), dtype=bool), TypeError, "boxes1 must have a real numeric dtype"),
        ([["a", "b", "c", "d"]], TypeError, "boxes1 must have a real numeric dtype"),
    ],
)
def test_box_iou_rejects_bad_boxes(bad, error, match):
    with pytest.raises(error, match=match):
        ops.box_iou(bad, np.zeros((1, 4)))
    with pytest.raises(error, match=match.replace("boxes1", "boxes2")):
        ops.box_iou(np.zeros((1, 4)), bad)
    with pytest.raises(error, match=match):
        ops.generalized_box_iou(bad, np.zeros((1, 4)))


def test_single_box_ops_reject_bad_boxes():
    for call in (ops.box_area, lambda b: ops.box_convert(b, "xyxy", "xywh"),
                 lambda b: ops.clip_boxes_to_image(b, (5, 5)), lambda b: ops.remove_small_boxes(b, 1)):
        with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
            call(np.zeros((2, 5)))
        with pytest.raises(ValueError, match="boxes contains NaN or inf"):
            call(np.array([[0, 0, 1, np.nan]]))


def test_bad_formats_sizes_thresholds_and_backends():
    boxes = np.zeros((1, 4))
    with pytest.raises(ValueError, match=r"in_fmt must be one of \('xyxy', 'xywh', 'cxcywh'\), got 'xyxyr'"):
        ops.box_convert(boxes, "xyxyr", "xyxy")
    with pytest.raises(ValueError, match="out_fmt must be one of"):
        ops.box_convert(boxes, "xyxy", None)
    with pytest.raises(ValueError, match="fmt must be one of"):
        ops.box_area(boxes, fmt="yxyx")
    with pytest.raises(ValueError, match="fmt must be one of"):
        ops.box_iou(boxes, boxes, fmt="numba")
    with pytest.raises(ValueError, match="not usable here; choose one of"):
        ops.box_iou(boxes, boxes, backend="tpu")
    with pytest.raises(ValueError, match=r"min_size must be >= 0, got -1.0"):
        ops.remove_small_boxes(boxes, -1)
    with pytest.raises(TypeError, match="min_size must be a real number"):
        ops.remove_small_boxes(boxes, "1")
    with pytest.raises(ValueError, match="min_size must be finite"):
        ops.remove_small_boxes(boxes, float("nan"))
    with pytest.raises(ValueError, match=r"size must be a \(height, width\) pair"):
        ops.clip_boxes_to_image(boxes, 800)
    with pytest.raises(ValueError, match=r"size\[0\] must be >= 1"):
        ops.clip_boxes_to_image(boxes, (0, 800))
    with pytest.raises(ValueError, match=r"size\[1\] must be an integer"):
        ops.clip_boxes_to_image(boxes, (600, 800.5))


# ---------------------------------------------------------------------------------------------------------
# extreme values and sizes (issue 12: findings 6 and 14)
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_coordinates_up_to_the_limit_give_the_reference_on_every_backend(dtype):
    # Finding 6: the Numba and CUDA kernels took their zero as area1 - area1, which is NaN once an area
    # overflows, and returned NaN. With coordinates up to 1e15 nothing overflows (areas <= 4e30 < 3.4e38):
    # [-1e15, -1e15, 1e15, 1e15] vs [0, 0, 1e15, 1e15]: inter 1e30, union 4e30 + 1e30 - 1e30: IoU 0.25;
    # the enclosing box is the first box, so GIoU = IoU = 0.25
    a = np.array([[-1e15, -1e15, 1e15, 1e15], [0, 0, 1e15, 1e15], [-1e15, 0, -1e15 + 1e9, 1e15]], dtype=dtype)
    expected = box_iou_numpy(a, a)
    np.testing.assert_allclose(expected[0, 1], 0.25, rtol=1e-6)
    np.testing.assert_allclose(ops.generalized_box_iou(a, a)[0, 1], 0.25, rtol=1e-6)
    assert np.isfinite(ops.generalized_box_iou(a, a)).all()
    for backend in BACKENDS:
        assert_backend_equal(ops.box_iou(a, a, backend=backend), expected, backend)
    with pytest.raises(ValueError, match=r"boxes2 has a coordinate of magnitude 1.1e\+15; edudet accepts"):
        ops.box_iou(a, a * 1.1)
    with pytest.raises(ValueError, match=r"boxes1 has a coordinate of magnitude 2e\+15"):
        ops.generalized_box_iou(a * 2, a)


def test_box_iou_kernels_called_directly_never_give_nan_for_overflowing_areas():
    # beyond the public bound (a direct kernel call): areas of inf; every backend gives the reference's 0
    assert_child_ok("""
        import importlib, warnings
        import numpy as np
        from edudet.ops.boxes import _box_iou, box_iou_numpy
        warnings.simplefilter("ignore")
        for dtype, big in ((np.float32, 2e19), (np.float64, 1e200), (np.float64, 1e308)):
            a = np.array([[0, 0, big, big], [0, 0, 1, 1], [-big, -big, big, big]], dtype)
            expected = box_iou_numpy(a, a)
            assert expected.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]], expected
            for backend in _box_iou.backends:
                print(backend, dtype.__name__, big, flush=True)
                kernel = _box_iou.get(backend)
                assert np.array_equal(kernel(a, a), expected), (backend, kernel(a, a))
        print("ok")
    """)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e-30), (np.float64, 1e-300), (np.float32, 1e-44),
                                          (np.float64, 1e-320)])
def test_tiny_and_subnormal_boxes_give_zero_not_nan(dtype, scale):
    # sides of `scale` (subnormal for 1e-44 and 1e-320): every area and intersection underflows to 0, so
    # every union is 0 and every IoU 0. GIoU: the pair of identical boxes has an enclosing area of 0 too
    # (penalty 0, GIoU 0); a tiny box against the zero-size box [1, 1, 1, 1] has union 0 (IoU 0) and
    # enclosing box [0, 0, 1, 1] of area 1: GIoU = 0 - (1 - 0) / 1 = -1
    tiny = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 1]], dtype=dtype) * dtype(scale)
    assert np.all(tiny[:, 2] > 0)
    point = np.array([[1, 1, 1, 1]], dtype=dtype)
    for backend in BACKENDS:
        iou = ops.box_iou(tiny, tiny, backend=backend)
        np.testing.assert_array_equal(iou, np.zeros((3, 3)), err_msg=backend)
        assert iou.dtype == dtype
    giou = ops.generalized_box_iou(tiny, np.concatenate([tiny, point]))
    np.testing.assert_array_equal(giou, np.array([[0, 0, 0, -1]] * 3, dtype=dtype))


def test_generalized_box_iou_refuses_inverted_boxes():
    # [2, 3, 1, 1] has "area" (1 - 2) * (1 - 3) = 2: against the point [0, 0, 0, 0] (union 2, enclosing box
    # [0, 0, 1, 1] of area 1) the formula would give 0 - (1 - 2) / 1 = +1 > IoU = 0: refused by name instead
    with pytest.raises(ValueError, match=r"boxes2 must be \(x1, y1, x2, y2\) with x2 >= x1 and y2 >= y1; box 1 is "
                                         r"\[2.0, 3.0, 1.0, 1.0\]"):
        ops.generalized_box_iou(np.zeros((2, 4), np.float32), np.array([[0, 0, 0, 0], [2, 3, 1, 1]], np.float32))
    with pytest.raises(ValueError, match=r"boxes1 must be \(x1, y1, x2, y2\)"):
        ops.generalized_box_iou([[0, 1, 1, 0]], np.zeros((1, 4)))


def test_box_iou_refuses_an_output_too_large_before_allocating():
    # Finding 14: 100k x 100k float64 is 74.5 GiB; the error names both sizes, before any allocation
    boxes = np.zeros((100_000, 4))
    with pytest.raises(ValueError, match=r"box_iou's \(N, M\) output \(boxes1: N = 100000, boxes2: M = 100000\) "
                                         r"would need 100000 x 100000 x 8 bytes = 74.5 GiB"):
        ops.box_iou(boxes, boxes)
    with pytest.raises(ValueError, match=r"generalized_box_iou's \(N, M\) output .* x 4 bytes"):
        ops.generalized_box_iou(boxes.astype(np.float32), boxes.astype(np.float32))
    with pytest.raises(ValueError, match="would need"):
        ops.box_iou(boxes, boxes, backend="numpy")


def test_numpy_references_work_in_row_chunks(monkeypatch):
    # the (rows, M, 2) temporaries are bounded by chunking the rows; chunks of 2 x 7 pairs (4 chunks for 7
    # rows) give exactly the single-chunk result
    from edudet.ops import boxes as boxes_module

    rng = np.random.default_rng(14)
    a, b = random_boxes(rng, 7, dtype=np.float64, min_side=0), random_boxes(rng, 7, dtype=np.float64, min_side=0)
    whole_iou, whole_giou = box_iou_numpy(a, b), ops.generalized_box_iou(a, b)
    monkeypatch.setattr(boxes_module, "_PAIRS_PER_CHUNK", 14)
    assert len(boxes_module._row_chunks(7, 7)) == 4
    np.testing.assert_array_equal(box_iou_numpy(a, b), whole_iou)
    np.testing.assert_array_equal(ops.generalized_box_iou(a, b), whole_giou)
    np.testing.assert_array_equal(box_iou_numpy(a[:0], b), np.zeros((0, 7)))


# every magnitude from float64's subnormals to beyond the coordinate limit
MAGNITUDES = [5e-324, 1e-300, 1e-160, 1e-45, 1e-38, 1e-30, 1e-20, 1e-6, 1.0, 1e6, 1e12, 1e15, 2e15, 1e19, 1e38,
              1e300, 1.7e308]


@st.composite
def extreme_box_sets(draw, max_boxes=6, dtype=None):
    """Boxes of one or two magnitudes on a coarse grid of them (overlaps, shared edges, zero sizes)."""
    dtype = dtype or draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(1, max_boxes))
    scales = np.array(draw(st.lists(st.sampled_from(MAGNITUDES), min_size=1, max_size=2)), dtype=np.float64)
    grid = draw(arrays(np.int64, (n, 4), elements=st.integers(-3, 3)))
    with np.errstate(over="ignore", invalid="ignore"):
        corners = grid * scales[np.arange(n) % len(scales)][:, None]
        boxes = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]),
                                np.maximum(corners[:, :2], corners[:, 2:])], axis=1).astype(dtype)
    return np.nan_to_num(boxes, posinf=np.finfo(dtype).max, neginf=-np.finfo(dtype).max)


def _outcome(call):
    try:
        return call()
    except ValueError as err:
        return str(err)


@given(data=st.data())
def test_extreme_values_give_the_reference_or_the_same_error_on_every_backend(data):
    a = data.draw(extreme_box_sets())
    b = data.draw(extreme_box_sets(dtype=a.dtype.type))
    expected = _outcome(lambda: ops.box_iou(a, b, backend="numpy"))
    if max(np.abs(a).max(), np.abs(b).max()) > 1e15:
        assert "has a coordinate of magnitude" in expected
    else:
        assert np.all((expected >= 0) & (expected <= 1))
        giou = ops.generalized_box_iou(a, b)
        eps = 1e-6 if a.dtype == np.float32 else 1e-12  # finite, and within [-1, 1] up to rounding
        assert np.all((giou >= -1 - eps) & (giou <= 1 + eps)) and giou.dtype == a.dtype
    for backend in BACKENDS:
        got = _outcome(lambda: ops.box_iou(a, b, backend=backend))
        if isinstance(expected, str):
            assert got == expected, backend
        else:
            assert_backend_equal(got, expected, backend)


# ---------------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------------

@st.composite
def box_sets(draw, max_boxes=12, dtype=None):
    """(N, 4) xyxy boxes on a coarse grid (so ties, shared edges and zero sizes are common)."""
    dtype = dtype or draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(1, max_boxes))
    coords = st.floats(0, 50, allow_nan=False, width=32).map(lambda v: round(v * 4) / 4)
    xy = np.array(draw(st.lists(st.tuples(coords, coords), min_size=n, max_size=n)), dtype=np.float64)
    sizes = st.floats(0, 30, allow_nan=False, width=32).map(lambda v: round(v * 4) / 4)
    wh = np.array(draw(st.lists(st.tuples(sizes, sizes), min_size=n, max_size=n)), dtype=np.float64)
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


@given(box_sets(), box_sets())
def test_iou_is_symmetric_bounded_and_one_on_itself(a, b):
    b = b.astype(a.dtype)
    iou = ops.box_iou(a, b, backend="numpy")
    np.testing.assert_array_equal(iou, ops.box_iou(b, a, backend="numpy").T)  # exact: + and * commute
    assert np.all((iou >= 0) & (iou <= 1))
    self_iou = np.diag(ops.box_iou(a, a, backend="numpy"))
    positive = ops.box_area(a) > 0
    np.testing.assert_array_equal(self_iou[positive], 1)
    np.testing.assert_array_equal(self_iou[~positive], 0)


@given(box_sets(max_boxes=6), box_sets(max_boxes=6))
def test_every_backend_equals_the_numpy_reference(a, b):
    b = b.astype(a.dtype)
    expected = box_iou_numpy(a, b)
    for backend in BACKENDS:  # cuda runs in the simulator here: small inputs only
        got = ops.box_iou(a, b, backend=backend)
        assert got.dtype == a.dtype, backend
        assert_backend_equal(got, expected, backend)


@pytest.mark.skipif("cuda" not in BACKENDS, reason="numba.cuda is not usable here")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_grid_edges(dtype):
    # 37 columns and 9 rows are not multiples of the (32, 8) block: the guard must skip the spare threads
    rng = np.random.default_rng(6)
    a, b = random_boxes(rng, 9, dtype=dtype), random_boxes(rng, 37, dtype=dtype, max_side=600)
    assert_backend_equal(ops.box_iou(a, b, backend="cuda"), box_iou_numpy(a, b), "cuda")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_backends_equal_the_reference_on_many_boxes(dtype):
    # 9 x 20,003 takes the kernels' parallel path (rows cross their 8192-column segments and SIMD tails),
    # 50 x 9 their one-core path
    rng = np.random.default_rng(7)
    a = random_boxes(rng, 9, dtype=dtype, min_side=0.0)
    b = random_boxes(rng, 20_003, dtype=dtype, min_side=0.0)
    b[::97, 2] = b[::97, 0]  # zero-width boxes
    a[0] = b[5]  # an exact duplicate: IoU 1
    expected = box_iou_numpy(a, b)
    assert expected[0, 5] == 1
    for backend in CPU_BACKENDS:
        np.testing.assert_array_equal(ops.box_iou(a, b, backend=backend), expected, err_msg=backend)
        np.testing.assert_array_equal(ops.box_iou(b[:50], a, backend=backend), box_iou_numpy(b[:50], a))


@given(box_sets(), box_sets())
def test_giou_is_bounded_and_below_iou(a, b):
    b = b.astype(a.dtype)
    giou = ops.generalized_box_iou(a, b)
    iou = ops.box_iou(a, b)
    eps = 1e-6 if a.dtype == np.float32 else 1e-12
    assert np.all((giou >= -1 - eps) & (giou <= 1 + eps))
    assert np.all(giou <= iou + eps)
    np.testing.assert_allclose(giou, ops.generalized_box_iou(b, a).T, rtol=0, atol=eps)


@given(box_sets(), st.sampled_from(["xywh", "cxcywh"]))
def test_box_convert_round_trips(boxes, fmt):
    there = ops.box_convert(boxes, "xyxy", fmt)
    back = ops.box_convert(there, fmt, "xyxy")
    # the grid values (quarters, < 100) are exact in float32, so only cxcywh's halving could round: it does not
    np.testing.assert_array_equal(back, boxes)
    assert there.dtype == boxes.dtype and there.flags.c_contiguous
    # IoU does not depend on the format the boxes arrive in
    np.testing.assert_allclose(ops.box_iou(there, there, fmt=fmt), ops.box_iou(boxes, boxes), atol=1e-6)
    np.testing.assert_allclose(ops.box_area(there, fmt=fmt), ops.box_area(boxes), rtol=1e-6)


@given(box_sets(), st.integers(1, 80), st.integers(1, 80))
def test_clipped_boxes_lie_inside_the_image_and_clipping_is_idempotent(boxes, height, width):
    shifted = boxes - 20  # some boxes start left of / above the image
    clipped = ops.clip_boxes_to_image(shifted, (height, width))
    assert np.all(clipped[:, 0::2] >= 0) and np.all(clipped[:, 0::2] <= width)
    assert np.all(clipped[:, 1::2] >= 0) and np.all(clipped[:, 1::2] <= height)
    np.testing.assert_array_equal(ops.clip_boxes_to_image(clipped, (height, width)), clipped)


@given(box_sets(), st.floats(0, 20))
def test_remove_small_boxes_keeps_exactly_the_large_enough_ones_in_order(boxes, min_size):
    keep = ops.remove_small_boxes(boxes, min_size)
    assert np.all(np.diff(keep) > 0)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    large = (widths >= boxes.dtype.type(min_size)) & (heights >= boxes.dtype.type(min_size))
    np.testing.assert_array_equal(keep, np.flatnonzero(large))
    assert set(ops.remove_small_boxes(boxes, min_size + 1)) <= set(keep)


# ---------------------------------------------------------------------------------------------------------
# parity with torchvision
# ---------------------------------------------------------------------------------------------------------

def _edge_case_boxes(rng, n, dtype):
    """Random 800-px boxes plus zero-area, duplicate, out-of-image and negative-coordinate ones."""
    boxes = random_boxes(rng, n, dtype=dtype, min_side=0.5)
    boxes[::50, 2] = boxes[::50, 0]  # zero width
    boxes[7::50, 3] = boxes[7::50, 1]  # zero height
    boxes[3::50] = boxes[2::50][: len(boxes[3::50])]  # duplicates
    boxes[11::50] += 500  # partly out of the image
    boxes[13::50] -= 300  # negative coordinates
    return boxes


def _assert_equal_where_torchvision_is_defined(got, expected, err_msg=""):
    """Bitwise equal, except where torchvision divides 0 by 0 (a zero union): there edudet gives 0."""
    undefined = np.isnan(expected)
    np.testing.assert_array_equal(got[~undefined], expected[~undefined], err_msg=err_msg)
    np.testing.assert_array_equal(got[undefined], 0, err_msg=err_msg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box_iou_matches_torchvision(dtype):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(0)
    a = _edge_case_boxes(rng, 300, dtype)
    b = _edge_case_boxes(rng, 3000, dtype)
    expected = torchvision.ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert np.isnan(expected).any()  # zero-width against zero-height boxes: the edge case is exercised
    for backend in CPU_BACKENDS:
        got = ops.box_iou(a, b, backend=backend)
        assert got.dtype == expected.dtype
        _assert_equal_where_torchvision_is_defined(got, expected, backend)
    # two degenerate boxes: torchvision 0/0 = NaN, edudet 0
    points = np.array([[1, 1, 1, 1]], dtype=dtype)
    assert np.isnan(torchvision.ops.box_iou(torch.from_numpy(points), torch.from_numpy(points)).item())
    assert ops.box_iou(points, points)[0, 0] == 0


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_iou_and_area_formats_match_torchvision(fmt):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(1)
    a = ops.box_convert(random_boxes(rng, 200, dtype=np.float64), "xyxy", fmt)
    b = ops.box_convert(random_boxes(rng, 500, dtype=np.float64), "xyxy", fmt)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_array_equal(ops.box_area(a, fmt=fmt), torchvision.ops.box_area(ta, fmt=fmt).numpy())
    # converted to xyxy first: areas can differ from torchvision's w * h in the last bit
    np.testing.assert_allclose(ops.box_iou(a, b, fmt=fmt), torchvision.ops.box_iou(ta, tb, fmt=fmt).numpy(),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generalized_box_iou_matches_torchvision(dtype):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(2)
    a = _edge_case_boxes(rng, 200, dtype)
    b = _edge_case_boxes(rng, 1000, dtype)
    expected = torchvision.ops.generalized_box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    got = ops.generalized_box_iou(a, b)
    assert got.dtype == expected.dtype
    assert np.all(np.isfinite(got))
    defined = np.isfinite(expected)  # torchvision: NaN where the union is zero
    np.testing.assert_array_equal(got[defined], expected[defined])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_area_convert_clip_and_remove_small_match_torchvision(dtype):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(3)
    boxes = _edge_case_boxes(rng, 5000, dtype)
    t = torch.from_numpy(boxes)
    np.testing.assert_array_equal(ops.box_area(boxes), torchvision.ops.box_area(t).numpy())
    for in_fmt in ("xyxy", "xywh", "cxcywh"):
        for out_fmt in ("xyxy", "xywh", "cxcywh"):
            np.testing.assert_array_equal(ops.box_convert(boxes, in_fmt, out_fmt),
                                          torchvision.ops.box_convert(t, in_fmt, out_fmt).numpy())
    for size in ((600, 800), (1, 1), (1333, 64)):
        np.testing.assert_array_equal(ops.clip_boxes_to_image(boxes, size),
                                      torchvision.ops.clip_boxes_to_image(t, size).numpy())
    for min_size in (0.0, 1e-3, 0.7, 8, 50.5, 1000):
        np.testing.assert_array_equal(ops.remove_small_boxes(boxes, min_size),
                                      torchvision.ops.remove_small_boxes(t, min_size).numpy())


def test_integer_boxes_match_torchvision_in_float32():
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(4)
    boxes = random_boxes(rng, 400, dtype=np.float64).round().astype(np.int64)
    expected = torchvision.ops.box_iou(torch.from_numpy(boxes).float(), torch.from_numpy(boxes).float()).numpy()
    for backend in CPU_BACKENDS:
        np.testing.assert_array_equal(ops.box_iou(boxes, boxes, backend=backend), expected)


# ---------------------------------------------------------------------------------------------------------
# the legacy +1 pixel convention: offset=1 (docs/conventions.md)
# ---------------------------------------------------------------------------------------------------------

from edudet.ops.boxes import (_box_area, _generalized_box_iou_kernels, _masks_to_boxes,  # noqa: E402
                              box_area_numpy, generalized_box_iou_numpy, masks_to_boxes_numpy)

AREA_BACKENDS = _box_area.backends
GIOU_BACKENDS = _generalized_box_iou_kernels.backends
MASK_BACKENDS = _masks_to_boxes.backends


def test_conventions_doc_example_runs():
    from pathlib import Path
    import re

    doc = Path(__file__).resolve().parent.parent / "docs" / "conventions.md"
    (example,) = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    exec(compile(example, str(doc), "exec"), {})  # noqa: S102 - our own documentation


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_offset_by_hand(backend, dtype):
    a = np.array([[0, 0, 9, 9]], dtype=dtype)
    b = np.array([[5, 5, 14, 14],  # the docs' pair
                  [5, 5, 5, 5],  # one pixel inside a
                  [9, 9, 12, 12],  # shares a's last pixel (9, 9)
                  [10, 0, 19, 9]], dtype=dtype)  # starts one pixel right of a's last column: no shared pixel
    # areas: 9*9 = 81 continuous; 10*10 = 100 with inclusive pixels; the pixel [5, 5, 5, 5]: 0 vs 1*1 = 1
    assert ops.box_area(a, backend=backend if backend in AREA_BACKENDS else None).tolist() == [81]
    area1 = ops.box_area(np.concatenate([a, b]), backend=backend if backend in AREA_BACKENDS else None, offset=1)
    assert area1.dtype == dtype and area1.tolist() == [100, 100, 1, 16, 100]
    # offset 0: [0,0,9,9] vs [5,5,14,14]: overlap 4*4 = 16, union 81 + 81 - 16 = 146; vs [9,9,12,12]: overlap
    # 0*0 = 0
    np.testing.assert_allclose(ops.box_iou(a, b, backend=backend), [[16 / 146, 0, 0, 0]], rtol=1e-7)
    # offset 1: overlap 5*5 = 25, union 100 + 100 - 25 = 175; the pixel: 1 / (100 + 1 - 1) = 1/100;
    # [9,9,12,12] (4*4 = 16 pixels) shares one pixel: 1 / (100 + 16 - 1) = 1/115; [10,0,19,9] starts one
    # column after a ends: overlap width min(9, 19) - max(0, 10) + 1 = 0
    iou1 = ops.box_iou(a, b, backend=backend, offset=1)
    np.testing.assert_allclose(iou1, [[25 / 175, 1 / 100, 1 / 115, 0]], rtol=1e-7)
    assert round(float(iou1[0, 0]), 6) == 0.142857 and round(16 / 146, 6) == 0.109589  # the docs' numbers
    # GIoU, offset 1: enclosing [0,0,14,14] holds 15*15 = 225 pixels: 25/175 - (225 - 175)/225 = -0.079365;
    # offset 0: 196 = 14*14, 16/146 - (196 - 146)/196 = -0.145513
    if backend in GIOU_BACKENDS:
        giou = ops.generalized_box_iou(a, b[:1], backend=backend, offset=1)
        np.testing.assert_allclose(giou, [[25 / 175 - 50 / 225]], rtol=1e-6)
        np.testing.assert_allclose(ops.generalized_box_iou(a, b[:1], backend=backend), [[16 / 146 - 50 / 196]],
                                   rtol=1e-6)


def test_offset_is_checked_by_name():
    boxes = np.array([[0, 0, 9, 9]], np.float32)
    calls = [lambda o: ops.box_area(boxes, offset=o), lambda o: ops.box_iou(boxes, boxes, offset=o),
             lambda o: ops.generalized_box_iou(boxes, boxes, offset=o),
             lambda o: ops.bbox_overlaps(boxes, boxes, offset=o)]
    for call in calls:
        for bad, error in ((2, ValueError), (-1, ValueError), (0.5, ValueError), (np.nan, ValueError),
                           (True, TypeError), ("1", TypeError), (None, TypeError)):
            with pytest.raises(error, match="offset"):
                call(bad)
        assert call(np.int64(1)).shape and call(np.array(1.0)).shape  # integral numbers and 0-d arrays are fine
    with pytest.raises(ValueError, match=r"offset=1 .*xyxy.*'xywh'"):
        ops.box_iou(boxes, boxes, fmt="xywh", offset=1)
    with pytest.raises(ValueError, match=r"offset=1 .*xyxy.*'cxcywh'"):
        ops.box_area(boxes, fmt="cxcywh", offset=1)


def test_generalized_box_iou_with_offset_1_accepts_empty_pixel_boxes_and_refuses_inverted_ones():
    # with inclusive pixels [3, 3, 2, 2] holds no pixel (width 2 - 3 + 1 = 0): allowed, as an empty box;
    # [3, 3, 1, 1] (width -1) is inverted
    a = np.array([[0, 0, 9, 9]], np.float64)
    empty = np.array([[3, 3, 2, 2]], np.float64)
    # overlap 0; union 100 + 0 - 0; enclosing [0, 0, 9, 9], 100 pixels: GIoU 0 - 0/100 = 0
    assert ops.generalized_box_iou(a, empty, offset=1).tolist() == [[0.0]]
    with pytest.raises(ValueError, match=r"boxes2 must be .* x2 >= x1 - 1 .*offset=1.*box 0 is \[3.0, 3.0, 1.0, 1.0\]"):
        ops.generalized_box_iou(a, np.array([[3, 3, 1, 1]]), offset=1)
    with pytest.raises(ValueError, match=r"boxes2 must be .* x2 >= x1 and y2 >= y1; box 0"):
        ops.generalized_box_iou(a, empty)  # offset 0: inverted


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e15), (np.float64, 1e15), (np.float32, 1e-30),
                                          (np.float64, 1e-300)])
def test_offset_1_with_huge_and_tiny_coordinates_gives_the_reference_on_every_backend(dtype, scale):
    # tiny coordinates: every box is about one pixel (width x2 - x1 + 1 ~ 1), nothing underflows; huge ones:
    # the + 1 vanishes in rounding and nothing overflows
    a = (np.array([[0, 0, 1, 1], [-1, -1, 0.5, 1]]) * scale).astype(dtype)
    b = (np.array([[0.5, 0.5, 1, 1], [1, 1, 1, 1], [-1, -1, -1, -1]]) * scale).astype(dtype)
    expected = box_iou_numpy(a, b, 1)
    assert np.isfinite(expected).all() and ((expected >= 0) & (expected <= 1)).all()
    for backend in BACKENDS:
        assert_backend_equal(ops.box_iou(a, b, backend=backend, offset=1), expected, backend)
    for backend in GIOU_BACKENDS:
        assert_backend_equal(ops.generalized_box_iou(a, b, backend=backend, offset=1),
                             generalized_box_iou_numpy(a, b, 1), backend)
    for backend in AREA_BACKENDS:
        assert_backend_equal(ops.box_area(a, backend=backend, offset=1), box_area_numpy(a, 1), backend)


@given(box_sets(max_boxes=6), box_sets(max_boxes=6), st.sampled_from([0, 1]))
def test_every_backend_equals_the_numpy_reference_for_both_offsets(a, b, offset):
    b = b.astype(a.dtype)
    iou, giou, area = box_iou_numpy(a, b, offset), generalized_box_iou_numpy(a, b, offset), box_area_numpy(a, offset)
    for backend in BACKENDS:
        assert_backend_equal(ops.box_iou(a, b, backend=backend, offset=offset), iou, backend)
    for backend in GIOU_BACKENDS:
        got = ops.generalized_box_iou(a, b, backend=backend, offset=offset)
        assert got.dtype == a.dtype
        assert_backend_equal(got, giou, backend)
    for backend in AREA_BACKENDS:
        assert_backend_equal(ops.box_area(a, backend=backend, offset=offset), area, backend)


@given(box_sets(), box_sets())
def test_offset_1_is_offset_0_on_boxes_grown_by_one_pixel(a, b):
    # inclusive x2 = continuous x2 + 1: on this quarter-pixel grid the + 1 is exact, so the values are equal
    b = b.astype(a.dtype)
    grow = np.array([0, 0, 1, 1], dtype=a.dtype)
    np.testing.assert_array_equal(ops.box_iou(a, b, offset=1), ops.box_iou(a + grow, b + grow))
    np.testing.assert_array_equal(ops.generalized_box_iou(a, b, offset=1), ops.generalized_box_iou(a + grow, b + grow))
    np.testing.assert_array_equal(ops.box_area(a, offset=1), ops.box_area(a + grow))
    # and mmcv's bbox_overlaps(offset=1) agrees with it (eps=0: no clamping of the denominators)
    np.testing.assert_array_equal(ops.bbox_overlaps(a, b, eps=0, offset=1), ops.box_iou(a, b, offset=1))
    np.testing.assert_array_equal(ops.bbox_overlaps(a, b, mode="giou", eps=0, offset=1),
                                  ops.generalized_box_iou(a, b, offset=1))


def test_bbox_overlaps_offset_by_hand():
    a = np.array([[0, 0, 9, 9]])
    b = np.array([[5, 5, 14, 14]])
    # iou 25/175; iof: 25 over a's 100 pixels = 0.25; giou 25/175 - (225 - 175)/225
    np.testing.assert_allclose(ops.bbox_overlaps(a, b, offset=1), [[25 / 175]], rtol=1e-6)
    np.testing.assert_allclose(ops.bbox_overlaps(a, b, mode="iof", offset=1), [[0.25]], rtol=1e-6)
    np.testing.assert_allclose(ops.bbox_overlaps(a, b, mode="giou", offset=1), [[25 / 175 - 50 / 225]], rtol=1e-6)
    np.testing.assert_allclose(ops.bbox_overlaps(a, b, is_aligned=True, offset=1), [25 / 175], rtol=1e-6)
    np.testing.assert_allclose(ops.bbox_overlaps(a[None], b[None], offset=1), [[[25 / 175]]], rtol=1e-6)
    np.testing.assert_allclose(ops.bbox_overlaps(a, b), [[16 / 146]], rtol=1e-6)  # the default is unchanged


# ---------------------------------------------------------------------------------------------------------
# masks_to_boxes
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", MASK_BACKENDS)
def test_masks_to_boxes_by_hand(backend):
    masks = np.zeros((4, 5, 7), dtype=bool)
    masks[0, 2, 5] = True  # one pixel at row 2, column 5: [5, 2, 5, 2]
    masks[1, 1:4, 2] = True  # a vertical line, column 2, rows 1..3: [2, 1, 2, 3]
    masks[1, 3, 6] = True  # ... and a pixel at (3, 6): columns 2..6 -> [2, 1, 6, 3]
    # masks[2] stays empty: torchvision's [0, 0, 0, 0]
    masks[3] = True  # everything: [0, 0, W - 1, H - 1] = [0, 0, 6, 4]
    got = ops.masks_to_boxes(masks, backend=backend)
    assert got.dtype == np.float32 and got.shape == (4, 4)
    assert got.tolist() == [[5, 2, 5, 2], [2, 1, 6, 3], [0, 0, 0, 0], [0, 0, 6, 4]]
    # the boxes are inclusive pixel indices: the one-pixel box holds 1 pixel with offset=1, 0 area without
    assert ops.box_area(got[:1], offset=1).tolist() == [1] and ops.box_area(got[:1]).tolist() == [0]


@pytest.mark.parametrize("backend", MASK_BACKENDS)
def test_masks_to_boxes_empty_and_odd_shapes(backend):
    for shape in ((0, 5, 5), (3, 0, 4), (2, 4, 0)):
        got = ops.masks_to_boxes(np.zeros(shape, bool), backend=backend)
        assert got.shape == (shape[0], 4) and got.dtype == np.float32 and not got.any()
    # integer and float masks: nonzero is inside; a strided view works
    masks = np.zeros((2, 3, 9), np.int64)
    masks[0, 1, 4] = -7
    masks[1, 2, 8] = 3
    assert ops.masks_to_boxes(masks, backend=backend).tolist() == [[4, 1, 4, 1], [8, 2, 8, 2]]
    assert ops.masks_to_boxes(masks.astype(np.float32) * 0.5, backend=backend).tolist() == [[4, 1, 4, 1],
                                                                                             [8, 2, 8, 2]]
    assert ops.masks_to_boxes(masks[:, :, ::2], backend=backend).tolist() == [[2, 1, 2, 1], [4, 2, 4, 2]]
    for layout in (np.asfortranarray(masks), np.asfortranarray(masks != 0)):  # any memory layout
        assert ops.masks_to_boxes(layout, backend=backend).tolist() == [[4, 1, 4, 1], [8, 2, 8, 2]]


def test_masks_to_boxes_refuses_bad_input_by_name():
    for bad, error, match in ((np.zeros((3, 3), bool), ValueError, r"masks must have shape \(N, H, W\)"),
                              (np.zeros((1, 2, 3, 4), bool), ValueError, r"masks must have shape \(N, H, W\)"),
                              (np.full((1, 2, 2), np.nan), ValueError, "masks contains NaN"),
                              (np.zeros((1, 2, 2), complex), TypeError, "masks must be bool or a real dtype"),
                              (np.zeros((1, 2, 2), object), TypeError, "masks must be bool or a real dtype"),
                              ("mask", TypeError, "masks must be a NumPy array")):
        with pytest.raises(error, match=match):
            ops.masks_to_boxes(bad)
    assert ops.masks_to_boxes([[[0, 1], [0, 0]]]).tolist() == [[1, 0, 1, 0]]  # nested lists are arrays too


@st.composite
def mask_stacks(draw):
    """(N, H, W) bool masks: sparse noise, blobs, empty masks, full masks; W a multiple of 8 or not."""
    n = draw(st.integers(1, 5))
    height, width = draw(st.integers(1, 19)), draw(st.sampled_from([1, 3, 8, 16, 17, 24, 31]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.0, 0.02, 0.3, 1.0]))
    masks = rng.random((n, height, width)) < density
    if draw(st.booleans()):
        masks[rng.integers(0, n)] = False
    return masks


@given(mask_stacks())
def test_masks_to_boxes_every_backend_equals_the_reference(masks):
    expected = masks_to_boxes_numpy(masks.view(np.uint8))
    for backend in MASK_BACKENDS:
        np.testing.assert_array_equal(ops.masks_to_boxes(masks, backend=backend), expected, err_msg=backend)
    # a box holds every pixel of its mask, and touches it on all four sides
    for mask, box in zip(masks, expected):
        if mask.any():
            x1, y1, x2, y2 = box.astype(int)
            assert mask[y1:y2 + 1, x1:x2 + 1].sum() == mask.sum()
            assert mask[y1].any() and mask[y2].any() and mask[:, x1].any() and mask[:, x2].any()


def test_masks_to_boxes_matches_torchvision():
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(5)
    cases = [rng.random((30, 40, 56)) < 0.001,  # sparse: many empty masks
             rng.random((10, 17, 93)) < 0.05,  # non-square, W not a multiple of 8
             np.zeros((4, 8, 8), bool)]
    blobs = np.zeros((20, 64, 48), bool)  # rectangles of noise, some one pixel
    for k in range(20):
        y, x = rng.integers(0, 60), rng.integers(0, 44)
        h, w = rng.integers(1, 64 - y + 1), rng.integers(1, 48 - x + 1)
        blobs[k, y:y + h, x:x + w] = rng.random((h, w)) < 0.5
    blobs[3] = False  # empty: [0, 0, 0, 0]
    blobs[4] = False
    blobs[4, 10, 20] = True  # one pixel: [20, 10, 20, 10]
    cases.append(blobs)
    for masks in cases:
        expected = torchvision.ops.masks_to_boxes(torch.from_numpy(masks)).numpy()
        for backend in MASK_BACKENDS:
            got = ops.masks_to_boxes(masks, backend=backend)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected, err_msg=backend)
        np.testing.assert_array_equal(ops.masks_to_boxes(masks.astype(np.uint8) * 255), expected)
