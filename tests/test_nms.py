"""NMS, batched NMS and Soft-NMS: hand cases, properties on every backend, parity with torchvision."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edudet.ops.nms import _iou_one_to_many, _nms, _soft_nms, batched_nms, nms, soft_nms
from helpers import assert_child_ok, import_torchvision, random_boxes

NMS_BACKENDS = _nms.backends
CPU_BACKENDS = [b for b in NMS_BACKENDS if b != "cuda"]
SOFT_BACKENDS = _soft_nms.backends
HAS_CUDA = "cuda" in NMS_BACKENDS

THREE_BOXES = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float32)
THREE_SCORES = np.array([0.9, 0.8, 0.7], dtype=np.float32)


# ------------------------------------------------------------------------------------------------ hand cases

@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_hand_case_overlap_of_81_over_119(backend):
    # boxes 0 and 1: inter = 9 * 9 = 81, union = 100 + 100 - 81 = 119, IoU = 0.6807; box 2 is disjoint
    # threshold 0.5: 0.6807 > 0.5, box 1 goes; threshold 0.7: 0.6807 <= 0.7, all three stay
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend).tolist() == [0, 2]
    assert nms(THREE_BOXES, THREE_SCORES, 0.7, backend=backend).tolist() == [0, 1, 2]
    assert nms(THREE_BOXES, THREE_SCORES, 81 / 119 - 1e-6, backend=backend).tolist() == [0, 2]


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_iou_exactly_at_the_threshold_is_kept(backend):
    # [0,0,4,1] vs [0,0,2,1]: inter = 2 * 1 = 2, union = 4 + 2 - 2 = 4, IoU = 0.5 exactly: 0.5 > 0.5 is false
    boxes = np.array([[0, 0, 4, 1], [0, 0, 2, 1]], dtype=np.float32)
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert nms(boxes, scores, 0.5, backend=backend).tolist() == [0, 1]
    assert nms(boxes, scores, 0.49, backend=backend).tolist() == [0]


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_output_is_by_decreasing_score_ties_by_index(backend):
    # three disjoint boxes: nothing is suppressed; scores 0.5, 0.5, 0.9 -> 2 first, then the tie as 0, 1
    boxes = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]], dtype=np.float64)
    out = nms(boxes, np.array([0.5, 0.5, 0.9]), 0.5, backend=backend)
    assert out.tolist() == [2, 0, 1] and out.dtype == np.int64


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_tied_duplicates_keep_the_lower_index(backend):
    # identical boxes, identical scores: IoU 1 > 0.5, the stable order visits index 0 first
    boxes = np.array([[0, 0, 10, 10]] * 3, dtype=np.float32)
    assert nms(boxes, np.ones(3, np.float32), 0.5, backend=backend).tolist() == [0]


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_zero_area_boxes_never_suppress_and_are_never_suppressed(backend):
    # a point, a line and a duplicate point: every pair has inter = 0 (0/0 = NaN for torchvision: not > t)
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [5, 0, 5, 10], [0, 0, 10, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32)
    assert nms(boxes, scores, 0.0, backend=backend).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_batched_categories_never_suppress_each_other(backend):
    # the same box twice: in one category IoU = 1 drops the second, in two categories both stay
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 11, 11]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7], dtype=np.float32)
    assert batched_nms(boxes, scores, np.array([0, 0, 0]), 0.5, backend=backend).tolist() == [1]
    assert batched_nms(boxes, scores, np.array([0, 1, 0]), 0.5, backend=backend).tolist() == [1, 0]
    assert batched_nms(boxes, scores, np.array([5, 1, -3]), 0.5, backend=backend).tolist() == [1, 0, 2]


@pytest.mark.parametrize("backend", SOFT_BACKENDS)
def test_soft_nms_linear_hand_case(backend):
    # IoU(box 0, box 1) = 81 / 119 = 0.680672 >= 0.3: box 1's score becomes 0.8 * (1 - 0.680672) = 0.255462;
    # box 2 is disjoint (weight 1) and keeps 0.7, so it is selected second
    dets, keep = soft_nms(THREE_BOXES, THREE_SCORES, 0.3, 0.5, 1e-3, "linear", backend=backend)
    assert keep.tolist() == [0, 2, 1] and keep.dtype == np.int64 and dets.dtype == np.float32
    np.testing.assert_array_equal(dets[:, :4], THREE_BOXES[[0, 2, 1]])
    np.testing.assert_allclose(dets[:, 4], [0.9, 0.7, 0.8 * (1 - 81 / 119)], rtol=1e-6)


@pytest.mark.parametrize("backend", SOFT_BACKENDS)
def test_soft_nms_gaussian_and_naive_hand_cases(backend):
    # gaussian, sigma 0.5: weight = exp(-0.680672^2 / 0.5) = exp(-0.926628) = 0.395881 -> 0.8 * 0.395881
    dets, keep = soft_nms(THREE_BOXES, THREE_SCORES, 0.3, 0.5, 1e-3, "gaussian", backend=backend)
    assert keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(dets[:, 4], [0.9, 0.7, 0.8 * math.exp(-((81 / 119) ** 2) / 0.5)], rtol=1e-6)
    # naive: IoU 0.68 >= 0.3 -> weight 0 -> score 0 < 1e-3 -> dropped, like hard NMS
    dets, keep = soft_nms(THREE_BOXES, THREE_SCORES, 0.3, 0.5, 1e-3, "naive", backend=backend)
    assert keep.tolist() == [0, 2]


@pytest.mark.parametrize("backend", SOFT_BACKENDS)
def test_soft_nms_score_threshold_and_mmcv_quirks(backend):
    # box 2 (disjoint, weight 1) has score 5e-4 < 1e-3: dropped after the first decay step
    scores = np.array([0.9, 0.8, 5e-4], dtype=np.float32)
    assert soft_nms(THREE_BOXES, scores, 0.3, backend=backend)[1].tolist() == [0, 1]
    # linear uses ">=": at threshold 81/119 (as float32) the overlap of box 1 still decays it
    thr = float(np.float32(81) / np.float32(119))
    dets, _ = soft_nms(THREE_BOXES, THREE_SCORES, thr, backend=backend)
    assert dets[2, 4] < 0.3
    # mmcv tests the score only after a decay: a lone box below score_threshold is still returned
    dets, keep = soft_nms(THREE_BOXES[:1], np.array([1e-4]), 0.3, backend=backend)
    assert keep.tolist() == [0] and dets.shape == (1, 5)
    # offset=1: areas (9 - 0 + 1)^2 = 100 and inter (9 - 1 + 1)^2 = 81, the same 81/119 as above
    dets, keep = soft_nms(THREE_BOXES - [0, 0, 1, 1], THREE_SCORES, 0.3, offset=1, backend=backend)
    np.testing.assert_allclose(dets[:, 4], [0.9, 0.7, 0.8 * (1 - 81 / 119)], rtol=1e-6)


# ------------------------------------------------------------------------------------------ bad and empty input

def test_bad_input_is_refused_with_the_argument_named():
    boxes, scores = THREE_BOXES, THREE_SCORES
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
        nms(boxes[:, :3], scores, 0.5)
    with pytest.raises(ValueError, match="boxes must have shape"):
        nms(boxes[None], scores, 0.5)
    with pytest.raises(ValueError, match="scores has 2 entries but boxes has 3"):
        nms(boxes, scores[:2], 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(N,\)"):
        nms(boxes, scores[:, None], 0.5)
    with pytest.raises(ValueError, match="boxes contains NaN or inf"):
        nms(np.where(np.eye(3, 4) > 0, np.nan, boxes), scores, 0.5)
    with pytest.raises(ValueError, match="scores contains NaN or inf"):
        nms(boxes, np.array([0.1, np.inf, 0.2]), 0.5)
    with pytest.raises(ValueError, match="iou_threshold must be >= 0"):
        nms(boxes, scores, -0.1)
    with pytest.raises(ValueError, match="iou_threshold must be finite"):
        nms(boxes, scores, float("nan"))
    with pytest.raises(TypeError, match="iou_threshold must be a real number"):
        nms(boxes, scores, "0.5")
    with pytest.raises(TypeError, match="boxes must have a real numeric dtype"):
        nms(boxes.astype(str), scores, 0.5)
    with pytest.raises(TypeError, match="scores must have a real numeric dtype"):
        nms(boxes, scores > 0.5, 0.5)
    with pytest.raises(ValueError, match="not usable here; choose one of"):
        nms(boxes, scores, 0.5, backend="tpu")
    with pytest.raises(ValueError, match="idxs has 2 entries but boxes has 3"):
        batched_nms(boxes, scores, [0, 1], 0.5)
    with pytest.raises(ValueError, match="idxs must hold integers"):
        batched_nms(boxes, scores, [0, 1.5, 2], 0.5)
    with pytest.raises(ValueError, match="method must be one of"):
        soft_nms(boxes, scores, method="cubic")
    with pytest.raises(ValueError, match="sigma must be > 0"):
        soft_nms(boxes, scores, sigma=0)
    with pytest.raises(ValueError, match="score_threshold must be >= 0"):
        soft_nms(boxes, scores, score_threshold=-1)
    with pytest.raises(ValueError, match="offset must be <= 1"):
        soft_nms(boxes, scores, offset=2)


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_empty_input_gives_empty_int64(backend):
    for dtype in (np.float32, np.float64):
        out = nms(np.zeros((0, 4), dtype), np.zeros(0, dtype), 0.5, backend=backend)
        assert out.shape == (0,) and out.dtype == np.int64
        out = batched_nms(np.zeros((0, 4), dtype), np.zeros(0, dtype), np.zeros(0, np.int64), 0.5, backend=backend)
        assert out.shape == (0,) and out.dtype == np.int64


@pytest.mark.parametrize("backend", SOFT_BACKENDS)
def test_soft_nms_empty_and_dtypes(backend):
    dets, keep = soft_nms(np.zeros((0, 4)), np.zeros(0), backend=backend)
    assert dets.shape == (0, 5) and dets.dtype == np.float64 and keep.shape == (0,) and keep.dtype == np.int64
    dets, _ = soft_nms(THREE_BOXES.astype(np.int32), THREE_SCORES, backend=backend)
    assert dets.dtype == np.float32  # integer boxes compute in float32


def test_integer_boxes_and_lists_compute_as_float32():
    out = nms(THREE_BOXES.astype(np.int64).tolist(), THREE_SCORES.tolist(), 0.5)
    assert out.tolist() == [0, 2]


# -------------------------------------------------------------------------------------------------- properties

@st.composite
def box_sets(draw, max_n=24):
    """Small box sets on an integer grid (exact ties, IoUs exactly at thresholds, zero-area boxes)."""
    n = draw(st.integers(0, max_n))
    corners = draw(arrays(np.int64, (n, 4), elements=st.integers(0, 16)))
    low, high = np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])
    boxes = np.concatenate([low, high], axis=1)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scores = draw(arrays(np.int64, n, elements=st.integers(0, 5))) / 5  # many ties
    return boxes.astype(dtype), scores.astype(dtype)


thresholds = st.one_of(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), st.floats(0, 1))


def _iou(boxes, i, j):
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return _iou_one_to_many(boxes[i], area[i], boxes[j:j + 1], area[j:j + 1])[0]


@given(box_sets(), thresholds)
def test_nms_is_a_greedy_suppression(data, threshold):
    boxes, scores = data
    keep = nms(boxes, scores, threshold, backend="numpy")
    assert len(set(keep.tolist())) == len(keep) and all(0 <= k < len(boxes) for k in keep)  # a subset
    assert np.all(np.diff(scores[keep]) <= 0)  # by decreasing score
    rank = {k: r for r, k in enumerate(np.argsort(-scores, kind="stable"))}
    for a in range(len(keep)):  # no kept pair above the threshold
        for b in range(a + 1, len(keep)):
            assert not _iou(boxes, keep[a], keep[b]) > np.float64(threshold)
    kept = set(keep.tolist())
    for d in set(range(len(boxes))) - kept:  # every dropped box has a higher-ranked kept suppressor
        assert any(rank[k] < rank[d] and _iou(boxes, k, d) > np.float64(threshold) for k in kept)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(data=box_sets(max_n=40), threshold=thresholds)
def test_every_cpu_backend_equals_the_reference(backend, data, threshold):
    boxes, scores = data
    np.testing.assert_array_equal(nms(boxes, scores, threshold, backend=backend),
                                  nms(boxes, scores, threshold, backend="numpy"))
    idxs = (np.arange(len(boxes)) * 7) % 3
    np.testing.assert_array_equal(batched_nms(boxes, scores, idxs, threshold, backend=backend),
                                  batched_nms(boxes, scores, idxs, threshold, backend="numpy"))


@pytest.mark.skipif(not HAS_CUDA, reason="numba.cuda (or its simulator) unavailable")
@settings(max_examples=8)
@given(data=box_sets(max_n=20), threshold=thresholds)
def test_cuda_backend_equals_the_reference(data, threshold):
    boxes, scores = data
    np.testing.assert_array_equal(nms(boxes, scores, threshold, backend="cuda"),
                                  nms(boxes, scores, threshold, backend="numpy"))
    idxs = np.arange(len(boxes)) % 2
    np.testing.assert_array_equal(batched_nms(boxes, scores, idxs, threshold, backend="cuda"),
                                  batched_nms(boxes, scores, idxs, threshold, backend="numpy"))


@pytest.mark.skipif(not HAS_CUDA, reason="numba.cuda (or its simulator) unavailable")
def test_cuda_backend_across_several_64_box_blocks():
    # 150 boxes: 3 blocks of 64, so bits cross block boundaries in the host scan
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 150, image_size=150.0, min_side=5, max_side=60)
    scores = np.round(rng.random(150), 1).astype(np.float32)
    for threshold in (0.3, 0.7):
        np.testing.assert_array_equal(nms(boxes, scores, threshold, backend="cuda"),
                                      nms(boxes, scores, threshold, backend="numpy"))


def _adversarial_workload(rng, kind, n, dtype):
    """Geometry that stresses the grid of the compiled kernels: scales, offsets and sizes far from 800 px."""
    if kind == "far from the origin":  # float32 spacing ~0.06 px at 1e6: sides of a few ulps
        xy, wh = rng.uniform(1e6, 1e6 + 50, (n, 2)), rng.uniform(0.01, 5, (n, 2))
    elif kind == "mixed scales":
        xy, wh = rng.uniform(-1000, 1000, (n, 2)), np.exp(rng.uniform(-5, 8, (n, 2)))
    elif kind == "near duplicates":
        xy, wh = rng.normal(50, 0.5, (n, 2)), rng.normal(20, 0.5, (n, 2))
    elif kind == "giants among dwarfs":
        xy, wh = rng.uniform(0, 800, (n, 2)), np.where(rng.random((n, 1)) < 0.05, 5000, rng.uniform(1, 30, (n, 2)))
    else:  # "tiny"
        xy, wh = rng.uniform(0, 1e-3, (n, 2)), rng.uniform(0, 1e-3, (n, 2))
    scores = np.round(rng.random(n), 2)
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype), scores.astype(dtype)


@pytest.mark.parametrize("kind", ["far from the origin", "mixed scales", "near duplicates", "giants among dwarfs",
                                  "tiny"])
def test_compiled_backends_equal_the_reference_on_adversarial_geometry(kind):
    rng = np.random.default_rng(len(kind))
    for dtype in (np.float32, np.float64):
        boxes, scores = _adversarial_workload(rng, kind, 300, dtype)
        idxs = rng.integers(0, 3, 300)
        for threshold in (0.0, 1e-7, 0.3, 0.4999, 0.5, 0.7, 1.0):
            expected = nms(boxes, scores, threshold, backend="numpy")
            expected_batched = batched_nms(boxes, scores, idxs, threshold, backend="numpy")
            for backend in CPU_BACKENDS:
                np.testing.assert_array_equal(nms(boxes, scores, threshold, backend=backend), expected)
                np.testing.assert_array_equal(batched_nms(boxes, scores, idxs, threshold, backend=backend),
                                              expected_batched)


@given(box_sets(), thresholds)
def test_batched_nms_is_nms_per_category(data, threshold):
    boxes, scores = data
    idxs = np.arange(len(boxes)) % 3
    keep = batched_nms(boxes, scores, idxs, threshold, backend="numpy")
    expected = set()
    for c in range(3):
        members = np.flatnonzero(idxs == c)
        expected |= set(members[nms(boxes[members], scores[members], threshold)].tolist())
    assert set(keep.tolist()) == expected
    assert np.all(np.diff(scores[keep]) <= 0)
    # with a single category it is plain NMS
    np.testing.assert_array_equal(batched_nms(boxes, scores, np.zeros(len(boxes), int), threshold),
                                  nms(boxes, scores, threshold))


def _assert_same_soft_nms(a, b, exact=True):
    np.testing.assert_array_equal(a[1], b[1])
    if exact:
        np.testing.assert_array_equal(a[0], b[0])
    else:  # gaussian float32 in numba calls expf: a weight can differ by one ulp
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6)


@given(data=box_sets(), threshold=thresholds, method=st.sampled_from(["naive", "linear", "gaussian"]),
       score_threshold=st.sampled_from([0.0, 1e-3, 0.1, 0.5]), offset=st.sampled_from([0, 1]))
def test_soft_nms_properties_and_backends(data, threshold, method, score_threshold, offset):
    boxes, _ = data
    scores = np.linspace(1, 0.05, len(boxes)).astype(boxes.dtype)[::-1].copy()  # distinct: no tie-breaking
    ref = soft_nms(boxes, scores, threshold, 0.5, score_threshold, method, offset, backend="numpy")
    dets, keep = ref
    assert len(set(keep.tolist())) == len(keep)
    np.testing.assert_array_equal(dets[:, :4], boxes[keep])
    assert np.all(dets[:, 4] <= scores[keep])  # scores only decay
    assert np.all(dets[1:, 4] >= score_threshold * (1 - 1e-6))  # only the first box can be below it
    for backend in SOFT_BACKENDS:
        got = soft_nms(boxes, scores, threshold, 0.5, score_threshold, method, offset, backend=backend)
        _assert_same_soft_nms(got, ref, exact=not (method == "gaussian" and backend == "numba"))


@given(data=box_sets(), method=st.sampled_from(["naive", "linear", "gaussian"]))
def test_soft_nms_with_tied_scores_agrees_on_every_backend(data, method):
    # ties exercise mmcv's "first maximum in the current (permuted) order": every backend reproduces it
    boxes, scores = data
    ref = soft_nms(boxes, scores, 0.3, 0.5, 0.05, method, backend="numpy")
    for backend in SOFT_BACKENDS:
        if method == "gaussian" and backend == "numba":
            continue
        _assert_same_soft_nms(soft_nms(boxes, scores, 0.3, 0.5, 0.05, method, backend=backend), ref)


@given(data=box_sets(), threshold=st.floats(0.01, 0.99))
def test_naive_soft_nms_is_hard_nms_when_no_iou_sits_on_the_threshold(data, threshold):
    boxes, _ = data
    scores = np.linspace(1, 0.05, len(boxes)).astype(boxes.dtype)
    n = len(boxes)
    assume(not any(_iou(boxes, i, j) == boxes.dtype.type(threshold) for i in range(n) for j in range(n)))
    _, keep = soft_nms(boxes, scores, threshold, score_threshold=1e-3, method="naive")
    assert set(keep.tolist()) == set(nms(boxes, scores, float(boxes.dtype.type(threshold))).tolist())


# ----------------------------------------------------------------------------------- parity with torchvision

def _tv_nms(torch, torchvision, boxes, scores, threshold):
    return torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()


def _hard_workload(rng, n, dtype):
    """Random boxes plus the edge cases: duplicates, zero-area, out-of-image, integer corners, tied scores."""
    boxes = random_boxes(rng, n, dtype=np.float64)
    boxes[: n // 10] = boxes[n // 10: 2 * (n // 10)]  # exact duplicates of other boxes
    boxes[2 * (n // 10): 2 * (n // 10) + 20, 2] = boxes[2 * (n // 10): 2 * (n // 10) + 20, 0]  # zero width
    boxes[-50:] += rng.uniform(-300, 300, size=(50, 1))  # partly out of the 800-px image, negative too
    boxes[-100:-50] = np.round(boxes[-100:-50] / 10) * 10  # integer corners: exact IoU ties
    scores = np.round(rng.random(n), 1)  # ties: 11 distinct values
    return boxes.astype(dtype), scores.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.9])
def test_nms_matches_torchvision_on_thousands_of_boxes(dtype, threshold):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(int(threshold * 10))
    for boxes, scores in (_hard_workload(rng, 3000, dtype),
                          (random_boxes(rng, 3000, dtype=dtype), rng.random(3000).astype(dtype))):
        expected = _tv_nms(torch, torchvision, boxes, scores, threshold)
        for backend in CPU_BACKENDS:
            np.testing.assert_array_equal(nms(boxes, scores, threshold, backend=backend), expected)


def test_nms_matches_torchvision_on_zero_area_and_degenerate_pairs():
    torch, torchvision = import_torchvision()
    # torchvision: 0/0 = NaN for two zero-area boxes, NaN > t is false, so nothing is suppressed; same here
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [3, 3, 3, 9], [0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.9, 0.5, 0.4, 0.3], np.float32)
    for threshold in (0.0, 0.5):
        expected = _tv_nms(torch, torchvision, boxes, scores, threshold)
        assert expected.tolist() == [0, 1, 2, 3]
        for backend in NMS_BACKENDS:
            np.testing.assert_array_equal(nms(boxes, scores, threshold, backend=backend), expected)


@pytest.mark.skipif(not HAS_CUDA, reason="numba.cuda (or its simulator) unavailable")
def test_cuda_nms_matches_torchvision_on_a_small_input():
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(11)
    boxes, scores = _hard_workload(rng, 200, np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5, backend="cuda"),
                                  _tv_nms(torch, torchvision, boxes, scores, 0.5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_nms_matches_torchvision_with_many_categories(dtype):
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(5)
    boxes, scores = _hard_workload(rng, 4000, dtype)  # > 1000 boxes: torchvision runs NMS per category
    idxs = rng.integers(0, 80, size=4000)
    t = [torch.from_numpy(a) for a in (boxes, scores, idxs)]
    for threshold in (0.3, 0.7):
        expected = torchvision.ops.batched_nms(*t, threshold).numpy()
        for backend in CPU_BACKENDS:
            got = batched_nms(boxes, scores, idxs, threshold, backend=backend)
            # torchvision merges the categories with an unstable sort: equal scores may come in another order
            assert set(got.tolist()) == set(expected.tolist())
            np.testing.assert_array_equal(scores[got], scores[expected])
        unique = rng.permutation(4000).astype(dtype) / 4000  # no ties: index for index
        t[1] = torch.from_numpy(unique)
        expected = torchvision.ops.batched_nms(*t, threshold).numpy()
        t[1] = torch.from_numpy(scores)
        for backend in CPU_BACKENDS:
            np.testing.assert_array_equal(batched_nms(boxes, unique, idxs, threshold, backend=backend), expected)


def test_batched_nms_matches_torchvision_coordinate_trick_path_in_float64():
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(6)
    boxes, scores = _hard_workload(rng, 800, np.float64)  # <= 1000 boxes: torchvision offsets coordinates
    boxes = np.abs(boxes)  # the offset trick needs coordinates >= 0 to separate categories
    idxs = rng.integers(0, 20, size=800)
    for threshold in (0.5, 0.7):
        expected = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                               torch.from_numpy(idxs), threshold).numpy()
        for backend in CPU_BACKENDS:
            np.testing.assert_array_equal(batched_nms(boxes, scores, idxs, threshold, backend=backend), expected)


def test_batched_nms_is_per_category_nms_of_torchvision_in_float32():
    # in float32 the offset trick rounds shifted coordinates; compare with torchvision's per-category nms
    torch, torchvision = import_torchvision()
    rng = np.random.default_rng(7)
    boxes, scores = _hard_workload(rng, 900, np.float32)
    idxs = rng.integers(0, 30, size=900)
    keep = np.zeros(900, bool)
    for c in np.unique(idxs):
        members = np.flatnonzero(idxs == c)
        keep[members[_tv_nms(torch, torchvision, boxes[members], scores[members], 0.5)]] = True
    expected = np.flatnonzero(keep)
    expected = expected[np.argsort(-scores[expected], kind="stable")]
    for backend in CPU_BACKENDS:
        np.testing.assert_array_equal(batched_nms(boxes, scores, idxs, 0.5, backend=backend), expected)


# ------------------------------------------------------------------ extreme values (issue 12: 1, 7, 10, 13)

def test_issue_12_overflowing_spans_are_refused_by_the_ops_and_harmless_in_the_kernels():
    # Finding 1: a span of 1e308 - (-1e308) = inf made the grid's cell count NaN -> INT64_MIN, and the Cython
    # and Numba kernels wrote out of bounds. The ops now refuse coordinates beyond 1e15 by name; the kernels,
    # called directly, fall back to one cell and give the reference's answer for any finite input.
    assert_child_ok("""
        import importlib, warnings
        import numpy as np
        from edudet import ops
        from edudet.ops.nms import _nms, batched_nms_numpy, nms_numpy
        modules = [importlib.import_module(f"edudet.kernels.nms_{b}")
                   for b in ("cython", "numba") if b in _nms.backends]
        warnings.simplefilter("ignore")  # the reference overflows on 1e308 inputs too (inf * 0 and co.)

        issue = [(np.array([[-1e308, 33.866, 1e308, 100], [0, -1e308, 1e19, 0]]), np.array([.87, .38])),
                 (np.array([[-1e308, 0, 1e308, 10], [0, 0, 1, 1]]), np.array([.87, .38]))]
        for boxes, scores in issue:
            for backend in _nms.backends:
                print("public op", backend, boxes.tolist(), flush=True)
                for call in (lambda: ops.nms(boxes, scores, .5, backend=backend),
                             lambda: ops.batched_nms(boxes, scores, [0, 0], .5, backend=backend)):
                    try:
                        call()
                    except ValueError as err:
                        assert "boxes has a coordinate of magnitude 1e+308" in str(err), err
                    else:
                        raise AssertionError("accepted a coordinate of 1e308")

        rng = np.random.default_rng(12)
        cases = [(b, s, "issue") for b, s in issue]
        for trial in range(150):  # wide spans, giants among dwarfs, magnitudes up to 1e308, both dtypes
            n = int(rng.integers(1, 40))
            scale = 10.0 ** rng.choice([-300, -30, 0, 6, 15, 15, 19, 100, 300, 308])
            xy = rng.uniform(-1, 1, (n, 2)) * scale * rng.choice([1e-9, 1e-3, 1.0], (n, 1))
            wh = rng.uniform(0, 1, (n, 2)) * scale * rng.choice([1e-9, 1e-3, 1.0, 5.0], (n, 1))
            boxes = np.concatenate([xy, xy + wh], axis=1)
            boxes[rng.random(n) < 0.3] = boxes[0]  # duplicates: something to suppress
            dtype = np.float32 if trial % 2 else np.float64
            boxes = np.nan_to_num(boxes, posinf=1e308, neginf=-1e308).astype(dtype)
            boxes = np.nan_to_num(boxes, posinf=np.finfo(dtype).max, neginf=-np.finfo(dtype).max)
            cases.append((boxes, np.round(rng.random(n), 1).astype(dtype), f"trial {trial} scale {scale:g}"))
        for boxes, scores, name in cases:
            idxs = np.arange(len(boxes)) % 3
            for threshold in (0.0, 0.5):
                expected = nms_numpy(boxes, scores, threshold)
                expected_batched = batched_nms_numpy(boxes, scores, idxs, threshold)
                for module in modules:
                    print("kernel", module.__name__, name, boxes.dtype, threshold, flush=True)
                    assert np.array_equal(module.nms(boxes, scores, threshold), expected), (boxes, scores)
                    assert np.array_equal(module.batched_nms(boxes, scores, idxs, threshold), expected_batched)
        print("ok")
    """)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e-30), (np.float64, 1e-300), (np.float32, 1e-20),
                                          (np.float64, 1e-160)])
def test_boxes_whose_areas_underflow_suppress_nothing_on_every_backend(dtype, scale):
    # Finding 7: THREE_BOXES scaled by 1e-30 in float32: sides of 1e-29, areas 1e-58 and intersections
    # 81e-60 underflow to 0 (float32's smallest subnormal is 1.4e-45), so the union is 0. Numba raised
    # ZeroDivisionError; now IoU = 0 everywhere (torchvision: 0 / 0 = NaN, not > 0.5 either): all kept.
    # At 1e-20 (areas 1e-38, subnormal but not 0) and 1e-160 in float64 the IoU is still about 81/119.
    boxes, scores = THREE_BOXES.astype(dtype) * dtype(scale), THREE_SCORES.astype(dtype)
    assert np.all(boxes[:, 2:] > boxes[:, :2])  # not zero-size boxes: only their areas underflow
    expected = nms(boxes, scores, 0.5, backend="numpy")
    assert expected.tolist() == ([0, 1, 2] if scale in (1e-30, 1e-300) else [0, 2])
    idxs = np.array([0, 0, 1])
    expected_batched = batched_nms(boxes, scores, idxs, 0.5, backend="numpy")
    for backend in NMS_BACKENDS:
        np.testing.assert_array_equal(nms(boxes, scores, 0.5, backend=backend), expected, err_msg=backend)
        np.testing.assert_array_equal(batched_nms(boxes, scores, idxs, 0.5, backend=backend), expected_batched)
    ref = soft_nms(boxes, scores, 0.3, backend="numpy")
    for backend in SOFT_BACKENDS:
        _assert_same_soft_nms(soft_nms(boxes, scores, 0.3, backend=backend), ref)


def test_batched_nms_refuses_float_idxs_beyond_int64():
    # Finding 10: 1e19 and -1e19 used to wrap to INT64_MIN and merge two categories (and their boxes)
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8], dtype=np.float32)
    for idxs in ([1e19, -1e19], [0.0, 2.0**63], np.array([0, 2**64 - 1], dtype=np.uint64)):
        with pytest.raises(ValueError, match="idxs holds a value beyond the int64 range"):
            batched_nms(boxes, scores, idxs, 0.5)
    # the largest exact floats below 2**63 are fine, and stay two categories
    assert batched_nms(boxes, scores, [0.0, 2.0**62], 0.5).tolist() == [0, 1]


def test_scalar_parameters_are_checked_by_name():
    # Finding 13: NaN, inf, huge ints, 0-d arrays and non-numbers as iou_threshold / sigma / offset / method
    boxes, scores = THREE_BOXES, THREE_SCORES
    assert nms(boxes, scores, np.array(0.5)).tolist() == [0, 2]  # a 0-d array is a number
    assert soft_nms(boxes, scores, np.float32(0.3), offset=np.int64(0))[1].tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="iou_threshold must be finite"):
        batched_nms(boxes, scores, [0, 0, 0], float("inf"))
    with pytest.raises(ValueError, match="iou_threshold is too large to be a float"):
        nms(boxes, scores, 10**400)
    with pytest.raises(TypeError, match="iou_threshold must be a real number"):
        nms(boxes, scores, np.array([0.5]))
    with pytest.raises(TypeError, match=r"method must be a string, one of \['naive', 'linear', 'gaussian'\]"):
        soft_nms(boxes, scores, method=["linear"])
    with pytest.raises(TypeError, match="method must be a string"):
        soft_nms(boxes, scores, method=None)
    with pytest.raises(ValueError, match="sigma must be finite"):
        soft_nms(boxes, scores, sigma=float("nan"))
    with pytest.raises(ValueError, match="score_threshold must be finite"):
        soft_nms(boxes, scores, score_threshold=float("inf"))
    with pytest.raises(ValueError, match="offset must be an integer"):
        soft_nms(boxes, scores, offset=0.5)
    with pytest.raises(ValueError, match="offset must fit in a 64-bit integer"):
        soft_nms(boxes, scores, offset=2**64)
    with pytest.raises(TypeError, match="offset must be a real number"):
        soft_nms(boxes, scores, offset=True)


def test_coordinates_beyond_the_limit_are_refused_by_name_on_every_op():
    # 1e15 is accepted (and exact enough: IoU of these two is 0.5 in float64), 2e15 is refused
    boxes = np.array([[-1e15, 0, 1e15, 1], [0, 0, 1e15, 1]])
    scores = np.array([0.9, 0.8])
    for backend in NMS_BACKENDS:
        assert nms(boxes, scores, 0.49, backend=backend).tolist() == [0]  # IoU = 1e15 / 2e15 = 0.5 > 0.49
        assert nms(boxes, scores, 0.5, backend=backend).tolist() == [0, 1]
    for call in (lambda b: nms(b, scores, 0.5), lambda b: batched_nms(b, scores, [0, 1], 0.5),
                 lambda b: soft_nms(b, scores)):
        with pytest.raises(ValueError, match=r"boxes has a coordinate of magnitude 2e\+15"):
            call(boxes * 2)


# every magnitude from float64's subnormals to beyond the coordinate limit (float32: from its subnormals)
MAGNITUDES = [5e-324, 1e-300, 1e-160, 1e-45, 1e-38, 1e-30, 1e-20, 1e-6, 1.0, 1e6, 1e12, 1e15, 2e15, 1e19, 1e38,
              1e300, 1.7e308]


@st.composite
def extreme_box_sets(draw, max_n=12):
    """Boxes of one magnitude (or a mix of two), on a coarse grid of it so that overlaps are common."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(1, max_n))
    scales = np.array(draw(st.lists(st.sampled_from(MAGNITUDES), min_size=1, max_size=2)), dtype=np.float64)
    grid = draw(arrays(np.int64, (n, 4), elements=st.integers(-3, 3)))
    scale = scales[np.arange(n) % len(scales)][:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        corners = grid * scale
        boxes = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]),
                                np.maximum(corners[:, :2], corners[:, 2:])], axis=1).astype(dtype)
    boxes = np.nan_to_num(boxes, posinf=np.finfo(dtype).max, neginf=-np.finfo(dtype).max)
    scores = (draw(arrays(np.int64, n, elements=st.integers(0, 5))) / 5).astype(dtype)
    return boxes, scores


