"""edudet.strides: one stride per feature level, declared and checked or implied by the shapes."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edudet.level_mapper import infer_stride
from edudet.strides import check_sizes_against_strides, grid_steps, level_strides

# an 800 x 1216 padded batch: P2..P5 by floor/exact division, P6 by a stride-2 step that rounds up (800 / 64 = 12.5)
IMAGE = (800, 1216)
P2_P6 = [(1, 256, 200, 304), (1, 256, 100, 152), (1, 256, 50, 76), (1, 256, 25, 38), (1, 256, 13, 19)]


def test_implied_strides_hand():
    # 800 / 200 = 4, ..., 800 / 25 = 32; 13 = ceil(800 / 64) and 19 = 1216 / 64
    assert level_strides(IMAGE, P2_P6) == [4, 8, 16, 32, 64]


def test_declared_strides_are_returned_when_they_fit():
    assert level_strides(IMAGE, P2_P6, strides=[4, 8, 16, 32, 64]) == [4, 8, 16, 32, 64]
    assert level_strides(IMAGE, P2_P6, strides=np.array([4, 8, 16, 32, 64])) == [4, 8, 16, 32, 64]


def test_wrong_declared_stride_names_the_level_and_the_implied_stride():
    # mmdetection's failure: strides for P3..P7 given with P2..P6 maps. 200 rows at stride 8 would be 100
    with pytest.raises(ValueError, match=r"stride mismatch at level 0: stride 8 .* 200 x 304 .* imply stride 4"):
        level_strides(IMAGE, P2_P6, strides=[8, 16, 32, 64, 128])


def test_ambiguous_tiny_maps_declared_strides_decide():
    # a 33-px side: 2 cells are floor(33 / 16) and ceil(33 / 32); undeclared, torchvision's
    # 2 ** round(log2(33 / 2)) = 2 ** round(4.04) = 16 decides; a declaration of 32 fits and is kept
    assert level_strides((33, 33), [(2, 2)]) == [16]
    assert level_strides((33, 33), [(2, 2)], strides=[32]) == [32]
    # 1 x 1 cell fits every stride >= 33 (ceil) and 33 // 32 = 1 (floor): 2 ** round(log2(33)) = 32
    assert level_strides((33, 33), [(1, 1)]) == [32]


def test_shapes_that_no_power_of_two_explains():
    with pytest.raises(ValueError, match="level 1 is 150 x 152 cells.*declare its stride"):
        level_strides(IMAGE, [(200, 304), (150, 152)])
    # a declared stride need not be a power of two: 99 = 800 // 8 fails, 100 fits at stride 8
    assert level_strides((800, 800), [(100, 100)], strides=[8]) == [8]
    assert level_strides((120, 120), [(40, 40)], strides=[3]) == [3]


@pytest.mark.parametrize("strides, error, match", [
    ([4, 8], ValueError, "got 2 strides for 5 feature levels"),
    ("48", TypeError, "strides must be a list"),
    ([0, 8, 16, 32, 64], ValueError, r"strides\[0\]"),
    ([4, 8.5, 16, 32, 64], ValueError, r"strides\[1\]"),
    ([4, 8, float("nan"), 32, 64], ValueError, r"strides\[2\]"),
])
def test_bad_strides_are_named(strides, error, match):
    with pytest.raises(error, match=match):
        level_strides(IMAGE, P2_P6, strides=strides)


def test_bad_shapes_are_named():
    with pytest.raises(TypeError, match="feature_shapes must be a list"):
        level_strides(IMAGE, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"feature_shapes\[0\]"):
        level_strides(IMAGE, [(0, 4)])
    with pytest.raises(ValueError, match="image_size"):
        level_strides((0, 10), [(1, 1)])
    assert level_strides(IMAGE, []) == []


def test_grid_steps_are_torchvisions_anchor_spacing():
    # 800 // 13 = 61 rows apart, 1216 // 19 = 64 columns apart, though the stride is 64
    assert grid_steps(IMAGE, P2_P6)[-1] == (61, 64)
    assert grid_steps(IMAGE, P2_P6)[:4] == [(4, 4), (8, 8), (16, 16), (32, 32)]
    with pytest.raises(ValueError, match="stride mismatch"):
        grid_steps(IMAGE, P2_P6, strides=[4, 8, 16, 32, 32])


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 3000), width=st.integers(1, 3000), k=st.integers(0, 7), round_up=st.booleans())
def test_agrees_with_the_old_rules_where_they_are_defined(height, width, k, round_up):
    """A map of floor or ceil(H / 2**k): the declared stride 2**k always fits, and the implied stride equals
    level_mapper.infer_stride (torchvision's pooler rule) whenever the side spans at least 4 strides."""
    stride = 2 ** k
    divide = (lambda a: -(-a // stride)) if round_up else (lambda a: max(1, a // stride))
    shape = (divide(height), divide(width))
    if shape[0] * stride > height + stride or shape[1] * stride > width + stride:
        return  # max(1, ...) on a side shorter than the stride: not a map a stride-2**k network gives
    assert level_strides((height, width), [shape], strides=[stride]) == [stride]
    if height >= 4 * stride and width >= 4 * stride:
        assert level_strides((height, width), [shape]) == [stride] == [infer_stride(shape, (height, width))]
        if height % stride == 0 and width % stride == 0:  # anchors' H // h is the stride then
            assert grid_steps((height, width), [shape]) == [(stride, stride)]


def test_anchor_sizes_against_strides():
    check_sizes_against_strides([(8,), (16,), (32,)], [8, 16, 32], equal=True)
    check_sizes_against_strides([(32, 40, 50), (64, 80, 101)], [8, 16])
    with pytest.raises(ValueError, match=r"level 1 has sizes \(32,\) but the backbone declares stride 16"):
        check_sizes_against_strides([(8,), (32,), (32,)], [8, 16, 32], equal=True)
    with pytest.raises(ValueError, match="describes 4 levels but the backbone has 5"):
        check_sizes_against_strides([(32,)] * 4, [8, 16, 32, 64, 128])
    # sizes meant for P2 (stride 4) on a P3 backbone level of stride 8: 4 < 8
    with pytest.raises(ValueError, match="level 0 has an anchor of size 4 below the backbone's stride 8"):
        check_sizes_against_strides([(4, 8), (16,)], [8, 16])
