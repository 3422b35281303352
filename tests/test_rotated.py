"""Rotated boxes: IoU, rotated NMS, the angle convention; hand cases, properties, an exact reference.

The independent reference here clips one rectangle by the other (Sutherland-Hodgman) in exact rational
arithmetic (`fractions.Fraction`), from corners computed with `math` rather than NumPy: it shares no code
with `edudet.ops.rotated` (vectorised float64 clipping) and no rounding.
"""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edudet import ops
from edudet.ops.rotated import _batched_nms_rotated, _box_iou_rotated, _box_iou_rotated_aligned, _nms_rotated
from helpers import assert_child_ok

BACKENDS = _box_iou_rotated.backends
NMS_BACKENDS = _nms_rotated.backends
SQRT2 = math.sqrt(2.0)


def _box(*rows, dtype=np.float64):
    return np.array(rows, dtype=dtype)


# ------------------------------------------------------------------------------------------ exact reference

def _corners_exact(box):
    """The four corners as Fractions, from detectron2's documented formula (angle CCW on screen, y down)."""
    cx, cy, w, h, angle = (float(v) for v in box)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    corners = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        corners.append((Fraction(cx + dx * c + dy * s), Fraction(cy - dx * s + dy * c)))
    return corners


def _shoelace(polygon):
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1])) / 2


