"""Input checks done once, at the public boundary; kernels assume clean contiguous arrays.

Every check raises `TypeError` (wrong kind of thing) or `ValueError` (right kind, wrong shape, range or
content) with a message that names the argument and says what was expected.
"""
from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


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


def as_boxes(boxes, name: str = "boxes", dtype=None, width: int = 4) -> np.ndarray:
    """(N, 4) boxes as a C-contiguous float32/float64 array, finite.

    Integer boxes become float32; `dtype` forces a dtype (used to bring two box sets to a common one).
    """
    array = as_real_array(boxes, name)
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(f"{name} must have shape (N, {width}), got {tuple(array.shape)}")
    check_finite(array, name)
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
    return np.ascontiguousarray(array, dtype=np.int64)


def check_scalar(value, name: str, *, low=None, high=None, low_inclusive=True, high_inclusive=True,
                 integer: bool = False) -> float:
    """A finite real scalar within [low, high] (bounds optional); returns it as float (or int)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and np.issubdtype(value.dtype, np.number):
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if integer and int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value}")
    value = int(value) if integer else float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
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
