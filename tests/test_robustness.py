"""Make it stay fixed (issue 12): every public op, on every backend it has, fed adversarial input.

What is asserted, for every case:

* nothing crashes the interpreter, hangs, or raises anything but a `ValueError`/`TypeError`;
* a `ValueError`/`TypeError` names the argument that is wrong (its name appears in the message);
* input that is certainly valid (finite, coordinates within ``COORDINATE_LIMIT``, right shapes and dtypes,
  parameters in range) is accepted; input that is certainly invalid (NaN/inf coordinates, coordinates above
  the limit, bool/complex/object dtypes, wrong shapes, NaN/inf/huge/non-integral integer parameters) is
  refused; in between ("either": 0-d arrays, NaN feature maps, huge spatial scales) both are allowed;
* every backend does the same thing: all refuse, or all return the NumPy reference's result (exactly for
  indices and labels, within a few ulps of the data's magnitude for floats), of the documented shape and dtype,
  and finite where the inputs are; empty input gives empty output;
* no input is modified; a Fortran-ordered, strided or reversed array gives the same result as a C-contiguous one;
* torch tensors are accepted (same result) or refused by name.

Besides every public name of edudet, edudet.ops and edudet.testing (`COVERAGE`), the model layers a user can
reach with kernels of their own run here too: GroupNorm (Numba kernel and NumPy reference, both against the
exact float64 normalisation, see `group_norm_problems`) and MobileNetV3's DepthwiseConv2d (bit for bit on
every backend); edudet.testing's oracles must accept every backend's own result and reject a wrong one.

How it runs: the cases come from hypothesis strategies over extreme finite floats (subnormals to 1e308,
float32/float64 edges, -0.0), NaN/inf, degenerate boxes (points, inverted, duplicates) and odd dtypes/layouts.
Each op family runs in ONE child interpreter under an address-space cap (`helpers.run_in_child`), hypothesis
inside it, so numba's import and cache load are paid once per family, and a segfault, an abort or a hang
(a per-case SIGALRM watchdog) takes down the child, not pytest. The child prints every case as a runnable
reproducer before running it, so the parent names the case that crashed, then relaunches the child without
that property to test the rest. Failures of a property are shrunk by hypothesis to a minimal reproducer.

``HYPOTHESIS_PROFILE=thorough`` runs ten times the examples. The seed is fixed (0) so that the suite, and CI,
gives the same verdict every run; ``EDUDET_ROBUSTNESS_SEED=<n>`` picks another and ``EDUDET_ROBUSTNESS_SEED=random``
draws one (the seed of a run is printed with its failures), to explore.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, seed as hypothesis_seed, settings, strategies as st

from helpers import run_in_child

import edudet
from edudet import ops
from edudet._validate import COORDINATE_LIMIT, INT64_MAX
from edudet.poolers import MultiScaleRoIAlign

NAN, INF = float("nan"), float("inf")
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
WATCHDOG_SECONDS = 90  # one case, all backends: numba's first compile of a signature included
CHILD_TIMEOUT_SECONDS = 900

# =============================================================================================================
# Reproducers: every value printed as Python that rebuilds it (layout included)
# =============================================================================================================
PRELUDE = ("import numpy as np, edudet, edudet.testing; from numpy import nan, inf; from edudet import ops; "
           "from edudet.poolers import MultiScaleRoIAlign; from edudet.models.layers import GroupNorm; "
           "from edudet.models.mobilenet_v3 import DepthwiseConv2d")


def code(value) -> str:
    """Python source that rebuilds `value` (arrays with their dtype and memory layout)."""
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return f"np.zeros({value.shape}, dtype={_dtype_code(value.dtype)})"
        body = f"np.array({_plain(value.tolist())}, dtype={_dtype_code(value.dtype)})"
        if value.ndim >= 1 and not value.flags.c_contiguous:
            if value.flags.f_contiguous:
                return f"np.asfortranarray({body})"
            if any(s < 0 for s in value.strides):
                return f"{body}[::-1].copy()[::-1]"
            return f"np.repeat({body}, 2, axis=-1)[..., ::2]"
        return body
    if type(value).__module__ == "torch":
        return f"torch.tensor({code(value.numpy())})"
    if isinstance(value, type) and value.__module__ == "numpy":
        return f"np.{value.__name__}"
    if isinstance(value, np.generic):
        return f"np.{type(value).__name__}({_plain(value.item())})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {code(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(code(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(code(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return _plain(value)


def _dtype_code(dtype) -> str:
    return "object" if dtype == object else f"np.{dtype.name}"


def _plain(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if isinstance(value, float) and value != value:
        return "nan"
    return repr(value)


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if type(value).__module__ == "torch":
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _same(before, after) -> bool:
    if isinstance(before, np.ndarray):
        if not isinstance(after, np.ndarray) or before.shape != after.shape or before.dtype != after.dtype:
            return False
        if before.dtype == object:
            return repr(before.tolist()) == repr(after.tolist())
        return bool(np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"))
    if type(before).__module__ == "torch":
        return bool(before.shape == after.shape and before.dtype == after.dtype
                    and before.isnan().eq(after.isnan()).all() and before.nan_to_num().eq(after.nan_to_num()).all())
    if isinstance(before, (list, tuple)):
        return type(before) is type(after) and len(before) == len(after) and all(map(_same, before, after))
    if isinstance(before, dict):
        return before.keys() == after.keys() and all(_same(before[k], after[k]) for k in before)
    return True


def _contiguous(value):
    """`value` with every array C-contiguous (same values), to check that layout does not change results."""
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value) if value.ndim else value
    if isinstance(value, (list, tuple)):
        return type(value)(_contiguous(v) for v in value)
    if isinstance(value, dict):
        return {k: _contiguous(v) for k, v in value.items()}
    return value


def _has_odd_layout(value) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim >= 1 and value.size > 1 and not value.flags.c_contiguous
    if isinstance(value, (list, tuple)):
        return any(_has_odd_layout(v) for v in value)
    if isinstance(value, dict):
        return any(_has_odd_layout(v) for v in value.values())
    return False


# =============================================================================================================
# A case and its check
# =============================================================================================================
OK, BAD, EITHER = "ok", "bad", "either"


@dataclass
class Case:
    """One call of one op: `call(backend, **values)` on each of `backends`.

    status: per argument, OK (certainly valid), BAD (certainly invalid: must be refused, naming it) or EITHER.
    template: the reproducer, ``str.format``-ed with each value's `code` and ``backend``.
    tolerance: (rtol, atol) for float outputs; integer and bool outputs must be equal.
    expect: for an accepted call, `expect(out)` lists what is wrong with the reference's output.
    aliases: extra words that name an argument in a message (e.g. "feature shape" for feature_shapes).
    """

    op: str
    call: Callable
    values: dict
    status: dict
    template: str
    backends: list
    tolerance: tuple = (0.0, 0.0)
    expect: Callable | None = None
    aliases: dict = field(default_factory=dict)
    expected: Any = None  # when set, every backend must return this (the torch/Fortran boundary checks)

    def reproducer(self, backend="<backend>", values=None) -> str:
        values = self.values if values is None else values
        return self.template.format(backend=repr(backend), **{k: code(v) for k, v in values.items()})

    def __repr__(self) -> str:
        return self.reproducer()


def _names_argument(message: str, case: Case, names) -> bool:
    return any(word in message for name in names for word in (name, *case.aliases.get(name, ())))


def check(case: Case) -> None:
    """Run `case` on every backend; raise AssertionError listing every problem, with a reproducer."""
    print("@@case", case.reproducer(), flush=True)
    snapshot = {k: _copy(v) for k, v in case.values.items()}
    bad = [k for k, s in case.status.items() if s == BAD]
    not_ok = [k for k, s in case.status.items() if s != OK]
    problems, results, errors = [], {}, {}
    for backend in case.backends:
        print("@@backend", backend, flush=True)
        signal.alarm(WATCHDOG_SECONDS)
        try:
            results[backend] = case.call(backend, **case.values)
        except (ValueError, TypeError) as err:
            errors[backend] = err
        except Exception as err:  # noqa: BLE001 - anything else is the finding (IndexError, MemoryError, ...)
            problems.append(f"backend {backend}: raised {type(err).__name__}: {str(err)[:300]} "
                            f"(want a ValueError/TypeError naming the argument, or a result)")
        finally:
            signal.alarm(0)
        for k in case.values:
            if not _same(snapshot[k], case.values[k]):
                problems.append(f"backend {backend}: modified its input {k}")
    if errors and results:
        problems.append("backends disagree: " + "; ".join(
            [f"{b} raised {type(e).__name__}: {str(e)[:200]}" for b, e in errors.items()]
            + [f"{b} returned a result" for b in results]))
    for backend, err in errors.items():
        if not not_ok:
            problems.append(f"backend {backend}: refused valid input: {type(err).__name__}: {str(err)[:300]}")
        elif not _names_argument(str(err), case, not_ok):
            problems.append(f"backend {backend}: {type(err).__name__} names none of {not_ok}: {str(err)[:300]}")
    if bad and results:
        problems.append(f"accepted invalid {bad} (status {case.status}) on {sorted(map(str, results))}")
    if results:
        reference_backend = next(iter(results))
        reference = results[reference_backend]
        if case.expected is not None:
            problem = compare(case.expected, reference, case.tolerance)
            if problem:
                problems.append(f"backend {reference_backend} differs from the plain NumPy input's result: {problem}")
        for backend, out in results.items():
            if backend != reference_backend:
                problem = compare(reference, out, case.tolerance)
                if problem:
                    problems.append(f"backend {backend} differs from {reference_backend}: {problem}")
        if not bad and case.expect is not None:
            problems.extend(f"output: {p}" for p in case.expect(reference))
        if not bad and _has_odd_layout(case.values) and not problems:
            try:
                plain = case.call(reference_backend, **_contiguous(case.values))
            except Exception as err:  # noqa: BLE001
                problems.append(f"C-contiguous copies raised {type(err).__name__}: {err}")
            else:
                problem = compare(plain, reference, case.tolerance)
                if problem:
                    problems.append(f"result depends on the memory layout: {problem}")
    if problems:
        raise AssertionError(f"{case.op}: {len(problems)} problem(s)\n    " + "\n    ".join(problems)
                             + f"\n  reproducer ({PRELUDE}):\n    {case.reproducer(case.backends[0], snapshot)}")


def compare(reference, out, tolerance, path="out") -> str | None:
    """None if `out` equals `reference` (floats within `tolerance` = (rtol, atol), NaN == NaN), else why not."""
    if isinstance(reference, tuple):  # NamedTuples too
        if not isinstance(out, tuple) or len(out) != len(reference):
            return f"{path}: {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'}"
        for i, (r, o) in enumerate(zip(reference, out)):
            problem = compare(r, o, tolerance, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(reference, list):
        if not isinstance(out, list) or len(out) != len(reference):
            return f"{path}: not a list of {len(reference)}"
        for i, (r, o) in enumerate(zip(reference, out)):
            problem = compare(r, o, tolerance, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if not isinstance(reference, np.ndarray):
        same = reference == out or (reference != reference and out != out)
        return None if same else f"{path}: {out!r} != {reference!r}"
    if not isinstance(out, np.ndarray):
        return f"{path}: a {type(out).__name__}, not an array"
    if out.shape != reference.shape or out.dtype != reference.dtype:
        return f"{path}: shape/dtype {out.shape} {out.dtype}, reference {reference.shape} {reference.dtype}"
    if reference.dtype.kind != "f":
        if not np.array_equal(reference, out):
            where = np.argwhere(reference != out)[:3].tolist()
            return f"{path}: differs at {where}: {out[tuple(np.array(where).T)] if where else out} vs reference " \
                   f"{reference[tuple(np.array(where).T)] if where else reference}"
        return None
    rtol, atol = tolerance
    with np.errstate(invalid="ignore", over="ignore"):
        same_special = (np.isnan(reference) == np.isnan(out)) & (np.isinf(reference) == np.isinf(out)) & (
            ~np.isinf(reference) | (reference == out))
        finite = np.isfinite(reference) & np.isfinite(out)
        close = np.abs(out.astype(np.float64) - reference.astype(np.float64)) <= atol + rtol * np.abs(
            reference.astype(np.float64))
    ok = same_special & (~finite | close)
    if not ok.all():
        i = tuple(np.argwhere(~ok)[0])
        return (f"{path}{list(i)}: {out[i]!r} vs reference {reference[i]!r} ({int((~ok).sum())} of {ok.size} "
                f"differ; rtol {rtol:g}, atol {atol:g})")
    return None


# =============================================================================================================
# Strategies: extreme values, boxes, parameters
# =============================================================================================================
def special_floats(dtype) -> list[float]:
    """The edges of `dtype` and of the coordinate policy, as Python floats (NaN and inf included)."""
    info = np.finfo(dtype)
    values = [0.0, -0.0, float(info.smallest_subnormal), -float(info.smallest_subnormal), float(info.tiny),
              1e-30 if dtype == np.float32 else 1e-300, 0.5, 1.0, float(dtype(COORDINATE_LIMIT)),
              -float(dtype(COORDINATE_LIMIT)), float(np.nextafter(dtype(COORDINATE_LIMIT), dtype(INF))), 1.9e19,
              float(info.max), -float(info.max), NAN, INF, -INF]
    return values + ([1e200, -1e308] if dtype == np.float64 else [3e38])


ALL_SPECIALS = sorted(set(special_floats(np.float32) + special_floats(np.float64)) - {NAN}) + [NAN]
# scales applied to a whole set of ordinary boxes: underflowing areas (1e-30 f32, 1e-300 f64, subnormals),
# the coordinate limit (1e13 * [0, 100]), just above it, and far above it
SCALES = [1.0] * 8 + [1e-30, 1e-300, 1e-40, 1e-310, 1e13, 1e14, 1.5e13, 1e17, 1.9e19, 1e200, 1e306]
ODD_DTYPES = [np.int32, np.int64, np.uint8, np.float16, np.bool_, object, np.complex128]


def ordinary_floats(low=-20.0, high=100.0):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _chance(draw, percent: int) -> bool:
    """True with about `percent`% probability; shrinks to False (towards the ordinary case)."""
    return draw(st.integers(0, 99)) >= 100 - percent


@st.composite
def float_dtypes(draw, odd_percent=15):
    if _chance(draw, odd_percent):
        return draw(st.sampled_from(ODD_DTYPES))
    return draw(st.sampled_from([np.float32, np.float64]))


def cast(values: np.ndarray, dtype) -> np.ndarray:
    """float64 `values` as `dtype`; integer dtypes clip to their range (NaN -> 0) instead of wrapping."""
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            low, high = max(info.min, -2**62), min(info.max, 2**62)
            return np.clip(np.nan_to_num(values, posinf=high, neginf=low), low, high).astype(dtype)
        if dtype == np.bool_:
            return values != 0
        return values.astype(dtype)


@st.composite
def layouts(draw, array: np.ndarray, percent=25):
    """`array` as C (usually), Fortran-ordered, strided or reversed: the same values, another memory layout."""
    if array.ndim == 0 or not _chance(draw, percent):
        return array
    kind = draw(st.sampled_from(["F", "strided", "reversed"]))
    if kind == "F":
        return np.asfortranarray(array)
    if kind == "strided":
        return np.repeat(array, 2, axis=-1)[..., ::2]
    return array[::-1].copy()[::-1]


@st.composite
def box_values(draw, n: int, width: int = 4, extreme_percent=40) -> np.ndarray:
    """(n, width) float64 boxes: ordinary, points, inverted, duplicates or raw extremes, then maybe scaled by an
    extreme factor and spiked with one special value."""
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from(["box"] * 5 + ["point", "inverted", "duplicate", "raw"]))
        if kind == "duplicate" and rows:
            rows.append(list(rows[-1]))
            continue
        if kind == "raw":
            rows.append([draw(st.one_of(st.sampled_from(ALL_SPECIALS), ordinary_floats())) for _ in range(width)])
            continue
        x, y = draw(ordinary_floats()), draw(ordinary_floats())
        w = 0.0 if kind == "point" else draw(st.one_of(st.just(0.0), ordinary_floats(0.0, 100.0)))
        h = 0.0 if kind == "point" else draw(st.one_of(st.just(0.0), ordinary_floats(0.0, 100.0)))
        box = [x, y, x + w, y + h] if kind != "inverted" else [x + w + 1, y + h + 1, x, y]
        rows.append((box * 2)[:width] if width != 4 else box)
    values = np.array(rows, dtype=np.float64).reshape(n, width)
    if n and _chance(draw, extreme_percent):
        with np.errstate(over="ignore", under="ignore"):
            values = values * draw(st.sampled_from(SCALES))
    if n and _chance(draw, extreme_percent // 2):
        special = st.one_of(st.sampled_from(ALL_SPECIALS), st.sampled_from([NAN, INF, NAN, -INF]))
        values[draw(st.integers(0, n - 1)), draw(st.integers(0, width - 1))] = draw(special)
    return values


def coordinate_status(array: np.ndarray, width: int = 4, limit: float | None = COORDINATE_LIMIT) -> str:
    """OK, or BAD for a wrong dtype or shape, NaN/inf, or a coordinate above `limit` (the project's policy)."""
    if array.dtype == np.bool_ or array.dtype.kind not in "iuf":
        return BAD
    if array.ndim != 2 or array.shape[1] != width:
        return BAD
    if array.size and not np.isfinite(array).all():
        return BAD
    if limit is not None and array.size and np.abs(array.astype(np.float64)).max() > limit:
        return BAD
    return OK


@st.composite
def boxes(draw, min_rows=0, max_rows=5, width=4, odd_dtype_percent=10, shape_percent=8, n=None):
    """(array, status): (n, width) boxes of some dtype and layout, or sometimes a wrongly shaped array."""
    n = draw(st.integers(min_rows, max_rows)) if n is None else n
    dtype = draw(float_dtypes(odd_dtype_percent))
    array = cast(draw(box_values(n, width)), dtype)
    if _chance(draw, shape_percent):
        kind = draw(st.sampled_from(["0-d", "1-d", "3-d", "width"]))
        if kind == "0-d":
            array = array.reshape(-1)[:1].reshape(()) if array.size else np.array(1.0, dtype=array.dtype)
        elif kind == "1-d":
            array = array.reshape(-1)
        elif kind == "3-d":
            array = array[:, :, None]
        else:
            array = np.concatenate([array, array[:, :1]], axis=1)
    array = draw(layouts(array))
    return array, coordinate_status(array, width)


def _worst(*statuses) -> str:
    return BAD if BAD in statuses else EITHER if EITHER in statuses else OK


@st.composite
def param(draw, valid, *, kind="float", bad=(), either=(), percent=15):
    """(value, status) of a scalar parameter: usually one of `valid`, sometimes an adversarial value.

    kind "int": NaN, inf, 2**64, non-integral, strings, None and 0-d NaN are BAD; 0-d arrays and integral
    floats of a valid value are EITHER. kind "float": NaN, inf, strings, None, 10**400 are BAD.
    kind "bool": strings, None, floats are BAD; 0/1 are EITHER.
    """
    v = draw(st.sampled_from(list(valid)))
    if not _chance(draw, percent):
        return v, OK
    if kind == "bool":
        common_bad, common_either = ["yes", None, 2.5, [True]], [int(v)]
    elif kind == "int":
        common_bad = [NAN, INF, -INF, 2**64, -(2**64), 2**63, 0.5, "2", None, np.array(NAN), np.float32(NAN),
                      complex(1, 0)]
        common_either = [np.array(v), float(v), True]
    else:
        common_bad = [NAN, INF, -INF, "0.5", None, np.array(NAN), 10**400, complex(0.5, 0)]
        common_either = [np.array(v), np.float32(v)]
    pool = [(x, BAD) for x in [*common_bad, *bad]] + [(x, EITHER) for x in [*common_either, *either]]
    return draw(st.sampled_from(pool))


def real_dtype(array: np.ndarray) -> bool:
    return array.dtype != np.bool_ and array.dtype.kind in "iuf"


def out_float_dtype(*arrays):
    """The float dtype a result takes: float64 if any input is float64, else float32."""
    return np.float64 if any(np.asarray(a).dtype == np.float64 for a in arrays) else np.float32


def expect_array(out, shape, dtype, finite=True, name="out") -> list[str]:
    problems = []
    if not isinstance(out, np.ndarray):
        return [f"{name} is a {type(out).__name__}, not an array"]
    if out.shape != tuple(shape):
        problems.append(f"{name} has shape {out.shape}, want {tuple(shape)}")
    if out.dtype != np.dtype(dtype):
        problems.append(f"{name} has dtype {out.dtype}, want {np.dtype(dtype)}")
    if finite and out.dtype.kind == "f" and out.size and not np.isfinite(out).all():
        problems.append(f"{name} has NaN or inf from finite input: {out.ravel()[~np.isfinite(out.ravel())][:4]}")
    return problems


def ulps(dtype, n=8):
    return float(n * np.finfo(dtype if np.dtype(dtype).kind == "f" and dtype != np.float16 else np.float32).eps)


def dispatcher_backends(module: str, op: str) -> list[str]:
    """The backends the op's dispatcher can run here (cuda under the simulator)."""
    from edudet._dispatch import Dispatcher

    for value in vars(importlib.import_module(module)).values():
        if isinstance(value, Dispatcher) and value.op == op:
            return value.backends
    raise LookupError(f"no Dispatcher for {op} in {module}")


NUMPY_ONLY = [None]  # an op without fast twins: one call, no backend argument

# =============================================================================================================
# Boxes: box_iou, generalized_box_iou, box_area, box_convert, clip/remove-small, BoxCoder, FCOS coding, levels
# =============================================================================================================
FORMATS = ("xyxy", "xywh", "cxcywh")
BAD_FORMATS = ["XYXY", None, 3, ["xyxy"]]


@st.composite
def fmt_param(draw):
    if _chance(draw, 10):
        return draw(st.sampled_from(BAD_FORMATS)), BAD
    return draw(st.sampled_from(FORMATS)), OK


@st.composite
def box_iou_cases(draw):
    b1, s1 = draw(boxes())
    b2, s2 = draw(boxes())
    fmt, sf = draw(fmt_param())
    # the legacy +1 convention (issue 16) on the same extreme boxes; it is defined for xyxy only
    offset, so = draw(param([0, 1], kind="int", bad=[2, -1]))
    if so == OK and sf == OK and offset == 1 and fmt != "xyxy":
        so = BAD
    dtype = out_float_dtype(b1, b2)

    def expect(out):
        problems = expect_array(out, (len(b1), len(b2)), dtype)
        if not problems and out.size and not ((out >= 0) & (out <= 1)).all():
            problems.append(f"IoU outside [0, 1]: {out[(out < 0) | (out > 1)][:4]}")
        return problems

    return Case("ops.box_iou", lambda backend, **v: ops.box_iou(**v, backend=backend),
                dict(boxes1=b1, boxes2=b2, fmt=fmt, offset=offset), dict(boxes1=s1, boxes2=s2, fmt=sf, offset=so),
                "ops.box_iou({boxes1}, {boxes2}, fmt={fmt}, offset={offset}, backend={backend})",
                dispatcher_backends("edudet.ops.boxes", "box_iou"), (0.0, ulps(dtype)), expect)


@st.composite
def generalized_box_iou_cases(draw):
    b1, s1 = draw(boxes())
    b2, s2 = draw(boxes())
    # inverted boxes (torchvision asserts x2 >= x1 here): refused by name, or a GIoU in [-1, 1] all the same
    # (with offset=1, x1 - 1 <= x2 < x1 is an empty box, not an inverted one)
    s1 = EITHER if s1 == OK and inverted(b1) else s1
    s2 = EITHER if s2 == OK and inverted(b2) else s2
    offset, so = draw(param([0, 1], kind="int", bad=[2, -1]))  # mmcv's inclusive pixels (issue 16)
    dtype = out_float_dtype(b1, b2)

    def expect(out):
        problems = expect_array(out, (len(b1), len(b2)), dtype)
        if not problems and out.size:
            if not ((out >= -1) & (out <= 1)).all():
                problems.append(f"GIoU outside [-1, 1]: {out[(out < -1) | (out > 1)][:4]}")
            iou = ops.box_iou(b1, b2, offset=offset, backend="numpy")
            if (out > iou + ulps(dtype)).any():
                problems.append("GIoU above IoU")
        return problems

    return Case("ops.generalized_box_iou", lambda backend, **v: ops.generalized_box_iou(**v, backend=backend),
                dict(boxes1=b1, boxes2=b2, offset=offset), dict(boxes1=s1, boxes2=s2, offset=so),
                "ops.generalized_box_iou({boxes1}, {boxes2}, offset={offset}, backend={backend})",
                dispatcher_backends("edudet.ops.boxes", "generalized_box_iou"), (0.0, ulps(dtype)), expect)


@st.composite
def box_area_convert_cases(draw):
    b, s = draw(boxes())
    which = draw(st.sampled_from(["area", "convert"]))
    dtype = out_float_dtype(b)
    if which == "area":
        fmt, sf = draw(fmt_param())
        return Case("ops.box_area", lambda backend, **v: ops.box_area(**v), dict(boxes=b, fmt=fmt),
                    dict(boxes=s, fmt=sf), "ops.box_area({boxes}, fmt={fmt})", NUMPY_ONLY,
                    expect=lambda out: expect_array(out, (len(b),), dtype))
    in_fmt, si = draw(fmt_param())
    out_fmt, so = draw(fmt_param())

    def expect(out):
        problems = expect_array(out, (len(b), 4), dtype)
        if not problems and out.size:  # the round trip comes back within a few ulps of the largest coordinate
            back = ops.box_convert(out, out_fmt, in_fmt)
            scale = float(np.abs(b.astype(np.float64)).max())
            if np.abs(back.astype(np.float64) - b.astype(np.float64)).max() > 8 * ulps(dtype) * scale:
                problems.append(f"round trip {in_fmt}->{out_fmt}->{in_fmt} drifts: {back.tolist()}")
        return problems

    return Case("ops.box_convert", lambda backend, **v: ops.box_convert(**v),
                dict(boxes=b, in_fmt=in_fmt, out_fmt=out_fmt), dict(boxes=s, in_fmt=si, out_fmt=so),
                "ops.box_convert({boxes}, {in_fmt}, {out_fmt})", NUMPY_ONLY, expect=expect)


@st.composite
def masks_to_boxes_cases(draw):
    n, h, w = draw(st.integers(0, 3)), draw(st.integers(0, 6)), draw(st.integers(0, 11))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.bool_, np.uint8, np.int64, np.float32, np.float64, np.float16]))
    masks = (rng.random((n, h, w)) < draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))).astype(dtype)
    status = OK
    if masks.size and dtype in (np.float32, np.float64) and _chance(draw, 10):
        masks.reshape(-1)[draw(st.integers(0, masks.size - 1))] = NAN  # neither inside nor outside
        status = BAD
    if _chance(draw, 5):
        masks, status = draw(st.sampled_from([masks.astype(object), masks.astype(np.complex128)])), BAD
    if _chance(draw, 5):
        masks, status = draw(st.sampled_from([masks.reshape(n, h * w), masks[None], np.asarray(True)])), BAD
    masks = draw(layouts(masks))

    def expect(out):
        problems = expect_array(out, (n, 4), np.float32)
        if not problems and out.size:
            inside = masks.astype(bool).any(axis=(1, 2))
            if (out[~inside] != 0).any():
                problems.append(f"an empty mask's box is not [0, 0, 0, 0]: {out[~inside].tolist()}")
            x1, y1, x2, y2 = out[inside].T
            if ((x1 > x2) | (y1 > y2) | (x1 < 0) | (y1 < 0) | (x2 > w - 1) | (y2 > h - 1)).any():
                problems.append(f"boxes outside the masks' pixels: {out[inside].tolist()}")
        return problems

    return Case("ops.masks_to_boxes", lambda backend, **v: ops.masks_to_boxes(**v, backend=backend),
                dict(masks=masks), dict(masks=status), "ops.masks_to_boxes({masks}, backend={backend})",
                dispatcher_backends("edudet.ops.boxes", "masks_to_boxes"), expect=expect)


