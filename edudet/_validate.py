"""Input checks done once, at the public boundary; kernels assume clean contiguous arrays.

Every check raises `TypeError` (wrong kind of thing) or `ValueError` (right kind, wrong shape, range or
content) with a message that names the argument and says what was expected.
"""
from __future__ import annotations

import numbers
import os

import numpy as np


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "..."


FLOAT_DTYPES = (np.float32, np.float64)

# Box coordinates (after any spatial scale) must lie in [-COORDINATE_LIMIT, COORDINATE_LIMIT]: far beyond any
# image, yet small enough that every width, height, area, union and grid size computed from them stays finite
# in float32 (2e15 ** 2 = 4e30 < 3.4e38). Larger finite values are refused by name instead of overflowing.
COORDINATE_LIMIT = 1e15

# One op refuses to allocate more than this many bytes for an intermediate or output array; the message names
# the sizes. Override with the environment variable EDUDET_MAX_BYTES (read at import).
MAX_ALLOCATION_BYTES = int(os.environ.get("EDUDET_MAX_BYTES", 4 * 2**30))

# Integer parameters (sizes, counts, seeds, indices) must fit in a signed 64-bit integer.
INT64_MAX = 2**63 - 1


def float_dtype_of(array: np.ndarray):
    """float32 and float64 are kept; every other real dtype (ints, float16) computes in float32."""
    return array.dtype.type if array.dtype.type in FLOAT_DTYPES else np.float32


def as_real_array(x, name: str) -> np.ndarray:
    """`x` as a NumPy array of a real numeric dtype (bool, complex, object and strings are refused)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor: accept it, edudet is NumPy in and out
        x = x.detach().cpu().numpy()
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be array-like of real numbers: {err}") from None
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"{name} must have a real numeric dtype (float or int), got {array.dtype}")
    return array


def check_finite(array: np.ndarray, name: str) -> None:
    if np.issubdtype(array.dtype, np.floating) and array.size and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")


def check_coordinates(array: np.ndarray, name: str, limit: float | None = COORDINATE_LIMIT) -> None:
    """Refuse coordinates of magnitude above `limit` (see COORDINATE_LIMIT), naming the argument."""
    if limit is None or not array.size:
        return
    largest = float(np.max(np.abs(array)))
    if largest > limit:
        raise ValueError(f"{name} has a coordinate of magnitude {largest:.3g}; edudet accepts coordinates in "
                         f"[-{limit:.0e}, {limit:.0e}] so that areas and unions cannot overflow")


def as_boxes(boxes, name: str = "boxes", dtype=None, width: int = 4,
             limit: float | None = COORDINATE_LIMIT) -> np.ndarray:
    """(N, 4) boxes as a C-contiguous float32/float64 array, finite, each coordinate within `limit`.

    Integer boxes become float32; `dtype` forces a dtype (used to bring two box sets to a common one).
    `limit=None` skips the magnitude check (for values that are not coordinates, e.g. regression deltas).
    """
    array = as_real_array(boxes, name)
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(f"{name} must have shape (N, {width}), got {tuple(array.shape)}")
    check_finite(array, name)
    check_coordinates(array, name, limit)
    target = dtype if dtype is not None else float_dtype_of(array)
    return np.ascontiguousarray(array, dtype=target)


def common_float_dtype(*arrays: np.ndarray):
    """float64 if any input is float64, else float32 (torchvision promotes the same way)."""
    return np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32


def as_scores(scores, n: int, name: str = "scores", dtype=None) -> np.ndarray:
    """(N,) scores matching N boxes, finite."""
    array = as_real_array(scores, name)
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {tuple(array.shape)}")
    if array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} entries but boxes has {n}; they must match")
    check_finite(array, name)
    target = dtype if dtype is not None else float_dtype_of(array)
    return np.ascontiguousarray(array, dtype=target)


def as_int_labels(idxs, n: int, name: str = "idxs") -> np.ndarray:
    """(N,) integer category/batch indices as int64."""
    array = as_real_array(idxs, name)
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {tuple(array.shape)}")
    if array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} entries but boxes has {n}; they must match")
    if not np.issubdtype(array.dtype, np.integer):
        check_finite(array, name)
        if array.size and not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold integers")
        # floats at or beyond 2**63 would wrap to INT64_MIN and silently merge categories
        if array.size and float(np.max(np.abs(array))) >= 2.0**63:
            raise ValueError(f"{name} holds a value beyond the int64 range")
    elif array.dtype == np.uint64 and array.size and int(array.max()) > INT64_MAX:
        raise ValueError(f"{name} holds a value beyond the int64 range")
    return np.ascontiguousarray(array, dtype=np.int64)


def check_scalar(value, name: str, *, low=None, high=None, low_inclusive=True, high_inclusive=True,
                 integer: bool = False) -> float:
    """A finite real scalar within [low, high] (bounds optional); returns it as float (or int).

    0-d arrays are unwrapped; NaN, inf, non-integral values (with `integer=True`) and integers outside the
    int64 range are refused with a `ValueError` naming `name`; anything else not a real number is a `TypeError`.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        if integer and abs(int(value)) > INT64_MAX:
            raise ValueError(f"{name} must fit in a 64-bit integer, got {_short(value)}")
    elif not np.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    if integer:
        if int(value) != value:
            raise ValueError(f"{name} must be an integer, got {value}")
        if abs(int(value)) > INT64_MAX:
            raise ValueError(f"{name} must fit in a 64-bit integer, got {_short(value)}")
    try:
        value = int(value) if integer else float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large to be a float, got {_short(value)}") from None
    if low is not None and (value < low or (value == low and not low_inclusive)):
        bound = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {bound} {low}, got {value}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        bound = "<=" if high_inclusive else "<"
        raise ValueError(f"{name} must be {bound} {high}, got {value}")
    return value


def as_image_size(size, name: str = "image_size") -> tuple[int, int]:
    """(height, width) as two positive ints."""
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (height, width) pair, got {size!r}") from None
    return (check_scalar(h, f"{name}[0]", low=1, integer=True), check_scalar(w, f"{name}[1]", low=1, integer=True))


def check_allocation(shape, itemsize: int, what: str, limit: int | None = None) -> None:
    """Refuse, before allocating, an array of `shape` x `itemsize` bytes above MAX_ALLOCATION_BYTES.

    `what` names the array and the arguments its size comes from, e.g. "box_iou's (N, M) output (boxes1: N,
    boxes2: M)"; the message gives the sizes so the caller can split the work.
    """
    limit = MAX_ALLOCATION_BYTES if limit is None else limit
    count = 1
    for n in shape:
        count *= int(n)
    nbytes = count * int(itemsize)
    if nbytes > limit:
        dims = " x ".join(str(int(n)) for n in shape)
        raise ValueError(f"{what} would need {dims} x {itemsize} bytes = {nbytes / 2**30:.1f} GiB, over edudet's "
                         f"limit of {limit / 2**30:.1f} GiB (EDUDET_MAX_BYTES); split the input into chunks")
