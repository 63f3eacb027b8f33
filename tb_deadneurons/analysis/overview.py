"""Wide layers at screen size: a cell matrix aggregated into display blocks.

A layer of 11,008 units over 500 snapshots is 5.5 M cells; a heat map a few
hundred pixels high cannot show one row per unit. ``aggregate`` cuts the
``uint8 [units, steps]`` cell matrix of ``classify.Classification.matrix``
(docs/routes.md) into at most ``rows`` x ``cols`` blocks of adjacent units
and snapshots, optionally restricted to a unit range first (the zoom), and
keeps what matters in each block:

- ``cells``: the block's most telling cell -- the highest state by
  dead > dormant > active > no data, with the activity level of the least
  active cell in that state, and the grad-dormant bit if any cell has it.
  A block with any dead unit-step shows dead.
- ``dead``: how many units of the block's row were dead at once, the most
  over the block's snapshots (0 where none).

Blocks split units and steps as evenly as possible (sizes differ by at most
one); a range no larger than ``rows`` (``cols``) keeps one unit (step) per
row (column), i.e. full resolution. Numpy only.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import NamedTuple

import numpy as np

from tb_deadneurons.analysis import classify
from tb_deadneurons.format import checks

_STATE_SHIFT = classify.STATE_SHIFT
_GRAD_BIT = classify.GRAD_DORMANT_BIT
_LEVEL_BITS = _GRAD_BIT - 1  # the activity level sits below the grad flag
# A block's most telling cell has the largest key: the state's display
# priority (no data 0 < active 1 < dormant 2 < dead 3, i.e. (state + 1) % 4,
# which is cell + 64 with uint8 wrap-around) in bits 7-6, the inverted
# activity level below. A few in-place uint8 passes and per-block max()
# calls run vectorised; lookup tables, shifts and ufunc.reduceat were
# 5-50x slower on 5.5 M cells.
_ROTATE = np.uint8(1 << _STATE_SHIFT)
_STATE_BITS = np.uint8(0b11 << _STATE_SHIFT)
_DEAD_KEY = np.uint8(((classify.STATE_DEAD + 1) % 4) << _STATE_SHIFT)
assert classify.STATE_NO_DATA == 3 and (
    classify.STATE_ACTIVE < classify.STATE_DORMANT < classify.STATE_DEAD
)


def _keys(cells: np.ndarray) -> np.ndarray:
    keys = cells + _ROTATE
    keys &= _STATE_BITS
    level = ~cells
    level &= np.uint8(_LEVEL_BITS)
    keys |= level
    return keys


def _cells(keys: np.ndarray) -> np.ndarray:
    """Inverts ``_keys`` (the grad flag is not in the key)."""
    return (keys - _ROTATE) & _STATE_BITS | (~keys & np.uint8(_LEVEL_BITS))


class View(NamedTuple):
    """What a request asks to see: ``aggregate``'s window arguments."""

    rows: int | None = None
    cols: int | None = None
    unit_start: int | None = None
    unit_stop: int | None = None


@dataclasses.dataclass
class Overview:
    """An aggregated window of a layer's cell matrix.

    ``cells`` and ``dead`` are ``[R, C]``; row ``r`` covers units
    ``row_bounds[r]:row_bounds[r + 1]`` (absolute unit indices), column ``c``
    the snapshot indices ``col_bounds[c]:col_bounds[c + 1]``.
    """

    cells: np.ndarray  # uint8 [R, C]
    dead: np.ndarray  # uint32 [R, C]
    row_bounds: np.ndarray  # int64 [R + 1]
    col_bounds: np.ndarray  # int64 [C + 1]


def bounds(n: int, parts: int | None) -> np.ndarray:
    """``min(parts, n) + 1`` ascending cut points splitting ``range(n)`` evenly.

    ``parts=None`` means one part per element. ``n == 0`` gives ``[0]``.
    """
    k = n if parts is None else min(parts, n)
    return (np.arange(k + 1, dtype=np.int64) * n) // max(k, 1)


def unit_range(units: int, unit_start: int | None, unit_stop: int | None):
    """``(start, stop)`` of a requested unit range, defaults the whole layer.

    Raises:
      ValueError: a negative ``unit_start``, ``unit_stop`` < 1, beyond the
        layer, or not after ``unit_start``; the message names the argument.
    """
    start = (
        0 if unit_start is None else checks.non_negative_int("unit_start", unit_start)
    )
    stop = units if unit_stop is None else checks.positive_int("unit_stop", unit_stop)
    if stop > units:
        raise ValueError(f"unit_stop must be <= {units} (the layer's units): {stop}")
    if start >= stop and (unit_start is not None or unit_stop is not None):
        raise ValueError(f"unit_start must be < unit_stop ({stop}); got {start}")
    return start, stop