def _outcome(call):
    """The result, or the ValueError's message: every backend must give the same one."""
    try:
        return call()
    except ValueError as err:
        return str(err)


@given(data=extreme_box_sets(), threshold=st.sampled_from([0.0, 0.3, 0.5, 0.9]))
def test_extreme_values_give_the_reference_or_the_same_error_on_every_backend(data, threshold):
    boxes, scores = data
    idxs = np.arange(len(boxes)) % 2
    expected = _outcome(lambda: nms(boxes, scores, threshold, backend="numpy"))
    if np.abs(boxes).max() > 1e15:
        assert "boxes has a coordinate of magnitude" in expected
    expected_batched = _outcome(lambda: batched_nms(boxes, scores, idxs, threshold, backend="numpy"))
    for backend in NMS_BACKENDS:
        got = _outcome(lambda: nms(boxes, scores, threshold, backend=backend))
        np.testing.assert_array_equal(got, expected, err_msg=backend)
        got = _outcome(lambda: batched_nms(boxes, scores, idxs, threshold, backend=backend))
        np.testing.assert_array_equal(got, expected_batched, err_msg=backend)
    expected_soft = _outcome(lambda: soft_nms(boxes, scores, threshold, backend="numpy"))
    for backend in SOFT_BACKENDS:
        got = _outcome(lambda: soft_nms(boxes, scores, threshold, backend=backend))
        if isinstance(expected_soft, str):
            assert got == expected_soft, backend
        else:
            _assert_same_soft_nms(got, expected_soft)


