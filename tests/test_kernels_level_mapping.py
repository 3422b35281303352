"""The FPN level-mapping kernels as a library: users' own Numba code (docs/kernels/level_mapping.md)."""
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edudet
from edudet.level_mapper import LevelMapper
from edudet.level_mapper import map_roi_levels as map_roi_levels_numpy
from helpers import assert_child_ok

numba = pytest.importorskip("numba")
from numba import njit  # noqa: E402

from edudet.kernels import level_mapping_numba  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "kernels" / "level_mapping.md"


def test_doc_example_runs():
    example = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    assert_child_ok(example, timeout=600)


@njit
def user_levels(boxes, k_min, k_max, num_levels):
    return (level_mapping_numba.fpn_levels(boxes, k_min, k_max, 224.0, 4.0, 1e-6),
            level_mapping_numba.map_roi_levels(boxes, num_levels, 56.0))


def test_hand_cases():
    # sqrt(area): 224 -> k = 4 + log2(1) = 4; 111.9 -> 4 + log2(0.4996) = 2.998 -> 2; 1000 -> 6.16 -> clamped 5;
    # a zero-area box -> k_min; counted from k_min = 2. mmdetection: 224 / 56 = 4 -> 2; 111.9 / 56 < 2 -> 0;
    # 1000 / 56 = 17.9 -> 4 -> clamped 3; zero area -> 0
    boxes = np.array([[0, 0, 224, 224], [0, 0, 111.9, 111.9], [0, 0, 1000, 1000], [5, 5, 5, 9]], np.float64)
    fpn, mmdet = user_levels(boxes, 2, 5, 4)
    assert fpn.tolist() == [2, 0, 3, 0]
    assert mmdet.tolist() == [2, 0, 3, 0]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       k_min=st.integers(0, 4), span=st.integers(0, 4), num_levels=st.integers(1, 6),
       eps=st.sampled_from([0.0, 1e-6, 1e-3]))
def test_numba_equals_reference(seed, dtype, k_min, span, num_levels, eps):
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 1000, (40, 4))
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(0, 900, (40, 2)) * rng.choice([0, 1, 1, 1], (40, 1))
    # exact powers of two of the canonical sizes: where eps decides
    side = 224.0 * 2.0 ** rng.integers(-4, 4, 8)
    boxes[:8] = np.stack([np.zeros(8), np.zeros(8), side, side], axis=1)
    boxes = boxes.astype(dtype)
    assert np.array_equal(level_mapping_numba.fpn_levels(boxes, k_min, k_min + span, 224.0, 4.0, eps),
                          LevelMapper(k_min, k_min + span, eps=eps)(boxes))
    assert np.array_equal(level_mapping_numba.map_roi_levels(boxes, num_levels, 56.0),
                          map_roi_levels_numpy(boxes, num_levels))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_every_backend_equals_reference(seed, dtype):
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 1000, (30, 4))
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(0, 900, (30, 2)) * rng.choice([0, 1, 1, 1], (30, 1))
    side = 224.0 * 2.0 ** rng.integers(-4, 4, 8)
    boxes[:8] = np.stack([np.zeros(8), np.zeros(8), side, side], axis=1)
    boxes = boxes.astype(dtype)
    rois = np.concatenate([np.zeros((30, 1), dtype), boxes], axis=1)
    mapper = LevelMapper(2, 5)
    fpn, mmdet = mapper(boxes, backend="numpy"), edudet.level_mapper.map_roi_levels(rois, 4, backend="numpy")
    assert set(edudet.backends_for("fpn_levels")) == set(edudet.backends_for("map_roi_levels"))
    for backend in edudet.backends_for("fpn_levels"):
        assert np.array_equal(mapper(boxes, backend=backend), fpn), backend
        assert np.array_equal(edudet.level_mapper.map_roi_levels(rois, 4, backend=backend), mmdet), backend
        assert mapper(boxes[:0], backend=backend).shape == (0,)


@pytest.mark.parametrize("backend", ["cython", "cuda"])
def test_cython_and_cuda_entries_check_structure(backend):
    module = pytest.importorskip(f"edudet.kernels.level_mapping_{backend}")
    with pytest.raises(ValueError, match="boxes must have shape"):
        module.fpn_levels(np.zeros((3, 5)), 2, 5, 224.0, 4.0, 1e-6)
    with pytest.raises(ValueError, match="C-contiguous"):
        module.map_roi_levels(np.zeros((4, 4))[::2], 4, 56.0)
    with pytest.raises(ValueError, match="k_max"):
        module.fpn_levels(np.zeros((3, 4)), 5, 2, 224.0, 4.0, 1e-6)


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
                module = importlib.import_module(f"edudet.kernels.level_mapping_{backend}")
            except ImportError:
                continue
            try:
                module.fpn_levels(boxes, 2, 5, 224.0, 4.0, 1e-6)
            except ValueError as err:
                assert "boxes" in str(err) and "EDUDET_CHECK_KERNELS" in str(err), err
            else:
                raise AssertionError(f"{backend} accepted NaN boxes")
        print("ok")
    """)


def test_empty_and_checks():
    assert level_mapping_numba.fpn_levels(np.zeros((0, 4)), 2, 5, 224.0, 4.0, 1e-6).shape == (0,)
    boxes = np.array([[0, 0, 10, 10], [0, 0, np.nan, 4]], np.float32)
    for call, message in ((lambda: level_mapping_numba.fpn_levels(boxes, 2, 5, 224.0, 4.0, 1e-6), "finite"),
                          (lambda: level_mapping_numba.map_roi_levels(boxes[:1], 0, 56.0), "num_levels"),
                          (lambda: level_mapping_numba.fpn_levels(boxes[:1], 5, 2, 224.0, 4.0, 0.0), "k_max"),
                          (lambda: level_mapping_numba.fpn_levels(np.zeros((2, 5)), 2, 5, 224.0, 4.0, 0.0),
                           r"\(N, 4\)"),
                          (lambda: level_mapping_numba.map_roi_levels(np.zeros((4, 4))[::2], 4, 56.0),
                           "C-contiguous"),
                          (lambda: level_mapping_numba.map_roi_levels(boxes[:1], 4, 1e-60), "finest_scale")):
        with pytest.raises(ValueError, match=message):
            call()
