"""edudet.models.winograd: F(2x2, 3x3) convolution, its NumPy transforms and their Numba twins."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edudet.models import winograd
from edudet.models.layers import Conv2d
from tests.helpers import import_torchvision

NUMPY_TRANSFORMS = (winograd.input_transform, winograd.output_transform)


def _direct(x, weight, bias):
    """3x3, padding 1, by the definition in float64."""
    n, c, h, w = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, weight.shape[0], h, w))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nchw,oc->nohw", padded[:, :, dy: dy + h, dx: dx + w], weight[:, :, dy, dx])
    return out + np.asarray(bias, np.float64)[None, :, None, None]


# ---- hand cases -----------------------------------------------------------------------------------
def test_one_dimensional_f2_3_by_hand():
    # one row of a 4 x 4 tile, d = [1, 2, 3, 4], filter row g = [1, 0, -1] (the other filter rows zero):
    # direct: y0 = 1*1 + 2*0 + 3*(-1) = -2, y1 = 2*1 + 3*0 + 4*(-1) = -2. Winograd's four products:
    # (d0 - d2) g0 = -2, (d1 + d2)(g0 + g1 + g2)/2 = 5 * 0 = 0, (d2 - d1)(g0 - g1 + g2)/2 = 0, (d1 - d3) g2 = 2;
    # y0 = -2 + 0 + 0 = -2, y1 = 0 - 0 - 2 = -2. On a 1 x 4 image with padding 1 the row is the image row
    # and the outputs are y at columns 1 and 2 (y0 is the output left of d1, y1 the one left of d2)
    weight = np.zeros((1, 1, 3, 3), np.float32)
    weight[0, 0, 1] = [1, 0, -1]
    u = winograd.filter_transform(weight)
    # G g G^T of a filter whose only nonzero row is the middle one, r = [1, 0, -1]: G g has rows
    # (row0, (row0 + row1 + row2)/2, (row0 - row1 + row2)/2, row2) = (0, r/2, -r/2, 0), and G r^T =
    # (1, (1 + 0 - 1)/2, (1 - 0 - 1)/2, -1) = (1, 0, 0, -1)
    np.testing.assert_array_equal(u[:, 0, 0].reshape(4, 4), [[0, 0, 0, 0], [0.5, 0, 0, -0.5], [-0.5, 0, 0, 0.5],
                                                             [0, 0, 0, 0]])
    x = np.array([[[[1, 2, 3, 4]]]], np.float32)
    out = winograd.conv3x3(x, u, np.zeros(1, np.float32))
    # padded row [0, 1, 2, 3, 4, 0]: outputs 0*1 - 2 = -2, 1 - 3 = -2, 2 - 4 = -2, 3 - 0 = 3
    np.testing.assert_array_equal(out[0, 0, 0], [-2, -2, -2, 3])


def test_all_ones_filter_sums_the_neighbourhood():
    # x = [[1,2,3],[4,5,6],[7,8,9]], all-ones 3x3, bias 1: corner 1+2+4+5+1 = 13, centre 45+1 = 46 (every
    # intermediate is a small integer, so Winograd's additions are exact here)
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    u = winograd.filter_transform(np.ones((1, 1, 3, 3)))
    for transforms in (None, NUMPY_TRANSFORMS):
        out = winograd.conv3x3(x, u, np.ones(1, np.float32), transforms=transforms)
        np.testing.assert_array_equal(out[0, 0], [[13, 22, 17], [28, 46, 34], [25, 40, 29]])


def test_empty_batch_and_relu():
    u = winograd.filter_transform(np.ones((2, 3, 3, 3)))
    assert winograd.conv3x3(np.zeros((0, 3, 5, 5), np.float32), u, np.zeros(2, np.float32)).shape == (0, 2, 5, 5)
    x = -np.ones((1, 3, 2, 2), np.float32)
    out = winograd.conv3x3(x, u, np.zeros(2, np.float32), relu=True)
    np.testing.assert_array_equal(out, 0)  # every output is -12 before the ReLU


# ---- properties -----------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 9), st.integers(1, 9),
       st.booleans(), st.sampled_from([None, 1, 3000]), st.integers(0, 2**32 - 1))
def test_compiled_transforms_equal_numpy_and_definition(n, c, o, h, w, relu, band_bytes, seed):
    # the Numba twins do the same operations in the same order as the NumPy reference: the same bits, for
    # any band (1 byte: one tile row per band; 3000: bands that cross from one image into the next)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    u = winograd.filter_transform(weight)
    saved = winograd._BAND_BYTES
    try:
        if band_bytes is not None:
            winograd._BAND_BYTES = band_bytes
        fast = winograd.conv3x3(x, u, bias, relu)
        reference = winograd.conv3x3(x, u, bias, relu, transforms=NUMPY_TRANSFORMS)
    finally:
        winograd._BAND_BYTES = saved
    np.testing.assert_array_equal(fast, reference)
    expected = _direct(x, weight, bias)
    np.testing.assert_allclose(fast, np.maximum(expected, 0) if relu else expected, rtol=1e-5, atol=1e-5)


def test_compiled_transforms_equal_numpy_bit_for_bit_on_a_detector_level():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 16, 25, 38)).astype(np.float32)
    even, odd, tiles_y, tiles_x = winograd.pad_even_odd(x)
    v_fast = np.empty((16, 16, tiles_y * tiles_x), np.float32)
    v_ref = np.empty_like(v_fast)
    from edudet.kernels.winograd_numba import winograd_input_transform, winograd_output_transform
    winograd_input_transform(even, odd, tiles_y, tiles_x, 0, tiles_y, v_fast)
    winograd.input_transform(even, odd, tiles_y, tiles_x, 0, tiles_y, v_ref)
    np.testing.assert_array_equal(v_fast, v_ref)
    m = rng.standard_normal((16, 8, tiles_y * tiles_x)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    fast, ref = np.full((2, 1, 8, 25, 38), np.nan, np.float32)
    winograd_output_transform(m, bias, True, tiles_y, tiles_x, 0, tiles_y, fast)
    winograd.output_transform(m, bias, True, tiles_y, tiles_x, 0, tiles_y, ref)
    np.testing.assert_array_equal(fast, ref)
    assert not np.isnan(fast).any()  # every output pixel written, the odd last row included


# ---- parity with torch ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 32, 37, 50), (1, 64, 13, 19), (3, 8, 1, 1)])
def test_conv2d_3x3_matches_torch(shape):
    torch, _ = import_torchvision()
    rng = np.random.default_rng(sum(shape))
    n, c, h, w = shape
    x = rng.standard_normal(shape).astype(np.float32)
    weight = (rng.standard_normal((24, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    bias = rng.standard_normal(24).astype(np.float32)
    conv = Conv2d(c, 24, 3, padding=1)
    conv.set_weight(weight, bias)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias),
                                          padding=1).numpy()
    np.testing.assert_allclose(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_extreme_values_never_crash_and_both_transforms_agree():
    # float32's extremes (near-overflow 3e38, subnormals down to 1e-45, zeros, and the infs and NaNs their
    # sums make), odd and 1-pixel maps, one band per tile row: the compiled transforms write only inside
    # their arrays (a child interpreter, so an out-of-bounds write is a failed test, not a lost run) and give
    # the NumPy reference's bits, NaNs included; a 1e308 float64 input becomes inf in float32
    from helpers import assert_child_ok
    assert_child_ok("""
