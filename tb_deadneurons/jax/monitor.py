"""``DeadNeuronMonitor``: dead-unit snapshots from a JAX / Flax training loop."""

from __future__ import annotations

import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from tb_deadneurons.analysis import period, progress
from tb_deadneurons.format import checks, metadata
from tb_deadneurons.format import stats as format_stats
from tb_deadneurons.format.events import BackgroundWriter
from tb_deadneurons.jax import probe as probe_lib

# Where every_n_steps is not given: the start, fitted to the measured cost
# at the first periodic snapshot (analysis.period; docs/scale.md).
DEFAULT_EVERY_N_STEPS = period.DEFAULT_EVERY
_NO_LOSS = object()


class DeadNeuronMonitor:
    """Logs per-unit activation statistics of a Flax model while it trains.

    Snapshots are taken at construction (step ``start_step``, before
    training: units can be born dead), after every ``every_n_steps`` calls of
    ``step`` and at ``close``. Each is one jitted function of the variables
    on the probe batch (``tb_deadneurons.jax.probe``): every value a
    non-linearity makes and a weight layer reads is reduced on the device to
    one ``[num_stats, units]`` row block, and nothing flows back into
    training. The result is read on a later ``step`` (once the device has
    it) or at ``close``, so a snapshot never waits for the device; steps in
    between cost a counter increment. Only ``jax.process_index() == 0``
    probes and writes.

    Flax linen: ``DeadNeuronMonitor(apply_fn, log_dir, probe_data,
    variables=variables)`` with ``apply_fn(variables, x)`` (e.g. ``lambda v,
    x: model.apply(v, x)``) as training runs the model -- dropout off;
    BatchNorm on batch statistics with ``mutable=["batch_stats"]``, whose
    updates are discarded -- then ``step(variables, loss)`` per step.

    Flax NNX: ``DeadNeuronMonitor(module, log_dir, probe_data)``, then
    ``step(loss)``: the module's current state is read at each snapshot (on
    a copy: dropout off, BatchNorm on batch statistics).

    Args:
      model: a linen apply function or an ``nnx.Module``.
      log_dir: the run directory (our event file lands next to any other
        writer's files: same run, same step axis).
      probe_data: the probe batch ``x`` (an array or a pytree of arrays the
        model takes), or ``(x, y)``. A few hundred samples suffice.
      every_n_steps: snapshot period in steps. Default (None): 100, fitted
        at the 100th step to 2 % of the measured training time as the
        PyTorch monitor's (``tb_deadneurons.analysis.period``). jax
        dispatches asynchronously, so what is timed is the host's side of
        a step and of a snapshot (a small MLP's moved to 200, a small CNN's
        kept 100: docs/scale.md).
      variables: linen only: the variables at ``start_step``.
      gradients: also log mean |dL/da| per unit (needs ``(x, y)`` and
        ``loss_fn``).
      loss_fn: ``loss_fn(outputs, y)`` -> scalar, for ``gradients``.
      epsilon: a position counts as active where |a| > epsilon.
      start_step: the step of the first snapshot (when resuming).
      scalars: also log per layer ``deadneurons/<tag>/dead_fraction`` and
        ``.../dormant_fraction`` scalars (``analysis.progress``).
      verbose: n >= 1 logs one line per layer at every n-th snapshot
        (logger ``tb_deadneurons``, INFO); 0 is quiet.
      alert_above: warn once per layer when its dead share exceeds this.

    Raises:
      ValueError: a bad argument, a probe batch the model does not take, or
        a model with no unit.

    Example:

    ```python
    import flax.linen as nn
    import jax
    import numpy as np
    import optax
    from tb_deadneurons.jax import DeadNeuronMonitor

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(nn.relu(nn.Dense(32)(x)))

    model, tx = MLP(), optax.adam(1e-3)
    x = np.random.default_rng(0).normal(size=(512, 20)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    params = model.init(jax.random.key(0), x[:1])
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, xb, yb):
        def loss_fn(p):
            logits = model.apply(p, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    with DeadNeuronMonitor(
        model.apply, "logs/flax", probe_data=x[:256], variables=params,
        every_n_steps=4,
    ) as monitor:
        for i in range(0, 512, 32):
            params, opt_state, loss = train_step(
                params, opt_state, x[i:i + 32], y[i:i + 32])
            monitor.step(params, loss)
    ```
    """

    # The snapshot period in steps: as given or set, else as fitted.
    every_n_steps = period.Attribute()

    def __init__(
        self,
        model,
        log_dir,
        probe_data,
        every_n_steps: int | None = None,
        *,
        variables=None,
        gradients: bool = False,
        loss_fn: Callable | None = None,
        epsilon: float = 0.0,
        start_step: int = 0,
        scalars: bool = False,
        verbose: int = 0,
        alert_above: float | None = None,
    ):
        self.progress = progress.Progress(
            type(self).__name__, scalars, verbose, alert_above
        )
        self._nnx = _is_nnx(model)
        if not self._nnx and not callable(model):
            raise ValueError(
                f"model must be a linen apply function or an nnx.Module; got {model!r}"
            )
        if not self._nnx and variables is None:
            raise ValueError(
                "variables must be given with a linen apply function (the "
                "variables the first snapshot describes); got None"
            )
        log_dir = checks.log_dir(log_dir)
        self._period = period.Period("every_n_steps", every_n_steps)
        self.epsilon = checks.epsilon(epsilon)
        self._step = self._last_snapshot_step = checks.non_negative_int(
            "start_step", start_step
        )
        self.gradients = bool(gradients)
        x, y = _split(probe_data)
        if self.gradients and (y is None or loss_fn is None):
            raise ValueError(
                "gradients=True needs probe_data=(x, y) and loss_fn(outputs, y)"
            )
        self._last_snapshot: dict[str, np.ndarray] = {}
        self._model, self._variables, self._loss = model, variables, None
        self._pending = None
        self._writer = None
        self.active = jax.process_index() == 0
        if not self.active:
            return  # other processes: no probe, no file, nothing per step
        fn, variables = self._fn_and_variables(variables)
        self._probe = probe_lib.Probe(
            fn,
            variables,
            x,
            y,
            linen=not self._nnx,
            gradients=self.gradients,
            loss_fn=loss_fn,
            epsilon=self.epsilon,
        )
        self._writer = BackgroundWriter(log_dir)  # writes off the training thread
        self.log_dir = log_dir
        self._snapshot(variables, None)

    @property
    def last_snapshot(self) -> dict[str, np.ndarray]:
        """Tag -> uint8 codes of the latest snapshot (waits for it if pending)."""
        if self._writer is not None:
            self._write_pending(wait=True)
        return self._last_snapshot

    @property
    def watched(self) -> dict[str, tuple[int, str, str]]:
        """Tag -> ``(units, layer_class, activation)`` of every series."""
        if not self.active:
            return {}
        return {
            u.tag: (u.units, u.layer_class, u.activation) for u in self._probe.units
        }

    def step(self, *args, loss=_NO_LOSS, global_step: int | None = None) -> None:
        """Counts one training step: ``step(variables, loss=None)`` (linen) or
        ``step(loss=None)`` (NNX), after the optimizer's update.

        ``loss``: the step's loss (a jax array or a number), read only once a
        snapshot of it is written. ``global_step``: set the step counter
        instead of adding one. Between snapshots nothing touches the device.
        """
        variables, loss = self._step_args(args, loss)
        if not self.active:
            return
        if self._writer is None:
            raise ValueError("DeadNeuronMonitor.step() called after close()")
        previous = self._step
        self._step = previous + 1 if global_step is None else int(global_step)
        self._loss = loss
        if not self._nnx:
            self._variables = variables  # for the snapshot at close
        self._period.tick(self._step)
        if self._period.due(previous, self._step):
            with self._period.timed(type(self).__name__):
                self._snapshot(self._current(variables), loss)
        elif self._pending is not None:
            self._write_pending(wait=False)

    def close(self) -> None:
        """Takes the last snapshot (unless this step has one), writes, closes."""
        if self._writer is None:
            return
        if self._last_snapshot_step != self._step:
            self._snapshot(self._current(self._variables), self._loss)
        self._write_pending(wait=True)
        self._writer.close()
        self._writer = None

    def __enter__(self) -> DeadNeuronMonitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _step_args(self, args, loss):
        """``(variables, loss)`` from ``step``'s arguments, checked."""
        most = 1 if self._nnx else 2
        if len(args) > most or (len(args) == most and loss is not _NO_LOSS):
            raise ValueError(
                "step takes (loss=None) for an nnx.Module and (variables, "
                f"loss=None) for a linen apply function; got {len(args)} "
                "positional arguments"
            )
        if not self._nnx and not args:
            raise ValueError("step(variables, loss=None): variables missing")
        variables = None if self._nnx else args[0]
        rest = args[0 if self._nnx else 1 :]
        loss = rest[0] if rest else (None if loss is _NO_LOSS else loss)
        return variables, loss

    def _fn_and_variables(self, variables):
        if not self._nnx:
            return self._model, _local(variables)
        from flax import nnx

        self._graphdef, state = nnx.split(self._model)
        return probe_lib.nnx_fn(self._graphdef), _local(state)

    def _current(self, variables):
        """The variables a snapshot now describes, on this process's devices."""
        if self._nnx:
            from flax import nnx

            return _local(nnx.state(self._model))
        return _local(variables)

    def _snapshot(self, variables, loss) -> None:
        """Dispatches the probe; the result is written once it is ready."""
        self._write_pending(wait=True)  # keep the event file in step order
        rows = self._probe.rows(variables)
        rows.copy_to_host_async()
        self._pending = (self._step, rows, _local(loss))
        self._last_snapshot_step = self._step

    def _write_pending(self, wait: bool) -> None:
        if self._pending is None:
            return
        step, rows, loss = self._pending
        if not wait and not rows.is_ready():
            return
        self._pending = None
        codes = format_stats.encode_rows(np.asarray(rows), self.gradients)
        self._last_snapshot, start = {}, 0
        for unit in self._probe.units:
            self._last_snapshot[unit.tag] = codes[:, start : start + unit.units]
            start += unit.units
            self._writer.snapshot(
                unit.tag,
                self._last_snapshot[unit.tag],
                step,
                with_gradients=self.gradients,
                epsilon=self.epsilon,
                layer_class=unit.layer_class,
                activation=unit.activation,
                unit_axis=unit.axis,
            )
        loss = _host_loss(loss)
        if loss is not None:
            self._writer.scalar(metadata.LOSS_TAG, loss, step)
        activations = {unit.tag: unit.activation for unit in self._probe.units}
        self.progress.snapshot(
            self._writer, step, self._last_snapshot, self.gradients, activations, loss
        )
        # A flush queued at once: an interrupted run keeps every snapshot so
        # far (the writer's thread writes it within its interval, or at exit).
        self._writer.flush()


