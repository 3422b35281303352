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


def test_backends_for_names_every_op():
    from edudet._dispatch import dispatchers

    table = dispatchers()
    assert {"box_iou", "nms", "batched_nms", "soft_nms", "roi_align", "roi_pool", "match_boxes"} <= set(table)
    assert edudet.backends_for("nms") == table["nms"].backends
    assert edudet.backends_for("nms")[0] == "numpy"
    with pytest.raises(ValueError, match="unknown op 'nope'; choose one of"):
        edudet.backends_for("nope")


def test_ci_runs_every_cpu_backend():
    # Without built extensions or numba the backend-equality tests would compare numpy with numpy and pass:
    # in CI that is a failure, not a quiet pass.
    from helpers import IN_CI
    from edudet._dispatch import dispatchers

    missing = [b for b in ("numba", "cython") if b not in ops.available_backends()]
    per_op = {op: [b for b in ("numba", "cython") if b in d._targets and b not in d.backends]
              for op, d in dispatchers().items()}
    per_op = {op: gone for op, gone in per_op.items() if gone}
    if IN_CI:
        assert not missing, f"CI must run the {missing} backend(s): build the Cython kernels / install numba"
        assert not per_op, f"ops whose kernels do not import in CI: {per_op}"
    elif missing or per_op:
        pytest.skip(f"not every CPU backend is usable here: missing {missing}, per op {per_op}")


def test_default_backend_follows_measurement():
    # Numba measured ahead of Cython for these ops; Cython for the rest (edudet/_dispatch.py MEASURED_PREFERENCE)
    from edudet._dispatch import dispatchers

    table = dispatchers()
    for op in ("match_boxes", "fcos_assign", "soft_nms", "nms_match", "masks_to_boxes"):
        assert table[op].preference[0] == "numba"
    assert table["nms"].preference[0] == "cython"
    if "numba" in table["soft_nms"].backends:
        assert table["soft_nms"].resolve(None) == "numba"