@pytest.mark.skipif(not HAS_CUDA, reason="numba.cuda (or its simulator) unavailable")
def test_cuda_nms_refuses_bitmasks_too_large_before_allocating():
    # Finding 14: 190,000 boxes need 190,000 x ceil(190,000 / 64) = 2969 words of 8 bytes = 4.2 GiB of masks
    boxes = np.tile(np.array([[0, 0, 10, 10]], np.float32), (190_000, 1))
    with pytest.raises(ValueError, match=r"CUDA nms's \(N, N / 64\) suppression bitmasks \(boxes: N = 190000\) "
                                         r"would need 190000 x 2969 x 8 bytes = 4.2 GiB"):
        nms(boxes, np.ones(190_000, np.float32), 0.5, backend="cuda")


def test_a_sigma_that_rounds_to_zero_in_the_dtype_is_refused():
    # 1e-300 is 0 in float32: exp(-iou^2 / 0) divided by zero (Numba raised ZeroDivisionError, NumPy gave NaN)
    boxes = np.zeros((2, 4), np.float32)
    scores = np.zeros(2, np.float32)
    for backend in _soft_nms.backends:
        with pytest.raises(ValueError, match="sigma=1e-300 rounds to 0 in float32"):
            soft_nms(boxes, scores, 0.3, 1e-300, 0.001, "gaussian", 0, backend=backend)
    # the same sigma is a number in float64
    keep = soft_nms(boxes.astype(np.float64), scores.astype(np.float64), 0.3, 1e-300, 0.0, "gaussian", 0)[1]
    assert keep.shape == (2,)


