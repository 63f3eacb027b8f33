"""The probe: one jitted function from the variables to every unit's rows.

``Probe(fn, variables, x, y, ...)`` traces ``fn(variables, x)`` once
(``graph.trace``), finds its units (``units.find``) and jits ``rows``, which
replays the traced graph on the current variables and reduces every watched
value to its statistics the moment it is made: ``float32 [num_stats, total
units]``, the series side by side in ``units`` order, one device array. The
probe is a pure function of the variables: nothing it computes goes back
into training. With gradients, a zero is added to every watched value and
``loss_fn(outputs, y)`` is differentiated against those zeros: dL/da.

``linen_fn`` and ``nnx_fn`` give ``fn`` and the variables' module paths for
the two Flax APIs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from tb_deadneurons.jax import graph as graph_lib
from tb_deadneurons.jax import stats
from tb_deadneurons.jax import units as units_lib


def _key(entry) -> str:
    for field in ("key", "name", "idx"):
        if hasattr(entry, field):
            return str(getattr(entry, field))
    return str(entry)


def module_paths(variables, linen: bool) -> list[str]:
    """The module path of every leaf: ``Dense_0`` for linen's
    ``params/Dense_0/kernel``, ``layers/0`` for NNX's ``layers/0/kernel/value``."""
    paths = []
    for path, _ in jax.tree_util.tree_flatten_with_path(variables)[0]:
        keys = [_key(k) for k in path]
        if keys and keys[-1] == "value" and not linen:
            keys = keys[:-1]
        keys = keys[1:-1] if linen else keys[:-1]
        paths.append("/".join(keys))
    return paths


def model_output(out):
    """``out`` without linen's mutated collections (``apply(..., mutable=)``)."""
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
        return out[0]
    return out


def nnx_fn(graphdef) -> Callable:
    """``fn(state, x)``: the NNX module as training runs it, on a copy.

    Dropout off (``deterministic=True``), BatchNorm on the batch's statistics
    (``use_running_average=False``); the copy's updated statistics are
    dropped with it.
    """
    from flax import nnx

    def fn(state, x):
        module = nnx.merge(graphdef, state)
        for _, sub in module.iter_modules():
            if hasattr(sub, "deterministic"):
                sub.deterministic = True
            if hasattr(sub, "use_running_average"):
                sub.use_running_average = False
        return module(x)

    return fn


class Probe:
    """The jitted snapshot of ``fn``'s units; ``rows(variables)`` runs it.

    Raises (at construction):
      ValueError: ``fn`` fails on the probe batch, or it has no unit.
    """

    def __init__(
        self,
        fn: Callable,
        variables,
        x,
        y=None,
        *,
        linen: bool,
        gradients: bool = False,
        loss_fn: Callable | None = None,
        epsilon: float = 0.0,
    ):
        self._fn, self._x, self._y = fn, x, y
        self._gradients, self._loss_fn, self._epsilon = gradients, loss_fn, epsilon
        paths = module_paths(variables, linen)
        paths += [None] * len(jax.tree_util.tree_leaves(x))
        try:
            self.graph = graph_lib.trace(
                lambda v, d: model_output(fn(v, d)), (variables, x), paths
            )
        except Exception as e:
            raise ValueError(
                f"probe_data does not fit the model: {type(e).__name__}: {e}"
            ) from e
        self.units, unseen = units_lib.find(self.graph, strip_root=linen)
        if not self.units:
            raise ValueError(
                "the forward pass has no unit: no weight layer (Dense/Conv/"
                "Einsum) reads what a non-linearity made"
                + (f" on one axis (not watchable: {unseen})" if unseen else "")
            )
        if unseen:
            warnings.warn(
                "DeadNeuronMonitor: units not watched: a weight with batch "
                "dimensions made them (stacked experts, per-head weights), so "
                f"no one axis holds them: {unseen}. Their units are missing "
                "from the log",
                stacklevel=4,
            )
        self._jitted = jax.jit(self._rows)

    def rows(self, variables):
        """The device array of every unit's rows; dispatched, not waited for."""
        return self._jitted(variables, self._x, self._y)

    def _rows(self, variables, x, y):
        leaves = jax.tree_util.tree_leaves((variables, x))
        if self._gradients:
            acts, grads = self._with_gradients(leaves, y)
        else:
            acts, grads = self._capture(leaves, None), None
        parts = [
            stats.series_rows(
                acts[unit.ref],
                None if grads is None else grads[i],
                self._epsilon,
                unit.axis,
            )
            for i, unit in enumerate(self.units)
        ]
        return jnp.concatenate(parts, axis=1)

    def _capture(self, leaves, deltas):
        """Watched values by ref; ``deltas`` (a zero each) added where made."""
        index = {unit.ref: i for i, unit in enumerate(self.units)}
        acts = {}

        def on_value(ref, value):
            if ref not in index:
                return value
            acts[ref] = value
            return value if deltas is None else value + deltas[index[ref]]

        out = graph_lib.evaluate(self.graph, leaves, on_value)
        return (acts, out) if deltas is not None else acts

    def _with_gradients(self, leaves, y):
        def loss(deltas):
            acts, out = self._capture(leaves, deltas)
            return jnp.asarray(self._loss_fn(out, y), jnp.float32), acts

        zeros = [
            jnp.zeros(
                self.graph.nodes[u.ref[0]].shapes[u.ref[1]],
                self.graph.nodes[u.ref[0]].eqn.outvars[u.ref[1]].aval.dtype,
            )
            for u in self.units
        ]
        grads, acts = jax.grad(loss, has_aux=True)(zeros)
        return acts, grads