def _clip(subject, a, b):
    """Sutherland-Hodgman: the part of convex `subject` left of the line a -> b (exact)."""
    def side(p):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    out = []
    for p, q in zip(subject, subject[1:] + subject[:1]):
        sp, sq = side(p), side(q)
        if sp >= 0:
            out.append(p)
        if (sp > 0 and sq < 0) or (sp < 0 and sq > 0):
            t = sp / (sp - sq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def exact_iou(box1, box2) -> float:
    area1 = Fraction(float(box1[2])) * Fraction(float(box1[3]))
    area2 = Fraction(float(box2[2])) * Fraction(float(box2[3]))
    if area1 == 0 or area2 == 0:
        return 0.0
    polygon = _corners_exact(box1)
    clip = _corners_exact(box2)
    for a, b in zip(clip, clip[1:] + clip[:1]):
        polygon = _clip(polygon, a, b)
        if not polygon:
            return 0.0
    inter = abs(_shoelace(polygon))
    return float(inter / (area1 + area2 - inter))


def test_the_exact_reference_by_hand():
    # unit square vs the same square moved right by 0.5: inter 0.5, union 1.5, IoU 1/3 (exactly)
    assert exact_iou([0, 0, 1, 1, 0], [0.5, 0, 1, 1, 0]) == pytest.approx(1 / 3, abs=1e-15)
    assert exact_iou([0, 0, 1, 1, 0], [5, 0, 1, 1, 0]) == 0.0


# ----------------------------------------------------------------------------------------------- hand cases

@pytest.mark.parametrize("backend", BACKENDS)
def test_unit_square_and_its_45_degree_turn(backend):
    # Same centre. The turned square's corners sit sqrt(2)/2 = 0.7071 from the centre on the axes, so each
    # sticks out past a side (at 0.5) as a right isosceles triangle of height h = (sqrt2 - 1) / 2 = 0.2071
    # and area h^2 = (3 - 2 sqrt2) / 4 = 0.04289. Intersection: the regular octagon 1 - 4 h^2 = 2 (sqrt2 - 1)
    # = 0.828427; union 2 - 0.828427 = 1.171573; IoU = (sqrt2 - 1) / (2 - sqrt2) = 1 / sqrt2 = 0.707107.
    boxes1 = _box([0, 0, 1, 1, 0])
    boxes2 = _box([0, 0, 1, 1, 45])
    iou = ops.box_iou_rotated(boxes1, boxes2, backend=backend)
    assert iou.shape == (1, 1) and iou.dtype == np.float64
    assert iou[0, 0] == pytest.approx(1 / SQRT2, abs=1e-15)
    # anywhere, and with both turned by the same extra 30 degrees
    moved = ops.box_iou_rotated(_box([7, -3, 1, 1, 30]), _box([7, -3, 1, 1, 75]), backend=backend)
    assert moved[0, 0] == pytest.approx(1 / SQRT2, abs=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_coincident_nested_touching_degenerate(backend):
    boxes = _box(
        [0, 0, 2, 1, 0],    # 0: a 2 x 1 bar
        [0, 0, 2, 1, 90],   # 1: the same bar turned upright: the cross of 0 and 1 is the 1 x 1 middle square
        [0, 0, 1, 2, 0],    # 2: an upright 1 x 2 bar, axis-aligned: the same region as 1
        [10, 0, 4, 4, 0],   # 3: a 4 x 4 square
        [10, 0, 2, 2, 30],  # 4: a 2 x 2 square turned 30 degrees, inside 3 (circumradius sqrt2 < 2)
        [14, 0, 4, 4, 0],   # 5: 3 moved right by its width: touches 3 along x = 12
        [10, 0, 0, 3, 10],  # 6: a segment (w = 0) across 3 and 4
    )
    iou = ops.box_iou_rotated(boxes, boxes, backend=backend)
    # 0 vs 1: intersection 1 x 1 = 1, union 2 + 2 - 1 = 3: IoU 1/3
    assert iou[0, 1] == pytest.approx(1 / 3, abs=1e-15)
    # 1 vs 2: coincident regions (1 reaches 2 through cos(90) = 6e-17 rounding): IoU 1
    assert iou[1, 2] == pytest.approx(1.0, abs=1e-15)
    # coincident boxes: exactly 1 on the diagonal, rotated or not (6 is a segment: 0, never NaN)
    assert np.diag(iou)[:6].tolist() == [1.0] * 6
    # nested: the inner square entirely inside, inter = its area 4, union = 16: 4 / 16 = 0.25
    assert iou[3, 4] == pytest.approx(0.25, abs=1e-15)
    # touching along an edge: no area in common
    assert iou[3, 5] == 0.0
    # degenerate: zero area, IoU 0 with everything including itself
    assert iou[6].tolist() == [0.0] * 7 and iou[:, 6].tolist() == [0.0] * 7
    assert not np.isnan(iou).any()
    # rotated and touching: 4 moved by its width along its own w axis (cos 30, -sin 30) shares one side
    shift = 2 * np.array([math.cos(math.radians(30)), -math.sin(math.radians(30))])
    touching = _box([10, 0, 2, 2, 30], [10 + shift[0], shift[1], 2, 2, 30])
    assert ops.box_iou_rotated(touching[:1], touching[1:], backend=backend)[0, 0] == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_equal_angles_and_collinear_sides(backend):
    # Both at 45 degrees; box 2's centre is (1, -1) from box 1's: sqrt2 = 1.4142 along their common w axis,
    # 0 along h. Overlap along w: 0.5 + 1 - sqrt2 = 1.5 - sqrt2; along h both span [-1, 1]: their long sides
    # lie on the same lines (up to rounding). inter = 2 (1.5 - sqrt2) = 3 - 2 sqrt2 = 0.171573, union =
    # 2 + 4 - inter = 3 + 2 sqrt2, IoU = (3 - 2 sqrt2) / (3 + 2 sqrt2) = (3 - 2 sqrt2)^2 = 17 - 12 sqrt2 = 0.029437.
    # Integrating along separately clipped edges (Green's theorem; the first version) gave 0.0371 here.
    expected = 17 - 12 * SQRT2
    iou = ops.box_iou_rotated(_box([1, 2, 1, 2, 45]), _box([2, 1, 2, 2, 45]), backend=backend)
    assert iou[0, 0] == pytest.approx(expected, abs=1e-12)
    turned = ops.box_iou_rotated(_box([1, 2, 1, 2, 47]), _box([2, 1, 2, 2, 47]), backend=backend)
    assert turned[0, 0] < expected  # centres no longer on the w axis: a little less overlap
    # many same-angle pairs sharing side lines, against the exact reference
    rng = np.random.default_rng(4)
    for _ in range(20):
        angle = float(rng.choice([30.0, 45.0, 60.0, -45.0, 123.0]))
        w1, w2 = rng.uniform(1, 5, 2)
        along = rng.uniform(0, (w1 + w2) / 2)
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        pair = _box([0, 0, w1, 2, angle], [along * c, -along * s, w2, 2, angle])  # shifted along w only
        got = ops.box_iou_rotated(pair[:1], pair[1:], backend=backend)[0, 0]
        assert got == pytest.approx(exact_iou(pair[0], pair[1]), abs=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_aligned_form(backend):
    boxes1 = _box([0, 0, 1, 1, 0], [0, 0, 2, 1, 0], [0, 0, 1, 1, 0])
    boxes2 = _box([0, 0, 1, 1, 45], [0, 0, 2, 1, 90], [3, 0, 1, 1, 0])
    iou = ops.box_iou_rotated(boxes1, boxes2, aligned=True, backend=backend)
    assert iou.shape == (3,)
    assert iou == pytest.approx([1 / SQRT2, 1 / 3, 0.0], abs=1e-15)
    assert np.array_equal(iou, np.diag(ops.box_iou_rotated(boxes1, boxes2, backend=backend)))


def test_angle_convention_is_detectron2s():
    # (10, 20, 4, 2, 90): counter-clockwise on the screen, y down; cos 90 = 0, sin 90 = 1, and a corner at
    # offset (dx, dy) goes to (10 + dx cos + dy sin, 20 - dx sin + dy cos) = (10 + dy, 20 - dx):
    # (-2, -1) -> (9, 22), (2, -1) -> (9, 18), (2, 1) -> (11, 18), (-2, 1) -> (11, 22).
    corners = ops.rotated_box_corners(_box([10, 20, 4, 2, 90]))
    assert corners.shape == (1, 4, 2)
    assert corners[0] == pytest.approx(np.array([[9, 22], [9, 18], [11, 18], [11, 22]]), abs=1e-14)
    # the middle of the w/2 side (right of the centre at angle 0) is now straight above the centre
    assert (corners[0, 1] + corners[0, 2]) / 2 == pytest.approx([10, 18], abs=1e-14)
    # at angle 0 the corners are the axis-aligned box's, in the order (x1,y1), (x2,y1), (x2,y2), (x1,y2)
    assert ops.rotated_box_corners(_box([5, 5, 4, 2, 0]))[0].tolist() == [[3, 4], [7, 4], [7, 6], [3, 6]]


def test_mmcv_conversion_follows_mmcvs_published_corners():
    # mmcv (clockwise=True, its default): angle a in radians, a corner at (dx, dy) goes to
    # (cx + dx cos a - dy sin a, cy + dx sin a + dy cos a): clockwise on the screen. Its boxes converted with
    # rotated_boxes_from_mmcv must have the same corners in edudet's convention.
    rng = np.random.default_rng(0)
    mmcv_boxes = np.column_stack([rng.uniform(-50, 50, (20, 2)), rng.uniform(1, 30, (20, 2)),
                                  rng.uniform(-np.pi, np.pi, 20)])
    ours = ops.rotated_box_corners(ops.rotated_boxes_from_mmcv(mmcv_boxes))
    for box, corners in zip(mmcv_boxes, ours):
        cx, cy, w, h, a = box
        signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))
        theirs = [(cx + sx * w / 2 * math.cos(a) - sy * h / 2 * math.sin(a),
                   cy + sx * w / 2 * math.sin(a) + sy * h / 2 * math.cos(a)) for sx, sy in signs]
        assert corners == pytest.approx(np.array(theirs), abs=1e-9)
    # a quarter turn clockwise in mmcv is -90 degrees here; the round trip is the identity
    assert ops.rotated_boxes_from_mmcv(_box([0, 0, 1, 1, np.pi / 2]))[0, 4] == pytest.approx(-90)
    assert ops.rotated_boxes_from_mmcv(_box([0, 0, 1, 1, np.pi / 2]), clockwise=False)[0, 4] == pytest.approx(90)
    back = ops.rotated_boxes_to_mmcv(ops.rotated_boxes_from_mmcv(mmcv_boxes))
    assert back == pytest.approx(mmcv_boxes, abs=1e-12)


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_nms_rotated_hand_case(backend):
    # 0 and 1: unit squares at 0 and 45 degrees, IoU 1/sqrt2 = 0.7071; 2: far away; 3: the 2 x 1 bar at 90
    # vs 4, the same bar at 0: IoU 1/3.
    boxes = _box([0, 0, 1, 1, 0], [0, 0, 1, 1, 45], [50, 50, 3, 3, 10], [20, 0, 2, 1, 90], [20, 0, 2, 1, 0])
    scores = np.array([0.9, 0.95, 0.5, 0.8, 0.7])
    # order 1, 0, 3, 4, 2. t = 0.7: 1 keeps, 0 goes (0.7071 > 0.7); 3 keeps, 4 stays (1/3); 2 stays
    assert ops.nms_rotated(boxes, scores, 0.7, backend=backend).tolist() == [1, 3, 4, 2]
    # t = 0.71: 0.7071 <= 0.71, nothing goes; t = 0.3: 4 goes too (1/3 > 0.3)
    assert ops.nms_rotated(boxes, scores, 0.71, backend=backend).tolist() == [1, 0, 3, 4, 2]
    assert ops.nms_rotated(boxes, scores, 0.3, backend=backend).tolist() == [1, 3, 2]
    # IoU exactly 1/3 at t = 1/3 is kept (strict >); identical boxes with equal scores keep the lower index
    assert ops.nms_rotated(boxes[3:5], scores[3:5], 1 / 3 + 1e-12, backend=backend).tolist() == [0, 1]
    assert ops.nms_rotated(_box(*[[1, 2, 3, 4, 33]] * 3), np.ones(3), 0.5, backend=backend).tolist() == [0]
    # batched: put 0 in another category and it survives
    idxs = np.array([1, 0, 0, 0, 0])
    assert ops.batched_nms_rotated(boxes, scores, idxs, 0.3, backend=backend).tolist() == [1, 0, 3, 2]


@pytest.mark.parametrize("backend", NMS_BACKENDS)
def test_zero_area_boxes_never_suppress_and_are_never_suppressed(backend):
    boxes = _box([0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 5, 30], [0, 0, 10, 10, 0])
    assert ops.nms_rotated(boxes, np.array([0.9, 0.8, 0.7, 0.6]), 0.0, backend=backend).tolist() == [0, 1, 2, 3]


# ------------------------------------------------------------------------------------- validation and empties

def test_bad_input_is_refused_with_the_argument_named():
    good = _box([0, 0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"boxes1 must have shape \(N, 5\)"):
        ops.box_iou_rotated(np.zeros((2, 4)), good)
    with pytest.raises(ValueError, match="boxes2 contains NaN"):
        ops.box_iou_rotated(good, _box([0, 0, 1, 1, np.nan]))
    with pytest.raises(ValueError, match="boxes2 contains NaN or inf"):
        ops.box_iou_rotated(good, _box([0, 0, 1, 1, np.inf]))
    with pytest.raises(ValueError, match="boxes1 has a negative width or height"):
        ops.box_iou_rotated(_box([0, 0, -1, 1, 0]), good)
    with pytest.raises(ValueError, match="boxes1 has a coordinate of magnitude"):
        ops.box_iou_rotated(_box([2e15, 0, 1, 1, 0]), good)
    with pytest.raises(TypeError, match="boxes1 must have a real numeric dtype"):
        ops.box_iou_rotated(np.ones((1, 5), dtype=bool), good)
    with pytest.raises(ValueError, match="same length"):
        ops.box_iou_rotated(good, _box([0, 0, 1, 1, 0], [1, 1, 1, 1, 0]), aligned=True)
    with pytest.raises(TypeError, match="aligned must be a bool"):
        ops.box_iou_rotated(good, good, aligned="yes")
    with pytest.raises(ValueError, match="not usable here"):
        ops.box_iou_rotated(good, good, backend="tpu")
    with pytest.raises(ValueError, match="scores has 2 entries but boxes has 1"):
        ops.nms_rotated(good, [0.5, 0.4], 0.5)
    with pytest.raises(ValueError, match="iou_threshold must be >= 0"):
        ops.nms_rotated(good, [0.5], -0.1)
    with pytest.raises(ValueError, match="iou_threshold must be finite"):
        ops.nms_rotated(good, [0.5], float("nan"))
    with pytest.raises(ValueError, match="idxs must hold integers"):
        ops.batched_nms_rotated(good, [0.5], [0.5], 0.5)
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 5\)"):
        ops.rotated_box_corners(np.zeros(5))


def test_allocation_limit_is_checked_before_allocating(monkeypatch):
    import edudet._validate as validate

    monkeypatch.setattr(validate, "MAX_ALLOCATION_BYTES", 1000)
    with pytest.raises(ValueError, match=r"box_iou_rotated's \(N, M\) output"):
        ops.box_iou_rotated(np.zeros((100, 5)), np.zeros((100, 5)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_input_gives_empty_output_of_the_right_dtype(backend):
    none32, some32 = np.zeros((0, 5), np.float32), np.ones((3, 5), np.float32)
    out = ops.box_iou_rotated(none32, some32, backend=backend)
    assert out.shape == (0, 3) and out.dtype == np.float32
    out = ops.box_iou_rotated(some32, none32.astype(np.float64), backend=backend)
    assert out.shape == (3, 0) and out.dtype == np.float64
    out = ops.box_iou_rotated(none32, none32, aligned=True, backend=backend)
    assert out.shape == (0,) and out.dtype == np.float32
    for keep in (ops.nms_rotated(none32, np.zeros(0), 0.5, backend=backend),
                 ops.batched_nms_rotated(none32, np.zeros(0), np.zeros(0, np.int64), 0.5, backend=backend)):
        assert keep.shape == (0,) and keep.dtype == np.int64


def test_dtypes_follow_the_inputs():
    b32 = _box([0, 0, 1, 1, 0], [0, 0, 1, 1, 45], dtype=np.float32)
    assert ops.box_iou_rotated(b32, b32).dtype == np.float32
    assert ops.box_iou_rotated(b32, b32.astype(np.float64)).dtype == np.float64
    ints = np.array([[0, 0, 2, 2, 0], [1, 0, 2, 2, 0]])  # inter 1 x 2 = 2, union 4 + 4 - 2 = 6
    iou = ops.box_iou_rotated(ints, ints)
    assert iou.dtype == np.float32 and iou[0, 1] == pytest.approx(1 / 3)
    assert ops.box_iou_rotated(b32.tolist(), b32.tolist())[0, 1] == pytest.approx(1 / SQRT2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_and_tiny_coordinates(backend):
    # A pair is moved to 1e15 (the coordinate limit) and shrunk to tiny sizes: IoU follows, never NaN/inf.
    # At 1e15 the float64 spacing is 0.125, so the moved pair has centres 0.125-exact: choose such values.
    pair = _box([0, 0, 8, 4, 0], [2, 1, 8, 4, 30])
    expected = exact_iou(pair[0], pair[1])
    far = pair.copy()
    far[:, :2] += 1e15 - 16
    assert ops.box_iou_rotated(far[:1], far[1:], backend=backend)[0, 0] == pytest.approx(expected, abs=1e-12)
    big = pair.copy()
    big[:, :4] *= 1e13  # sides of 8e13, centres 2e13 apart
    assert ops.box_iou_rotated(big[:1], big[1:], backend=backend)[0, 0] == pytest.approx(expected, abs=1e-12)
    for scale, dtype in ((1e-30, np.float32), (1e-100, np.float64)):
        small = pair.copy()
        small[:, :4] *= scale
        small = small.astype(dtype)
        iou = ops.box_iou_rotated(small[:1], small[1:], backend=backend)[0, 0]
        assert iou == pytest.approx(expected, abs=1e-6 if dtype == np.float32 else 1e-12)
    # 1e-300: every area underflows to 0 (w * h = 1e-600): IoU 0 by definition, even of a box with itself
    tiny = pair.copy()
    tiny[:, :4] *= 1e-300
    iou = ops.box_iou_rotated(tiny, tiny, backend=backend)
    assert np.array_equal(iou, np.zeros((2, 2)))
    assert np.array_equal(iou, ops.box_iou_rotated(tiny, tiny, backend="numpy"))


def test_no_crash_on_adversarial_input_in_a_child_interpreter():
    assert_child_ok("""
        import numpy as np
        from edudet import ops
        from edudet.ops.rotated import _box_iou_rotated, _nms_rotated
        rng = np.random.default_rng(0)
        cases = {
            "limit": np.array([[1e15, -1e15, 1e15, 1e15, 1e15], [-1e15, 1e15, 0, 1e15, -1e15]]),
            "zeros": np.zeros((5, 5)),
            "subnormal": np.full((4, 5), 5e-324),
            "strided": np.asfortranarray(rng.uniform(0, 10, (7, 5))),
            "float16": rng.uniform(0, 10, (6, 5)).astype(np.float16),
            "int64": rng.integers(0, 10, (6, 5)),
        }
        for backend in [b for b in _box_iou_rotated.backends if b != "cuda"]:
            for name, boxes in cases.items():
                print(backend, name, flush=True)
                iou = ops.box_iou_rotated(boxes, boxes, backend=backend)
                assert np.isfinite(iou).all() and (iou >= 0).all() and (iou <= 1).all()
                ops.box_iou_rotated(boxes, boxes, aligned=True, backend=backend)
                ops.nms_rotated(boxes, np.arange(len(boxes), dtype=float), 0.5, backend=backend)
                ops.batched_nms_rotated(boxes, np.zeros(len(boxes)), np.arange(len(boxes)) % 2, 0.0, backend=backend)
        print("done")
    """)


# ---------------------------------------------------------------------------------------------- properties

_coordinate = st.floats(-60, 60, allow_nan=False, width=64)
_side = st.one_of(st.floats(0, 40, allow_nan=False), st.just(0.0))
_angle = st.one_of(st.floats(-400, 400, allow_nan=False), st.sampled_from([0.0, 90.0, -90.0, 45.0, 180.0, 30.0]))
# a grid of small integers and right angles makes shared edges, coincident boxes and touching sides common
_grid_box = st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(0, 4), st.integers(0, 4),
                      st.sampled_from([0, 90, 180, -90, 45, -45]))
_box_row = st.one_of(st.tuples(_coordinate, _coordinate, _side, _side, _angle), _grid_box)


def _tolerance(boxes1, boxes2, atol=1e-9):
    """(N, M) accuracy to expect: a needle thinner than float64 rounding of its corners (~1e-14 at these
    coordinates) has no accurate area after rotation, so the bound grows as 1 / (thinnest side)."""
    thinnest = np.minimum(boxes1[:, None, 2:4].min(-1), boxes2[None, :, 2:4].min(-1))
    with np.errstate(divide="ignore", over="ignore"):
        return atol + 1e-12 / thinnest


def _boxes(min_size=0, max_size=8):
    return st.lists(_box_row, min_size=min_size, max_size=max_size).map(
        lambda rows: np.array(rows, dtype=np.float64).reshape(-1, 5))


@given(_boxes(1), _boxes(1))
def test_iou_is_symmetric_bounded_and_one_on_the_diagonal(boxes1, boxes2):
    iou = ops.box_iou_rotated(boxes1, boxes2, backend="numpy")
    assert ((iou >= 0) & (iou <= 1)).all()
    assert (np.abs(iou - ops.box_iou_rotated(boxes2, boxes1, backend="numpy").T) <= _tolerance(boxes1, boxes2)).all()
    self_iou = np.diag(ops.box_iou_rotated(boxes1, boxes1, backend="numpy"))
    has_area = boxes1[:, 2] * boxes1[:, 3] > 0
    assert (np.abs(self_iou - 1) <= np.diag(_tolerance(boxes1, boxes1)))[has_area].all()
    assert (self_iou[~has_area] == 0).all()


@settings(max_examples=30)
@given(_boxes(1, 5), _boxes(1, 5))
def test_iou_equals_the_exact_polygon_clipping_reference(boxes1, boxes2):
    iou = ops.box_iou_rotated(boxes1, boxes2, backend="numpy")
    expected = np.array([[exact_iou(a, b) for b in boxes2] for a in boxes1])
    assert (np.abs(iou - expected) <= _tolerance(boxes1, boxes2)).all()


def test_iou_equals_the_exact_reference_on_random_detections():
    rng = np.random.default_rng(1)
    n = 30
    boxes = np.column_stack([rng.uniform(0, 100, (n, 2)), rng.uniform(5, 60, (n, 2)), rng.uniform(-180, 180, n)])
    iou = ops.box_iou_rotated(boxes, boxes, backend="numpy")
    expected = np.array([[exact_iou(a, b) for b in boxes] for a in boxes])
    assert (expected > 0).sum() > 3 * n  # overlaps really are tested
    assert np.allclose(iou, expected, rtol=0, atol=1e-12)


@given(st.lists(st.tuples(_coordinate, _coordinate, _side, _side), min_size=1, max_size=8),
       st.sampled_from([0.0, 180.0, -180.0, 360.0]))
def test_at_angle_0_and_180_it_is_the_axis_aligned_iou(rows, angle):
    cxcywh = np.array(rows, dtype=np.float64)
    rotated = np.column_stack([cxcywh, np.full(len(cxcywh), angle)])
    expected = ops.box_iou(cxcywh, cxcywh, fmt="cxcywh")
    assert (np.abs(ops.box_iou_rotated(rotated, rotated) - expected) <= _tolerance(rotated, rotated)).all()


@given(_boxes(1, 6), _boxes(1, 6), st.floats(-180, 180), _coordinate, _coordinate)
def test_invariant_under_a_common_rotation_and_translation(boxes1, boxes2, turn, shift_x, shift_y):
    def move(boxes):
        # rotate the centres about the origin the way the boxes turn (counter-clockwise on the screen, y down)
        c, s = math.cos(math.radians(turn)), math.sin(math.radians(turn))
        x, y = boxes[:, 0], boxes[:, 1]
        return np.column_stack([x * c + y * s + shift_x, y * c - x * s + shift_y, boxes[:, 2:4], boxes[:, 4] + turn])

    before = ops.box_iou_rotated(boxes1, boxes2, backend="numpy")
    after = ops.box_iou_rotated(move(boxes1), move(boxes2), backend="numpy")
    # rounding the moved centres perturbs them by ~1e-14: IoU moves by at most that over the thinnest side
    assert (np.abs(after - before) <= _tolerance(boxes1, boxes2)).all()


@settings(max_examples=25)
@given(_boxes(0, 9), _boxes(0, 9))
def test_every_backend_equals_the_reference_bit_for_bit(boxes1, boxes2):
    expected = ops.box_iou_rotated(boxes1, boxes2, backend="numpy")
    for backend in BACKENDS:
        assert np.array_equal(ops.box_iou_rotated(boxes1, boxes2, backend=backend), expected), backend
    n = min(len(boxes1), len(boxes2))
    aligned = ops.box_iou_rotated(boxes1[:n], boxes2[:n], aligned=True, backend="numpy")
    assert np.array_equal(aligned, np.diag(expected[:n, :n]))
    for backend in _box_iou_rotated_aligned.backends:
        assert np.array_equal(ops.box_iou_rotated(boxes1[:n], boxes2[:n], aligned=True, backend=backend), aligned)


def test_compiled_backends_equal_the_reference_on_many_detections():
    rng = np.random.default_rng(2)
    n = 250
    boxes = np.column_stack([rng.uniform(0, 400, (n, 2)), rng.uniform(0, 60, (n, 2)), rng.uniform(-180, 180, n)])
    boxes[::7, 4] = 0  # some axis-aligned, some duplicated: shared edges and exact ties
    boxes[::11] = boxes[1::11][: len(boxes[::11])]
    expected = ops.box_iou_rotated(boxes, boxes, backend="numpy")
    for backend in [b for b in BACKENDS if b != "cuda"]:  # the simulator is too slow for 62,500 pairs
        assert np.array_equal(ops.box_iou_rotated(boxes, boxes, backend=backend), expected), backend
    scores = rng.random(n)
    idxs = rng.integers(0, 4, n)
    for threshold in (0.0, 0.1, 0.5, 0.9):
        keep = ops.nms_rotated(boxes, scores, threshold, backend="numpy")
        batched = ops.batched_nms_rotated(boxes, scores, idxs, threshold, backend="numpy")
        for backend in [b for b in NMS_BACKENDS if b != "cuda"]:
            assert np.array_equal(ops.nms_rotated(boxes, scores, threshold, backend=backend), keep), backend
            assert np.array_equal(ops.batched_nms_rotated(boxes, scores, idxs, threshold, backend=backend), batched)


_nms_threshold = st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 1.0])


@settings(max_examples=25)
@given(_boxes(0, 12), _nms_threshold, st.data())
def test_nms_rotated_is_a_greedy_suppression_on_every_backend(boxes, threshold, data):
    scores = np.array(data.draw(st.lists(st.sampled_from([0.1, 0.5, 0.9, 0.3]), min_size=len(boxes),
                                         max_size=len(boxes))), dtype=np.float64)
    keep = ops.nms_rotated(boxes, scores, threshold, backend="numpy")
    iou = ops.box_iou_rotated(boxes, boxes, backend="numpy")
    order = np.argsort(-scores, kind="stable")
    # by decreasing score; the kept boxes overlap pairwise by at most t; each dropped box overlaps a kept
    # box visited before it by more than t
    assert np.all(np.diff(scores[keep]) <= 0)
    assert all(iou[i, j] <= threshold for a, i in enumerate(keep) for j in keep[a + 1:])
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order))
    for j in set(range(len(boxes))) - set(keep.tolist()):
        assert any(iou[i, j] > threshold and rank[i] < rank[j] for i in keep)
    for backend in NMS_BACKENDS:
        assert np.array_equal(ops.nms_rotated(boxes, scores, threshold, backend=backend), keep), backend


