"""Testing your own RoIAlign with edudet.testing, and catching the half-pixel mistake.

    pytest examples/test_my_roi_align.py              # 1 passed, 1 xfailed
    pytest examples/test_my_roi_align.py --runxfail   # shows the oracle's message for the wrong version

`my_roi_align` samples every bin point by point, as the Mask R-CNN paper describes; it passes.
`my_roi_align_no_half_pixel` is the same code that forgets to shift the box by -0.5 pixel when
``aligned=True``: `assert_roi_align_close` says "looks like aligned=False vs aligned=True: a half-pixel shift".
"""
import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings

from edudet.testing import assert_roi_align_close
from edudet.testing import strategies as eds

# derandomize: the same examples on every run; no "explain" phase: it traces every line, slowly
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, phases=set(Phase) - {Phase.explain})


def bilinear(fmap, y, x):
    """(C,) values of a (C, H, W) map at (y, x); 0 more than a pixel outside the map, the border within it."""
    height, width = fmap.shape[1:]
    if y < -1 or y > height or x < -1 or x > width:
        return np.zeros(fmap.shape[0], fmap.dtype)
    y, x = max(y, 0), max(x, 0)
    y0, x0 = min(int(y), height - 1), min(int(x), width - 1)
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    ly = y - y0 if y0 < height - 1 else 0  # at the last row/column: read it with full weight
    lx = x - x0 if x0 < width - 1 else 0
    return ((1 - ly) * (1 - lx) * fmap[:, y0, x0] + (1 - ly) * lx * fmap[:, y0, x1]
            + ly * (1 - lx) * fmap[:, y1, x0] + ly * lx * fmap[:, y1, x1])


def roi_align_by_points(input, rois, output_size, spatial_scale, sampling_ratio, aligned, half_pixel=True):
    """(K, C, PH, PW): each bin the mean of a grid of bilinear samples. Arithmetic in the input's dtype."""
    T = input.dtype.type
    ph, pw = output_size
    out = np.zeros((len(rois), input.shape[1], ph, pw), input.dtype)
    shift = T(0.5) if aligned and half_pixel else T(0)
    for k, (b, x1, y1, x2, y2) in enumerate(rois.astype(input.dtype)):
        x1, y1, x2, y2 = (v * T(spatial_scale) - shift for v in (x1, y1, x2, y2))
        w, h = x2 - x1, y2 - y1
        if not aligned:  # legacy: at least one pixel
            w, h = max(w, T(1)), max(h, T(1))
        bin_h, bin_w = h / T(ph), w / T(pw)
        gh = sampling_ratio if sampling_ratio > 0 else max(math.ceil(h / T(ph)), 0)
        gw = sampling_ratio if sampling_ratio > 0 else max(math.ceil(w / T(pw)), 0)
        for i in range(ph):
            for j in range(pw):
                total = np.zeros(input.shape[1], np.float64)
                for iy in range(gh):
                    y = y1 + T(i) * bin_h + T(iy + 0.5) * bin_h / T(gh)
                    for ix in range(gw):
                        x = x1 + T(j) * bin_w + T(ix + 0.5) * bin_w / T(gw)
                        total += bilinear(input[int(b)], y, x)
                out[k, :, i, j] = total / max(gh * gw, 1)
    return out


def my_roi_align(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    return roi_align_by_points(input, rois, output_size, spatial_scale, sampling_ratio, aligned)


def my_roi_align_no_half_pixel(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    # the bug: aligned=True without its -0.5 shift
    return roi_align_by_points(input, rois, output_size, spatial_scale, sampling_ratio, aligned, half_pixel=False)


@SETTINGS
@given(eds.roi_align_cases(out_of_image=True))
def test_my_roi_align(case):
    actual = my_roi_align(*case)
    assert_roi_align_close(actual, *case)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="deliberately wrong: no half-pixel shift")
@SETTINGS
@given(eds.roi_align_cases(aligned=True))
def test_my_roi_align_no_half_pixel(case):
    actual = my_roi_align_no_half_pixel(*case)
    assert_roi_align_close(actual, *case)
