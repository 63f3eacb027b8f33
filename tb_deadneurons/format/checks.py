"""Argument checks shared by every writer (TF op, numpy twin, callbacks).

One rule and one message per kind of argument, so the op, the numpy twin,
the Keras callback and the PyTorch monitor refuse the same input the same
way: a ``ValueError`` that names the argument and shows the bad value.
Numpy only.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np


def _finite_float(name: str, value, bound: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.number)):
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and ok(number)):
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}")
    return number


def non_negative_float(name: str, value) -> float:
    """``value`` as a float; ValueError unless a finite real number >= 0."""
    return _finite_float(name, value, ">= 0", lambda x: x >= 0)


def positive_float(name: str, value) -> float:
    """``value`` as a float; ValueError unless a finite real number > 0."""
    return _finite_float(name, value, "> 0", lambda x: x > 0)


def epsilon(value) -> float:
    """The activity threshold: a position is active where |a| > epsilon."""
    return non_negative_float("epsilon", value)


def _int_at_least(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def positive_int(name: str, value) -> int:
    """``value`` as an int; ValueError unless an integer (not bool) >= 1."""
    return _int_at_least(name, value, 1)


def non_negative_int(name: str, value) -> int:
    """``value`` as an int; ValueError unless an integer (not bool) >= 0."""
    return _int_at_least(name, value, 0)


def path_matches(item: str, paths, sep: str) -> list[str]:
    """The paths a ``layers=``/``modules=`` name means: the path itself when
    there is one, else every path ending in ``sep + item`` (a unique suffix
    names one layer; several are for the caller to refuse)."""
    paths = list(paths)
    exact = [p for p in paths if p == item]
    return exact or [p for p in paths if p.endswith(sep + item)]


def optional_positive_int(name: str, value) -> int | None:
    """None, or ``positive_int(name, value)``."""
    return None if value is None else positive_int(name, value)


def unit_axis(value) -> int:
    """The unit axis as an int; ValueError for anything but an integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"unit_axis must be an integer; got {value!r}")
    return int(value)


# Unit indices are stored as int32 in revival records.
MAX_UNIT_INDEX = 2**31 - 1


def unit_indices(name: str, units, num_units: int | None = None) -> np.ndarray:
    """``units`` as a 1-D int64 array of valid unit indices.

    Raises:
      ValueError: not a 1-D sequence of integers, a negative index, one that
        does not fit int32, or (with ``num_units``) one outside the layer.
    """
    try:
        indices = np.asarray(units)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name} must be a 1-D list of ints; got {units!r}") from e
    if indices.ndim != 1 or (
        indices.size and not np.issubdtype(indices.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be a 1-D list of ints; got {units!r}")
    indices = indices.astype(np.int64)
    if indices.size and indices.min() < 0:
        raise ValueError(f"{name} must be non-negative; got {units!r}")
    limit = MAX_UNIT_INDEX if num_units is None else num_units - 1
    if indices.size and indices.max() > limit:
        raise ValueError(
            f"{name} has index {int(indices.max())}, beyond the last unit {limit}"
        )
    return indices


def log_dir(value) -> str:
    """A non-empty path as a str."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"log_dir must be a non-empty path; got {value!r}")
    return os.fspath(value)