import numpy as np
from edudet.models import winograd
from edudet.models.layers import Conv2d
reference = (winograd.input_transform, winograd.output_transform)
winograd._BAND_BYTES = 1
rng = np.random.default_rng(0)
values = np.array([3e38, -3e38, 1e-45, -1e-45, 1.2e-38, 0.0, 1.0], np.float32)
for shape in [(1, 1, 1, 1), (2, 3, 1, 5), (1, 2, 7, 4), (3, 4, 5, 6)]:
    for weights in (values, np.array([1e-45, 3e38], np.float32)):
        print("case", shape, weights[:2], flush=True)
        x = rng.choice(values, shape)
        w = rng.choice(weights, (2, shape[1], 3, 3))
        u = winograd.filter_transform(w)
        bias = np.array([3e38, 1e-45], np.float32)
        with np.errstate(all="ignore"):
            for relu in (False, True):
                fast = winograd.conv3x3(x, u, bias, relu)
                slow = winograd.conv3x3(x, u, bias, relu, transforms=reference)
                np.testing.assert_array_equal(fast, slow)
print("float64 1e308", flush=True)
conv = Conv2d(1, 1, 3, padding=1)
conv.set_weight(np.ones((1, 1, 3, 3), np.float32))
with np.errstate(all="ignore"):
    out = conv(np.full((1, 1, 3, 3), 1e308))
# the direct sum would give +inf; the transforms subtract infinities (inf - inf = NaN), so every output of a
# tile that reads an inf is NaN: never a finite, wrong number (winograd.py's docstring)
assert out.shape == (1, 1, 3, 3) and not np.isfinite(out).any()
print("done")
""")
