"""edudet.ops.iou_variants (DIoU, CIoU, IoA, bbox_overlaps): hand cases, then properties, then torchvision parity."""
import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edudet._validate
from edudet import ops
from edudet.ops import iou_variants as iv
from helpers import assert_child_ok, import_torchvision, random_boxes

BACKENDS = iv._overlaps.backends  # numpy, numba, cython where built, cuda under the simulator or with a GPU
CPU_BACKENDS = [b for b in BACKENDS if b != "cuda"]
# on a real GPU, NVVM fuses products and sums into FMAs (kernels/iou_variants_cuda.py): allow a few ulp
GPU_FMA = os.environ.get("NUMBA_ENABLE_CUDASIM") != "1"
PAIRWISE_OPS = {
    "distance_box_iou": lambda a, b, **kw: ops.distance_box_iou(a, b, **kw),
    "complete_box_iou": lambda a, b, **kw: ops.complete_box_iou(a, b, **kw),
    "box_ioa": lambda a, b, **kw: ops.box_ioa(a, b, **kw),
    "iou": lambda a, b, aligned=False, **kw: ops.bbox_overlaps(a, b, "iou", is_aligned=aligned, **kw),
    "iof": lambda a, b, aligned=False, **kw: ops.bbox_overlaps(a, b, "iof", is_aligned=aligned, **kw),
    "giou": lambda a, b, aligned=False, **kw: ops.bbox_overlaps(a, b, "giou", is_aligned=aligned, **kw),
}


def assert_backend_equal(got, expected, backend, op=""):
    """Bitwise equal to the NumPy reference, except where a maths library or an FMA may move the last bits:
    CIoU's atan (each backend's own) and the cuda backend on real hardware."""
    assert got.dtype == expected.dtype and got.shape == expected.shape, (backend, op)
    if op == "complete_box_iou" or (backend == "cuda" and GPU_FMA):
        np.testing.assert_allclose(got, expected, rtol=0, atol=16 * np.finfo(got.dtype).eps, err_msg=backend)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=f"{op} {backend}")