IMAGE_SIZE_BAD = [(0, 5), (5, -1), (NAN, 4), (4, INF), (2**64, 3), (3,), (1, 2, 3), "64", None, (4.5, 4)]


@st.composite
def image_size_param(draw, valid=((16, 16), (32, 24), (7, 5)), bad=(), either=()):
    size = draw(st.sampled_from(list(valid)))
    if not _chance(draw, 15):
        return size, OK
    pool = [(x, BAD) for x in [*IMAGE_SIZE_BAD, *bad]] + [(x, EITHER) for x in [np.array(size), list(size),
                                                                                 (np.array(size[0]), size[1]),
                                                                                 *either]]
    return draw(st.sampled_from(pool))


@st.composite
def clip_remove_cases(draw):
    b, s = draw(boxes())
    dtype = out_float_dtype(b)
    if draw(st.booleans()):
        size, ss = draw(image_size_param())

        def expect(out):
            problems = expect_array(out, (len(b), 4), dtype)
            if not problems and out.size:
                h, w = (int(x) for x in np.asarray(size))
                if (out[:, 0::2] < 0).any() or (out[:, 0::2] > w).any() or (out[:, 1::2] < 0).any() \
                        or (out[:, 1::2] > h).any():
                    problems.append("clipped boxes outside the image")
            return problems

        return Case("ops.clip_boxes_to_image", lambda backend, **v: ops.clip_boxes_to_image(**v),
                    dict(boxes=b, size=size), dict(boxes=s, size=ss), "ops.clip_boxes_to_image({boxes}, {size})",
                    NUMPY_ONLY, expect=expect)
    min_size, sm = draw(param([0.0, 1.0, 5.0, 1e-300, 1e300], bad=[-1.0]))

    def expect(out):
        problems = expect_array(out, out.shape if isinstance(out, np.ndarray) else (0,), np.int64)
        if not problems and (out.ndim != 1 or (np.diff(out) <= 0).any() or (out.size and out.max() >= len(b))):
            problems.append(f"not ascending indices into boxes: {out}")
        return problems

    return Case("ops.remove_small_boxes", lambda backend, **v: ops.remove_small_boxes(**v),
                dict(boxes=b, min_size=min_size), dict(boxes=s, min_size=sm),
                "ops.remove_small_boxes({boxes}, {min_size})", NUMPY_ONLY, expect=expect)


WEIGHTS_BAD = [(1.0, 1.0, 1.0), (1.0, 0.0, 1.0, 1.0), (-1.0, 1.0, 1.0, 1.0), (NAN, 1, 1, 1), (INF, 1, 1, 1),
               "abcd", None, 1.0]


@st.composite
def weights_param(draw):
    w = draw(st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]))
    if _chance(draw, 10):
        return draw(st.sampled_from(WEIGHTS_BAD)), BAD
    return w, OK


@st.composite
def box_coder_cases(draw):
    n = draw(st.integers(0, 4))
    weights, sw = draw(weights_param())
    clip, sc = draw(param([math.log(1000.0 / 16), 1.0, 0.0, -1.0, 30.0]))
    # maskrcnn-benchmark's TO_REMOVE = 1 (issue 16): sizes x2 - x1 + 1, decoded x2 = ctr + w / 2 - 1
    offset, so = draw(param([0, 1], kind="int", bad=[2, -1]))

    def coder(weights, bbox_xform_clip, offset):
        return edudet.BoxCoder(weights, bbox_xform_clip, offset=offset)

    if draw(st.booleans()):
        ref, sr = draw(boxes(n=n))
        prop, sp = draw(boxes(n=n if not _chance(draw, 5) else n + 1))
        if sr == OK and sp == OK and len(ref) != len(prop):
            sr = sp = BAD  # a length mismatch: the message names both
        dtype = out_float_dtype(ref, prop)
        def expect(out):
            # degenerate proposals give inf/NaN deltas, as torchvision (documented): only shape and dtype then
            problems = expect_array(out, (n, 4), dtype, finite=False)
            if problems or not n or not np.isfinite(out).all() or not sw == sc == so == OK:
                return problems
            # finite deltas decode back to the reference boxes with the same convention (offset 1 included),
            # unless bbox_xform_clip clamped a size ratio: within rounding of the coordinates' magnitude
            if (np.abs(out[:, 2:]) / np.array(weights[2:]) > float(clip)).any():
                return problems
            back = coder(weights, clip, offset).decode(out, prop).astype(np.float64)
            scale = float(np.abs(np.asarray(ref, np.float64)).max() + np.abs(np.asarray(prop, np.float64)).max())
            coarse = np.float32 if np.float32 in (out_float_dtype(ref), out_float_dtype(prop)) else np.float64
            tolerance = (256 * ulps(coarse, 1) * (scale + 2 * int(offset))
                         + 1e6 * float(np.finfo(coarse).smallest_subnormal))
            error = np.abs(back - np.asarray(ref, np.float64)).max()
            if not error <= tolerance:
                problems.append(f"decode(encode(reference_boxes)) misses them by {error:g} (> {tolerance:g}): "
                                f"{back.tolist()}")
            return problems

        return Case("BoxCoder.encode", lambda backend, weights, bbox_xform_clip, offset, **v: coder(
            weights, bbox_xform_clip, offset).encode(**v),
                    dict(weights=weights, bbox_xform_clip=clip, offset=offset, reference_boxes=ref, proposals=prop),
                    dict(weights=sw, bbox_xform_clip=sc, offset=so, reference_boxes=sr, proposals=sp),
                    "edudet.BoxCoder({weights}, {bbox_xform_clip}, offset={offset}).encode({reference_boxes}, "
                    "{proposals})", NUMPY_ONLY, expect=expect)
    k = draw(st.sampled_from([1, 1, 2]))
    codes, sd = draw(boxes(n=n, width=4 * k))
    if (sd == BAD and codes.ndim == 2 and codes.shape == (n, 4 * k) and real_dtype(codes)
            and np.isfinite(codes.astype(np.float64)).all()):
        sd = OK  # deltas are not coordinates: no magnitude limit (a wrong shape stays refused)
    refs, sr = draw(boxes(n=n))
    dtype = np.float64 if codes.dtype == np.float64 else np.float32

    def expect(out):
        shape = (n, 4) if k == 1 else (n, k, 4)
        problems = expect_array(out, shape, dtype, finite=False)
        if not problems and np.isnan(out).any():
            problems.append("NaN decoded from finite deltas and boxes")
        return problems

    return Case("BoxCoder.decode", lambda backend, weights, bbox_xform_clip, offset, **v: coder(
        weights, bbox_xform_clip, offset).decode(**v),
                dict(weights=weights, bbox_xform_clip=clip, offset=offset, rel_codes=codes, boxes=refs),
                dict(weights=sw, bbox_xform_clip=sc, offset=so, rel_codes=sd, boxes=sr),
                "edudet.BoxCoder({weights}, {bbox_xform_clip}, offset={offset}).decode({rel_codes}, {boxes})",
                NUMPY_ONLY, expect=expect)


@st.composite
def fcos_coding_cases(draw):
    n = draw(st.integers(0, 4))
    which = draw(st.sampled_from(["distance2bbox", "bbox2distance", "centerness_target"]))
    if which == "centerness_target":
        t, s = draw(boxes(n=n))

        def expect(out):
            problems = expect_array(out, (n,), out_float_dtype(t))
            if not problems and ((out < 0) | (out > 1)).any():
                problems.append(f"centerness outside [0, 1]: {out}")
            return problems

        return Case("edudet.centerness_target", lambda backend, **v: edudet.centerness_target(**v),
                    dict(bbox_targets=t), dict(bbox_targets=s), "edudet.centerness_target({bbox_targets})",
                    NUMPY_ONLY, expect=expect)
    points, sp = draw(boxes(n=n, width=2))
    other, so = draw(boxes(n=n))
    dtype = out_float_dtype(points, other)
    if which == "distance2bbox":
        # distances are not coordinates: distance2bbox accepts them up to 2e15 (a point within 1e15 plus a
        # distance within 2e15 stays finite), so "huge" distances between the two limits may go either way
        if so == BAD and isinstance(other, np.ndarray) and other.dtype.kind == "f" and other.shape == (n, 4):
            with np.errstate(invalid="ignore"):
                if n and np.isfinite(other).all() and np.abs(other).max() <= 2e15:
                    so = EITHER
        max_shape, sm = draw(st.one_of(st.just((None, OK)), image_size_param()))
        if sm == BAD and isinstance(max_shape, tuple) and len(max_shape) == 2 and all(
                isinstance(v, (int, float)) and 0 < v < INF for v in max_shape):
            sm = EITHER  # a clipping bound, not an integer image size: (4.5, 4) or (2**64, 3) may be accepted
        return Case("edudet.distance2bbox", lambda backend, **v: edudet.distance2bbox(**v),
                    dict(points=points, distance=other, max_shape=max_shape),
                    dict(points=sp, distance=so, max_shape=sm),
                    "edudet.distance2bbox({points}, {distance}, {max_shape})", NUMPY_ONLY,
                    expect=lambda out: expect_array(out, (n, 4), dtype))
    max_dis, sd = draw(st.one_of(st.just((None, OK)), param([16.0, 1.0, 1e10], bad=[-1.0])))
    eps, se = draw(param([0.1, 0.0], bad=[-0.1]))
    if max_dis is not None and sd == OK and se == OK and eps > max_dis:
        se = BAD
    return Case("edudet.bbox2distance", lambda backend, **v: edudet.bbox2distance(**v),
                dict(points=points, bbox=other, max_dis=max_dis, eps=eps),
                dict(points=sp, bbox=so, max_dis=sd, eps=se if max_dis is not None else OK),
                "edudet.bbox2distance({points}, {bbox}, {max_dis}, {eps})", NUMPY_ONLY,
                expect=lambda out: expect_array(out, (n, 4), dtype))


@st.composite
def level_mapper_cases(draw):
    b, s = draw(boxes())
    if draw(st.booleans()):
        k_min, s1 = draw(param([2, 0, -3], kind="int", either=[2**62, -(2**62)]))
        k_max, s2 = draw(param([5, 6, 2], kind="int", either=[2**62]))
        if s1 == OK and s2 == OK and k_max < k_min:
            s1 = s2 = BAD
        # 1e-300 is 0 in float32 boxes (refused by name there), a fine scale in float64
        scale, s3 = draw(param([224.0, 1.0, 1e300], bad=[0.0, -1.0], either=[1e-300]))
        level, s4 = draw(param([4, 0], kind="int"))
        eps, s5 = draw(param([1e-6, 0.0], bad=[-1.0]))

        def expect(out):
            top = int(k_max) - int(k_min) if s1 == OK and s2 == OK else None
            problems = expect_array(out, (len(b),), np.int64)
            if not problems and top is not None and out.size and (out.min() < 0 or out.max() > top):
                problems.append(f"levels outside [0, {top}]: {out}")
            return problems

        return Case("edudet.LevelMapper", lambda backend, boxes, **v: edudet.LevelMapper(**v)(boxes),
                    dict(k_min=k_min, k_max=k_max, canonical_scale=scale, canonical_level=level, eps=eps, boxes=b),
                    dict(k_min=s1, k_max=s2, canonical_scale=s3, canonical_level=s4, eps=s5, boxes=s),
                    "edudet.LevelMapper({k_min}, {k_max}, {canonical_scale}, {canonical_level}, {eps})({boxes})",
                    NUMPY_ONLY, expect=expect)
    num_levels, sn = draw(param([4, 1], kind="int", bad=[0, -1]))
    finest, sf = draw(param([56.0, 1e300], bad=[0.0, -5.0], either=[1e-300]))
    # map_roi_levels also takes (N, 5) rois with a batch-index column
    s = EITHER if s == BAD and b.ndim == 2 and b.shape[1] == 5 else s

    def expect(out):
        problems = expect_array(out, (len(b),), np.int64)
        if not problems and out.size and (out.min() < 0 or out.max() >= int(num_levels)):
            problems.append(f"levels outside [0, num_levels): {out}")
        return problems

    return Case("edudet.map_roi_levels", lambda backend, **v: edudet.map_roi_levels(**v),
                dict(rois=b, num_levels=num_levels, finest_scale=finest),
                dict(rois=s, num_levels=sn, finest_scale=sf),
                "edudet.map_roi_levels({rois}, {num_levels}, {finest_scale})", NUMPY_ONLY, expect=expect)