@settings(max_examples=20)
@given(_boxes(0, 12), _nms_threshold, st.data())
def test_batched_nms_rotated_is_nms_per_category(boxes, threshold, data):
    n = len(boxes)
    scores = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), dtype=np.float64)
    idxs = np.array(data.draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n)), dtype=np.int64)
    keep = ops.batched_nms_rotated(boxes, scores, idxs, threshold, backend="numpy")
    expected = set()
    for category in np.unique(idxs):
        members = np.flatnonzero(idxs == category)
        expected |= set(members[ops.nms_rotated(boxes[members], scores[members], threshold)].tolist())
    assert set(keep.tolist()) == expected
    assert np.array_equal(keep, keep[np.argsort(-scores[keep], kind="stable")])
    for backend in _batched_nms_rotated.backends:
        assert np.array_equal(ops.batched_nms_rotated(boxes, scores, idxs, threshold, backend=backend), keep)


# ------------------------------------------------------------------------------------ rotated box coder

def test_rotated_box_coder_by_hand():
    coder = ops.RotatedBoxCoder()
    src = _box([10, 10, 4, 2, 0], [0, 0, 1, 1, 170])
    target = _box([12, 11, 8, 1, 90], [0, 0, 1, 1, -170])
    deltas = coder.get_deltas(src, target)
    # row 0: dx = (12 - 10) / 4 = 0.5, dy = (11 - 10) / 2 = 0.5, dw = log(8 / 4) = log 2, dh = log(1 / 2),
    # da = radians(90 - 0) = pi / 2
    assert deltas[0] == pytest.approx([0.5, 0.5, math.log(2), -math.log(2), math.pi / 2], abs=1e-15)
    # row 1: -170 - 170 = -340 degrees wraps to (-340 + 180) mod 360 - 180 = 200 - 180 = +20: radians(20)
    assert deltas[1] == pytest.approx([0, 0, 0, 0, math.radians(20)], abs=1e-15)
    back = coder.apply_deltas(deltas, src)
    assert back == pytest.approx(target, abs=1e-12)
    # weights scale each delta: (10, 10, 5, 5, 1) -> dx 5, dy 5, dw 5 log 2, dh -5 log 2, da pi / 2
    weighted = ops.RotatedBoxCoder((10, 10, 5, 5, 1)).get_deltas(src[:1], target[:1])
    assert weighted[0] == pytest.approx([5, 5, 5 * math.log(2), -5 * math.log(2), math.pi / 2], abs=1e-14)