def test_a_vanishing_sigma_is_fine_where_sigma_is_unused():
    # only the gaussian divides by sigma: linear soft-NMS ignores it
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    for backend in _soft_nms.backends:
        _, keep = soft_nms(boxes, scores, 0.3, 1e-300, 0.001, "linear", 0, backend=backend)
        assert keep.tolist() == [0, 1], backend


# ------------------------------------------------- issue 16: offset=0|1, score_threshold, max_num, nms_match

from edudet.ops.nms import _nms_match, nms_match, nms_match_numpy, nms_numpy  # noqa: E402

MATCH_BACKENDS = _nms_match.backends
# [0,0,9,9] and [5,5,14,14]. offset 0: areas 9*9 = 81, inter 4*4 = 16, IoU 16 / (81 + 81 - 16) = 16/146 = 0.1096;
# offset 1 (inclusive pixels 0..9 and 5..14): areas 10*10 = 100, inter 5*5 = 25, IoU 25 / 175 = 0.1429
PIXEL_BOXES = np.array([[0, 0, 9, 9], [5, 5, 14, 14]], dtype=np.float32)
PIXEL_SCORES = np.array([0.9, 0.8], dtype=np.float32)


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_offset_one_counts_inclusive_pixels(backend):
    # at 0.12: 0.1096 <= 0.12 keeps box 1 with offset 0; 0.1429 > 0.12 suppresses it with offset 1
    assert nms(PIXEL_BOXES, PIXEL_SCORES, 0.12, backend=backend).tolist() == [0, 1]
    assert nms(PIXEL_BOXES, PIXEL_SCORES, 0.12, backend=backend, offset=1).tolist() == [0]
    assert nms(PIXEL_BOXES, PIXEL_SCORES, 0.15, backend=backend, offset=1).tolist() == [0, 1]  # 0.1429 <= 0.15
    idxs = np.array([3, 3])
    assert batched_nms(PIXEL_BOXES, PIXEL_SCORES, idxs, 0.12, backend=backend).tolist() == [0, 1]
    assert batched_nms(PIXEL_BOXES, PIXEL_SCORES, idxs, 0.12, backend=backend, offset=1).tolist() == [0]


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_offset_one_gives_single_pixel_boxes_an_area(backend):
    # [5,5,5,5] is one pixel with offset 1 (area 1*1): two copies have IoU 1 / (1 + 1 - 1) = 1 > 0.5, so the
    # later one goes; with offset 0 both are points (area 0) and never suppress
    points = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], dtype=np.float64)
    assert nms(points, np.array([0.9, 0.8]), 0.5, backend=backend).tolist() == [0, 1]
    assert nms(points, np.array([0.9, 0.8]), 0.5, backend=backend, offset=1).tolist() == [0]
    # [0,0,-0.5,3]: width -0.5 + 1 = 0.5 > 0 with offset 1, and a copy of it: 0.5*4 / (2 + 2 - 2) = 1
    thin = np.array([[0, 0, -0.5, 3], [0, 0, -0.5, 3]], dtype=np.float32)
    assert nms(thin, np.array([0.9, 0.8], np.float32), 0.5, backend=backend, offset=1).tolist() == [0]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(data=box_sets(max_n=40), threshold=thresholds)