# =============================================================================================================
# NMS: nms, batched_nms, soft_nms
# =============================================================================================================
@st.composite
def scores_param(draw, n):
    dtype = draw(float_dtypes(10))
    values = np.array([draw(st.one_of(st.floats(0, 1), st.sampled_from([0.5, 0.5, 0.0, 1.0])))
                       for _ in range(n)], dtype=np.float64)
    if n and _chance(draw, 15):
        values[draw(st.integers(0, n - 1))] = draw(st.sampled_from(ALL_SPECIALS))
    if _chance(draw, 5):
        values = np.concatenate([values, [0.5]])  # one too many: a length mismatch
    scores = draw(layouts(cast(values, dtype)))
    ok = real_dtype(scores) and scores.ndim == 1 and len(scores) == n and np.isfinite(
        scores.astype(np.float64)).all()
    return scores, OK if ok else BAD


def expect_keep(n, scores, score_threshold=None, max_num=None):
    """Distinct indices by decreasing score; with mmcv's options (valid values only), only scores above
    `score_threshold` (compared in the scores' dtype) and at most `max_num` (None or -1: all) of them."""
    def expect(out):
        problems = expect_array(out, out.shape if isinstance(out, np.ndarray) else (0,), np.int64)
        if problems:
            return problems
        if out.ndim != 1 or len(set(out.tolist())) != len(out) or (out.size and (out.min() < 0 or out.max() >= n)):
            return [f"not distinct indices into {n} boxes: {out}"]
        kept = np.asarray(scores, dtype=np.float64)[out]
        if (np.diff(kept) > 0).any():
            return [f"kept boxes not in decreasing score order: {kept}"]
        limit = None if max_num is None or int(max_num) == -1 else int(max_num)
        if limit is not None and len(out) > limit:
            return [f"kept {len(out)} boxes, more than max_num={limit}"]
        candidates = n
        if score_threshold is not None:
            dtype = out_float_dtype(scores)
            with np.errstate(over="ignore"):  # 1e300 is inf in float32 scores: nothing passes
                passing = np.asarray(scores).astype(dtype) > dtype(float(score_threshold))
            if not passing[out].all():
                return [f"kept a box scoring <= score_threshold={score_threshold}: {np.asarray(scores)[out]}"]
            candidates = int(passing.sum())
        if candidates and limit != 0 and not out.size:
            return ["kept nothing out of a non-empty input"]
        return []

    return expect


@st.composite
def nms_options(draw):
    """(values, statuses) of nms/batched_nms's keyword-only mmcv options: score_threshold (any finite real;
    None: keep all) and max_num (an integer >= -1; None or -1: all), each sometimes adversarial."""
    score_threshold, sst = draw(st.one_of(st.just((None, OK)), param(
        [0.5, 0.0, -1.0, 0.99, 1e-300, 1e300, -1e300], bad=[], either=[np.float16(0.5)])))
    max_num, sm = draw(st.one_of(st.just((None, OK)), param(
        [-1, 0, 1, 3, 2**62, INT64_MAX], kind="int", bad=[-2, -(2**62), 2**63, -(2**63) - 1, 1.5, -0.5])))
    # None is the default of both (param's adversarial pool lists it among the bad values of a number)
    return (dict(score_threshold=score_threshold, max_num=max_num),
            dict(score_threshold=OK if score_threshold is None else sst, max_num=OK if max_num is None else sm))


@st.composite
def nms_cases(draw):
    b, sb = draw(boxes(max_rows=8))
    n = len(b) if b.ndim >= 1 else 0
    scores, ss = draw(scores_param(n))
    threshold, st_ = draw(param([0.5, 0.0, 0.3, 0.7, 1.0, 2.0, 1e-300], bad=[-0.1]))
    offset, so = draw(param([0, 1], kind="int", bad=[2, -1]))  # the legacy +1 convention (issue 16)
    options, s_options = draw(nms_options())
    return Case("ops.nms", lambda backend, **v: ops.nms(**v, backend=backend),
                dict(boxes=b, scores=scores, iou_threshold=threshold, offset=offset, **options),
                dict(boxes=sb, scores=ss if sb == OK else EITHER, iou_threshold=st_, offset=so, **s_options),
                "ops.nms({boxes}, {scores}, {iou_threshold}, offset={offset}, score_threshold={score_threshold}, "
                "max_num={max_num}, backend={backend})",
                dispatcher_backends("edudet.ops.nms", "nms"), expect=expect_keep(n, scores, **options))


@st.composite
def batched_nms_cases(draw):
    b, sb = draw(boxes(max_rows=8))
    n = len(b) if b.ndim >= 1 else 0
    scores, ss = draw(scores_param(n))
    threshold, st_ = draw(param([0.5, 0.0, 0.7], bad=[-1.0]))
    kind = draw(st.sampled_from(["int"] * 4 + ["float", "uint64", "huge", "fraction", "nan", "bool", "negative"]))
    categories = [draw(st.integers(0, 2)) for _ in range(n)]
    si = OK
    if kind == "int":
        idxs = np.array(categories, dtype=draw(st.sampled_from([np.int64, np.int32, np.uint8])))
    elif kind == "float":
        idxs = np.array(categories, dtype=np.float64)
    elif kind == "negative":
        idxs = -np.array(categories, dtype=np.int64) * 2**40
    elif kind == "uint64":
        idxs, si = np.array(categories, dtype=np.uint64) + np.uint64(2**63), BAD if n else OK
    elif kind == "huge":  # floats beyond int64 would wrap to INT64_MIN and merge categories
        idxs, si = np.array(categories, dtype=np.float64) * 1e19 + 1e19, BAD if n else OK
    elif kind == "fraction":
        idxs, si = np.array(categories, dtype=np.float64) + 0.5, BAD if n else OK
    elif kind == "nan":
        idxs, si = np.full(n, NAN), BAD if n else OK
    else:
        idxs, si = np.array(categories, dtype=bool), BAD
    offset, so = draw(param([0, 1], kind="int", bad=[2, -1]))
    options, s_options = draw(nms_options())
    return Case("ops.batched_nms", lambda backend, **v: ops.batched_nms(**v, backend=backend),
                dict(boxes=b, scores=scores, idxs=draw(layouts(idxs)), iou_threshold=threshold, offset=offset,
                     **options),
                dict(boxes=sb, scores=ss if sb == OK else EITHER, idxs=si if sb == OK else EITHER,
                     iou_threshold=st_, offset=so, **s_options),
                "ops.batched_nms({boxes}, {scores}, {idxs}, {iou_threshold}, offset={offset}, "
                "score_threshold={score_threshold}, max_num={max_num}, backend={backend})",
                dispatcher_backends("edudet.ops.nms", "batched_nms"), expect=expect_keep(n, scores, **options))


@st.composite
def soft_nms_cases(draw):
    b, sb = draw(boxes(max_rows=6))
    n = len(b) if b.ndim >= 1 else 0
    scores, ss = draw(scores_param(n))
    threshold, st_ = draw(param([0.3, 0.0, 0.5, 1.0], bad=[-0.5]))
    # 1e-300 is 0 in float32: the gaussian refuses it by name there, float64 and the other methods accept it
    sigma, sg = draw(param([0.5, 1e300, 2.0], bad=[0.0, -1.0], either=[1e-300]))
    score_threshold, sst = draw(param([1e-3, 0.0, 0.5], bad=[-1.0]))
    method, sm = draw(st.one_of(st.sampled_from([("linear", OK), ("gaussian", OK), ("naive", OK)]),
                                st.sampled_from([("LINEAR", BAD), (["linear"], BAD), (None, BAD), (1, BAD)])))
    offset, so = draw(param([0, 1], kind="int", bad=[2, -1]))
    dtype = out_float_dtype(b, scores)

    def expect(out):
        if not isinstance(out, tuple) or len(out) != 2:
            return [f"want (dets, keep), got {type(out).__name__}"]
        dets, keep = out
        problems = expect_array(dets, (len(keep), 5), dtype) + expect_array(keep, keep.shape, np.int64, name="keep")
        if not problems and (len(set(keep.tolist())) != len(keep) or (keep.size and keep.max() >= n)):
            problems.append(f"keep not distinct indices into {n} boxes: {keep}")
        return problems

    # the gaussian weight may differ by one float32 ulp on numba (documented): a few ulps of the scores
    return Case("ops.soft_nms", lambda backend, **v: ops.soft_nms(**v, backend=backend),
                dict(boxes=b, scores=scores, iou_threshold=threshold, sigma=sigma, score_threshold=score_threshold,
                     method=method, offset=offset),
                dict(boxes=sb, scores=ss if sb == OK else EITHER, iou_threshold=st_, sigma=sg,
                     score_threshold=sst, method=sm, offset=so),
                "ops.soft_nms({boxes}, {scores}, {iou_threshold}, {sigma}, {score_threshold}, {method}, {offset}, "
                "backend={backend})", dispatcher_backends("edudet.ops.nms", "soft_nms"),
                (ulps(dtype, 4), ulps(dtype, 4)), expect)


@st.composite
def nms_match_cases(draw):
    dets, sd = draw(boxes(max_rows=8, width=5))  # (x1, y1, x2, y2, score)
    n = len(dets) if dets.ndim >= 1 else 0
    threshold, st_ = draw(param([0.5, 0.0, 0.3, 1.0], bad=[-0.1]))

    def flat(groups):  # the list of groups as one int64 array, -1 after each group, so backends compare
        return np.concatenate([np.append(g, -1) for g in groups]) if groups else np.zeros(0, np.int64)

    def expect(out):
        problems = expect_array(out, out.shape if isinstance(out, np.ndarray) else (0,), np.int64)
        members = out[out >= 0] if not problems else out
        if not problems and sorted(members.tolist()) != list(range(n)):
            problems.append(f"groups do not partition the {n} boxes: {out}")
        return problems

    # a huge score column is fine (only columns 0-3 are coordinates): a "bad" draw may be accepted
    return Case("ops.nms_match", lambda backend, **v: flat(ops.nms_match(**v, backend=backend)),
                dict(dets=dets, iou_threshold=threshold), dict(dets=sd if sd == OK else EITHER, iou_threshold=st_),
                "ops.nms_match({dets}, {iou_threshold}, backend={backend})",
                dispatcher_backends("edudet.ops.nms", "nms_match"), expect=expect)


# =============================================================================================================
# Matching and targets: Matcher, match_boxes, rpn_targets, roi_head_targets, sampler
# =============================================================================================================
def inverted(array: np.ndarray) -> bool:
    with np.errstate(invalid="ignore"):
        a = array.astype(np.float64)
        return bool(array.size and ((a[:, 2] < a[:, 0]) | (a[:, 3] < a[:, 1])).any())


@st.composite
def thresholds(draw, high=(0.7, 0.5, 0.0, 1.0), low=(0.3, 0.5, 0.0)):
    h, sh = draw(param(list(high), bad=[-0.5]))
    lo, sl = draw(param(list(low), bad=[-0.5]))
    if sh == OK and sl == OK and lo > h:
        sh = sl = BAD
    return h, sh, lo, sl


@st.composite
def gt_boxes(draw, min_rows=0, max_rows=4):
    gt, sg = draw(boxes(min_rows=min_rows, max_rows=max_rows))
    if sg == OK and inverted(gt):
        sg = BAD  # ground truths must have x2 >= x1 and y2 >= y1
    return gt, sg


@st.composite
def match_boxes_cases(draw):
    gt, sg = draw(gt_boxes())
    if sg == OK and len(gt) == 0:
        sg = BAD  # no ground truth: use rpn_background_matches
    b, sb = draw(boxes(max_rows=8))
    high, sh, low, sl = draw(thresholds())
    allow, sa = draw(param([True, False, np.True_], kind="bool"))

    def expect(out):
        problems = expect_array(out, (len(b),), np.int64)
        if not problems and out.size and (out.min() < -2 or out.max() >= len(gt)):
            problems.append(f"matches outside [-2, G): {out}")
        return problems

    return Case("Matcher.match_boxes", lambda backend, high_threshold, low_threshold, allow_low_quality_matches, **v:
                edudet.Matcher(high_threshold, low_threshold, allow_low_quality_matches).match_boxes(
                    **v, backend=backend),
                dict(high_threshold=high, low_threshold=low, allow_low_quality_matches=allow, gt_boxes=gt, boxes=b),
                dict(high_threshold=sh, low_threshold=sl, allow_low_quality_matches=sa, gt_boxes=sg, boxes=sb),
                "edudet.Matcher({high_threshold}, {low_threshold}, {allow_low_quality_matches}).match_boxes("
                "{gt_boxes}, {boxes}, backend={backend})", dispatcher_backends("edudet.matcher", "match_boxes"),
                expect=expect)


@st.composite
def matcher_call_cases(draw):
    g, n = draw(st.integers(0, 3)), draw(st.integers(0, 5))
    dtype = draw(float_dtypes(15))
    values = np.array([[draw(st.one_of(st.floats(0, 1), st.sampled_from(ALL_SPECIALS))) for _ in range(n)]
                       for _ in range(g)], dtype=np.float64).reshape(g, n)
    quality = draw(layouts(cast(values, dtype)))
    sq = OK if real_dtype(quality) and g and np.isfinite(quality.astype(np.float64)).all() else BAD
    high, sh, low, sl = draw(thresholds())
    return Case("Matcher.__call__", lambda backend, high_threshold, low_threshold, **v: edudet.Matcher(
        high_threshold, low_threshold, True)(**v),
                dict(high_threshold=high, low_threshold=low, match_quality_matrix=quality),
                dict(high_threshold=sh, low_threshold=sl, match_quality_matrix=sq),
                "edudet.Matcher({high_threshold}, {low_threshold}, True)({match_quality_matrix})", NUMPY_ONLY,
                expect=lambda out: expect_array(out, (n,), np.int64))


@st.composite
def rpn_targets_cases(draw):
    anchors, sa = draw(boxes(max_rows=6))
    gt, sg = draw(gt_boxes())
    high, sh, low, sl = draw(thresholds())
    weights, sw = draw(weights_param())
    n = len(anchors) if anchors.ndim else 0

    def expect(out):
        if not isinstance(out, tuple) or len(out) != 4:
            return [f"want RPNTargets, got {type(out).__name__}"]
        return (expect_array(out.labels, (n,), np.float32, name="labels")
                + expect_array(out.matched_idxs, (n,), np.int64, name="matched_idxs")
                + expect_array(out.matched_gt_boxes, (n, 4), out.matched_gt_boxes.dtype, name="matched_gt_boxes"))

    return Case("edudet.rpn_targets", lambda backend, **v: edudet.rpn_targets(**v, backend=backend),
                dict(anchors=anchors, gt_boxes=gt, high_threshold=high, low_threshold=low, weights=weights),
                dict(anchors=sa, gt_boxes=sg, high_threshold=sh if gt.ndim and len(gt) else EITHER,
                     low_threshold=sl if gt.ndim and len(gt) else EITHER, weights=sw),
                "edudet.rpn_targets({anchors}, {gt_boxes}, {high_threshold}, {low_threshold}, weights={weights}, "
                "backend={backend})", dispatcher_backends("edudet.matcher", "match_boxes"), expect=expect)


@st.composite
def roi_head_targets_cases(draw):
    proposals, sp = draw(boxes(max_rows=6))
    gt, sg = draw(gt_boxes())
    g = len(gt) if gt.ndim else 0
    kind = draw(st.sampled_from(["int"] * 5 + ["float", "zero", "huge", "nan"]))
    labels = np.array([draw(st.integers(1, 3)) for _ in range(g)], dtype=np.int64)
    sl = OK
    if kind == "float":
        labels = labels.astype(np.float64)
    elif kind == "zero" and g:
        labels[0], sl = 0, BAD
    elif kind == "huge" and g:
        labels, sl = labels * 1e19, BAD
    elif kind == "nan" and g:
        labels, sl = np.full(g, NAN), BAD
    fg, sf, bg, sb = draw(thresholds(high=(0.5, 0.7), low=(0.5, 0.3)))
    with_sampler = draw(st.booleans())
    add_gt, sa = draw(param([True, False], kind="bool"))

    def call(backend, with_sampler, **v):
        sampler = edudet.BalancedPositiveNegativeSampler(4, 0.25, seed=0) if with_sampler else None
        return edudet.roi_head_targets(**v, sampler=sampler, backend=backend)

    return Case("edudet.roi_head_targets", call,
                dict(proposals=proposals, gt_boxes=gt, gt_labels=labels, fg_iou_thresh=fg, bg_iou_thresh=bg,
                     add_gt_as_proposals=add_gt, with_sampler=with_sampler),
                dict(proposals=sp, gt_boxes=sg, gt_labels=sl if sg == OK else EITHER,
                     fg_iou_thresh=sf if g else EITHER, bg_iou_thresh=sb if g else EITHER,
                     add_gt_as_proposals=sa, with_sampler=OK),
                "edudet.roi_head_targets({proposals}, {gt_boxes}, {gt_labels}, {fg_iou_thresh}, {bg_iou_thresh}, "
                "add_gt_as_proposals={add_gt_as_proposals}, sampler=edudet.BalancedPositiveNegativeSampler(4, 0.25, "
                "seed=0) if {with_sampler} else None, backend={backend})",
                dispatcher_backends("edudet.matcher", "match_boxes"))


@st.composite
def sampler_cases(draw):
    if _chance(draw, 30):
        num, sn = draw(param([5, 0, 10**6], kind="int", bad=[-1], either=[10**12]))

        def expect(out):
            return expect_array(out, (int(num),), np.int64) + ([] if (out == -1).all() else ["not all -1"])

        return Case("edudet.rpn_background_matches", lambda backend, **v: edudet.rpn_background_matches(**v),
                    dict(num_boxes=num), dict(num_boxes=sn), "edudet.rpn_background_matches({num_boxes})", NUMPY_ONLY,
                    expect=expect)
    batch, sb = draw(param([4, 0, 100], kind="int", bad=[-1]))
    fraction, sf = draw(param([0.25, 0.0, 1.0], bad=[-0.1, 1.5]))
    seed, ss = draw(st.sampled_from([(0, OK), (2**64, EITHER), (-1, BAD), (NAN, BAD), ("0", BAD)]))
    labels, sl = draw(boxes(max_rows=6, width=1))
    labels = labels.reshape(-1) if sl == OK else labels
    if sl == OK:
        labels = np.round(labels.astype(np.float64)).astype(labels.dtype) if labels.dtype.kind == "f" else labels

    def expect(out):
        pos, neg = out
        problems = expect_array(pos[0], (len(labels),), np.uint8) + expect_array(neg[0], (len(labels),), np.uint8)
        if not problems and ((pos[0] & neg[0]).any() or (pos[0].astype(bool) & (labels < 1)).any()):
            problems.append("a sample both positive and negative, or a positive that is not labelled >= 1")
        return problems

    return Case("BalancedPositiveNegativeSampler", lambda backend, batch_size_per_image, positive_fraction, seed, **v:
                edudet.BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction, seed)([v["labels"]]),
                dict(batch_size_per_image=batch, positive_fraction=fraction, seed=seed, labels=labels),
                dict(batch_size_per_image=sb, positive_fraction=sf, seed=ss, labels=sl),
                "edudet.BalancedPositiveNegativeSampler({batch_size_per_image}, {positive_fraction}, {seed})"
                "([{labels}])", NUMPY_ONLY, expect=expect, aliases=dict(labels=("matched_idxs",)))


# =============================================================================================================
# FCOS targets, anchors, points, strides
# =============================================================================================================
SHAPE_ALIASES = dict(feature_shapes=("feature shape", "feature_shape"), strides=("stride",),
                     image_size=("image_size", "image_shape"), image_shape=("image_shape", "image_size"))


