"""Per-unit statistics of a value on its device (the jax twin of ``format.stats``).

The same rows as ``format.stats._per_unit_stats_np`` (finite values only,
float32), so that ``format.stats.encode_rows`` of these rows gives
``format.stats.snapshot_np``'s codes on the same data
(``tests/test_jax_stats.py`` pins them). Everything up to the encoding runs
inside the jitted snapshot; the host gets one small float32
``[num_stats, units]`` array per snapshot.

One read of the value: every row comes from one variadic ``lax.reduce``,
NaN/Inf masks included, over the axes as they lie (no transposing copy for
a channels-first unit axis). XLA:CPU runs a variadic reduction as one
scalar loop (~1.5 ns per value here, whatever the number of accumulators),
slower than one vectorised sum but never pathological: separate masked
sums made XLA materialise the shared masks (17 ms for the small CNN's
[256, 26, 26, 16] ReLU output), and the ``lax.cond`` between masked and
unmasked reductions used before took 8-10 ms there and on EfficientNet's
[32, 32, 32, 96]; this takes ~3.5 ms. The sums as matrix-vector products
(``tf.stats``'s way) took 14-21 ms on those two tensors on XLA:CPU; only
wide, short tensors gained ([8, 128, 1024]: 1.1-1.2 against 1.8 ms). The
variance is taken around a shift, each unit's first finite-or-zero value,
so that a constant unit's ``std`` is exactly 0 and no second pass is
needed. The reduction runs in two levels (every axis but the first
non-unit one, then that one), which keeps the float32 sums' rounding
within a code of numpy's pairwise sums.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tb_deadneurons.format import metadata

# Accumulators of the one reduction, in this order.
_SUMS = ("finite", "active", "abs", "shifted", "shifted_sq")


def _two_level(operands, inits, combine, unit_axis: int, rank: int):
    """``lax.reduce`` of ``operands`` over every axis but ``unit_axis``:
    first the axes after the first non-unit axis, then that one."""
    others = [d for d in range(rank) if d != unit_axis]
    inner = tuple(others[1:])
    if inner:
        operands = jax.lax.reduce(operands, inits, combine, inner)
    # Left: the first non-unit axis and the unit axis, in their order.
    outer = 0 if others[0] < unit_axis else 1
    return jax.lax.reduce(operands, inits, combine, (outer,))


def _shift(x, unit_axis: int):
    """Per unit, its value at the first position, or 0 where that one is not
    finite (shaped to broadcast against ``x``)."""
    first = x[
        tuple(slice(None) if d == unit_axis else slice(0, 1) for d in range(x.ndim))
    ]
    return jnp.where(jnp.isfinite(first), first, jnp.float32(0))


def _add(a, b):
    return tuple(p + q for p, q in zip(a, b, strict=True))


def _combine(a, b):
    """Sums of every accumulator but the last, which is a maximum."""
    return (*_add(a[:-1], b[:-1]), jnp.maximum(a[-1], b[-1]))


def unit_stats(x, epsilon: float, unit_axis: int):
    """float32 ``[len(metadata.BASE_STATS), units]`` rows of ``x`` (any real
    dtype; every axis but ``unit_axis`` is reduced), in one pass."""
    x = jnp.asarray(x).astype(jnp.float32)
    axis = unit_axis % x.ndim
    shift = _shift(x, axis)
    finite = jnp.isfinite(x)
    x0 = jnp.where(finite, x, jnp.float32(0))
    absx = jnp.abs(x0)
    d = jnp.where(finite, x0 - shift, jnp.float32(0))
    one = jnp.float32(1)
    zero = jnp.float32(0)
    operands = (
        jnp.where(finite, one, zero),
        # ``absx`` is 0 where ``x`` is not finite, and epsilon >= 0.
        jnp.where(absx > jnp.float32(epsilon), one, zero),
        absx,
        d,
        d * d,
        absx,
    )
    *sums, max_abs = _two_level(operands, (zero,) * 6, _combine, axis, x.ndim)
    s = dict(zip(_SUMS, sums, strict=True))
    denom = jnp.maximum(s["finite"], one)
    mean_d = s["shifted"] / denom
    var = jnp.maximum(s["shifted_sq"] / denom - mean_d * mean_d, zero)
    positions = jnp.float32(x.size // x.shape[axis])
    rows = {
        metadata.ACTIVE_FRACTION: s["active"] / denom,
        metadata.MEAN_ABS: s["abs"] / denom,
        metadata.MEAN: shift.reshape(-1) + mean_d,
        metadata.STD: jnp.sqrt(var),
        metadata.MAX_ABS: max_abs,
        metadata.COUNT: s["finite"],
        metadata.NONFINITE: positions - s["finite"],
    }
    return jnp.stack([rows[name] for name in metadata.BASE_STATS])


def series_rows(x, grad, epsilon: float, unit_axis: int):
    """``unit_stats`` of ``x``, then ``grad_mean_abs`` of ``grad`` unless it
    is None: a series' whole ``[num_stats, units]`` snapshot rows."""
    rows = unit_stats(x, epsilon, unit_axis)
    if grad is None:
        return rows
    return jnp.concatenate([rows, grad_mean_abs(grad, unit_axis)])


def grad_mean_abs(g, unit_axis: int):
    """float32 ``[1, units]``: mean |g| over the finite values per unit."""
    g = jnp.asarray(g).astype(jnp.float32)
    axis = unit_axis % g.ndim
    finite = jnp.isfinite(g)
    zero = jnp.float32(0)
    total, count = _two_level(
        (jnp.where(finite, jnp.abs(g), zero), jnp.where(finite, jnp.float32(1), zero)),
        (zero, zero),
        _add,
        axis,
        g.ndim,
    )
    return (total / jnp.maximum(count, jnp.float32(1)))[None]