def aggregate(
    matrix: np.ndarray,
    rows: int | None = None,
    cols: int | None = None,
    unit_start: int | None = None,
    unit_stop: int | None = None,
) -> Overview:
    """Aggregates ``matrix[unit_start:unit_stop]`` into ``rows`` x ``cols`` blocks.

    Args:
      matrix: ``uint8 [units, steps]`` cells (bits 7-6 the state).
      rows, cols: the most display rows / columns; None for one per unit /
        snapshot.
      unit_start, unit_stop: the unit range to show; None for the layer's
        first / last unit.

    Raises:
      ValueError: ``rows``/``cols`` not an integer >= 1, or a bad unit range
        (see ``unit_range``); the message names the argument.
    """
    rows = checks.optional_positive_int("rows", rows)
    cols = checks.optional_positive_int("cols", cols)
    matrix = np.asarray(matrix, dtype=np.uint8)
    start, stop = unit_range(matrix.shape[0], unit_start, unit_stop)
    window = matrix[start:stop]
    row_bounds, col_bounds = bounds(len(window), rows), bounds(window.shape[1], cols)
    if window.shape[1] == 0 or not len(window):
        shape = (len(row_bounds) - 1, len(col_bounds) - 1)
        return Overview(
            np.zeros(shape, np.uint8), np.zeros(shape, np.uint32),
            row_bounds + start, col_bounds,
        )  # fmt: skip
    keys = _keys(window)
    dead = _reduce(_count, (keys >= _DEAD_KEY).view(np.uint8), row_bounds, 0)
    key = _reduce(np.max, keys, row_bounds, 0)
    flag = _reduce(np.max, window & np.uint8(_GRAD_BIT), row_bounds, 0)
    cells = _cells(_reduce(np.max, key, col_bounds, 1))
    cells |= _reduce(np.max, flag, col_bounds, 1)
    dead = _reduce(np.max, dead.astype(np.uint32), col_bounds, 1)
    return Overview(cells, dead, row_bounds + start, col_bounds)


def _count(block: np.ndarray, axis: int) -> np.ndarray:
    # An explicit accumulator type keeps the sum vectorised (10x np.sum's).
    return np.add.reduce(block, axis=axis, dtype=np.uint32)


def _reduce(fn, values: np.ndarray, cuts: np.ndarray, axis: int) -> np.ndarray:
    """``fn(block, axis=axis)`` for each block between ``cuts`` along ``axis``;
    ``values`` unchanged at full resolution. A loop of numpy calls over
    contiguous blocks: each call is vectorised, and there are at most a few
    thousand blocks."""
    if len(cuts) - 1 == values.shape[axis]:
        return values
    index = [slice(None), slice(None)]
    parts = []
    for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        index[axis] = slice(a, b)
        parts.append(fn(values[tuple(index)], axis=axis))
    return np.stack(parts, axis=axis)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def matrix_json(matrix: np.ndarray, cell: str, view: View | None = None) -> dict:
    """The ``matrix`` object of ``./timeline`` (docs/routes.md) for ``view``.

    ``dead`` holds the per-block dead counts as base64 little-endian
    integers of the smallest unsigned type that fits, or None when every
    row is one unit (the cell's state already says it).

    Raises:
      ValueError: a bad ``view`` (see ``aggregate``).
    """
    agg = aggregate(matrix, *(view or View()))
    one_unit_rows = bool((np.diff(agg.row_bounds) == 1).all())
    dead = None
    if not one_unit_rows:
        top = int(agg.dead.max(initial=0))
        dtype = next(
            t for t in (np.uint8, np.uint16, np.uint32) if top <= np.iinfo(t).max
        )
        dead = {
            "encoding": "base64",
            "dtype": np.dtype(dtype).name,
            "byte_order": "little",
            "data": _b64(agg.dead.astype(np.dtype(dtype).newbyteorder("<"))),
        }
    return {
        "encoding": "base64",
        "shape": list(agg.cells.shape),
        "order": "unit-major",
        "cell": cell,
        "data": _b64(agg.cells),
        "unit_bounds": agg.row_bounds.tolist(),
        "step_bounds": agg.col_bounds.tolist(),
        "dead": dead,
    }