def test_rotated_box_coder_clamps_wraps_and_keeps_dtypes():
    coder = ops.RotatedBoxCoder()
    boxes = _box([0, 0, 2, 4, 179], dtype=np.float32)
    # dw = 100 is clamped to log(1000 / 16): the width grows 62.5x, to 125; +2 degrees from 179 wraps to -179
    out = coder.apply_deltas(np.array([[0, 0, 100, 0, math.radians(2)]], dtype=np.float32), boxes)
    assert out.dtype == np.float32
    assert out[0] == pytest.approx([0, 0, 125, 4, -179], rel=1e-5)
    assert coder.get_deltas(boxes, boxes).dtype == np.float32
    assert coder.get_deltas(boxes, boxes.astype(np.float64)).dtype == np.float64
    with pytest.raises(ValueError, match="src_boxes has a width or height of 0"):
        coder.get_deltas(_box([0, 0, 0, 1, 0]), _box([0, 0, 1, 1, 0]))
    with pytest.raises(ValueError, match=r"deltas must have shape \(N, 5\)"):
        coder.apply_deltas(np.zeros((1, 4)), boxes)
    with pytest.raises(ValueError, match="deltas contains NaN"):
        coder.apply_deltas(np.full((1, 5), np.nan), boxes)
    with pytest.raises(ValueError, match="weights must hold 5"):
        ops.RotatedBoxCoder((1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"weights\[4\] must be > 0"):
        ops.RotatedBoxCoder((1, 1, 1, 1, 0))
    empty = coder.get_deltas(np.zeros((0, 5)), np.zeros((0, 5)))
    assert empty.shape == (0, 5)


@given(_boxes(1, 8), st.data())
def test_rotated_box_coder_round_trip(src, data):
    src = src[(src[:, 2] > 0.1) & (src[:, 3] > 0.1)]
    target = data.draw(_boxes(len(src), len(src)))
    target = target[: len(src)]
    keep = (target[:, 2] > 0.1) & (target[:, 3] > 0.1)
    src, target = src[keep], target[keep]
    coder = ops.RotatedBoxCoder((10, 10, 5, 5, 1))
    back = coder.apply_deltas(coder.get_deltas(src, target), src)
    assert back[:, :4] == pytest.approx(target[:, :4], abs=1e-9)
    turn = (back[:, 4] - target[:, 4]) % 360  # the same direction: equal modulo 360
    assert np.all(np.minimum(turn, 360 - turn) < 1e-9)
    assert np.all((back[:, 4] >= -180) & (back[:, 4] < 180))


def test_mmcv_conversion_checks_clockwise_by_name():
    from edudet import ops as _ops

    with pytest.raises(TypeError, match="clockwise must be True or False, got 'yes'"):
        _ops.rotated_boxes_from_mmcv(np.zeros((0, 5), np.float32), "yes")
    with pytest.raises(TypeError, match="clockwise must be True or False"):
        _ops.rotated_boxes_to_mmcv(np.zeros((0, 5), np.float32), 1)