@st.composite
def pyramid(draw, max_levels=3):
    """image_size, feature_shapes (valid: H / 2**k rounded), strides (None or the true ones), statuses, and
    the true strides."""
    h, w = draw(st.sampled_from([(16, 16), (24, 32), (13, 9)]))
    deepest = int(math.log2(min(h, w) // 2))  # every level at least 2 px: its stride is then unambiguous
    first = draw(st.integers(1, deepest))
    levels = draw(st.integers(1, min(max_levels, deepest - first + 1)))
    ks = list(range(first, first + levels))
    shapes = [(-(-h // 2**k), -(-w // 2**k)) for k in ks]
    strides, s_strides = None, OK
    if draw(st.booleans()):
        strides = [2**k for k in ks]
        if _chance(draw, 15):
            strides, s_strides = [2 * s for s in strides], BAD  # mmdetection's P2..P5 mistake
    s_shapes = OK
    if _chance(draw, 10):
        shapes, s_shapes = draw(st.sampled_from([
            [(h + 1, w)] + shapes[1:], [(0, 1)] + shapes[1:], [(NAN, 2)] + shapes[1:], [(2**64, 2)] + shapes[1:],
            [(2,)] + shapes[1:], np.array(shapes), [(2**40, 2**40)] + shapes[1:]])), BAD
    size, s_size = (h, w), OK
    if _chance(draw, 10):
        size, s_size = draw(st.sampled_from(IMAGE_SIZE_BAD)), BAD
    return size, s_size, shapes, s_shapes, strides, s_strides, [2**k for k in ks]


@st.composite
def fcos_targets_cases(draw):
    size, s_size, shapes, s_shapes, strides, s_strides, true_strides = draw(pyramid())
    gt, sg = draw(gt_boxes())
    g = len(gt) if gt.ndim else 0
    num_classes, sn = draw(param([3, 1], kind="int", bad=[0, -1]))
    labels = np.array([draw(st.integers(0, 2)) for _ in range(g)], dtype=np.int64)
    sl = OK if sn != OK or labels.size == 0 or labels.max() < num_classes else BAD
    if g and _chance(draw, 10):
        labels, sl = labels.astype(np.float64) + draw(st.sampled_from([0.5, 1e19, NAN])), BAD
    levels = len(shapes) if isinstance(shapes, list) else 1
    # ranges ending at mmdetection's 1e8 "infinite" sentinel: a gt larger than 1e4 x 1e4 must still be assigned
    edges = sorted(draw(st.lists(st.sampled_from([0.0, 8.0, 16.0, 64.0, 1e4]), min_size=levels - 1,
                                 max_size=levels - 1)))
    ranges = [(lo, hi) for lo, hi in zip([-1.0, *edges], [*edges, 1e8])]
    s_ranges = OK
    if _chance(draw, 10):
        # an infinite upper end is FCOS's own "no upper bound" (edudet.targets.FCOS_INF): valid
        ranges, s_ranges = draw(st.sampled_from([(ranges[:-1] + [(NAN, 1e8)], BAD), (ranges[:-1] + [(5.0, 1.0)], BAD),
                                                 (ranges + [(0.0, 1.0)], BAD),
                                                 (ranges[:-1] + [(ranges[-1][0], INF)], OK)]))
    center_sampling, sc = draw(param([False, True], kind="bool"))
    sc = OK if center_sampling is None else sc  # None: the rule's default (issue 15: off for mmdet's rule)
    radius, sr = draw(param([1.5, 1e-300, 1e300], bad=[0.0, -1.0]))
    norm, sno = draw(param([False, True], kind="bool"))
    # torchvision's matching (issue 15) or mmdetection's (the default); a misspelt rule is refused by name
    bad_rules = [("TORCHVISION", BAD), ("fcos", BAD), (None, BAD), (1, BAD), (["mmdet"], BAD)]
    rule, s_rule = draw(st.sampled_from([("mmdet", OK), ("torchvision", OK)] if not _chance(draw, 8) else bad_rules))
    if rule == "torchvision" and s_ranges == OK and draw(st.booleans()):
        ranges = None  # torchvision's own (0 | 4 size, 8 size | inf) ranges from the anchor sizes
    anchor_sizes, s_anchor = None, OK
    if _chance(draw, 30):  # torchvision's one anchor size per level (its rule only; mmdet's refuses them)
        per_level = [draw(param([8.0, 16.0, (32,), 1.0, 0.5], bad=[0.0, -8.0, (8, 16)], either=[1e300]))
                     for _ in range(levels)]
        anchor_sizes, s_anchor = [v for v, _ in per_level], _worst(*(status for _, status in per_level))
        if _chance(draw, 10):
            anchor_sizes, s_anchor = anchor_sizes + [8.0], BAD  # one size too many
        if rule == "mmdet":
            s_anchor = BAD
    # the points' offset in their cell: None (the rule's: 0.5 mmdet, 0 torchvision), a number in [0, 1], "fcos"
    offset, so = draw(st.one_of(st.just((None, OK)), st.just(("fcos", OK)),
                                param([0.5, 0.0, 1.0], bad=[-0.5, 1.5, "centre"])))
    so = OK if offset is None else so
    dtype = out_float_dtype(gt)

    def expect(out):
        p = sum(math.prod(s) for s in shapes)
        problems = (expect_array(out.labels, (p,), np.int64, name="labels")
                    + expect_array(out.gt_index, (p,), np.int64, name="gt_index")
                    + expect_array(out.centerness, (p,), dtype, name="centerness"))
        if not problems and g and out.gt_index.max() >= g:
            problems.append("gt_index beyond the ground truths")
        if not problems and g and rule == "torchvision":
            # torchvision ranks by 1e8 - area and drops ranks below 1e-5: no box of area >= 1e8 is matched
            matched = np.unique(out.gt_index[out.gt_index >= 0])
            sides = np.diff(np.asarray(gt, np.float64).reshape(-1, 2, 2), axis=1)[:, 0]
            area = (sides[:, 0] * sides[:, 1])[matched]
            if (area > 1e8 * (1 + 1e-6)).any():
                problems.append(f"torchvision's rule matched a box of area {area.max():g} >= 1e8")
        return problems

    return Case("edudet.fcos_targets", lambda backend, **v: edudet.fcos_targets(**v, backend=backend),
                dict(gt_boxes=gt, gt_labels=labels, image_size=size, feature_shapes=shapes, num_classes=num_classes,
                     strides=strides, regress_ranges=ranges, center_sampling=center_sampling,
                     center_sample_radius=radius, norm_on_bbox=norm, offset=offset, rule=rule,
                     anchor_sizes=anchor_sizes),
                dict(gt_boxes=sg, gt_labels=sl if sg == OK else EITHER, image_size=s_size, feature_shapes=s_shapes,
                     num_classes=sn, strides=s_strides, regress_ranges=s_ranges, center_sampling=sc,
                     center_sample_radius=sr, norm_on_bbox=sno, offset=so, rule=s_rule, anchor_sizes=s_anchor),
                "edudet.fcos_targets({gt_boxes}, {gt_labels}, {image_size}, {feature_shapes}, {num_classes}, "
                "{strides}, {regress_ranges}, {center_sampling}, {center_sample_radius}, {norm_on_bbox}, "
                "offset={offset}, rule={rule}, anchor_sizes={anchor_sizes}, backend={backend})",
                dispatcher_backends("edudet.targets", "fcos_assign"), expect=expect,
                aliases={**SHAPE_ALIASES, "regress_ranges": ("regress_ranges",)})


@st.composite
def anchor_cases(draw):
    size, s_size, shapes, s_shapes, strides, s_strides, true_strides = draw(pyramid())
    levels = len(shapes) if isinstance(shapes, list) else 1
    if draw(st.booleans()):
        offset, so = draw(st.one_of(param([0.5, 0.0], bad=["centre", -0.5, 1.5]), st.just(("fcos", OK))))
        dtype, sd = draw(st.sampled_from([(np.float32, OK), (np.float64, OK), (np.int32, BAD)]))
        expect_dtype = dtype if sd == OK else np.float32

        def expect(out):
            if not isinstance(out, list) or len(out) != levels:
                return [f"want {levels} levels of points, got {type(out).__name__}"]
            return sum((expect_array(p, (math.prod(s), 2), expect_dtype) for p, s in zip(out, shapes)), [])

        return Case("edudet.grid_points", lambda backend, **v: edudet.grid_points(**v),
                    dict(image_size=size, feature_shapes=shapes, strides=strides, offset=offset, dtype=dtype),
                    dict(image_size=s_size, feature_shapes=s_shapes, strides=s_strides, offset=so, dtype=sd),
                    "edudet.grid_points({image_size}, {feature_shapes}, {strides}, {offset}, {dtype})", NUMPY_ONLY,
                    expect=expect, aliases=SHAPE_ALIASES)
    sizes, ss = draw(param([32.0, 1.0, 0.5, 512.0], bad=[0.0, -8.0], either=[1e300, 1e-300]))
    ratio, sr = draw(param([1.0, 0.5, 2.0], bad=[0.0, -1.0], either=[1e-300, 1e300]))
    center_offset, sc = draw(param([0.0, 0.5], bad=[-0.5, 2.0]))
    num_images, sni = draw(st.one_of(st.just((None, OK)), param([2, 0], kind="int", bad=[-1])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))

    def call(backend, sizes, aspect_ratios, center_offset, **v):
        gen = edudet.AnchorGenerator(((sizes,),) * levels, ((aspect_ratios, 1.0),) * levels,
                                     center_offset=center_offset)
        return gen(**v)

    def expect(out):
        a = sum(math.prod(s) * 2 for s in shapes)
        arrays = out if isinstance(out, list) else [out]
        if num_images is not None and len(arrays) != int(num_images):
            return [f"want {num_images} anchor sets, got {len(arrays)}"]
        return sum((expect_array(x, (a, 4), dtype) for x in arrays), [])

    return Case("edudet.AnchorGenerator", call,
                dict(sizes=sizes, aspect_ratios=ratio, center_offset=center_offset, image_size=size,
                     feature_shapes=shapes, strides=strides, dtype=dtype, num_images=num_images),
                dict(sizes=ss, aspect_ratios=sr, center_offset=sc, image_size=s_size, feature_shapes=s_shapes,
                     strides=s_strides, dtype=OK, num_images=sni),
                f"edudet.AnchorGenerator(((({{sizes}},),) * {levels}, (({{aspect_ratios}}, 1.0),) * {levels}, "
                "center_offset={center_offset})({image_size}, {feature_shapes}, {strides}, {dtype}, {num_images})",
                NUMPY_ONLY, expect=expect, aliases={**SHAPE_ALIASES, "sizes": ("sizes",),
                                                     "aspect_ratios": ("aspect_ratios",)})


@st.composite
def stride_cases(draw):
    size, s_size, shapes, s_shapes, strides, s_strides, true_strides = draw(pyramid())
    which = draw(st.sampled_from(["infer_scale", "infer_stride", "check_strides", "check_feature_shapes"]))
    if which != "check_feature_shapes" and s_shapes == BAD and isinstance(shapes, list) and all(
            len(x) == 2 and all(isinstance(v, int) and 0 < v < 2**63 for v in x) for x in shapes):
        s_shapes = EITHER  # only check_feature_shapes is strict; stride inference rounds to a power of two
    if which in ("infer_scale", "infer_stride"):
        shape = shapes[0] if isinstance(shapes, list) and shapes else shapes
        fn = getattr(edudet, which)

        def expect(out):
            ok = isinstance(out, (int, float)) and math.isfinite(out) and out > 0
            return [] if ok else [f"{which} gave {out!r}"]

        return Case(f"edudet.{which}", lambda backend, **v: fn(**v), dict(feature_shape=shape, image_shape=size),
                    dict(feature_shape=s_shapes, image_shape=s_size),
                    f"edudet.{which}({{feature_shape}}, {{image_shape}})",
                    NUMPY_ONLY, expect=expect, aliases=dict(feature_shape=("feature", "shape"),
                                                            image_shape=("image_shape", "image_size")))
    if which == "check_strides":
        strides = strides if strides is not None else true_strides
        return Case("edudet.check_strides", lambda backend, **v: edudet.check_strides(**v),
                    dict(strides=strides, feature_shapes=shapes, image_shape=size),
                    dict(strides=s_strides, feature_shapes=s_shapes, image_shape=s_size),
                    "edudet.check_strides({strides}, {feature_shapes}, {image_shape})", NUMPY_ONLY,
                    aliases=SHAPE_ALIASES)
    return Case("edudet.check_feature_shapes", lambda backend, **v: edudet.check_feature_shapes(**v),
                dict(feature_shapes=shapes, image_shape=size), dict(feature_shapes=s_shapes, image_shape=s_size),
                "edudet.check_feature_shapes({feature_shapes}, {image_shape})", NUMPY_ONLY, aliases=SHAPE_ALIASES)


# =============================================================================================================
# RoI ops: roi_align, roi_pool, MultiScaleRoIAlign, paste_masks_in_image, roi_grid_to_image
# =============================================================================================================
@st.composite
def feature_maps(draw, n_images=None, height=None, width=None, channels=None):
    """(array, status): (N, C, H, W) values mostly moderate, sometimes huge (up to max / 2**20, so sums of up
    to a million samples stay finite), subnormal or NaN/inf (EITHER: refuse, or agree on every backend)."""
    n = draw(st.integers(1, 2)) if n_images is None else n_images
    c = draw(st.integers(1, 2)) if channels is None else channels
    h = draw(st.integers(1, 5)) if height is None else height
    w = draw(st.integers(1, 5)) if width is None else width
    dtype = draw(float_dtypes(8))
    values = np.array(draw(st.lists(ordinary_floats(-10, 10), min_size=n * c * h * w, max_size=n * c * h * w)),
                      dtype=np.float64).reshape(n, c, h, w)
    fdtype = np.float64 if dtype == np.float64 else np.float32
    if _chance(draw, 25):
        values = values * draw(st.sampled_from([float(np.finfo(fdtype).max) / 2**24, 1e-300, 1e-40, 1e-310]))
    if _chance(draw, 15):
        values.reshape(-1)[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(ALL_SPECIALS))
    array = cast(values, dtype)
    status = OK
    if not real_dtype(array):
        status = BAD
    elif array.dtype.kind == "f" and not np.isfinite(array).all():
        status = EITHER
    elif array.dtype.kind == "f" and np.abs(array.astype(np.float64)).max() > float(np.finfo(fdtype).max) / 2**20:
        status = EITHER  # a float16/spiked value near the dtype's max: sums may overflow differently
    if _chance(draw, 5):
        array, status = draw(st.sampled_from([array[0], array[None], array[:, :, :0]])), BAD
    return draw(layouts(array)), status


def roi_tolerance(fmap: np.ndarray):
    """Outputs are weighted sums of inputs: a few ulps of the largest input (plus a few subnormals: the
    sums may be taken in another order)."""
    dtype = np.float64 if fmap.dtype == np.float64 else np.float32
    with np.errstate(invalid="ignore"):
        finite = np.asarray(fmap, dtype=np.float64)
        scale = float(np.abs(finite[np.isfinite(finite)]).max()) if np.isfinite(finite).any() else 1.0
    return 0.0, 64 * float(np.finfo(dtype).eps) * scale + 64 * float(np.finfo(dtype).smallest_subnormal)


@st.composite
def rois(draw, num_images, scale_ok=True):
    """(rois, status): (K, 5) [batch_index, x1, y1, x2, y2] or a list of per-image (K_i, 4) arrays."""
    b, sb = draw(boxes(max_rows=4, shape_percent=4))
    if sb == BAD and b.ndim == 2 and b.shape[1] == 4 and real_dtype(b) and np.isfinite(b.astype(np.float64)).all():
        sb = EITHER  # beyond the coordinate limit: refused, or (after spatial_scale) pooled alike everywhere
    if b.ndim != 2 or b.shape[1] != 4 or not real_dtype(b):
        return b, BAD
    k = len(b)
    if draw(st.booleans()):  # the list form
        cut = draw(st.integers(0, k))
        parts = [b[:cut], b[cut:]] if num_images > 1 else [b]
        if _chance(draw, 5):
            return parts + [b[:0]] * num_images, BAD  # more per-image arrays than images
        return parts, sb
    index = np.array([draw(st.integers(0, num_images - 1)) for _ in range(k)], dtype=np.float64)
    si = OK
    if k and _chance(draw, 10):
        bad_index = draw(st.sampled_from([-1.0, float(num_images), 0.5, NAN, 2.0**64]))
        index[draw(st.integers(0, k - 1))], si = bad_index, BAD
    array = np.concatenate([index[:, None].astype(b.dtype if b.dtype.kind == "f" else np.float64), b], axis=1)
    return draw(layouts(array)), _worst(sb, si)


OUTPUT_SIZE_BAD = [0, -1, NAN, INF, 2**64, (2,), (1, 2, 3), "2", None, (NAN, 2), (2, 0), 2.5]


@st.composite
def output_size_param(draw, huge=True):
    size = draw(st.sampled_from([2, 1, 3, (2, 3), [1, 2]]))
    if not _chance(draw, 15):
        return size, OK
    pool = [(x, BAD) for x in OUTPUT_SIZE_BAD] + [(x, EITHER) for x in [np.array(2), np.int64(2), 2.0,
                                                                          np.array([2, 3]), (np.array(2), 2)]]
    # a 1e9 x 1e9 output cannot be allocated: a named error before allocating, not a MemoryError
    pool += [(10**9, BAD)] if huge else []
    return draw(st.sampled_from(pool))


def adaptive_samples(rois_value, spatial_scale, output_size, aligned):
    """(largest adaptive grid per bin, total samples) of the RoIs, to keep slow-but-valid cases out."""
    if isinstance(rois_value, list):
        coords = np.concatenate([np.asarray(r, dtype=np.float64) for r in rois_value] or [np.zeros((0, 4))])
    else:
        coords = np.asarray(rois_value, dtype=np.float64)[:, 1:]
    ph, pw = (output_size, output_size) if np.ndim(output_size) == 0 else tuple(output_size)
    with np.errstate(all="ignore"):
        size_w = np.maximum((coords[:, 2] - coords[:, 0]) * float(spatial_scale), 0 if aligned else 1)
        size_h = np.maximum((coords[:, 3] - coords[:, 1]) * float(spatial_scale), 0 if aligned else 1)
        gw, gh = np.ceil(size_w / float(pw)), np.ceil(size_h / float(ph))
    if not coords.size:
        return 0.0, 0.0
    return float(max(gw.max(), gh.max())), float((gw * gh).sum() * float(ph) * float(pw))


def checked_roi_align(backend, **values):
    """ops.roi_align on `backend`, its result then checked by edudet.testing.assert_roi_align_close (the
    oracle must accept every backend's own result on finite maps, extreme ones included)."""
    import edudet.testing as testing

    out = ops.roi_align(**values, backend=backend)
    fmap = np.asarray(values["input"])
    if values["pool_mode"] == "avg" and np.isfinite(fmap.astype(np.float64)).all():
        testing.assert_roi_align_close(out, values["input"], values["boxes"], values["output_size"],
                                       values["spatial_scale"], values["sampling_ratio"], values["aligned"])
    return out


@st.composite
def roi_align_cases(draw, pool=False):
    fmap, sm = draw(feature_maps())
    num_images = fmap.shape[0] if fmap.ndim == 4 else 1
    r, sr = draw(rois(num_images))
    output_size, so = draw(output_size_param())
    spatial_scale, ss = draw(param([1.0, 0.5, 0.25, 1 / 16, 2.0], bad=[0.0, -1.0], either=[1e300, 1e-300]))
    if sr == OK and ss == OK:
        coords = (np.concatenate([np.asarray(x, np.float64).reshape(-1, 4) for x in r] or [np.zeros((0, 4))])
                  if isinstance(r, list) else np.asarray(r, np.float64)[:, 1:])
        if coords.size and np.abs(coords).max() * float(spatial_scale) > COORDINATE_LIMIT:
            sr = EITHER  # within the limit, but not once scaled (1e15 * 2): refused naming boxes, or pooled
    k = (len(r) if not isinstance(r, list) else sum(len(x) for x in r)) if sr != BAD else 0
    if so == BAD and output_size == 10**9 and k == 0:
        so = EITHER  # no RoIs: the (0, C, 1e9, 1e9) output is empty, nothing to allocate
    c = fmap.shape[1] if fmap.ndim == 4 else 0
    if pool:
        values = dict(input=fmap, boxes=r, output_size=output_size, spatial_scale=spatial_scale)
        status = dict(input=sm, boxes=sr, output_size=so, spatial_scale=ss)
        template = "ops.roi_pool({input}, {boxes}, {output_size}, {spatial_scale}, backend={backend})"
        call = lambda backend, **v: ops.roi_pool(**v, backend=backend)  # noqa: E731
        backends = dispatcher_backends("edudet.ops.roi_pool", "roi_pool")
        tolerance = (0.0, 0.0)  # a max picks one input value: exact
    else:
        sampling_ratio, sa = draw(param([-1, 0, 1, 2, 3], kind="int", bad=[10**6, 2**62]))
        aligned, sal = draw(param([False, True, np.True_], kind="bool"))
        pool_mode, sp = draw(st.one_of(st.sampled_from([("avg", OK), ("max", OK)]),
                                       st.sampled_from([("AVG", BAD), (None, BAD), (1, BAD)])))
        if sr != BAD and so == OK and ss == OK and sa == OK and sal == OK and sampling_ratio <= 0 and k:
            grid, total = adaptive_samples(r, spatial_scale, output_size, bool(aligned))
            if grid > 1024:
                sr = EITHER  # adaptive grids of thousands of samples per bin may be refused, naming boxes
            elif total > 2e5:
                assume(False)  # valid but slow (millions of samples): not this suite's business
        values = dict(input=fmap, boxes=r, output_size=output_size, spatial_scale=spatial_scale,
                      sampling_ratio=sampling_ratio, aligned=aligned, pool_mode=pool_mode)
        status = dict(input=sm, boxes=sr, output_size=so, spatial_scale=ss, sampling_ratio=sa, aligned=sal,
                      pool_mode=sp)
        template = ("ops.roi_align({input}, {boxes}, {output_size}, {spatial_scale}, {sampling_ratio}, {aligned}, "
                    "{pool_mode}, backend={backend})")
        call = checked_roi_align
        backends = dispatcher_backends("edudet.ops.roi_align", "roi_align")
        tolerance = roi_tolerance(fmap) if sm != BAD else (0.0, 0.0)
    # float16 maps give float16 results (computed in float32, rounded once: README); ints compute in float32
    dtype = fmap.dtype.type if fmap.dtype in (np.float16, np.float32, np.float64) else np.float32

    def expect(out):
        ph, pw = (output_size, output_size) if np.ndim(output_size) == 0 else tuple(output_size)
        problems = expect_array(out, (k, c, int(ph), int(pw)), dtype, finite=sm == OK)
        if not problems and sm == OK and out.size:  # weighted averages / maxima of the input (or 0)
            top = float(np.abs(np.asarray(fmap, dtype=np.float64)).max())
            if np.abs(out.astype(np.float64)).max() > top * (1 + 1e-5) + tolerance[1]:
                problems.append(f"output beyond the input's range ({top:g}): {np.abs(out).max()!r}")
        return problems

    return Case("ops.roi_pool" if pool else "ops.roi_align", call, values, status, template, backends, tolerance,
                expect, aliases=dict(input=("input",), boxes=("boxes",)))


@st.composite
def multiscale_cases(draw):
    h, w = draw(st.sampled_from([(32, 32), (32, 24)]))
    n = draw(st.integers(1, 2))
    levels = draw(st.integers(1, 2))
    c = draw(st.integers(1, 2))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    names = [f"p{k}" for k in range(2, 2 + levels)]
    features = {}
    s_features = OK
    for i, name in enumerate(names):
        fmap, sm = draw(feature_maps(n_images=n, height=h // 2**(2 + i), width=w // 2**(2 + i), channels=c))
        if sm == OK:
            with np.errstate(over="ignore"):
                fmap = fmap.astype(dtype)  # one dtype for every level; a float64 1e300 becomes inf here
            sm = OK if np.isfinite(fmap).all() else EITHER
        features[name] = fmap
        s_features = _worst(s_features, sm if sm == OK else EITHER if sm == EITHER else BAD)
    if s_features == BAD:
        s_features = EITHER  # a malformed level may also be refused for its dtype/shape mismatch: names features
    per_image, s_boxes = [], OK
    for _ in range(n):
        b, sb = draw(boxes(max_rows=3, shape_percent=3))
        per_image.append(b)
        s_boxes = _worst(s_boxes, sb)
    shapes = [(h, w)] * n
    s_shapes = OK
    if _chance(draw, 10):
        shapes, s_shapes = draw(st.sampled_from([[(0, w)] * n, [(NAN, w)] * n, [(h,)] * n, [(h, w)] * (n + 1)])), BAD
    output_size, so = draw(output_size_param())
    sampling_ratio, sa = draw(param([2, 1, 0, -1], kind="int", bad=[10**6]))
    strides, s_strides = None, OK
    if draw(st.booleans()):
        strides = [2**(2 + i) for i in range(levels)]
        if _chance(draw, 15):
            strides, s_strides = [2 * s for s in strides], BAD
    if sa == OK and s_boxes == OK and sampling_ratio <= 0:
        sizes = [np.abs(np.asarray(b, dtype=np.float64)).max(initial=0.0) for b in per_image]
        if max(sizes) > 1e4:
            s_boxes = EITHER  # adaptive sampling of a huge box: refused by name, or slow
            assume(max(sizes) > 1e6)
    k = sum(len(b) for b in per_image) if s_boxes != BAD else 0
    if so == BAD and output_size == 10**9 and k == 0:
        so = EITHER  # no boxes: the output is empty

    def call(backend, features, boxes, image_shapes, output_size, sampling_ratio, featmap_strides):
        pooler = MultiScaleRoIAlign(names, output_size, sampling_ratio, featmap_strides=featmap_strides,
                                    backend=backend)
        return pooler(features, boxes, image_shapes)

    def expect(out):
        ph, pw = (output_size, output_size) if np.ndim(output_size) == 0 else tuple(output_size)
        return expect_array(out, (k, c, int(ph), int(pw)), dtype, finite=s_features == OK)

    tolerance = roi_tolerance(np.concatenate([f.reshape(-1) for f in features.values()])) \
        if s_features == OK else (0.0, 1e-300)
    return Case("MultiScaleRoIAlign", call,
                dict(features=features, boxes=per_image, image_shapes=shapes, output_size=output_size,
                     sampling_ratio=sampling_ratio, featmap_strides=strides),
                dict(features=s_features, boxes=s_boxes, image_shapes=s_shapes, output_size=so, sampling_ratio=sa,
                     featmap_strides=s_strides),
                f"MultiScaleRoIAlign({names!r}, {{output_size}}, {{sampling_ratio}}, featmap_strides="
                "{featmap_strides}, backend={backend})({features}, {boxes}, {image_shapes})",
                dispatcher_backends("edudet.ops.roi_align", "roi_align"), tolerance, expect,
                aliases=dict(image_shapes=("image_shapes",), featmap_strides=("stride",),
                             features=("features",)))


@st.composite
def paste_masks_cases(draw):
    k, m = draw(st.integers(0, 3)), draw(st.integers(1, 4))
    dtype = draw(float_dtypes(10))
    values = np.array(draw(st.lists(st.floats(0, 1), min_size=k * m * m, max_size=k * m * m)),
                      dtype=np.float64).reshape(k, 1, m, m)
    if k and _chance(draw, 15):
        values.reshape(-1)[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(ALL_SPECIALS))
    masks = cast(values, dtype)
    s_masks = OK if real_dtype(masks) and np.isfinite(masks.astype(np.float64)).all() else BAD
    if _chance(draw, 5):
        masks, s_masks = draw(st.sampled_from([masks[:, 0], masks[..., :max(m - 1, 0)], masks[None]])), BAD
    masks = draw(layouts(masks))
    b, sb = draw(boxes(n=k))
    # a 10**6 x 10**6 image per mask cannot be allocated (a named error); with no masks the output is empty
    shape, s_shape = draw(image_size_param(valid=((12, 10), (5, 7)), **({"bad": [(10**6, 10**6)]} if k else {})))
    padding, sp = draw(param([1, 0, 2], kind="int", bad=[-1], either=[10**6]))
    out_dtype = np.float64 if masks.dtype == np.float64 else np.float32

    def expect(out):
        h, w = (int(x) for x in np.asarray(shape))
        problems = expect_array(out, (k, 1, h, w), out_dtype)
        if not problems and out.size:
            low, high = min(0.0, float(masks.min())), max(0.0, float(masks.max()))
            if out.min() < low - 1e-6 or out.max() > high + 1e-6:
                problems.append(f"pasted values outside the masks' range [{low}, {high}]")
        return problems

    return Case("ops.paste_masks_in_image", lambda backend, **v: ops.paste_masks_in_image(**v, backend=backend),
                dict(masks=masks, boxes=b, image_shape=shape, padding=padding),
                dict(masks=s_masks, boxes=sb, image_shape=s_shape, padding=sp),
                "ops.paste_masks_in_image({masks}, {boxes}, {image_shape}, {padding}, backend={backend})",
                dispatcher_backends("edudet.ops.masks", "paste_masks_in_image"), expect=expect)


@st.composite
def grid_to_image_cases(draw):
    b, sb = draw(boxes(max_rows=3))
    k = len(b) if b.ndim else 0
    points, sp = draw(boxes(max_rows=3, width=2))
    if sp == BAD and points.ndim == 2 and real_dtype(points) and np.isfinite(points.astype(np.float64)).all():
        sp = EITHER  # grid cells, not coordinates: the coordinate limit need not apply
    grid, sg = draw(output_size_param(huge=False))  # a divisor here: no allocation
    dtype = out_float_dtype(b)

    def expect(out):
        return expect_array(out, (k, len(points), 2), dtype)

    return Case("edudet.roi_grid_to_image", lambda backend, **v: edudet.roi_grid_to_image(**v),
                dict(grid_points=points, boxes=b, grid_size=grid), dict(grid_points=sp, boxes=sb, grid_size=sg),
                "edudet.roi_grid_to_image({grid_points}, {boxes}, {grid_size})", NUMPY_ONLY, expect=expect)


# =============================================================================================================
# Rotated boxes: box_iou_rotated, nms_rotated, batched_nms_rotated, corners, mmcv conversions, coder, RoIAlign
# =============================================================================================================
ANGLES = [0.0, 90.0, 45.0, -30.0, 180.0, 360.5, -0.0, 1e-300, 1e15, 1e16]


@st.composite
def rotated_boxes(draw, min_rows=0, max_rows=5, n=None, width=5):
    """(array, status): (n, 5) ``(cx, cy, w, h, angle in degrees)``; BAD for NaN/inf, |value| > the coordinate
    limit, negative sides, wrong dtypes or shapes. `width=6` prepends a batch index column of 0."""
    n = draw(st.integers(min_rows, max_rows)) if n is None else n
    dtype = draw(float_dtypes(8))
    rows = []
    for _ in range(n):
        if rows and _chance(draw, 15):
            rows.append(list(rows[-1]))
            continue
        side = st.one_of(st.just(0.0), ordinary_floats(0.0, 60.0))
        rows.append([draw(ordinary_floats()), draw(ordinary_floats()), draw(side), draw(side),
                     draw(st.one_of(st.sampled_from(ANGLES), ordinary_floats(-720.0, 720.0)))])
    values = np.array(rows, dtype=np.float64).reshape(n, 5)
    if n and _chance(draw, 30):
        with np.errstate(over="ignore", under="ignore"):
            values[:, :4] *= draw(st.sampled_from(SCALES))
    if n and _chance(draw, 20):
        values[draw(st.integers(0, n - 1)), draw(st.integers(0, 4))] = draw(st.sampled_from(ALL_SPECIALS + [-1.0]))
    if width == 6:
        values = np.concatenate([np.zeros((n, 1)), values], axis=1)
    array = cast(values, dtype)
    if _chance(draw, 5):
        array = draw(st.sampled_from([array.reshape(-1), array[:, :4], array[:, :, None]]))
    array = draw(layouts(array))
    status = coordinate_status(array, width)
    if status == OK and array.size and (array[:, width - 3:width - 1] < 0).any():
        status = BAD  # a negative width or height
    return array, status


@st.composite
def box_iou_rotated_cases(draw):
    n = draw(st.integers(0, 4))
    b1, s1 = draw(rotated_boxes(n=n))
    aligned, sa = draw(param([False, True], kind="bool"))
    b2, s2 = draw(rotated_boxes(n=n if aligned is True and not _chance(draw, 10) else None))
    if aligned is True and s1 == OK and s2 == OK and len(b1) != len(b2):
        s1 = s2 = BAD
    dtype = out_float_dtype(b1, b2)
    op = "box_iou_rotated_aligned" if aligned is True else "box_iou_rotated"

    def expect(out):
        shape = (len(b1),) if aligned is True else (len(b1), len(b2))
        problems = expect_array(out, shape, dtype)
        if not problems and out.size and not ((out >= 0) & (out <= 1)).all():
            problems.append(f"IoU outside [0, 1]: {out[(out < 0) | (out > 1)][:4]}")
        return problems

    return Case("ops.box_iou_rotated", lambda backend, **v: ops.box_iou_rotated(**v, backend=backend),
                dict(boxes1=b1, boxes2=b2, aligned=aligned), dict(boxes1=s1, boxes2=s2, aligned=sa),
                "ops.box_iou_rotated({boxes1}, {boxes2}, {aligned}, backend={backend})",
                dispatcher_backends("edudet.ops.rotated", op), (0.0, ulps(dtype)), expect)


@st.composite
def nms_rotated_cases(draw):
    b, sb = draw(rotated_boxes(max_rows=7))
    n = len(b) if b.ndim >= 1 else 0
    scores, ss = draw(scores_param(n))
    threshold, st_ = draw(param([0.5, 0.0, 0.7, 1.0], bad=[-0.1]))
    values = dict(boxes=b, scores=scores, iou_threshold=threshold)
    status = dict(boxes=sb, scores=ss if sb == OK else EITHER, iou_threshold=st_)
    if draw(st.booleans()):
        return Case("ops.nms_rotated", lambda backend, **v: ops.nms_rotated(**v, backend=backend), values, status,
                    "ops.nms_rotated({boxes}, {scores}, {iou_threshold}, backend={backend})",
                    dispatcher_backends("edudet.ops.rotated", "nms_rotated"), expect=expect_keep(n, scores))
    idxs, si = draw(st.sampled_from([(np.arange(n) % 2, OK), (np.arange(n) % 2 + 0.5, BAD if n else OK),
                                     (np.full(n, 1e19), BAD if n else OK)]))
    return Case("ops.batched_nms_rotated", lambda backend, **v: ops.batched_nms_rotated(**v, backend=backend),
                {**values, "idxs": idxs}, {**status, "idxs": si if sb == OK else EITHER},
                "ops.batched_nms_rotated({boxes}, {scores}, {idxs}, {iou_threshold}, backend={backend})",
                dispatcher_backends("edudet.ops.rotated", "batched_nms_rotated"), expect=expect_keep(n, scores))


@st.composite
def rotated_helpers_cases(draw):
    b, sb = draw(rotated_boxes())
    n = len(b) if b.ndim >= 1 else 0
    dtype = out_float_dtype(b)
    which = draw(st.sampled_from(["corners", "from_mmcv", "to_mmcv", "coder"]))
    if which == "corners":
        return Case("ops.rotated_box_corners", lambda backend, **v: ops.rotated_box_corners(**v), dict(boxes=b),
                    dict(boxes=sb), "ops.rotated_box_corners({boxes})", NUMPY_ONLY,
                    expect=lambda out: expect_array(out, (n, 4, 2), dtype))
    if which != "coder":
        clockwise, sc = draw(param([True, False], kind="bool"))
        fn = ops.rotated_boxes_from_mmcv if which == "from_mmcv" else ops.rotated_boxes_to_mmcv
        return Case(f"ops.rotated_boxes_{which}", lambda backend, **v: fn(**v), dict(boxes=b, clockwise=clockwise),
                    dict(boxes=sb, clockwise=sc), f"ops.rotated_boxes_{which}({{boxes}}, {{clockwise}})", NUMPY_ONLY,
                    expect=lambda out: expect_array(out, (n, 5), dtype))
    other, so = draw(rotated_boxes(n=n))
    if sb == OK and so == OK and ((np.asarray(b)[:, 2:4] <= 0).any() or (np.asarray(other)[:, 2:4] <= 0).any()):
        sb = so = EITHER  # a zero side: the log of a size ratio is undefined (refuse, or give inf)
    weights, sw = draw(st.sampled_from([((1.0,) * 5, OK), ((10.0, 10.0, 5.0, 5.0, 1.0), OK), ((1.0,) * 4, BAD),
                                        ((1.0, 1.0, 0.0, 1.0, 1.0), BAD), ((NAN,) * 5, BAD)]))
    return Case("RotatedBoxCoder.get_deltas",
                lambda backend, weights, **v: ops.RotatedBoxCoder(weights).get_deltas(**v),
                dict(weights=weights, src_boxes=b, target_boxes=other), dict(weights=sw, src_boxes=sb, target_boxes=so),
                "ops.RotatedBoxCoder({weights}).get_deltas({src_boxes}, {target_boxes})", NUMPY_ONLY,
                expect=lambda out: expect_array(out, (n, 5), dtype, finite=sb == OK and so == OK))


@st.composite
def roi_align_rotated_cases(draw):
    fmap, sm = draw(feature_maps(n_images=1))
    r, sr = draw(rotated_boxes(max_rows=3, width=6))
    output_size, so = draw(output_size_param())
    spatial_scale, ss = draw(param([1.0, 0.5, 0.25], bad=[0.0, -1.0], either=[1e300, 1e-300]))
    sampling_ratio, sa = draw(param([-1, 0, 1, 2], kind="int", bad=[10**6, 2**62]))
    aligned, sal = draw(param([True, False], kind="bool"))
    if sr != OK and r.ndim == 2 and r.shape[1] == 6 and real_dtype(r) and np.isfinite(r.astype(np.float64)).all():
        sr = EITHER if (r[:, 3:5] >= 0).all() else sr
    k = len(r) if sr != BAD and r.ndim == 2 else 0
    if so == BAD and output_size == 10**9 and k == 0:
        so = EITHER  # no RoIs: the output is empty
    if sr != BAD and so == OK and ss == OK and sa == OK and sampling_ratio <= 0 and k:
        ph, pw = (output_size, output_size) if np.ndim(output_size) == 0 else tuple(output_size)
        with np.errstate(all="ignore"):
            grid_w = np.ceil(np.maximum(r[:, 3].astype(np.float64) * spatial_scale, 1) / pw)
            grid_h = np.ceil(np.maximum(r[:, 4].astype(np.float64) * spatial_scale, 1) / ph)
        if max(grid_w.max(), grid_h.max()) > 1024:
            sr = EITHER
        elif float((grid_w * grid_h).sum()) * ph * pw > 2e5:
            assume(False)  # valid but slow: not this suite's business
    c = fmap.shape[1] if fmap.ndim == 4 else 0
    dtype = np.float64 if fmap.dtype == np.float64 else np.float32
    tolerance = roi_tolerance(fmap) if sm != BAD else (0.0, 0.0)

    def expect(out):
        ph, pw = (output_size, output_size) if np.ndim(output_size) == 0 else tuple(output_size)
        problems = expect_array(out, (k, c, int(ph), int(pw)), dtype, finite=sm == OK)
        if not problems and sm == OK and out.size:
            top = float(np.abs(np.asarray(fmap, dtype=np.float64)).max())
            if np.abs(out.astype(np.float64)).max() > top * (1 + 1e-5) + tolerance[1]:
                problems.append(f"output beyond the input's range ({top:g})")
        return problems

    return Case("ops.roi_align_rotated", lambda backend, **v: ops.roi_align_rotated(**v, backend=backend),
                dict(input=fmap, rois=r, output_size=output_size, spatial_scale=spatial_scale,
                     sampling_ratio=sampling_ratio, aligned=aligned),
                dict(input=sm, rois=sr, output_size=so, spatial_scale=ss, sampling_ratio=sa, aligned=sal),
                "ops.roi_align_rotated({input}, {rois}, {output_size}, {spatial_scale}, {sampling_ratio}, {aligned}, "
                "backend={backend})", dispatcher_backends("edudet.ops.roi_align_rotated", "roi_align_rotated"),
                tolerance, expect, aliases=dict(input=("input", "feature map")))


# =============================================================================================================
# Sizes that cannot fit, and the torch / Fortran boundary: fixed cases, one per op
# =============================================================================================================
def size_cases() -> list[Case]:
    """Workloads far beyond memory: a named ValueError before allocating (the child runs under a memory cap,
    so an attempt is a MemoryError, a failure)."""
    many = np.tile(np.array([[0, 0, 10, 10]], np.float32), (100_000, 1))
    one_roi = np.array([[0, 0, 0, 4, 4]], np.float32)
    fmap = np.ones((1, 1, 8, 8), np.float32)
    cases = [
        Case("ops.box_iou", lambda backend, **v: ops.box_iou(**v, backend=backend),
             dict(boxes1=many, boxes2=many), dict(boxes1=BAD, boxes2=BAD),
             "ops.box_iou(np.tile(np.array([[0, 0, 10, 10]], np.float32), (100_000, 1)), <same>, backend={backend})",
             dispatcher_backends("edudet.ops.boxes", "box_iou")),
        Case("ops.roi_align", lambda backend, **v: ops.roi_align(**v, backend=backend),
             dict(input=fmap, boxes=one_roi, output_size=7, sampling_ratio=10**6),
             dict(input=OK, boxes=OK, output_size=OK, sampling_ratio=BAD),
             "ops.roi_align({input}, {boxes}, {output_size}, sampling_ratio={sampling_ratio}, backend={backend})",
             dispatcher_backends("edudet.ops.roi_align", "roi_align")),
        Case("ops.roi_align", lambda backend, **v: ops.roi_align(**v, backend=backend),
             dict(input=fmap, boxes=one_roi, output_size=10**9), dict(input=OK, boxes=OK, output_size=BAD),
             "ops.roi_align({input}, {boxes}, {output_size}, backend={backend})",
             dispatcher_backends("edudet.ops.roi_align", "roi_align")),
        Case("ops.paste_masks_in_image", lambda backend, **v: ops.paste_masks_in_image(**v),
             dict(masks=np.ones((1, 1, 4, 4), np.float32), boxes=np.array([[0, 0, 5, 5]], np.float32),
                  image_shape=(10**6, 10**6)), dict(masks=OK, boxes=OK, image_shape=BAD),
             "ops.paste_masks_in_image({masks}, {boxes}, {image_shape})", NUMPY_ONLY),
        Case("edudet.rpn_background_matches", lambda backend, **v: edudet.rpn_background_matches(**v),
             dict(num_boxes=10**12), dict(num_boxes=BAD), "edudet.rpn_background_matches({num_boxes})", NUMPY_ONLY),
        Case("edudet.AnchorGenerator", lambda backend, **v: edudet.AnchorGenerator(((32,),), ((1.0,),))(**v),
             dict(image_size=(2**31, 2**31), feature_shapes=[(2**31, 2**31)]),
             dict(image_size=BAD, feature_shapes=BAD),
             "edudet.AnchorGenerator(((32,),), ((1.0,),))({image_size}, {feature_shapes})", NUMPY_ONLY,
             aliases=SHAPE_ALIASES),
        Case("edudet.grid_points", lambda backend, **v: edudet.grid_points(**v),
             dict(image_size=(2**31, 2**31), feature_shapes=[(2**31, 2**31)]),
             dict(image_size=BAD, feature_shapes=BAD), "edudet.grid_points({image_size}, {feature_shapes})",
             NUMPY_ONLY, aliases=SHAPE_ALIASES),
        Case("edudet.fcos_targets", lambda backend, **v: edudet.fcos_targets(**v, backend=backend),
             dict(gt_boxes=np.array([[0, 0, 8, 8]], np.float32), gt_labels=np.array([0]), image_size=(2**31, 2**31),
                  feature_shapes=[(2**29, 2**29)], num_classes=1, regress_ranges=[(-1, 1e8)]),
             dict(gt_boxes=OK, gt_labels=OK, image_size=BAD, feature_shapes=BAD, num_classes=OK, regress_ranges=OK),
             "edudet.fcos_targets({gt_boxes}, {gt_labels}, {image_size}, {feature_shapes}, {num_classes}, "
             "regress_ranges={regress_ranges}, backend={backend})",
             dispatcher_backends("edudet.targets", "fcos_assign"), aliases=SHAPE_ALIASES),
        Case("eval.mean_average_precision", lambda backend, **v: edudet.eval.mean_average_precision(**v),
             dict(predictions=[{"boxes": np.array([[0, 0, 4, 4], [0, 0, 4, 4]], np.float32),
                                "scores": np.array([0.9, 0.8], np.float32), "labels": np.array([1.0, 1e19])}],
                  ground_truths=[{"boxes": np.array([[0, 0, 4, 4]], np.float32), "labels": np.array([1])}]),
             dict(predictions=BAD, ground_truths=OK),
             "edudet.eval.mean_average_precision({predictions}, {ground_truths})", NUMPY_ONLY),
    ]
    return cases


def boundary_cases() -> list[Case]:
    """One ordinary call per op, every array argument then given as a torch tensor (accepted with the same
    result, or refused naming it) and as a Fortran-ordered array (accepted with the same result)."""
    import torch

    rng = np.random.default_rng(0)
    b = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 0, 12, 9]], np.float32)
    s = np.array([0.9, 0.8, 0.7, 0.85], np.float32)
    fmap = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    r5 = np.array([[0, 1, 1, 5, 4], [1, 0.5, 0, 6.5, 5.5]], np.float32)
    masks = rng.uniform(0, 1, (2, 1, 4, 4)).astype(np.float32)
    pts = np.array([[1.5, 2.5], [5, 5], [0, 3], [9, 9]], np.float32)
    quality = rng.uniform(0, 1, (2, 4)).astype(np.float32)

    pooler_features = {"p2": rng.standard_normal((1, 2, 8, 8)).astype(np.float32),
                       "p3": rng.standard_normal((1, 2, 4, 4)).astype(np.float32)}
    table = [
        ("ops.box_iou", lambda be, boxes1, boxes2: ops.box_iou(boxes1, boxes2, backend=be),
         dict(boxes1=b, boxes2=b[:2]), dispatcher_backends("edudet.ops.boxes", "box_iou")),
        ("ops.generalized_box_iou", lambda be, **v: ops.generalized_box_iou(**v), dict(boxes1=b, boxes2=b), None),
        ("ops.box_area", lambda be, **v: ops.box_area(**v), dict(boxes=b), None),
        ("ops.box_convert", lambda be, **v: ops.box_convert(**v, in_fmt="xyxy", out_fmt="cxcywh"), dict(boxes=b), None),
        ("ops.clip_boxes_to_image", lambda be, **v: ops.clip_boxes_to_image(**v, size=(8, 8)), dict(boxes=b), None),
        ("ops.remove_small_boxes", lambda be, **v: ops.remove_small_boxes(**v, min_size=9.5), dict(boxes=b), None),
        ("ops.nms", lambda be, **v: ops.nms(**v, iou_threshold=0.5, backend=be), dict(boxes=b, scores=s),
         dispatcher_backends("edudet.ops.nms", "nms")),
        ("ops.batched_nms", lambda be, **v: ops.batched_nms(**v, iou_threshold=0.5, backend=be),
         dict(boxes=b, scores=s, idxs=np.array([0, 0, 1, 0])), dispatcher_backends("edudet.ops.nms", "batched_nms")),
        ("ops.soft_nms", lambda be, **v: ops.soft_nms(**v, backend=be), dict(boxes=b, scores=s),
         dispatcher_backends("edudet.ops.nms", "soft_nms")),
        ("ops.roi_align", lambda be, **v: ops.roi_align(**v, output_size=2, sampling_ratio=2, backend=be),
         dict(input=fmap, boxes=r5), dispatcher_backends("edudet.ops.roi_align", "roi_align")),
        ("ops.roi_pool", lambda be, **v: ops.roi_pool(**v, output_size=2, backend=be), dict(input=fmap, boxes=r5),
         dispatcher_backends("edudet.ops.roi_pool", "roi_pool")),
        ("ops.paste_masks_in_image", lambda be, **v: ops.paste_masks_in_image(**v, image_shape=(12, 13)),
         dict(masks=masks, boxes=b[:2]), None),
        ("BoxCoder.encode", lambda be, **v: edudet.BoxCoder((10, 10, 5, 5)).encode(**v),
         dict(reference_boxes=b, proposals=b[::-1].copy()), None),
        ("BoxCoder.decode", lambda be, **v: edudet.BoxCoder((10, 10, 5, 5)).decode(**v),
         dict(rel_codes=b / 20, boxes=b), None),
        ("edudet.distance2bbox", lambda be, **v: edudet.distance2bbox(**v), dict(points=pts, distance=b), None),
        ("edudet.bbox2distance", lambda be, **v: edudet.bbox2distance(**v), dict(points=pts, bbox=b), None),
        ("edudet.centerness_target", lambda be, **v: edudet.centerness_target(**v), dict(bbox_targets=b + 1), None),
        ("edudet.LevelMapper", lambda be, **v: edudet.LevelMapper(2, 5)(**v), dict(boxes=b * 20), None),
        ("edudet.map_roi_levels", lambda be, **v: edudet.map_roi_levels(**v, num_levels=4), dict(rois=b * 20), None),
        ("Matcher.__call__", lambda be, **v: edudet.Matcher(0.7, 0.3, True)(**v), dict(match_quality_matrix=quality),
         None),
        ("Matcher.match_boxes", lambda be, **v: edudet.Matcher(0.7, 0.3, True).match_boxes(**v, backend=be),
         dict(gt_boxes=b[:2], boxes=b), dispatcher_backends("edudet.matcher", "match_boxes")),
        ("edudet.rpn_targets", lambda be, **v: edudet.rpn_targets(**v, backend=be), dict(anchors=b, gt_boxes=b[:1]),
         dispatcher_backends("edudet.matcher", "match_boxes")),
        ("edudet.roi_head_targets", lambda be, **v: edudet.roi_head_targets(**v, backend=be),
         dict(proposals=b, gt_boxes=b[:2], gt_labels=np.array([1, 2])),
         dispatcher_backends("edudet.matcher", "match_boxes")),
        ("edudet.fcos_targets", lambda be, **v: edudet.fcos_targets(**v, image_size=(16, 16),
                                                                    feature_shapes=[(4, 4), (2, 2)], num_classes=3,
                                                                    regress_ranges=[(-1, 8), (8, 1e8)], backend=be),
         dict(gt_boxes=b[:2], gt_labels=np.array([0, 2])), dispatcher_backends("edudet.targets", "fcos_assign")),
        ("BalancedPositiveNegativeSampler", lambda be, **v: edudet.BalancedPositiveNegativeSampler(4, 0.5, seed=0)(
            [v["labels"]]), dict(labels=np.array([1, 0, 0, -1, 2, 0])), None),
        ("edudet.roi_grid_to_image", lambda be, **v: edudet.roi_grid_to_image(**v, grid_size=4),
         dict(grid_points=pts, boxes=b), None),
        ("MultiScaleRoIAlign", lambda be, boxes: MultiScaleRoIAlign(["p2", "p3"], 2, 2, backend=be)(
            pooler_features, boxes, [(32, 32)]), dict(boxes=[b * 2]), dispatcher_backends("edudet.ops.roi_align",
                                                                                         "roi_align")),
    ]
    cases = []
    for op, call, values, backends in table:
        backends = backends or NUMPY_ONLY
        signal.alarm(WATCHDOG_SECONDS)
        expected = call(backends[0], **values)
        signal.alarm(0)
        tolerance = (0.0, 1e-5)
        for name, value in values.items():
            for how, status in (("torch", EITHER), ("fortran", OK)):
                convert = torch.from_numpy if how == "torch" else np.asfortranarray
                changed = [convert(x) for x in value] if isinstance(value, list) else convert(value)
                case_values = {**values, name: changed}
                cases.append(Case(f"{op}({name}={how})", call, case_values,
                                  {k: (status if k == name else OK) for k in values},
                                  f"{op}(" + ", ".join(f"{k}={{{k}}}" for k in values) + ", backend={backend})",
                                  backends, tolerance, expected=expected))
    return cases


# =============================================================================================================
# The families: one child interpreter each
# =============================================================================================================
# property name -> (strategy, share of the profile's max_examples)
@st.composite
def prior_cases(draw):
    """SSD default boxes, YOLO anchors, mmdetection points and valid flags on adversarial arguments."""
    which = draw(st.sampled_from(["ssd", "yolo", "points", "valid_flags"]))
    h, sh = draw(param([3, 0, 1], kind="int", bad=[-1]))
    w, sw = draw(param([2, 5], kind="int", bad=[-2]))
    stride, ss = draw(param([12, 8, 7], kind="int", bad=[0, -8, 2.5]))
    dtype, sd = draw(st.sampled_from([(np.float32, OK), (np.float64, OK), (np.int32, BAD), (None, BAD)]))
    aliases = {"featmap_sizes": ("featmap_sizes",), "feature_shapes": ("feature_shapes",)}
    if which == "ssd":
        ratio, sr = draw(param([2.0, 3.0], bad=[0.0, -1.0]))
        scale, sc = draw(param([0.2, 0.9, 1.5], bad=[0.0, -0.5]))
        step, sp = draw(st.one_of(st.just((None, OK)), param([8.0, 100.0], bad=[0.0, -8.0])))
        clip, scl = draw(param([True, False], kind="bool"))

        def call(backend, aspect_ratios, scale, steps, clip, feature_shapes, dtype):
            gen = edudet.DefaultBoxGenerator([[aspect_ratios]], scales=[scale, scale], clip=clip,
                                             steps=None if steps is None else [steps])
            return gen((30, 40), feature_shapes, dtype=dtype)

        def expect(out):
            return expect_array(out, (int(h) * int(w) * 4, 4), dtype)

        return Case("edudet.DefaultBoxGenerator", call,
                    dict(aspect_ratios=ratio, scale=scale, steps=step, clip=clip, feature_shapes=[(h, w)], dtype=dtype),
                    dict(aspect_ratios=sr, scale=sc, steps=sp, clip=scl, feature_shapes=worst(sh, sw), dtype=sd),
                    "edudet.DefaultBoxGenerator([[{aspect_ratios}]], scales=[{scale}, {scale}], clip={clip}, "
                    "steps=[{steps}])((30, 40), {feature_shapes}, dtype={dtype})", NUMPY_ONLY, expect=expect,
                    aliases={**aliases, "scale": ("scales",), "steps": ("steps",)})
    if which == "yolo":
        size, sz = draw(param([10.0, 33.5], bad=[0.0, -3.0]))

        def call(backend, strides, size, featmap_sizes, dtype):
            return edudet.YOLOAnchorGenerator([strides], [[(size, 13.0)]])(featmap_sizes, dtype=dtype)

        def expect(out):
            return expect_array(out, (int(h) * int(w), 4), dtype)

        return Case("edudet.YOLOAnchorGenerator", call,
                    dict(strides=stride, size=size, featmap_sizes=[(h, w)], dtype=dtype),
                    dict(strides=ss, size=sz, featmap_sizes=worst(sh, sw), dtype=sd),
                    "edudet.YOLOAnchorGenerator([{strides}], [[({size}, 13.0)]])({featmap_sizes}, dtype={dtype})",
                    NUMPY_ONLY, expect=expect, aliases={**aliases, "size": ("base_sizes",)})
    if which == "points":
        offset, so = draw(param([0.5, 0.0], bad=[-0.5, 1.5]))

        def call(backend, strides, offset, featmap_sizes, dtype):
            return edudet.MlvlPointGenerator([strides], offset)(featmap_sizes, dtype=dtype, with_stride=True)

        def expect(out):
            return expect_array(out, (int(h) * int(w), 4), dtype)

        return Case("edudet.MlvlPointGenerator", call,
                    dict(strides=stride, offset=offset, featmap_sizes=[(h, w)], dtype=dtype),
                    dict(strides=ss, offset=so, featmap_sizes=worst(sh, sw), dtype=sd),
                    "edudet.MlvlPointGenerator([{strides}], {offset})({featmap_sizes}, dtype={dtype}, "
                    "with_stride=True)", NUMPY_ONLY, expect=expect, aliases=aliases)
    count, sn = draw(param([1, 3], kind="int", bad=[0, -1]))

    def expect(out):
        return expect_array(out, (int(h) * int(w) * int(count),), np.bool_)

    return Case("edudet.valid_flags", lambda backend, **v: edudet.valid_flags(**v),
                dict(featmap_size=(h, w), valid_size=(0, 0), num_base_priors=count),
                dict(featmap_size=worst(sh, sw), valid_size=OK, num_base_priors=sn),
                "edudet.valid_flags({featmap_size}, {valid_size}, {num_base_priors})", NUMPY_ONLY, expect=expect)


def worst(*statuses):
    return BAD if BAD in statuses else EITHER if EITHER in statuses else OK


@st.composite
def rotated_anchor_cases(draw):
    """detectron2's rotated anchors: adversarial sizes, ratios, angles, strides, offsets and feature shapes."""
    h, sh = draw(param([3, 0, 1], kind="int", bad=[-1]))
    w, sw = draw(param([2, 5], kind="int", bad=[-2]))
    stride, ss = draw(param([16, 8, 12], kind="int", bad=[0, -8, 2.5]))
    size, sz = draw(param([32.0, 1.0, 0.5], bad=[0.0, -8.0], either=[1e300, 1e-300]))
    ratio, sr = draw(param([1.0, 0.5, 2.0], bad=[0.0, -1.0], either=[1e-300, 1e300]))
    angle, sa = draw(param([0.0, 45.0, -90.0], bad=[], either=[1e300]))
    offset, so = draw(param([0.5, 0.0], bad=[-0.5, 1.5]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))

    def call(backend, sizes, aspect_ratios, angles, strides, offset, feature_shapes):
        gen = edudet.RotatedAnchorGenerator(sizes=[sizes], aspect_ratios=[aspect_ratios], angles=[angles],
                                            strides=[strides], offset=offset)
        return gen(feature_shapes, dtype=dtype, backend=backend)

    def expect(out):
        if not isinstance(out, list) or len(out) != 1:
            return [f"want one level of anchors, got {type(out).__name__}"]
        return expect_array(out[0], (int(h) * int(w), 5), dtype)

    return Case("edudet.RotatedAnchorGenerator", call,
                dict(sizes=size, aspect_ratios=ratio, angles=angle, strides=stride, offset=offset,
                     feature_shapes=[(h, w)]),
                dict(sizes=sz, aspect_ratios=sr, angles=sa, strides=ss, offset=so, feature_shapes=worst(sh, sw)),
                "edudet.RotatedAnchorGenerator(sizes=[{sizes}], aspect_ratios=[{aspect_ratios}], angles=[{angles}], "
                "strides=[{strides}], offset={offset})({feature_shapes}, dtype=np." + np.dtype(dtype).name + ")",
                dispatcher_backends("edudet.rotated_anchors", "rotated_grid_anchors"), (0.0, 0.0), expect,
                aliases={"feature_shapes": ("feature_shapes",)})


@st.composite
def batched_boxes(draw, batch, n):
    """(array, status): (batch, n, 4) boxes of one dtype and layout, as mmdetection's batched bbox_overlaps takes."""
    dtype = draw(float_dtypes(10))
    array = cast(draw(box_values(batch * n)), dtype).reshape(batch, n, 4)
    flat = array.reshape(-1, 4)
    return draw(layouts(array)), coordinate_status(flat)


@st.composite
def iou_variant_cases(draw):
    """DIoU, CIoU, IoA and mmdetection's bbox_overlaps: adversarial boxes, eps and modes; pairwise (N, M),
    aligned (N,) or batched (B, N, M) / (B, N); bbox_overlaps also with mmcv's offset=1."""
    which = draw(st.sampled_from(["distance_box_iou", "complete_box_iou", "box_ioa", "bbox_overlaps"]))
    aligned, sa = draw(param([False, True], kind="bool"))
    rows = draw(st.integers(0, 4))
    if _chance(draw, 25):  # batched: (B, N, 4) against (B, M, 4), the same B (else refused, naming both)
        batch = draw(st.integers(1, 2))
        b1, s1 = draw(batched_boxes(batch, rows))
        other_batch = batch if not _chance(draw, 10) else batch + 1
        b2, s2 = draw(batched_boxes(other_batch, rows if aligned is True else draw(st.integers(0, 4))))
        if OK == s1 == s2 and other_batch != batch:
            s1 = s2 = BAD
    else:
        b1, s1 = draw(boxes(n=rows))
        b2, s2 = draw(boxes(n=rows if aligned is True and not _chance(draw, 10) else None))
    if aligned is True and OK == s1 == s2 and b1.shape[-2] != b2.shape[-2]:
        s1 = s2 = BAD  # aligned pairs need as many boxes on both sides
    # inverted boxes: refused by name (as generalized_box_iou does), or a finite value all the same
    s1 = EITHER if s1 == OK and inverted(b1.reshape(-1, 4)) else s1
    s2 = EITHER if s2 == OK and inverted(b2.reshape(-1, 4)) else s2
    dtype = out_float_dtype(b1, b2)
    extra, status = {}, {}
    if which in ("distance_box_iou", "complete_box_iou"):
        extra["eps"], status["eps"] = draw(param([1e-7, 1e-3], bad=[-1.0], either=[0.0]))
    elif which == "bbox_overlaps":
        extra["mode"], status["mode"] = draw(st.sampled_from([("iou", OK), ("iof", OK), ("giou", OK), ("dice", BAD)]))
        extra["eps"], status["eps"] = draw(param([1e-6, 1e-3], bad=[-1.0], either=[0.0]))
        extra["offset"], status["offset"] = draw(param([0, 1], kind="int", bad=[2, -1]))  # mmcv's offset=1
    flag = "is_aligned" if which == "bbox_overlaps" else "aligned"
    extra[flag], status[flag] = aligned, sa

    def expect(out):
        batch_shape = b1.shape[:-2]
        shape = batch_shape + ((b1.shape[-2],) if aligned is True else (b1.shape[-2], b2.shape[-2]))
        problems = expect_array(out, shape, dtype)
        if not problems and out.size and which in ("box_ioa", "bbox_overlaps"):
            low = -1 if extra.get("mode") == "giou" else 0
            # eps=0 divides by the true (maybe underflowed) denominators: 0 where they are 0, never above 1
            if not ((out >= low - ulps(dtype)) & (out <= 1 + ulps(dtype))).all():
                problems.append(f"{which} outside [{low}, 1]: {out[(out < low) | (out > 1)][:4]}")
        return problems

    # CIoU's atan comes from each backend's maths library: a few ulps apart
    tolerance = (0.0, ulps(dtype, 64 if which == "complete_box_iou" else 8))
    args = ", ".join(f"{k}={{{k}}}" for k in extra)
    op = "iou_variants_aligned" if aligned is True else "iou_variants"
    return Case(f"ops.{which}", lambda backend, **v: getattr(ops, which)(**v, backend=backend),
                dict(boxes1=b1, boxes2=b2, **extra), dict(boxes1=s1, boxes2=s2, **status),
                f"ops.{which}({{boxes1}}, {{boxes2}}, {args}, backend={{backend}})",
                dispatcher_backends("edudet.ops.iou_variants", op), tolerance, expect,
                aliases={flag: ("aligned",)})


# =============================================================================================================
# Model layers a user can reach: GroupNorm (Numba kernel + NumPy reference), MobileNetV3's depthwise conv
# =============================================================================================================
# Each group is normalised by its own statistics, so the extremes that matter are per group: values near
# float32's max, squares beyond it (|x| > ~1.8e19), subnormals, near-constant groups far from 0 (|mean| / std up
# to 1e8 and beyond: cancellation) and constant ones (std 0), plus NaN/inf.
ACTIVATION_SCALES = [3.4e37, 1e37, 1e19, 1e-20, 1e-40, 1e-44]
ACTIVATION_OFFSETS = [1e6, 1e8, -1e30, 3e38]
ACTIVATION_CONSTANTS = [0.0, 1.0, -5.0, 1e38, 3.4e38, 1e-45]


@st.composite
def activations(draw, n, c, h, w):
    """(N, C, H, W) float64 values (cast by the caller): moderate, scaled to an extreme, a large constant plus small
    variations (near-constant), constant, or spiked with one special value."""
    size = n * c * h * w
    values = np.array(draw(st.lists(ordinary_floats(-10, 10), min_size=size, max_size=size)),
                      dtype=np.float64).reshape(n, c, h, w)
    kind = draw(st.sampled_from(["plain"] * 3 + ["scaled", "near-constant", "ulps", "constant", "special"]))
    if kind == "scaled":
        values *= draw(st.sampled_from(ACTIVATION_SCALES)) / 10
    elif kind == "near-constant":
        values = values * draw(st.sampled_from([1.0, 1e-3, 8.0])) + draw(st.sampled_from(ACTIVATION_OFFSETS))
    elif kind == "ulps" and size:
        # a constant float32 value with a few entries a few float32 ulps away: |mean| / std near 1e8, where
        # E[x^2] - mean^2 cancels to nothing (the Numba kernel's variance was 0 there: NaN near 3e38)
        base = np.float32(draw(st.sampled_from(ACTIVATION_OFFSETS + [1.0, -7.0])))
        values[:] = float(base)
        for _ in range(draw(st.integers(1, 3))):
            k = draw(st.sampled_from([1, 2, 64, -1]))
            values.reshape(-1)[draw(st.integers(0, size - 1))] = float(base) + k * float(np.spacing(base))
    elif kind == "constant":
        values[:] = draw(st.sampled_from(ACTIVATION_CONSTANTS))
    elif kind == "special" and size:
        values.reshape(-1)[draw(st.integers(0, size - 1))] = draw(st.sampled_from(
            [NAN, INF, -INF, 3.4e38, -3.4e38, 1e-45]))
    return values


def group_norm_problems(x, num_groups, weight, bias, eps, relu, out, who) -> list[str]:
    """What is wrong with `out`, GroupNorm of `x`, against the exact (float64) normalisation, group by group.

    What the layer gives (documented here; torch's group_norm gives the same in each case):
    * a group holding NaN or inf gives NaN over the whole group (NaN in, NaN out; ReLU keeps the NaN);
    * elsewhere the output is ``(x - mean) / sqrt(var + eps) w + b`` to within float32 rounding of the affine
      ``x scale + shift`` it is evaluated as (scale = w / std, shift = b - mean scale): about eps32 times
      ``|mean| / std`` (a near-constant group far from 0 loses its digits there, as in torch), plus the
      reference's float32 variance (pairwise sum; centred on the float32 mean);
    * unspecified (may be NaN or inf, as torch) where that affine itself overflows float32: a (near-)constant
      group with ``|x| w / sqrt(var + eps)`` beyond float32's max (a constant group of 3e38), or var + eps = 0,
      or the scale ``w / sqrt(var + eps)`` itself beyond it (eps = 0 and a group of subnormals: torch's float32
      1 / std is inf there too);
    * where a group's float32 squares overflow (|x - mean| beyond ~1e19) torch's output is the bias or NaN,
      where they underflow (below ~1e-19) its variance loses its digits; both paths give the true
      normalisation there (the Numba kernel squares in float64, the NumPy reference redoes such groups in
      float64).
    """
    problems = []
    if not isinstance(out, np.ndarray) or out.shape != x.shape or out.dtype != x.dtype:
        return [f"{who}: {type(out).__name__} {getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}, want "
                f"{x.shape} {x.dtype}"]
    n, c = x.shape[:2]
    per = c // num_groups
    eps32 = float(np.finfo(np.float32).eps)
    with np.errstate(all="ignore"):
        x64 = x.astype(np.float64).reshape(n, num_groups, per, -1)
        count = x64.shape[2] * x64.shape[3]
        finite = np.isfinite(x64).all(axis=(2, 3))  # (n, G)
        mean = x64.mean(axis=(2, 3))
        centred = x64 - mean[:, :, None, None]
        var = (centred * centred).mean(axis=(2, 3))
        inv_std = 1.0 / np.sqrt(var + eps)
        w = np.asarray(weight, np.float64).reshape(1, num_groups, per, 1)
        b = np.asarray(bias, np.float64).reshape(1, num_groups, per, 1)
        s = inv_std[:, :, None, None]
        z = centred * s * w
        exact = z + b
        top_w, top_b = float(np.abs(w).max(initial=0)), float(np.abs(b).max(initial=0))
        top_x = np.abs(x64).max(axis=(2, 3), initial=0)
        free = (~(var + eps > 0) | ~(inv_std * top_w < 1e37) | ~(top_x * inv_std * top_w < 1e37)
                | ~(np.abs(mean) * inv_std * top_w < 1e37))
        variance_error = 4 * math.log2(count + 1) * eps32 + (np.abs(mean) * eps32) ** 2 / (var + eps)
        tolerance = (16 * eps32 * (np.abs(x64) * s * np.abs(w) + (np.abs(mean) * inv_std)[:, :, None, None]
                                   * np.abs(w) + np.abs(b) + np.abs(exact))
                     + np.abs(z) * variance_error[:, :, None, None]
                     + 1e3 * float(np.finfo(np.float32).smallest_subnormal))
        if relu:
            exact = np.maximum(exact, 0)
        got = out.astype(np.float64).reshape(exact.shape)
        close = np.abs(got - exact) <= tolerance
    for image in range(n):
        for group in range(num_groups):
            values = got[image, group]
            where = f"{who}, image {image}, group {group}"
            if not finite[image, group]:
                if not np.isnan(values).all():
                    problems.append(f"{where}: NaN/inf input, output not all NaN: {values.ravel()[:4]}")
            elif free[image, group]:
                continue
            elif not close[image, group].all():
                k = np.flatnonzero(~close[image, group].ravel())[0]
                problems.append(f"{where}: {values.ravel()[k]!r} vs exact {exact[image, group].ravel()[k]!r} "
                                f"(tolerance {tolerance[image, group].ravel()[k]:.3g}; mean {mean[image, group]:.6g}, "
                                f"var {var[image, group]:.6g})")
    return problems


@st.composite
def group_norm_cases(draw):
    """edudet.models.layers.GroupNorm: the Numba kernel (float32, C-contiguous maps) and the NumPy reference
    (every other map, or `.reference`), both against the exact normalisation (`group_norm_problems`)."""
    from edudet.models.layers import GroupNorm

    num_groups = draw(st.sampled_from([1, 2, 4]))
    c = num_groups * draw(st.sampled_from([1, 1, 2]))  # C = groups: one channel per group
    n = draw(st.integers(1, 2))  # a zero-size batch: test_group_norm_takes_a_zero_size_batch
    h, w = draw(st.sampled_from([(1, 1), (1, 3), (3, 2), (4, 4), (8, 8)]))
    dtype = np.float32 if not _chance(draw, 15) else np.float64
    with np.errstate(over="ignore"):
        x = draw(layouts(draw(activations(n, c, h, w)).astype(dtype)))
    weight = np.array([draw(st.sampled_from([1.0, -2.0, 0.5, 0.0, 3.0])) for _ in range(c)], np.float32)
    bias = np.array([draw(st.sampled_from([0.0, 1.0, -1.0, 0.25])) for _ in range(c)], np.float32)
    eps = draw(st.sampled_from([1e-5, 1e-5, 1e-3, 0.0]))
    relu = draw(st.booleans())

    def call(backend, x, num_groups, weight, bias, eps, relu):
        norm = GroupNorm(num_groups, x.shape[1], eps)
        norm.set_weight(weight, bias)
        layer = norm(x.copy(order="K"), relu)  # in place on a copy: the layer overwrites its (fresh) input
        reference = norm.reference(x.copy(order="K"), relu)
        problems = (group_norm_problems(x, num_groups, weight, bias, eps, relu, layer, "layer")
                    + group_norm_problems(x, num_groups, weight, bias, eps, relu, reference, "reference"))
        if problems:
            raise AssertionError("; ".join(problems[:4]))
        # the layer picks its path by layout (the kernel for C-contiguous float32): the reference's result is
        # the one that must not depend on the layout
        return reference

    return Case("GroupNorm", call, dict(x=x, num_groups=num_groups, weight=weight, bias=bias, eps=eps, relu=relu),
                dict(x=OK, num_groups=OK, weight=OK, bias=OK, eps=OK, relu=OK),
                "(lambda norm: (norm.set_weight({weight}, {bias}), norm({x}.copy(), {relu}), "
                "norm.reference({x}.copy(), {relu}))[1:])(GroupNorm({num_groups}, " + str(c) + ", {eps}))",
                ["numba+numpy"])


@st.composite
def depthwise_conv_cases(draw):
    """MobileNetV3's DepthwiseConv2d on every backend: extreme activations and filters, 1 x 1 maps, zero-size
    batches, maps smaller than the filter and wrong shapes (refused, naming x), either layout, with the fused
    ReLU/hardswish or none; the backends add the same float32 products in the same order, so they must agree
    bit for bit (NaN/inf included)."""
    from edudet.models.mobilenet_v3 import DepthwiseConv2d, _depthwise

    c = draw(st.integers(1, 3))
    k = draw(st.sampled_from([1, 3, 5]))
    stride, dilation = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 1, 2]))
    padding = draw(st.sampled_from([0, (k - 1) // 2 * dilation, k]))
    n = draw(st.integers(0, 2))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32] * 6 + [np.float64, np.float16, np.int32]))
    with np.errstate(over="ignore", invalid="ignore"):
        x = cast(draw(activations(n, c, h, w)), dtype)
    status = OK
    span = dilation * (k - 1) + 1
    if h + 2 * padding < span or w + 2 * padding < span:
        status = BAD  # smaller than the filter: refused, naming x
    if _chance(draw, 8):
        x, status = draw(st.sampled_from([x[:, 0], x[None], np.concatenate([x, x[:, :1]], axis=1)])), BAD
    channels_last = draw(st.booleans())
    activation = draw(st.sampled_from([None, "relu", "hardswish"]))
    if channels_last:
        x = np.moveaxis(x, 1, -1) if np.ndim(x) == 4 else x
    x = draw(layouts(x))
    with np.errstate(over="ignore"):
        x32 = np.asarray(x).astype(np.float32)
    if status == OK and x32.size and not np.isfinite(x32).all():
        status = EITHER  # NaN/inf in (or beyond float32): NaN/inf out, the same on every backend
    taps = np.array([draw(st.sampled_from([1.0, -0.5, 0.0, 2.0])) for _ in range(c * k * k)]).reshape(c, 1, k, k)
    taps *= draw(st.sampled_from([1.0] * 6 + [1e30, 1e-30, 1e-45]))
    bias = np.array([draw(st.sampled_from([0.0, 1.0, -0.0, -3.0])) for _ in range(c)], np.float32)
    taps = taps.astype(np.float32)

    def call(backend, x, weight, bias, stride, padding, dilation):
        conv = DepthwiseConv2d(c, k, stride, padding, dilation)
        conv.set_weight(weight, bias)
        return conv(x, backend, activation, channels_last)

    def expect(out):
        oh, ow = (h + 2 * padding - span) // stride + 1, (w + 2 * padding - span) // stride + 1
        with np.errstate(over="ignore"):
            bound = float(np.abs(x32).max(initial=0)) * float(np.abs(taps).max()) * k * k + 3
        shape = (n, oh, ow, c) if channels_last else (n, c, oh, ow)
        return expect_array(out, shape, np.float32, finite=bound < 1e37)  # hardswish: at most 6 x / 6

    return Case("DepthwiseConv2d", call,
                dict(x=x, weight=taps, bias=bias, stride=stride, padding=padding, dilation=dilation),
                dict(x=status, weight=OK, bias=OK, stride=OK, padding=OK, dilation=OK),
                "(lambda conv: (conv.set_weight({weight}, {bias}), conv({x}, {backend}, " + repr(activation) + ", "
                + str(channels_last) + "))[1])(DepthwiseConv2d(" + str(c) + ", " + str(k)
                + ", {stride}, {padding}, {dilation}))",
                _depthwise.backends, (0.0, 0.0), expect)


# =============================================================================================================
# edudet.testing's oracles: they accept every backend's own result on extreme input and reject a wrong one
# =============================================================================================================
def _must_reject(check_wrong, what: str) -> None:
    """`check_wrong()` (an oracle on a deliberately wrong result) must raise AssertionError, with a message."""
    try:
        check_wrong()
    except AssertionError as err:
        if not str(err):
            raise RuntimeError(f"the oracle rejected {what} without a message") from None
        return
    raise RuntimeError(f"the oracle accepted {what}")


@st.composite
def oracle_cases(draw):
    import edudet.testing as testing

    which = draw(st.sampled_from(["assert_nms_equal", "assert_matches_equal", "assert_boxes_close"]))
    if which == "assert_nms_equal":
        b, sb = draw(boxes(max_rows=8))
        n = len(b) if b.ndim >= 1 else 0
        scores, ss = draw(scores_param(n))
        threshold, st_ = draw(param([0.5, 0.0, 0.3, 1.0, 1e-300], bad=[-0.1]))

        def call(backend, boxes, scores, iou_threshold):
            keep = ops.nms(boxes, scores, iou_threshold, backend=backend)
            testing.assert_nms_equal(keep, boxes, scores, iou_threshold)  # each backend's keep is the reference's
            if len(keep):
                _must_reject(lambda: testing.assert_nms_equal(keep[:-1], boxes, scores, iou_threshold),
                             "a keep missing its last box")
            return keep

        return Case("testing.assert_nms_equal", call, dict(boxes=b, scores=scores, iou_threshold=threshold),
                    dict(boxes=sb, scores=ss if sb == OK else EITHER, iou_threshold=st_),
                    "edudet.testing.assert_nms_equal(ops.nms({boxes}, {scores}, {iou_threshold}, backend={backend}), "
                    "{boxes}, {scores}, {iou_threshold})", dispatcher_backends("edudet.ops.nms", "nms"),
                    expect=expect_keep(n, scores))
    if which == "assert_matches_equal":
        gt, sg = draw(gt_boxes(min_rows=1))
        b, sb = draw(boxes(max_rows=8))
        high, sh, low, sl = draw(thresholds())
        allow = draw(st.booleans())

        def call(backend, gt_boxes, boxes, high_threshold, low_threshold):
            matches = edudet.Matcher(high_threshold, low_threshold, allow).match_boxes(gt_boxes, boxes, backend=backend)
            testing.assert_matches_equal(matches, gt_boxes, boxes, high_threshold, low_threshold, allow)
            if len(matches):
                wrong = matches.copy()
                wrong[0] = -1 if wrong[0] != -1 else -2
                _must_reject(lambda: testing.assert_matches_equal(wrong, gt_boxes, boxes, high_threshold,
                                                                  low_threshold, allow), "a changed match")
            return matches

        return Case("testing.assert_matches_equal", call,
                    dict(gt_boxes=gt, boxes=b, high_threshold=high, low_threshold=low),
                    dict(gt_boxes=sg, boxes=sb, high_threshold=sh, low_threshold=sl),
                    "edudet.testing.assert_matches_equal(edudet.Matcher({high_threshold}, {low_threshold}, "
                    f"{allow}).match_boxes({{gt_boxes}}, {{boxes}}, backend={{backend}}), {{gt_boxes}}, {{boxes}}, "
                    f"{{high_threshold}}, {{low_threshold}}, {allow})",
                    dispatcher_backends("edudet.matcher", "match_boxes"))
    b, sb = draw(boxes(shape_percent=0, odd_dtype_percent=0))
    assume(sb == OK)  # a malformed *result* is the oracle's AssertionError by design, not a refusal
    b = np.asarray(b, dtype=np.float64 if b.dtype == np.float64 else np.float32)

    def call(backend, actual):
        testing.assert_boxes_close(actual, actual.copy())
        if actual.size:
            shifted = actual.astype(np.float64) + 1 + np.abs(actual.astype(np.float64))
            _must_reject(lambda: testing.assert_boxes_close(shifted, actual), "boxes off by 1 + |x|")
        return actual

    return Case("testing.assert_boxes_close", call, dict(actual=b), dict(actual=OK),
                "edudet.testing.assert_boxes_close({actual}, {actual})", NUMPY_ONLY)


PROPERTIES = {
    "box_iou": (box_iou_cases, 1.0),
    "generalized_box_iou": (generalized_box_iou_cases, 0.5),
    "box_area_convert": (box_area_convert_cases, 0.5),
    "masks_to_boxes": (masks_to_boxes_cases, 0.25),
    "clip_remove_small": (clip_remove_cases, 0.5),
    "box_coder": (box_coder_cases, 0.5),
    "fcos_coding": (fcos_coding_cases, 0.5),
    "level_mapping": (level_mapper_cases, 0.5),
    "nms": (nms_cases, 1.0),
    "batched_nms": (batched_nms_cases, 1.0),
    "soft_nms": (soft_nms_cases, 1.0),
    "nms_match": (nms_match_cases, 0.5),
    "match_boxes": (match_boxes_cases, 1.0),
    "matcher_call": (matcher_call_cases, 0.5),
    "rpn_targets": (rpn_targets_cases, 0.5),
    "roi_head_targets": (roi_head_targets_cases, 0.5),
    "sampler": (sampler_cases, 0.5),
    "fcos_targets": (fcos_targets_cases, 1.0),
    "anchors_points": (anchor_cases, 0.5),
    "strides": (stride_cases, 0.5),
    "roi_align": (roi_align_cases, 1.0),
    "roi_pool": (lambda: roi_align_cases(pool=True), 1.0),
    "multiscale_roi_align": (multiscale_cases, 0.5),
    "paste_masks": (paste_masks_cases, 0.5),
    "roi_grid_to_image": (grid_to_image_cases, 0.25),
    "box_iou_rotated": (box_iou_rotated_cases, 0.5),
    "nms_rotated": (nms_rotated_cases, 0.5),
    "rotated_helpers": (rotated_helpers_cases, 0.5),
    "roi_align_rotated": (roi_align_rotated_cases, 0.5),
    "priors": (prior_cases, 0.5),
    "rotated_anchors": (rotated_anchor_cases, 0.5),
    "iou_variants": (iou_variant_cases, 0.5),
    "group_norm": (group_norm_cases, 0.5),
    "depthwise_conv": (depthwise_conv_cases, 0.5),
    "oracles": (oracle_cases, 0.5),
}
FIXED = {"sizes": size_cases, "boundary": boundary_cases}
# every public name of edudet, edudet.ops and edudet.testing -> the properties that run it
# (test_every_public_op_is_in_the_suite), plus the model layers with their own kernels
COVERAGE = {
    "box_iou": "box_iou", "generalized_box_iou": "generalized_box_iou", "box_area": "box_area_convert",
    "box_convert": "box_area_convert", "clip_boxes_to_image": "clip_remove_small",
    "remove_small_boxes": "clip_remove_small", "nms": "nms", "batched_nms": "batched_nms", "soft_nms": "soft_nms",
    "nms_match": "nms_match",
    "roi_align": "roi_align", "roi_pool": "roi_pool", "paste_masks_in_image": "paste_masks",
    "box_iou_rotated": "box_iou_rotated", "nms_rotated": "nms_rotated", "batched_nms_rotated": "nms_rotated",
    "rotated_box_corners": "rotated_helpers", "rotated_boxes_from_mmcv": "rotated_helpers",
    "rotated_boxes_to_mmcv": "rotated_helpers", "RotatedBoxCoder": "rotated_helpers",
    "roi_align_rotated": "roi_align_rotated",
    "BoxCoder": "box_coder", "distance2bbox": "fcos_coding", "bbox2distance": "fcos_coding",
    "centerness_target": "fcos_coding", "LevelMapper": "level_mapping", "map_roi_levels": "level_mapping",
    "infer_scale": "strides", "infer_stride": "strides", "check_strides": "strides",
    "check_feature_shapes": "strides", "AnchorGenerator": "anchors_points", "grid_points": "anchors_points",
    "Matcher": "match_boxes", "rpn_background_matches": "sampler", "BalancedPositiveNegativeSampler": "sampler",
    "rpn_targets": "rpn_targets", "roi_head_targets": "roi_head_targets", "fcos_targets": "fcos_targets",
    "MultiScaleRoIAlign": "multiscale_roi_align", "roi_grid_to_image": "roi_grid_to_image",
    "DefaultBoxGenerator": "priors", "YOLOAnchorGenerator": "priors", "MlvlPointGenerator": "priors",
    "valid_flags": "priors", "RotatedAnchorGenerator": "rotated_anchors",
    "distance_box_iou": "iou_variants", "complete_box_iou": "iou_variants", "box_ioa": "iou_variants",
    "bbox_overlaps": "iou_variants",
    "masks_to_boxes": "masks_to_boxes",
    "assert_nms_equal": "oracles", "assert_matches_equal": "oracles", "assert_boxes_close": "oracles",
    "assert_roi_align_close": "roi_align",  # the roi_align property's every result passes through it
    "models.layers.GroupNorm": "group_norm", "models.mobilenet_v3.DepthwiseConv2d": "depthwise_conv",
}
# names that take no data: submodules, versions, the backend listing, edudet.testing's session switch
NOT_OPS = {"ops", "__version__", "available_backends", "backends_for", "strategies", "extreme_default",
           "set_extreme_default"}
FAMILIES = {
    "boxes": ["box_iou", "generalized_box_iou", "box_area_convert", "clip_remove_small", "box_coder", "fcos_coding",
              "level_mapping", "iou_variants", "masks_to_boxes"],
    "nms": ["nms", "batched_nms", "soft_nms", "nms_match"],
    "matching": ["match_boxes", "matcher_call", "rpn_targets", "roi_head_targets", "sampler"],
    "fcos_anchors": ["fcos_targets", "anchors_points", "strides", "priors"],
    "roi": ["roi_align", "roi_pool", "multiscale_roi_align", "paste_masks", "roi_grid_to_image"],
    "rotated": ["box_iou_rotated", "nms_rotated", "rotated_helpers", "roi_align_rotated", "rotated_anchors"],
    "sizes_and_boundary": ["sizes", "boundary"],
    "layers_and_oracles": ["group_norm", "depthwise_conv", "oracles"],
}


def _selftest_crash():
    import ctypes

    check(Case("selftest", lambda backend: ctypes.string_at(0), {}, {}, "ctypes.string_at(0)", ["numpy"]))


# the harness's own test (test_a_crash_is_named_and_the_rest_still_runs): a segfault, then a property that passes
SELFTEST = {"selftest_crash": _selftest_crash, "selftest_after": lambda: None}
FAMILIES_FOR_CHILD = {**FAMILIES, "selftest": list(SELFTEST)}


def _emit(event: str, prop: str, message: str = "") -> None:
    print(f"@@{event} {prop} {json.dumps(message)}", flush=True)


def _describe(err: BaseException) -> str:
    if isinstance(err, BaseExceptionGroup):  # hypothesis reports several distinct bugs as a group
        return "\n".join(_describe(e) for e in err.exceptions)
    return f"{type(err).__name__}: {err}"


def child_main(family: str, seed: int, max_examples: int, skip: list[str]) -> None:
    """Run a family's properties here (the child); print @@start/@@pass/@@fail per property, @@finished."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a hung case kills the child: the parent names it
    import warnings

    warnings.simplefilter("ignore")  # overflow/invalid RuntimeWarnings of degenerate inputs are expected
    for prop in FAMILIES_FOR_CHILD[family]:
        if prop in skip:
            continue
        _emit("start", prop)
        started = time.perf_counter()
        try:
            if prop in SELFTEST:
                SELFTEST[prop]()
            elif prop in FIXED:
                problems = []
                for case in FIXED[prop]():
                    try:
                        check(case)
                    except AssertionError as err:
                        problems.append(str(err))
                if problems:
                    raise AssertionError("\n".join(problems))
            else:
                strategy, share = PROPERTIES[prop]
                examples = max(5, int(max_examples * share))

                @settings(max_examples=examples, deadline=None, database=None, print_blob=False,
                          suppress_health_check=list(HealthCheck))
                @hypothesis_seed(seed)
                @given(case=strategy())
                def run(case):
                    check(case)

                run()
        except Exception as err:  # noqa: BLE001 - reported to the parent, then the next property runs
            _emit("fail", prop, _describe(err))
        else:
            _emit("pass", prop, f"{time.perf_counter() - started:.1f} s")
    _emit("finished", family)


def run_family(family: str, seed: int, max_examples: int) -> tuple[list[str], list[str]]:
    """Run a family in child interpreters, relaunching past a property that crashed.

    Returns (failures, timings): one message per failing or crashing property, one "name: seconds" per passing one.
    """
    failures, timings, skip = [], [], []
    while True:
        source = (f"import sys; sys.path.insert(0, {TESTS_DIR!r}); import test_robustness as t; "
                  f"t.child_main({family!r}, {seed}, {max_examples}, {skip!r})")
        try:
            result = run_in_child(source, timeout=CHILD_TIMEOUT_SECONDS)
            stdout, stderr, returncode = result.stdout, result.stderr, result.returncode
        except subprocess.TimeoutExpired as err:  # the child hung past the watchdog
            output = err.stdout or ""
            stdout, stderr, returncode = output.decode() if isinstance(output, bytes) else output, "", None
        lines = stdout.splitlines()
        started, last_case, last_backend = None, "", ""
        for line in lines:
            if line.startswith("@@start "):
                started = line.split()[1]
            elif line.startswith("@@case "):
                last_case = line[len("@@case "):]
            elif line.startswith("@@backend "):
                last_backend = line[len("@@backend "):]
            elif line.startswith(("@@pass ", "@@fail ")):
                prop, message = line.split(" ", 2)[1:]
                if line.startswith("@@fail "):
                    failures.append(f"[{family}/{prop}] {json.loads(message)}")
                else:
                    timings.append(f"{prop}: {json.loads(message)}")
                started = None
        if any(line.startswith("@@finished") for line in lines) and returncode == 0:
            return failures, timings
        how = (f"killed by {signal.Signals(-returncode).name}" if returncode and returncode < 0
               else "timed out" if returncode is None else f"exit code {returncode}")
        if started is None:  # died outside any property (import error, ...): nothing to skip past
            failures.append(f"[{family}] child {how} outside a property\n{stderr[-2000:]}")
            return failures, timings
        failures.append(f"[{family}/{started}] CRASH: child {how} on backend {last_backend}, case:\n    {last_case}"
                        f"\n  ({PRELUDE})")
        skip.append(started)


def _selected_families(request) -> list[str]:
    chosen = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is not None and item.module.__name__ == __name__ and callspec is not None:
            family = callspec.params.get("family")
            if family is not None and family not in chosen:
                chosen.append(family)
    return chosen or list(FAMILIES)


@pytest.fixture(scope="module")
def family_runs(request):
    """Start every selected family's child at once (two at a time): they are independent processes."""
    chosen = os.environ.get("EDUDET_ROBUSTNESS_SEED", "0")
    seed = random.randrange(2**32) if chosen == "random" else int(chosen)
    max_examples = settings().max_examples
    pool = ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1)))
    futures = {f: pool.submit(run_family, f, seed, max_examples) for f in _selected_families(request)}
    yield seed, futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_backend_survives_adversarial_input(family, family_runs):
    seed, futures = family_runs
    failures, timings = futures[family].result()
    print(f"{family}: " + ", ".join(timings))
    assert not failures, (f"{len(failures)} failing propert(ies) in family {family!r} "
                          f"(EDUDET_ROBUSTNESS_SEED={seed}):\n" + "\n".join(failures))