def test_every_cpu_backend_equals_the_reference_with_offset_one(backend, data, threshold):
    boxes, scores = data
    idxs = (np.arange(len(boxes)) % 3).astype(np.int64)
    assert np.array_equal(nms(boxes, scores, threshold, backend=backend, offset=1),
                          nms(boxes, scores, threshold, backend="numpy", offset=1))
    assert np.array_equal(batched_nms(boxes, scores, idxs, threshold, backend=backend, offset=1),
                          batched_nms(boxes, scores, idxs, threshold, backend="numpy", offset=1))


@pytest.mark.skipif(not HAS_CUDA, reason="numba.cuda (or its simulator) unavailable")
@settings(max_examples=8)
@given(data=box_sets(max_n=20), threshold=thresholds, offset=st.sampled_from([0, 1]))
def test_cuda_backend_equals_the_reference_with_offsets(data, threshold, offset):
    boxes, scores = data
    idxs = (np.arange(len(boxes)) % 2).astype(np.int64)
    assert np.array_equal(nms(boxes, scores, threshold, backend="cuda", offset=offset),
                          nms(boxes, scores, threshold, backend="numpy", offset=offset))
    assert np.array_equal(batched_nms(boxes, scores, idxs, threshold, backend="cuda", offset=offset),
                          batched_nms(boxes, scores, idxs, threshold, backend="numpy", offset=offset))