def _is_nnx(model) -> bool:
    nnx = sys.modules.get("flax.nnx")  # an nnx.Module means flax.nnx is loaded
    return nnx is not None and isinstance(model, nnx.Module)


def _host_loss(loss) -> float | None:
    if loss is None:
        return None
    try:
        value = float(np.asarray(loss).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return value if np.isfinite(value) else None


def _local(tree):
    """``tree`` with every leaf on this process's devices.

    A leaf replicated over several processes (data-parallel training) is
    read from its local copy; one sharded across processes cannot be probed
    from one process.
    """

    def local(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return leaf
        if leaf.is_fully_replicated:
            return leaf.addressable_data(0)
        raise ValueError(
            "variables: an array sharded across processes cannot be probed by "
            f"process 0 alone (shape {leaf.shape}, sharding {leaf.sharding})"
        )

    return jax.tree_util.tree_map(local, tree)


def _split(probe_data):
    """``(x, y)`` as device arrays; ``y`` None without labels."""
    if isinstance(probe_data, (tuple, list)) and len(probe_data) == 2:
        x, y = probe_data
    else:
        x, y = probe_data, None
    try:
        x = jax.tree_util.tree_map(jnp.asarray, x)
        y = None if y is None else jax.tree_util.tree_map(jnp.asarray, y)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"probe_data must be an array, a pytree of arrays or (x, y): {e}"
        ) from e
    leaves = jax.tree_util.tree_leaves(x)
    if not leaves or any(np.ndim(a) == 0 or np.shape(a)[0] == 0 for a in leaves):
        raise ValueError(f"probe_data has no samples: got {probe_data!r:.200}")
    return x, y