A = np.array([[0, 0, 2, 2]], dtype=np.float64)
B = np.array([[1, 1, 3, 3]], dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------
# hand-computed cases
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_distance_iou_by_hand(backend):
    # [0,0,2,2] vs [1,1,3,3]: overlap 1*1 = 1, union 4 + 4 - 1 = 7: IoU 1/7; centres (1,1), (2,2): d^2 = 1+1 = 2;
    # enclosing [0,0,3,3]: diagonal^2 = 9 + 9 = 18. DIoU = 1/7 - 2/18 (with eps=0 exactly that)
    np.testing.assert_allclose(ops.distance_box_iou(A, B, eps=0, backend=backend), [[1 / 7 - 2 / 18]], rtol=1e-15)
    # default eps = 1e-7 sits in the denominator: 1/7 - 2 / (18 + 1e-7)
    np.testing.assert_allclose(ops.distance_box_iou(A, B, backend=backend), [[1 / 7 - 2 / (18 + 1e-7)]],
                               rtol=1e-15)
    # the same box: IoU 1, centre distance 0 -> 1; disjoint [0,0,1,1] vs [3,0,4,1]: IoU 0, d^2 = 3^2 = 9,
    # enclosing [0,0,4,1]: diagonal^2 = 16 + 1 = 17 -> -9/17
    far = ops.distance_box_iou([[0, 0, 1, 1.0]], [[0, 0, 1, 1], [3, 0, 4, 1]], eps=0, backend=backend)
    np.testing.assert_allclose(far, [[1, -9 / 17]], rtol=1e-15)
    assert far.dtype == np.float64  # Python floats are float64


@pytest.mark.parametrize("backend", BACKENDS)
def test_complete_iou_by_hand(backend):
    # same aspect ratio (both squares): v = 0, so CIoU = DIoU
    np.testing.assert_allclose(ops.complete_box_iou(A, B, eps=0, backend=backend), [[1 / 7 - 2 / 18]], rtol=1e-15)
    # [0,0,2,1] vs [0,0,1,2]: overlap 1*1 = 1, union 2 + 2 - 1 = 3: IoU 1/3; centres (1, .5), (.5, 1): d^2 = .5;
    # enclosing [0,0,2,2]: diagonal^2 = 8 -> DIoU = 1/3 - 1/16. Angles atan(2/1), atan(1/2):
    # v = 4/pi^2 (atan 2 - atan .5)^2, alpha = v / (1 - 1/3 + v)
    v = 4 / math.pi ** 2 * (math.atan(2) - math.atan(0.5)) ** 2
    expected = 1 / 3 - 1 / 16 - v / (1 - 1 / 3 + v) * v
    got = ops.complete_box_iou([[0, 0, 2, 1.0]], [[0, 0, 1, 2.0]], eps=0, backend=backend)
    np.testing.assert_allclose(got.astype(np.float64), [[expected]], rtol=1e-6)
    # a flat box (h = 0 < w) has the angle pi/2, as torchvision's atan(w / 0); [0,0,2,0] vs the square
    # [0,0,2,2]: overlap 0, union 0 + 4 = 4: IoU 0; centres (1, 0), (1, 1): d^2 = 1; diagonal^2 = 4 + 4 = 8;
    # v = 4/pi^2 (pi/2 - pi/4)^2 = 1/4, alpha = (1/4) / (1 + 1/4) = 1/5 -> -1/8 - 1/20
    flat = ops.complete_box_iou(np.array([[0, 0, 2, 0.0]]), np.array([[0, 0, 2, 2.0]]), eps=0, backend=backend)
    np.testing.assert_allclose(flat, [[-1 / 8 - 1 / 20]], rtol=1e-12)
    # a point: angle 0 (torchvision: atan(0/0) = NaN); [1,1,1,1] vs [0,0,2,2]: IoU 0/4 = 0, centres equal,
    # v = 4/pi^2 (0 - pi/4)^2 = 1/4, alpha = 1/5 -> 0 - 1/20
    point = ops.complete_box_iou(np.array([[1, 1, 1, 1.0]]), np.array([[0, 0, 2, 2.0]]), eps=0, backend=backend)
    np.testing.assert_allclose(point, [[-1 / 20]], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_box_ioa_by_hand(backend):
    boxes1 = np.array([[0, 0, 2, 2], [1, 1, 2, 2], [1, 1, 1, 3]], dtype=np.float32)
    boxes2 = np.array([[1, 1, 3, 3], [0, 0, 4, 4]], dtype=np.float32)
    got = ops.box_ioa(boxes1, boxes2, backend=backend)
    np.testing.assert_array_equal(got, [
        [1 / 4, 4 / 4],  # overlap 1 over area 4; inside [0,0,4,4]: 4/4
        [1, 1],  # [1,1,2,2] lies inside both: 1/1
        [0, 0],  # zero-area first box: 0 by definition (never 0/0)
    ])
    # not symmetric: [0,0,4,4] against [1,1,2,2] covers 1/16 of itself
    np.testing.assert_array_equal(ops.box_ioa(boxes2[1:], boxes1[1:2], backend=backend), [[1 / 16]])
    np.testing.assert_array_equal(ops.box_ioa(boxes1[:2], boxes2, aligned=True, backend=backend), [1 / 4, 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bbox_overlaps_by_hand(backend):
    # [0,0,2,2] vs [1,1,3,3]: iou 1/7, iof 1/4, giou 1/7 - (9 - 7)/9 (enclosing [0,0,3,3] has area 9)
    np.testing.assert_allclose(ops.bbox_overlaps(A, B, backend=backend), [[1 / 7]], rtol=1e-15)
    np.testing.assert_allclose(ops.bbox_overlaps(A, B, "iof", backend=backend), [[1 / 4]], rtol=1e-15)
    np.testing.assert_allclose(ops.bbox_overlaps(A, B, "giou", backend=backend), [[1 / 7 - 2 / 9]], rtol=1e-15)
    # eps clamps the union: a 1e-4 square with itself has union 1e-8 < 1e-6, so 1e-8 / 1e-6 = 0.01, not 1
    tiny = np.array([[0, 0, 1e-4, 1e-4]])
    np.testing.assert_allclose(ops.bbox_overlaps(tiny, tiny, backend=backend), [[0.01]], rtol=1e-12)
    np.testing.assert_allclose(ops.bbox_overlaps(tiny, tiny, eps=0, backend=backend), [[1]], rtol=1e-12)
    # giou of that pair: enclosing area 1e-8 clamped to 1e-6 too: 0.01 - (1e-6 - 1e-6) / 1e-6 = 0.01
    np.testing.assert_allclose(ops.bbox_overlaps(tiny, tiny, "giou", backend=backend), [[0.01]], rtol=1e-12)
    # eps = 0 and two points: every denominator is 0: 0, not NaN
    point = np.zeros((1, 4))
    for mode in ("iou", "iof", "giou"):
        assert ops.bbox_overlaps(point, point, mode, eps=0, backend=backend)[0, 0] == 0
    aligned = ops.bbox_overlaps(np.concatenate([A, B]), np.concatenate([B, B]), "giou", is_aligned=True,
                                backend=backend)
    np.testing.assert_allclose(aligned, [1 / 7 - 2 / 9, 1], rtol=1e-15)


@pytest.mark.parametrize("name", sorted(PAIRWISE_OPS))
def test_batched_and_aligned_forms_are_the_pairwise_values(name):
    op = PAIRWISE_OPS[name]
    rng = np.random.default_rng(3)
    b1 = np.stack([random_boxes(rng, 4, image_size=50, max_side=30, min_side=0) for _ in range(2)])  # (2, 4, 4)
    b2 = np.stack([random_boxes(rng, 5, image_size=50, max_side=30, min_side=0) for _ in range(2)])  # (2, 5, 4)
    batched = op(b1, b2)
    assert batched.shape == (2, 4, 5) and batched.dtype == np.float32
    for k in range(2):
        np.testing.assert_array_equal(batched[k], op(b1[k], b2[k]))
    aligned = op(b1, b2[:, :4], aligned=True)
    assert aligned.shape == (2, 4)
    for k in range(2):
        np.testing.assert_array_equal(aligned[k], np.diag(op(b1[k], b2[k, :4])))


@pytest.mark.parametrize("name", sorted(PAIRWISE_OPS))
def test_empty_inputs_give_empty_outputs_of_the_right_shape_and_dtype(name):
    op = PAIRWISE_OPS[name]
    some = np.array([[0, 0, 1, 1], [1, 1, 2, 3]], dtype=np.float64)
    none32 = np.zeros((0, 4), dtype=np.float32)
    for got, shape, dtype in [
        (op(none32, some), (0, 2), np.float64),
        (op(some.astype(np.float32), none32), (2, 0), np.float32),
        (op(none32, none32, aligned=True), (0,), np.float32),
        (op(np.zeros((3, 0, 4)), np.zeros((3, 2, 4))), (3, 0, 2), np.float64),
        (op(np.zeros((3, 0, 4)), np.zeros((3, 0, 4)), aligned=True), (3, 0), np.float64),
        (op([[0, 0, 2, 2]], [[1, 1, 3, 3]]), (1, 1), np.float32),  # integer boxes compute in float32
    ]:
        assert got.shape == shape and got.dtype == dtype, (name, got.shape, got.dtype)


def test_bad_input_is_refused_by_name(monkeypatch):
    with pytest.raises(ValueError, match="boxes2 must be .* x2 >= x1"):
        ops.distance_box_iou(A, [[2, 0, 1, 1]])
    with pytest.raises(ValueError, match="boxes1 must have shape \\(N, 4\\) or \\(B, N, 4\\)"):
        ops.box_ioa(np.zeros((2, 3)), A)
    with pytest.raises(ValueError, match="same B"):
        ops.bbox_overlaps(np.zeros((2, 1, 4)), np.zeros((3, 1, 4)))
    with pytest.raises(ValueError, match="same B"):
        ops.bbox_overlaps(np.zeros((2, 1, 4)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="aligned: .* as many boxes; got 1 and 2"):
        ops.box_ioa(A, np.concatenate([A, B]), aligned=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        ops.bbox_overlaps(A, B, mode="diou")
    with pytest.raises(ValueError, match="eps"):
        ops.complete_box_iou(A, B, eps=-1)
    with pytest.raises(ValueError, match="eps"):
        ops.distance_box_iou(A, B, eps=float("nan"))
    with pytest.raises(TypeError, match="aligned flag must be a bool"):
        ops.box_ioa(A, B, aligned="yes")
    with pytest.raises(ValueError, match="boxes1 .*magnitude"):
        ops.distance_box_iou([[0, 0, 1, 2e15]], B)
    with pytest.raises(ValueError, match="boxes2"):
        ops.box_ioa(A, [[0, 0, 1, np.nan]])
    with pytest.raises(ValueError, match="backend 'nope' is not usable"):
        ops.box_ioa(A, B, backend="nope")
    monkeypatch.setattr(edudet._validate, "MAX_ALLOCATION_BYTES", 1000)
    with pytest.raises(ValueError, match="complete_box_iou's pairwise output"):
        ops.complete_box_iou(np.zeros((20, 4)), np.zeros((20, 4)))  # 20 x 20 x 8 = 3200 bytes > 1000
    assert ops.complete_box_iou(np.zeros((20, 4)), np.zeros((20, 4)), aligned=True).shape == (20,)


def test_the_numba_cores_are_callable_from_user_njit_code():
    from numba import njit

    from edudet.kernels.iou_variants_numba import box_ioa, complete_iou_xyxy, distance_box_iou, distance_iou_xyxy

    @njit
    def user_code(boxes1, boxes2):
        return distance_box_iou(boxes1, boxes2, 0.0)[0, 0], distance_iou_xyxy(boxes1[0], boxes2[0], 0.0), \
            complete_iou_xyxy(boxes1[0], boxes2[0], 0.0), box_ioa(boxes1, boxes2)[0, 0]

    d_matrix, d_pair, c_pair, ioa = user_code(A, B)
    assert d_matrix == d_pair == c_pair == 1 / 7 - 2 / 18  # squares: v = 0, CIoU = DIoU (hand case above)
    assert ioa == 0.25


def test_kernels_check_structure_without_crashing():
    assert_child_ok("""
import numpy as np
from edudet import ops
from edudet.ops import iou_variants as iv
a = np.zeros((3, 4)); b = np.zeros((2, 4))
for backend in iv._overlaps_aligned.backends:
    if backend == "numpy":
        continue
    kernel = iv._overlaps_aligned.get(backend)
    print("aligned length mismatch", backend, flush=True)
    try:
        kernel(1, a, b, 0.0)
        raise SystemExit("no error for mismatched aligned lengths on " + backend)
    except ValueError:
        pass
    print("mixed dtypes", backend, flush=True)
    try:
        iv._overlaps.get(backend)(1, a, b.astype(np.float32), 0.0)
        raise SystemExit("no error for mixed dtypes on " + backend)
    except ValueError:
        pass
    print("non-contiguous", backend, flush=True)
    try:
        iv._overlaps.get(backend)(1, np.zeros((3, 8))[:, ::2], b, 0.0)
        raise SystemExit("no error for a non-contiguous array on " + backend)
    except ValueError:
        pass
""")


# ---------------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------------

@st.composite
def box_sets(draw, max_boxes=8, dtype=None):
    """(N, 4) xyxy boxes on a coarse grid (ties, shared edges, flat boxes and points are common)."""
    dtype = dtype or draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(1, max_boxes))
    coords = st.integers(0, 200).map(lambda v: v / 4)
    sizes = st.integers(0, 120).map(lambda v: v / 4)
    xy = np.array(draw(st.lists(st.tuples(coords, coords), min_size=n, max_size=n)), dtype=np.float64)
    wh = np.array(draw(st.lists(st.tuples(sizes, sizes), min_size=n, max_size=n)), dtype=np.float64)
    scale = draw(st.sampled_from([1.0, 1e-30, 1e13] if dtype == np.float32 else [1.0, 1e-300, 1e13]))
    return (np.concatenate([xy, xy + wh], axis=1) * scale).astype(dtype)


@given(box_sets(), box_sets())
def test_orderings_and_bounds(a, b):
    b = b.astype(a.dtype)
    iou = ops.box_iou(a, b, backend="numpy")
    diou = ops.distance_box_iou(a, b, backend="numpy")
    ciou = ops.complete_box_iou(a, b, backend="numpy")
    ioa = ops.box_ioa(a, b, backend="numpy")
    for values in (diou, ciou, ioa):
        assert np.all(np.isfinite(values))
    np.testing.assert_array_equal(diou, ops.distance_box_iou(b, a, backend="numpy").T)  # exact: symmetric
    np.testing.assert_array_equal(ciou, ops.complete_box_iou(b, a, backend="numpy").T)
    assert np.all(diou <= iou) and np.all(diou >= -1)  # the penalty is >= 0 and the distance <= the diagonal
    assert np.all(ciou <= diou)  # alpha * v >= 0
    assert np.all((ioa >= 0) & (ioa <= 1))
    assert np.all(ioa >= iou)  # the union is never smaller than the first box
    for mode in ("iou", "giou"):
        m = ops.bbox_overlaps(a, b, mode, backend="numpy")
        np.testing.assert_array_equal(m, ops.bbox_overlaps(b, a, mode, backend="numpy").T)


@given(box_sets(max_boxes=5), box_sets(max_boxes=5))
def test_every_backend_equals_the_numpy_reference(a, b):
    b = b.astype(a.dtype)
    for name, op in PAIRWISE_OPS.items():
        expected = op(a, b, backend="numpy")
        expected_aligned = op(a, a[::-1], aligned=True, backend="numpy")
        for backend in CPU_BACKENDS:  # cuda: below (the simulator is too slow for every example)
            assert_backend_equal(op(a, b, backend=backend), expected, backend, name)
            assert_backend_equal(op(a, a[::-1], aligned=True, backend=backend), expected_aligned, backend, name)


@pytest.mark.skipif("cuda" not in BACKENDS, reason="numba.cuda is not usable here")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_equals_the_reference_across_grid_edges(dtype):
    # 9 rows and 37 columns are not multiples of the (32, 8) block: the guard must skip the spare threads;
    # flat boxes, points and tiny boxes included
    rng = np.random.default_rng(6)
    a, b = random_boxes(rng, 9, dtype=dtype, min_side=0), random_boxes(rng, 37, dtype=dtype, min_side=0)
    a[0, 3] = a[0, 1]
    b[0, 2:] = b[0, :2]
    b[1] = a[1] * np.finfo(dtype).tiny
    for name, op in PAIRWISE_OPS.items():
        assert_backend_equal(op(a, b, backend="cuda"), op(a, b, backend="numpy"), "cuda", name)
        assert_backend_equal(op(a, b[:9], aligned=True, backend="cuda"),
                             op(a, b[:9], aligned=True, backend="numpy"), "cuda", name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backends_agree_on_a_large_matrix_that_runs_in_parallel(dtype):
    # 300 x 300 = 90,000 pairs: above the kernels' serial threshold (65,536), so prange runs; and the NumPy
    # reference splits rows into chunks when _PAIRS_PER_CHUNK is small
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 300, dtype=dtype), random_boxes(rng, 300, dtype=dtype)
    for name in ("distance_box_iou", "complete_box_iou", "giou"):
        op = PAIRWISE_OPS[name]
        expected = op(a, b, backend="numpy")
        for backend in BACKENDS:
            if backend != "cuda":
                assert_backend_equal(op(a, b, backend=backend), expected, backend, name)


def test_the_chunked_reference_equals_the_unchunked_one(monkeypatch):
    rng = np.random.default_rng(2)
    a, b = random_boxes(rng, 30), random_boxes(rng, 20)
    whole = iv.overlaps_numpy(iv.CIOU, a, b, np.float32(1e-7))
    monkeypatch.setattr(iv, "_PAIRS_PER_CHUNK", 50)  # rows of 2 or so
    np.testing.assert_array_equal(iv.overlaps_numpy(iv.CIOU, a, b, np.float32(1e-7)), whole)


# ---------------------------------------------------------------------------------------------------------
# parity with torchvision
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["distance_box_iou", "complete_box_iou"])
def test_matches_torchvision(name, dtype):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(4)
    a = random_boxes(rng, 40, dtype=dtype, min_side=0, max_side=300)
    b = random_boxes(rng, 60, dtype=dtype, min_side=0, max_side=300)
    a[:3, 3] = a[:3, 1]  # flat boxes: h = 0 < w (angle pi / 2 in both)
    b[:2, 2] = b[:2, 0]  # zero width: angle 0
    tol = 2e-6 if dtype == np.float32 else 1e-13
    expected = getattr(torchvision.ops, name)(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    # a flat box and a zero-width one have a union of 0: torchvision's IoU is 0/0 = NaN there, edudet's 0
    zero_union = np.zeros(expected.shape, dtype=bool)
    zero_union[:3, :2] = True
    np.testing.assert_array_equal(np.isnan(expected), zero_union)
    expected[zero_union] = getattr(ops, name)(a[:3], b[:2], backend="numpy").ravel()
    assert np.all(expected[zero_union] <= 0)  # IoU 0 minus a penalty
    for backend in BACKENDS:
        got = getattr(ops, name)(a, b, backend=backend)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, rtol=0, atol=tol, err_msg=backend)
    # batched (B, N, 4) as torchvision's [..., N, 4], and a non-default eps
    a3, b3 = a[3:33].reshape(3, 10, 4), b[2:47].reshape(3, 15, 4)  # no zero-union pair here
    expected = getattr(torchvision.ops, name)(torch.from_numpy(a3), torch.from_numpy(b3), eps=1e-3).numpy()
    np.testing.assert_allclose(getattr(ops, name)(a3, b3, eps=1e-3), expected, rtol=0, atol=tol)
