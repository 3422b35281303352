"""The backend dispatcher: names, defaults, errors."""
import subprocess
import sys

import numpy as np
import pytest

import edudet
from edudet import ops
from edudet._dispatch import Dispatcher


def test_available_backends_lists_numpy_first():
    backends = ops.available_backends()
    assert backends[0] == "numpy"
    assert set(backends) <= {"numpy", "numba", "cython", "cuda"}


def test_unknown_backend_names_the_usable_ones():
    with pytest.raises(ValueError, match="not usable here; choose one of"):
        ops.box_iou(np.zeros((1, 4)), np.zeros((1, 4)), backend="tpu")


def test_backend_must_be_a_string():
    with pytest.raises(TypeError, match="backend must be a str"):
        ops.box_iou(np.zeros((1, 4)), np.zeros((1, 4)), backend=3)


def test_default_backend_is_fastest_usable_cpu_one():
    d = Dispatcher("toy", reference=lambda: "numpy", numba="does_not_exist:fn")
    assert d.resolve(None) == "numpy"  # numba module missing -> falls back, never raises
    assert d.backends == ["numpy"]


def test_import_edudet_compiles_and_imports_nothing_heavy():
    code = ("import sys, edudet, edudet.ops; "
            "heavy = [m for m in ('numba', 'torch', 'scipy', 'matplotlib') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_top_level_names_resolve():
    assert edudet.BoxCoder.__name__ == "BoxCoder"
    with pytest.raises(AttributeError):
        edudet.no_such_thing


def test_ops_named_like_their_modules_are_functions():
    # torchvision's layout: ops/nms.py defines nms; the package attribute must stay the function
    import edudet.ops.nms  # noqa: F401
    import edudet.ops.roi_align  # noqa: F401

    assert callable(ops.nms) and callable(ops.roi_align) and callable(ops.roi_pool)