@given(box_sets(), thresholds)
def test_offset_one_is_offset_zero_on_boxes_one_pixel_larger(data, threshold):
    # on the integer grid every sum is exact, so "+ 1 inside the formulas" and "+ 1 on x2, y2" agree exactly
    boxes, scores = data
    grown = boxes.copy()
    grown[:, 2:] += 1
    assert np.array_equal(nms(boxes, scores, threshold, backend="numpy", offset=1),
                          nms(grown, scores, threshold, backend="numpy"))


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_score_threshold_is_strict_and_max_num_keeps_the_best(backend):
    # THREE_BOXES: scores 0.9, 0.8, 0.7; boxes 0 and 1 overlap with IoU 81/119 = 0.68, box 2 is disjoint
    # score_threshold 0.8 keeps scores > 0.8 only (mmcv's `scores > score_thr`): box 0 alone
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend, score_threshold=0.8).tolist() == [0]
    # a score equal to the threshold is dropped: 0.7 at 0.7 (float32 0.7 against 0.7 rounded to float32)
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend, score_threshold=0.7).tolist() == [0]
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend, score_threshold=0.69).tolist() == [0, 2]
    # scores 0.7, 0.8, 0.9: box 1 (0.8) suppresses box 0 (0.7), which the threshold 0.75 drops anyway
    assert nms(THREE_BOXES, THREE_SCORES[::-1].copy(), 0.5, backend=backend, score_threshold=0.75).tolist() == [2, 1]
    # max_num after NMS: [0, 2] -> [0]; -1 and None keep all; 0 keeps none
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend, max_num=1).tolist() == [0]
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend, max_num=-1).tolist() == [0, 2]
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend, max_num=None).tolist() == [0, 2]
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend, max_num=0).tolist() == []
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend, max_num=5).tolist() == [0, 2]
    idxs = np.array([0, 1, 0])  # box 1 in its own category: kept; then the best two overall
    assert batched_nms(THREE_BOXES, THREE_SCORES, idxs, 0.5, backend=backend, max_num=2).tolist() == [0, 1]
    assert batched_nms(THREE_BOXES, THREE_SCORES, idxs, 0.5, backend=backend,
                       score_threshold=0.75, max_num=5).tolist() == [0, 1]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(data=box_sets(max_n=30), threshold=thresholds, score_threshold=st.sampled_from([0.0, 0.2, 0.5, 0.99]),
       max_num=st.sampled_from([None, -1, 0, 1, 3]), offset=st.sampled_from([0, 1]))