def test_strategies_reach_the_edges():
    """The strategies do produce what this suite claims to test: subnormal, huge, NaN and inverted boxes."""
    seen = set()

    @settings(max_examples=400, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(boxes())
    def collect(drawn):
        array, status = drawn
        if array.dtype.kind != "f" or array.ndim != 2 or not array.size:
            return
        a = np.abs(array.astype(np.float64))
        seen.add(status)
        if np.isnan(a).any():
            seen.add("nan")
        if ((a > 0) & (a < 1e-30)).any():
            seen.add("tiny")
        if (np.isfinite(a) & (a > COORDINATE_LIMIT)).any():
            seen.add("huge")
        if array.shape[1] == 4 and inverted(array):
            seen.add("inverted")
        if not array.flags.c_contiguous:
            seen.add("layout")

    collect()
    assert {OK, BAD, "nan", "tiny", "huge", "inverted", "layout"} <= seen, seen


def test_reproducers_rebuild_the_values():
    """`code` prints arrays (layout and dtype included) and scalars as Python that rebuilds them exactly."""
    base = np.array([[0.0, -0.0, 1e-320, NAN], [INF, -INF, 3.4e38, 1.0]], dtype=np.float64)
    namespace = {"np": np, "nan": NAN, "inf": INF}
    for value in [base, np.asfortranarray(base), base[::-1].copy()[::-1], np.repeat(base, 2, axis=-1)[..., ::2],
                  base.astype(np.float32), np.zeros((0, 4), np.float16), np.array(2), np.float32(0.1), 2**64,
                  (1, [2.5, NAN]), {"p2": base}]:
        rebuilt = eval(code(value), namespace)  # noqa: S307 - our own output
        assert _same(value, rebuilt) and type(rebuilt) is type(value), (value, code(value))
        if isinstance(value, np.ndarray) and value.ndim:
            assert rebuilt.flags.c_contiguous == value.flags.c_contiguous
            assert rebuilt.flags.f_contiguous == value.flags.f_contiguous


def _fake_case(call, status, values=None, backends=("numpy", "numba")):
    values = {"boxes": np.zeros((1, 4))} if values is None else values
    return Case("fake", call, values, status, "fake({boxes}, backend={backend})", list(backends),
                expect=lambda out: expect_array(out, (1,), np.float32))


@pytest.mark.parametrize("call, status, message", [
    (lambda backend, boxes: np.zeros(1, np.float32) + (backend == "numba"), {"boxes": OK}, "differs"),
    (lambda backend, boxes: boxes[5], {"boxes": OK}, "IndexError"),
    (lambda backend, boxes: boxes.fill(1) or np.zeros(1, np.float32), {"boxes": OK}, "modified"),
    (lambda backend, boxes: (_ for _ in ()).throw(ValueError("cannot convert float NaN to integer")),
     {"boxes": EITHER}, "names none"),
    (lambda backend, boxes: (_ for _ in ()).throw(ValueError("boxes is bad")), {"boxes": OK}, "refused valid"),
    (lambda backend, boxes: np.zeros(1, np.float32), {"boxes": BAD}, "accepted invalid"),
    (lambda backend, boxes: np.zeros(2, np.float64), {"boxes": OK}, "shape"),
    (lambda backend, boxes: np.full(1, np.nan, np.float32), {"boxes": OK}, "NaN or inf"),
    (lambda backend, boxes: np.zeros(1, np.float32) if backend == "numpy" else boxes[5], {"boxes": OK}, "IndexError"),
])
def test_check_catches_each_kind_of_failure(call, status, message):
    """The checker itself: each kind of failure this suite exists for is reported, with a reproducer."""
    with pytest.raises(AssertionError, match=message) as info:
        check(_fake_case(call, status))
    assert "fake(np.array([[0.0, 0.0, 0.0, 0.0]], dtype=np.float64), backend='numpy')" in str(info.value)


def test_check_passes_agreeing_backends_and_named_refusals():
    check(_fake_case(lambda backend, boxes: np.zeros(1, np.float32), {"boxes": OK}))
    check(_fake_case(lambda backend, boxes: (_ for _ in ()).throw(TypeError("boxes must be real")), {"boxes": BAD}))
    fortran = {"boxes": np.asfortranarray(np.arange(8.0).reshape(2, 4))}
    with pytest.raises(AssertionError, match="memory layout"):
        check(_fake_case(lambda backend, boxes: np.float32(boxes.ravel(order="K")[1:2]), {"boxes": OK}, fortran))


def public_names() -> set:
    """Every public name of edudet, edudet.ops and edudet.testing: its __all__ and anything else it exposes
    without an underscore (a name imported into the package but left out of __all__ is public too)."""
    import types

    import edudet.testing as testing

    names = set()
    for module in (edudet, ops, testing):
        names |= set(module.__all__)
        names |= {name for name in dir(module) if not name.startswith("_")
                  and not isinstance(getattr(module, name), types.ModuleType) and name != "annotations"}
    return names


def test_every_public_op_is_in_the_suite():
    """A new public op must join this suite: every name of edudet, edudet.ops and edudet.testing is mapped to
    its property."""
    public = public_names() - NOT_OPS
    missing = sorted(public - set(COVERAGE))
    assert not missing, f"public ops without a robustness property here: {missing} (add one, and map it in COVERAGE)"
    unknown = {name: prop for name, prop in COVERAGE.items() if prop not in PROPERTIES and prop not in FIXED}
    assert not unknown, unknown
    assert {p for props in FAMILIES.values() for p in props} == set(PROPERTIES) | set(FIXED)


def test_every_backend_is_exercised_in_ci():
    """In CI the suite must run every backend (the Cython build and the CUDA simulator included)."""
    from helpers import IN_CI

    usable = set(edudet.available_backends())
    if not IN_CI and usable != {"numpy", "numba", "cython", "cuda"}:
        pytest.skip(f"only {sorted(usable)} usable here")
    assert usable == {"numpy", "numba", "cython", "cuda"}, usable


def test_a_crash_is_named_and_the_rest_still_runs():
    """The harness: a segfault in a child is reported with the case that caused it, and the family goes on."""
    failures, timings = run_family("selftest", seed=0, max_examples=1)
    assert len(failures) == 1 and "SIGSEGV" in failures[0] and "ctypes.string_at(0)" in failures[0], failures
    assert [t.split(":")[0] for t in timings] == ["selftest_after"], timings


def test_nms_score_threshold_beyond_float32_is_quiet():
    """Regression (found by the nms property): a score_threshold beyond float32's range against float32 scores
    compares as +-inf (1e300 keeps nothing, -1e300 everything) and used to emit NumPy's unnamed RuntimeWarning
    "overflow encountered in cast" from inside nms."""
    import warnings

    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    idxs = np.array([0, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for backend in dispatcher_backends("edudet.ops.nms", "nms"):
            assert ops.nms(boxes, scores, 0.5, backend, score_threshold=1e300).tolist() == []
            assert ops.nms(boxes, scores, 0.5, backend, score_threshold=-1e300).tolist() == [0, 2]
            assert ops.batched_nms(boxes, scores, idxs, 0.5, backend, score_threshold=1e300).tolist() == []
            assert ops.batched_nms(boxes, scores, idxs, 0.5, backend, score_threshold=-1e300,
                                   max_num=1).tolist() == [0]


@pytest.mark.parametrize("base", [1e8, 3e38, -1e30, 1.0])
def test_group_norm_kernel_keeps_near_constant_groups_finite(base):
    """Regression (found by the group_norm property): groups of one float32 value with two entries 1 and 2 ulps
    above it (|mean| / std ~ 5e7). The kernel's E[x^2] - mean^2 cancelled: at 1e8 it gave -2048 where the exact
    value is -0.084, near 3e38 a variance of 0 and NaN from finite input. Now within float32 rounding of the
    exact normalisation, as the reference is (`group_norm_problems` states the tolerance)."""
    import warnings

    from edudet.models.layers import GroupNorm

    value = np.float32(base)
    x = np.full((1, 4, 8, 8), value, np.float32)
    x[0, 0, 3, 3] = value + np.spacing(value)
    x[0, 2, 1, 1] = value + 2 * np.spacing(value)
    weight, bias = np.array([1, -2, 0.5, 3], np.float32), np.array([0, 1, -1, 0.25], np.float32)
    for groups in (1, 2):
        norm = GroupNorm(groups, 4)
        norm.set_weight(weight, bias)
        out = norm(x.copy())  # float32, C-contiguous: the Numba kernel
        assert np.isfinite(out).all()
        assert not group_norm_problems(x, groups, weight, bias, 1e-5, False, out, "layer")
        with warnings.catch_warnings():  # near 3e38 the float32 squares overflow: redone in float64, quietly
            warnings.simplefilter("error")
            reference = norm.reference(x.copy())
        assert not group_norm_problems(x, groups, weight, bias, 1e-5, False, reference, "reference")


# --- the model layers' own gaps (edudet/models/layers.py, mobilenet_v3.py), found by the layer properties -----
def test_group_norm_takes_a_zero_size_batch():
    """Regression: GroupNorm reshaped a (0, C, H, W) batch to (0, G, -1), which NumPy cannot infer (ValueError)."""
    from edudet.models.layers import GroupNorm

    x = np.zeros((0, 4, 3, 3), np.float32)
    norm = GroupNorm(2, 4)
    assert norm(x.copy()).shape == x.shape  # the Numba path
    assert norm.reference(x.copy()).shape == x.shape


def _model_layer(kind: str, *args, **kwargs):
    from edudet.models.layers import GroupNorm
    from edudet.models.mobilenet_v3 import DepthwiseConv2d

    return {"GroupNorm": GroupNorm, "DepthwiseConv2d": DepthwiseConv2d}[kind](*args, **kwargs)


@pytest.mark.parametrize("kind, args, kwargs, name", [
    ("GroupNorm", (0, 4), {}, "num_groups"),  # ZeroDivisionError
    ("GroupNorm", (-1, 4), {}, "num_groups"),  # accepted, then a reshape error at the call
    ("GroupNorm", (2, 4), {"eps": float("nan")}, "eps"),  # accepted: NaN everywhere
    ("DepthwiseConv2d", (2, 3), {"stride": 0}, "stride"),  # ZeroDivisionError at the call
    ("DepthwiseConv2d", (2, 0), {}, "kernel_size"),  # accepted: a 6 x 6 map of the bias from 5 x 5
    ("DepthwiseConv2d", (2, 3), {"padding": -1}, "padding"),  # Numba crops, the reference fails to broadcast
    ("DepthwiseConv2d", (2, 3), {"dilation": 0}, "dilation"),  # accepted: every tap reads one pixel
])
def test_model_layers_refuse_bad_arguments_by_name(kind, args, kwargs, name):
    """Regression: the layers took these arguments unchecked (the comments say what each did)."""
    with pytest.raises(ValueError, match=name):
        layer = _model_layer(kind, *args, **kwargs)
        layer(np.ones((1, args[1] if kind == "GroupNorm" else args[0], 5, 5), np.float32))
