"""The jitted reductions of the JAX writer give ``format.stats``' codes."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tb_deadneurons.format import metadata
from tb_deadneurons.format.stats import encode_rows, snapshot_np
from tb_deadneurons.jax import stats

# Rows whose values need no float sum: equal bit for bit, so their codes too.
EXACT = [
    metadata.BASE_STATS.index(n)
    for n in (metadata.MAX_ABS, metadata.COUNT, metadata.NONFINITE)
]


def _codes(x, grad=None, axis=-1):
    rows = jax.jit(stats.unit_stats, static_argnums=(1, 2))(x, 0.0, axis)
    if grad is not None:
        g = jax.jit(stats.grad_mean_abs, static_argnums=1)(grad, axis)
        rows = np.concatenate([np.asarray(rows), np.asarray(g)])
    return encode_rows(np.asarray(rows), grad is not None)


def _agree(ours, twin):
    """Equal codes, but for a sum's last bit landing across a code boundary."""
    assert ours.shape == twin.shape and ours.dtype == twin.dtype == np.uint8
    np.testing.assert_array_equal(ours[EXACT], twin[EXACT])
    diff = np.abs(ours.astype(int) - twin.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, np.argwhere(diff)


@pytest.mark.parametrize("nonfinite", [True, False], ids=["masked", "fast-path"])
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_jitted_rows_encode_as_snapshot_np_with_dead_and_nonfinite_units(
    axis, nonfinite
):
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(64, 12, 5, 7)) * 3 - 1, 0).astype(np.float32)
    units = [slice(None)] * 4
    units[axis] = 4
    x[tuple(units)] = 0.0  # a dead unit
    grad = (rng.normal(size=x.shape) * 1e-3).astype(np.float32)
    if nonfinite:
        x[3, 2, 0, 0] = np.nan
        x[5, 1, 2, 3] = np.inf
        x[7, 6, 1, 6] = -np.inf
        grad[0, 0, 0, 0] = np.nan
    ours, twin = _codes(x, grad, axis), snapshot_np(x, grad, unit_axis=axis)
    _agree(ours, twin)
    active = metadata.BASE_STATS.index(metadata.ACTIVE_FRACTION)
    nonfinite_row = twin[metadata.BASE_STATS.index("nonfinite")]
    assert ours[active, 4] == 0 and nonfinite_row.any() == nonfinite


def test_saturated_and_all_nan_units_encode_as_snapshot_np():
    rng = np.random.default_rng(1)
    x = np.tanh(rng.normal(size=(300, 40)) * 4).astype(np.float32)
    x[:, 5] = 1.0  # saturated: std exactly 0
    x[:, 9] = np.nan  # no finite value: count 0, "no data"
    ours, twin = _codes(x), snapshot_np(x)
    _agree(ours, twin)
    np.testing.assert_array_equal(ours[:, [5, 9]], twin[:, [5, 9]])


def test_constant_units_have_std_zero_and_nan_leaves_the_others_as_numpy_says():
    """The variance is taken around each unit's first finite value in one
    pass: a constant unit's std is exactly 0 (numpy's two-pass twin leaves
    a rounding residue of its mean there, e.g. 1e-9 for 0.1), and a NaN/Inf
    in a unit far from 0 is left out of its sums as the twin leaves it."""
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(50, 6, 6, 5)) * 0.01 + 7.0).astype(np.float32)
    x[..., 1] = np.float32(0.1)  # constant, not a power of two
    x[..., 2] = np.float32(-1.0 / 3.0)
    x[9, 3, 2, 3] = np.nan  # near 7 +- 0.01: a mask missed moves std a lot
    x[4, 1, 5, 4] = -np.inf
    x[0, 0, 0, 0] = np.inf  # the first value is not finite: the shift is 0
    ours, twin = _codes(x), snapshot_np(x)
    _agree(ours[:, [0, 3, 4]], twin[:, [0, 3, 4]])
    np.testing.assert_array_equal(ours[:, 3:], twin[:, 3:])
    std = metadata.BASE_STATS.index(metadata.STD)
    assert (ours[std, 1:3] == 0).all() and (twin[std, 1:3] > 0).all()
    others = [i for i in range(len(metadata.BASE_STATS)) if i != std]
    np.testing.assert_array_equal(ours[others, 1:3], twin[others, 1:3])


def test_a_broken_reduction_is_seen():
    """The comparison above fails for rows that drop the NaN mask."""
    x = np.ones((8, 3), np.float32)
    x[0, 1] = np.nan
    rows = np.asarray(stats.unit_stats(np.nan_to_num(x), 0.0, -1))
    with pytest.raises(AssertionError):
        _agree(encode_rows(rows, False), snapshot_np(x))