def test_score_threshold_and_max_num_commute_with_their_definition(backend, data, threshold, score_threshold,
                                                                   max_num, offset):
    # the definition: NMS of the boxes scoring > score_threshold (in the scores' dtype), the first max_num kept
    boxes, scores = data
    idxs = (np.arange(len(boxes)) % 2).astype(np.int64)
    candidates = np.flatnonzero(scores > scores.dtype.type(score_threshold))
    cut = None if max_num in (None, -1) else max_num
    expected = candidates[nms_numpy(boxes[candidates], scores[candidates], threshold, offset)][:cut]
    got = nms(boxes, scores, threshold, backend=backend, offset=offset, score_threshold=score_threshold,
              max_num=max_num)
    assert got.dtype == np.int64 and got.tolist() == expected.tolist()
    expected = candidates[batched_nms(boxes[candidates], scores[candidates], idxs[candidates], threshold,
                                      backend="numpy", offset=offset)][:cut]
    got = batched_nms(boxes, scores, idxs, threshold, backend=backend, offset=offset,
                      score_threshold=score_threshold, max_num=max_num)
    assert got.tolist() == expected.tolist()


def test_new_options_are_checked_by_name():
    for bad in (2, -1, 0.5, np.nan, "1", True):
        with pytest.raises((ValueError, TypeError), match="offset"):
            nms(THREE_BOXES, THREE_SCORES, 0.5, offset=bad)
        with pytest.raises((ValueError, TypeError), match="offset"):
            batched_nms(THREE_BOXES, THREE_SCORES, [0, 0, 0], 0.5, offset=bad)
    for bad in (-2, 1.5, np.nan, "3", 2**64):
        with pytest.raises((ValueError, TypeError), match="max_num"):
            nms(THREE_BOXES, THREE_SCORES, 0.5, max_num=bad)
    for bad in (np.nan, np.inf, "0.5"):
        with pytest.raises((ValueError, TypeError), match="score_threshold"):
            batched_nms(THREE_BOXES, THREE_SCORES, [0, 0, 0], 0.5, score_threshold=bad)
    with pytest.raises(TypeError):  # keyword-only: a fifth positional argument is the backend
        nms(THREE_BOXES, THREE_SCORES, 0.5, None, 1)


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_empty_input_with_every_option(backend):
    empty = np.zeros((0, 4), np.float32)
    for kwargs in ({}, dict(offset=1), dict(score_threshold=0.5, max_num=3)):
        out = nms(empty, np.zeros(0, np.float32), 0.5, backend=backend, **kwargs)
        assert out.shape == (0,) and out.dtype == np.int64
        out = batched_nms(empty, np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5, backend=backend, **kwargs)
        assert out.shape == (0,) and out.dtype == np.int64
    # every box below the score threshold: empty too
    assert nms(THREE_BOXES, THREE_SCORES, 0.5, backend=backend, score_threshold=0.95).tolist() == []


