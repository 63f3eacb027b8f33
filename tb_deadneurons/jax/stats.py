"""Per-unit statistics of a value on its device (the jax twin of ``format.stats``).

The same rows and the same float32 arithmetic as
``format.stats._per_unit_stats_np`` (finite values only, two-pass std), so
that ``format.stats.encode_rows`` of these rows gives
``format.stats.snapshot_np``'s codes on the same data
(``tests/test_jax_stats.py`` pins them). Everything up to the encoding runs
inside the jitted snapshot; the host gets one small float32
``[num_stats, units]`` array per snapshot.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tb_deadneurons.format import metadata


def units_last(x, unit_axis: int):
    """``x`` as float32 ``[positions, units]`` (every other axis flattened)."""
    x = jnp.moveaxis(jnp.asarray(x), unit_axis, -1)
    return x.reshape(-1, x.shape[-1]).astype(jnp.float32)


def unit_stats(x, epsilon: float, unit_axis: int):
    """float32 ``[len(metadata.BASE_STATS), units]`` rows of ``x``.

    The NaN/Inf masks are about half the work: they are applied (under
    ``lax.cond``, on the device) only when a unit's sum is not finite.
    """
    x = units_last(x, unit_axis)
    total = x.sum(axis=0)
    return jax.lax.cond(
        jnp.isfinite(total).all(),
        lambda: _unmasked(x, total, epsilon),
        lambda: _masked(x, epsilon),
    )


def _unmasked(x, total, epsilon: float):
    """``_masked``'s rows for an ``x`` with finite values only."""
    n = jnp.float32(x.shape[0])
    denom = jnp.maximum(n, jnp.float32(1))
    absx = jnp.abs(x)
    mean = total / denom
    centred = x - mean
    count = jnp.full_like(total, n)
    rows = {
        metadata.ACTIVE_FRACTION: (absx > jnp.float32(epsilon)).sum(
            axis=0, dtype=jnp.float32
        )
        / denom,
        metadata.MEAN_ABS: absx.sum(axis=0) / denom,
        metadata.MEAN: mean,
        metadata.STD: jnp.sqrt((centred * centred).sum(axis=0) / denom),
        metadata.MAX_ABS: absx.max(axis=0, initial=jnp.float32(0)),
        metadata.COUNT: count,
        metadata.NONFINITE: jnp.zeros_like(total),
    }
    return jnp.stack([rows[name] for name in metadata.BASE_STATS])


def _masked(x, epsilon: float):
    finite = jnp.isfinite(x)
    x0 = jnp.where(finite, x, jnp.float32(0))
    count = finite.sum(axis=0, dtype=jnp.float32)
    denom = jnp.maximum(count, jnp.float32(1))
    absx = jnp.abs(x0)
    mean = x0.sum(axis=0) / denom
    centred = jnp.where(finite, x0 - mean, jnp.float32(0))
    rows = {
        metadata.ACTIVE_FRACTION: (finite & (absx > jnp.float32(epsilon))).sum(
            axis=0, dtype=jnp.float32
        )
        / denom,
        metadata.MEAN_ABS: absx.sum(axis=0) / denom,
        metadata.MEAN: mean,
        metadata.STD: jnp.sqrt((centred * centred).sum(axis=0) / denom),
        metadata.MAX_ABS: absx.max(axis=0, initial=jnp.float32(0)),
        metadata.COUNT: count,
        metadata.NONFINITE: jnp.float32(x.shape[0]) - count,
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
    g = units_last(g, unit_axis)
    finite = jnp.isfinite(g)
    total = jnp.where(finite, jnp.abs(g), jnp.float32(0)).sum(axis=0)
    return (total / jnp.maximum(finite.sum(axis=0, dtype=jnp.float32), 1.0))[None]