def test_batched_nms_of_zero_boxes_matches_torchvision():
    torch, torchvision = import_torchvision()
    for dtype in (np.float32, np.float64):
        expected = torchvision.ops.batched_nms(torch.zeros((0, 4), dtype=getattr(torch, np.dtype(dtype).name)),
                                               torch.zeros(0, dtype=getattr(torch, np.dtype(dtype).name)),
                                               torch.zeros(0, dtype=torch.int64), 0.5).numpy()
        for backend in NMS_BACKENDS:
            out = batched_nms(np.zeros((0, 4), dtype), np.zeros(0, dtype), np.zeros(0, np.int64), 0.5,
                              backend=backend)
            assert out.shape == expected.shape == (0,) and out.dtype == expected.dtype == np.int64


@pytest.mark.skipif(not HAS_CUDA, reason="numba.cuda (or its simulator) unavailable")
def test_device_arrays_take_offset_and_max_num_but_not_score_threshold():
    from numba import cuda

    keep = nms(cuda.to_device(PIXEL_BOXES), cuda.to_device(PIXEL_SCORES), 0.12, offset=1)
    assert keep.copy_to_host().tolist() == [0]
    keep = nms(cuda.to_device(THREE_BOXES), cuda.to_device(THREE_SCORES), 0.5, max_num=1)
    assert keep.copy_to_host().tolist() == [0]
    with pytest.raises(ValueError, match="score_threshold"):
        nms(cuda.to_device(THREE_BOXES), cuda.to_device(THREE_SCORES), 0.5, score_threshold=0.1)


def _dets(boxes, scores):
    return np.concatenate([boxes, scores[:, None]], axis=1)


@pytest.mark.parametrize("backend", MATCH_BACKENDS)
def test_nms_match_hand_cases(backend):
    # THREE_BOXES + a copy of box 0 scoring 0.6: box 0 (0.9) takes box 1 (IoU 81/119 = 0.68 >= 0.5) and its copy
    # (IoU 1); box 2 is disjoint and starts its own group
    boxes = np.concatenate([THREE_BOXES, THREE_BOXES[:1]])
    dets = _dets(boxes, np.array([0.9, 0.8, 0.7, 0.6], np.float32))
    groups = nms_match(dets, 0.5, backend=backend)
    assert [g.tolist() for g in groups] == [[0, 1, 3], [2]]
    assert all(g.dtype == np.int64 for g in groups)
    # at 0.7 the 0.68 pair no longer matches: groups by score 0.9 -> [0, 3], 0.8 -> [1], 0.7 -> [2]
    assert [g.tolist() for g in nms_match(dets, 0.7, backend=backend)] == [[0, 3], [1], [2]]
    # ">=": [0,0,4,1] vs [0,0,2,1] has IoU 2 / (4 + 2 - 2) = 0.5 exactly: matched at 0.5 (nms keeps both)
    half = _dets(np.array([[0, 0, 4, 1], [0, 0, 2, 1]], np.float64), np.array([0.9, 0.8]))
    assert [g.tolist() for g in nms_match(half, 0.5, backend=backend)] == [[0, 1]]
    assert nms(half[:, :4], half[:, 4], 0.5, backend=backend if backend in NMS_BACKENDS else None).tolist() == [0, 1]
    # threshold 0: IoU 0 >= 0, so even the disjoint box 2 joins box 0's group (sides are clamped at 0)
    assert [g.tolist() for g in nms_match(dets, 0.0, backend=backend)] == [[0, 1, 2, 3]]
    # two points: union 0 + 0 - 0 = 0 (mmcv: 0/0 = NaN, never >= t): two groups even at threshold 0;
    # a point and a box: union 100, IoU 0 >= 0, matched
    points = _dets(np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10]], np.float32),
                   np.array([0.9, 0.8, 0.1], np.float32))
    assert [g.tolist() for g in nms_match(points, 0.0, backend=backend)] == [[0, 2], [1]]
    # equal scores: visited by increasing index
    ties = _dets(np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32), np.ones(3, np.float32))
    assert [g.tolist() for g in nms_match(ties, 0.5, backend=backend)] == [[0, 2], [1]]


@pytest.mark.parametrize("backend", MATCH_BACKENDS)
def test_nms_match_empty_and_bad_input(backend):
    assert nms_match(np.zeros((0, 5), np.float32), 0.5, backend=backend) == []
    with pytest.raises(ValueError, match="dets"):
        nms_match(np.zeros((3, 4)), 0.5, backend=backend)
    with pytest.raises(ValueError, match="dets"):
        nms_match(np.array([[0, 0, 1, np.nan, 0.5]]), 0.5, backend=backend)
    with pytest.raises(ValueError, match=r"dets\[:, :4\]"):
        nms_match(np.array([[0, 0, 1, 2e15, 0.5]]), 0.5, backend=backend)
    with pytest.raises(ValueError, match="iou_threshold"):
        nms_match(np.array([[0, 0, 1, 1, 0.5]]), -0.1, backend=backend)
    # the score column is no coordinate: a score of 1e20 is fine
    assert [g.tolist() for g in nms_match(np.array([[0, 0, 1, 1, 1e20]]), 0.5, backend=backend)] == [[0]]


@pytest.mark.parametrize("backend", [b for b in MATCH_BACKENDS if b != "numpy"])
@given(data=box_sets(max_n=30), threshold=thresholds)
def test_nms_match_every_backend_equals_the_reference(backend, data, threshold):
    boxes, scores = data
    if backend == "cuda":
        boxes, scores = boxes[:16], scores[:16]  # the simulator is slow
    expected = nms_match_numpy(boxes, scores, threshold)
    got = nms_match(_dets(boxes, scores), threshold, backend=backend)
    assert len(got) == len(expected) and all(np.array_equal(g, e) for g, e in zip(got, expected))


@given(data=box_sets(max_n=30), threshold=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))
def test_nms_match_groups_partition_the_boxes_and_lead_with_nms_survivors(data, threshold):
    boxes, scores = data
    groups = nms_match(_dets(boxes, scores), threshold, backend="numpy")
    members = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    assert sorted(members.tolist()) == list(range(len(boxes)))  # a partition of all N boxes
    order = {int(i): rank for rank, i in enumerate(np.argsort(-scores, kind="stable"))}
    for group in groups:  # each group by decreasing score (ties by index), its leader first
        assert [order[int(i)] for i in group] == sorted(order[int(i)] for i in group)
    if threshold > 0:
        # the leaders are what nms keeps with ">=" instead of ">": for a threshold exact in float32, ">= t" is
        # "> the double just below t" (IoUs are float32 or float64 numbers)
        below = float(np.nextafter(threshold, -1.0))
        assert [int(g[0]) for g in groups] == nms(boxes, scores, below, backend="numpy").tolist()
