"""``DeadNeuronCallback``: one line in ``model.fit`` logs dead-unit snapshots.

The callback writes to ``log_dir/train`` -- the run that
``keras.callbacks.TensorBoard(log_dir)`` writes -- at step = global training
batch, so snapshots and the loss share one step axis.
"""

from __future__ import annotations

import functools
import math
import os
import warnings

import keras
import numpy as np
from tensorboard.plugins.scalar.summary_v2 import scalar_pb

from tb_deadneurons.analysis import classify, period, progress
from tb_deadneurons.analysis import utility as utility_rule
from tb_deadneurons.format import checks, events, summary
from tb_deadneurons.format.metadata import LOSS_TAG
from tb_deadneurons.keras import discovery, probe
from tb_deadneurons.keras import utility as utility_lib
from tb_deadneurons.keras.revive import revive_site

__all__ = ["DeadNeuronCallback", "LOSS_TAG"]


# A snapshot costs one compiled forward pass of the probe batch (256 samples
# is ~8 training batches' worth of forward work) plus the statistics, reduced
# in the same compiled pass, and a small write: 0.9-1.9x that forward by
# model and backend (docs/scale.md). Measured at every 100 batches (the
# benchmarks/overhead.py hook shares; benchmarks/keras_epochs.py): 1-2 % of
# the seed MLP's training on tf and torch, 2-3 % (tf) and ~5 % (torch) of the
# small CNN's; on jax the hooks take 6-9 % of the seed MLP's 0.5 ms steps
# but overlap the queued steps (median epoch with / without under 1.01x).
# Where every_n_batches is not given the period starts here and is fitted
# to the measured cost at the first periodic snapshot (analysis.period).
DEFAULT_EVERY_N_BATCHES = period.DEFAULT_EVERY


class DeadNeuronCallback(keras.callbacks.Callback):
    """Logs per-unit activation statistics of a Keras model while it trains.

    A snapshot is taken before the first training step (units can be born
    dead), every ``every_n_batches`` batches and at the end of training,
    from one forward pass of a fixed probe batch in the mode training sees
    (dropout off, BatchNorm on the batch's statistics), compiled once on
    tensorflow and jax; no model state changes (same weights, BN statistics,
    optimizer state and random draws). The training loss is written at the
    same steps as the scalar ``deadneurons/loss``. Works on every Keras 3
    backend; in multi-process training only process 0 writes.

    Args:
      log_dir: the directory given to ``keras.callbacks.TensorBoard``; events
        go to ``log_dir/train``.
      probe_data: the probe batch: an array (or dict/list of arrays for
        multi-input models), an ``(x, y)`` tuple, or a batched
        ``tf.data.Dataset`` or torch ``DataLoader`` whose first batch is
        used. A few hundred samples are plenty.
      every_n_batches: snapshot period in training batches (>= 1). A
        snapshot costs about 1-2 compiled forward passes of the probe batch
        (measured per model and backend in docs/scale.md). Default (None):
        100, and at the 100th batch the smallest of 100, 200, 500 and 1000
        at which snapshots take at most 2 % of the measured batch time
        (``tb_deadneurons.analysis.period``; logged once, logger
        ``tb_deadneurons``, INFO; read from ``every_n_batches``). On jax,
        which dispatches asynchronously, the host's side is what is timed
        (the seed MLP's 0.2 ms batches moved it to 1000: docs/scale.md).
        Lower it for short runs.
      layers: tag paths (``"block/ffn/up"``), unique suffixes of them
        (``"up"``) or layer objects to watch, every call of each;
        ``"path:input"`` names a layer's input instead of its output.
        Default: the units the traced probe pass finds (``keras.trace``):
        every tensor a non-linearity other than softmax made that a layer
        returns (Dense/Conv with an activation, Activation/ReLU/... layers)
        or a weight layer reads (a functional activation in a block's
        ``call``: ``block/down:input``; keras-hub Llama's gated product:
        ``transformer_layer_0/feedforward_output_dense:input``), RNN outputs
        at every timestep, ``TimeDistributed`` outputs; a layer's k-th call
        is ``path@k``; never the model's outputs.
      gradients: also log mean |dL/da| per unit; needs labels in
        ``probe_data`` and a compiled loss (tensorflow, jax and torch).
      epsilon: a position counts as active where |a| > epsilon.
      revive_every: if set, every ``revive_every`` batches the units that the
        latest snapshot shows dead -- or tau-dormant, with ``revive_tau`` > 0
        -- are re-initialised with ``tb_deadneurons.revive`` (ReDo) and the
        revival is logged. Layers ``revive`` cannot handle safely are skipped
        with a warning.
      revive_tau: the ReDo threshold for revival; 0 revives dead units only.
      unit_axis: ``{series tag: axis}`` for series whose unit axis the
        trace cannot tell (it warns naming them) or gets wrong.
      scalars: also log per layer ``deadneurons/<tag>/dead_fraction`` and
        ``.../dormant_fraction`` scalars (``analysis.progress``).
      verbose: 1 prints one line per watched layer at each epoch end (dead
        share, its change since the last line, mean |a|); 0 is quiet.
      alert_above: warn once per layer when its dead share exceeds this.
      revive_select: ``"dead"`` (the units above) or ``"utility"``:
        continual backprop's choice (``tb_deadneurons.analysis.utility``):
        at each revival, ``revive_rate`` x mature units x batches since the
        last one, the mature units of lowest utility.
      revive_rate: replacement rate per unit and batch for ``"utility"``.
      revive_maturity: for ``"utility"``, batches a unit is protected after
        the start and after its replacement.

    Raises:
      ValueError: at construction for a bad argument, at ``on_train_begin``
        for unknown layer names or ``unit_axis`` tags, or a probe batch that
        does not fit the model.

    Example:

    ```python
    import numpy as np, keras, tb_deadneurons

    x = np.random.rand(512, 20).astype("float32")
    y = np.random.randint(0, 3, size=512)
    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    cb = tb_deadneurons.DeadNeuronCallback("logs/example", probe_data=x[:256])
    model.fit(x, y, epochs=1, callbacks=[cb], verbose=0)
    ```
    """

    # The snapshot period in batches: as given or set, else as fitted.
    every_n_batches = period.Attribute()

    def __init__(
        self,
        log_dir,
        probe_data,
        every_n_batches: int | None = None,
        layers=None,
        gradients: bool = False,
        epsilon: float = 0.0,
        revive_every: int | None = None,
        revive_tau: float = 0.0,
        unit_axis: dict | None = None,
        scalars: bool = False,
        verbose: int = 0,
        alert_above: float | None = None,
        revive_select: str = "dead",
        revive_rate: float = utility_rule.DEFAULT_RATE,
        revive_maturity: int = utility_rule.DEFAULT_MATURITY,
    ):
        super().__init__()
        self._progress = progress.Progress(
            type(self).__name__, scalars, verbose, alert_above, log_lines=False
        )
        self.log_dir = checks.log_dir(log_dir)
        self._period = period.Period("every_n_batches", every_n_batches)
        self.revive_every = checks.optional_positive_int("revive_every", revive_every)
        self.revive_tau = checks.non_negative_float("revive_tau", revive_tau)
        self.revive_select, self._rate, self._maturity = utility_rule.check_selection(
            revive_select, revive_rate, revive_maturity
        )
        self._utility = None
        self.epsilon = checks.epsilon(epsilon)
        self.layers = discovery.check_requested(layers)
        self.gradients = bool(gradients)
        self.unit_axis = _check_unit_axis(unit_axis)
        self.revivals: list[tuple[int, str, list[int]]] = []
        self._unrevivable: set[str] = set()
        self._x, self._y = probe.split_probe_data(probe_data)
        if self.gradients and self._y is None:
            raise ValueError(
                "gradients=True needs labels: pass probe_data=(x, y) or a Dataset "
                "of (x, y) batches"
            )
        if self.gradients:
            probe.gradient_function(keras.backend.backend())  # fails naming it
        self._writer = None
        self._probe = None
        self._active = True
        self._step = None
        self._epoch_start = 0
        self._last_snapshot_step = None
        self._pending = None  # (step, started values, loss) not yet written
        self.last_snapshot: dict[str, np.ndarray] = {}

    # -- setup ---------------------------------------------------------------

    def on_train_begin(self, logs=None):
        # In multi-process training only process 0 writes; the others skip
        # every hook (no probe pass, no file).
        self._active = _is_chief_process(self.model)
        if not self._active:
            return
        if self._probe is None:
            self._probe = probe.Probe(
                self.model,
                self._x,
                self._y,
                layers=self.layers,
                gradients=self.gradients,
                epsilon=self.epsilon,
                unit_axis=self.unit_axis,
            )
        self._step = self._iterations(default=self._step or 0)
        if self.revive_select == "utility" and self._utility is None:
            self._utility = utility_lib.UtilitySelector(
                self.model,
                rate=self._rate,
                maturity=self._maturity,
                step=self._step,
                with_gradients=self.gradients,
            )
        if self._last_snapshot_step != self._step:
            self._snapshot(loss=None)  # before the first step: units born dead

    @property
    def watched(self) -> dict[str, keras.layers.Layer]:
        """Tag → layer of the watched layers (after ``on_train_begin``)."""
        return dict(self._probe.watched) if self._probe else {}

    # -- per batch -----------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._step

    # Only a batch *begin* hook: overriding ``on_train_batch_end`` makes Keras
    # convert every batch's logs to Python numbers, a device sync per step.
    # The state at the beginning of batch k is the state after k batches.
    def on_train_batch_begin(self, batch, logs=None):
        if self._active:
            self._advance(self._epoch_start + int(batch), loss=self._running_loss)
            self._write_pending(wait=False)

    def on_epoch_end(self, epoch, logs=None):
        if not self._active:
            return
        loss = logs.get("loss") if isinstance(logs, dict) else None
        steps = (self.params or {}).get("steps") or 0
        self._advance(
            self._iterations(default=self._epoch_start + steps), loss=lambda: loss
        )
        self._write_pending(wait=True)
        lines = self._progress.lines() if self._progress.verbose else []
        if lines:
            print("\n".join(lines))

    def on_train_end(self, logs=None):
        if not self._active or self._writer is None:
            return
        if self._last_snapshot_step != self._step:
            # The end of training, when no period ended on the last step.
            self._snapshot(loss=logs.get("loss") if isinstance(logs, dict) else None)
        self._write_pending(wait=True)
        self._writer.close()
        self._writer = None  # a later fit opens a new event file

    def _iterations(self, default: int) -> int:
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        if iterations is None:
            return int(default)
        return int(keras.ops.convert_to_numpy(iterations))

    def _running_loss(self):
        """Keras's running mean of the epoch's loss, as ``logs["loss"]``: a
        function that reads it, so that taking it now waits for nothing
        (on jax the training steps already dispatched keep running)."""
        for metric in getattr(self.model, "metrics", []):
            if metric.name != "loss":
                continue
            total, count = (
                getattr(metric, "total", None),
                getattr(metric, "count", None),
            )
            if total is None or count is None:
                return functools.partial(_loss_value, metric.result())
            # Keras's Mean: total / count, divided when read.
            return functools.partial(_mean_value, _held(total, count))
        return None

    def _advance(self, step: int, loss) -> None:
        """Moves to ``step``; snapshots / revives when a period was crossed."""
        previous, self._step = self._step, step
        self._period.tick(step)
        if step > previous and self._period.due(previous, step):
            with self._period.timed(type(self).__name__):
                self._snapshot(loss=loss())
        if self.revive_every and step // self.revive_every > previous // (
            self.revive_every
        ):
            self._revive()

    # -- work ----------------------------------------------------------------

    def _events(self) -> events.BackgroundWriter:
        if self._writer is None:
            # Created when first needed, like keras.callbacks.TensorBoard's;
            # it writes off the training thread.
            self._writer = events.BackgroundWriter(os.path.join(self.log_dir, "train"))
        return self._writer

    def _snapshot(self, loss) -> None:
        """Starts this step's snapshot; ``loss`` is a number, None or a
        function giving one. It is written at once where the probe's values
        are ready, else (jax, which dispatches the probe and returns) at a
        later batch once they are (``_write_pending``): the snapshot's step
        and weights are this step's either way."""
        # On jax, reading ``self.model`` syncs the weights of the running
        # epoch back into the model's variables, which the probe reads.
        self.model  # noqa: B018
        self._write_pending(wait=True)
        self._pending = (self._step, self._probe.start(), loss)
        self._last_snapshot_step = self._step
        self._write_pending(wait=False)

    def _write_pending(self, wait: bool) -> None:
        """Writes the started snapshot, if any, once ready (now if ``wait``)."""
        if self._pending is None:
            return
        step, values, loss = self._pending
        if not (wait or self._probe.ready(values)):
            return
        self._pending = None
        codes = self._probe.finish(values)
        loss = loss() if callable(loss) else loss
        writer = self._events()
        for tag, site in self._probe.sites.items():
            writer.snapshot(
                tag,
                codes[tag],
                step,
                with_gradients=self.gradients,
                epsilon=self.epsilon,
                layer_class=type(site.layer).__name__,
                activation=site.activation,
                unit_axis=site.unit_axis,
            )
        activations = {t: site.activation for t, site in self._probe.sites.items()}
        self._progress.snapshot(writer, step, codes, self.gradients, activations, loss)
        if loss is not None and math.isfinite(loss):
            writer.add_summary(scalar_pb(LOSS_TAG, np.float32(loss)), step)
        # A flush queued at once: an interrupted fit keeps every snapshot so
        # far (the writer's thread writes it within its interval, or at exit).
        writer.flush()
        self.last_snapshot = codes

    def _revive(self) -> None:
        if self._last_snapshot_step != self._step:
            self._snapshot(loss=None)
        self._write_pending(wait=True)
        for tag, codes in self.last_snapshot.items():
            if tag in self._unrevivable:
                continue
            try:
                units = self._units_to_revive(tag, codes)
                if not units:
                    continue
                revived = revive_site(
                    self.model, self._probe.sites[tag], units, self.model.optimizer
                )
            except ValueError as e:
                self._unrevivable.add(tag)
                warnings.warn(
                    f"DeadNeuronCallback: not reviving {tag!r}: {e}", stacklevel=2
                )
                continue
            self.log_revival(tag, revived)

    def _units_to_revive(self, tag: str, codes) -> list[int]:
        if self._utility is not None:
            layer = self._probe.watched[tag]
            return self._utility.choose(tag, layer, codes, self._step)
        return classify.revivable_units(codes, self.gradients, self.revive_tau)

    def log_revival(self, layer_tag: str, units) -> None:
        """Records that ``units`` of ``layer_tag`` were re-initialised now."""
        self.revivals.append((self._step, layer_tag, list(units)))
        writer = self._events()
        writer.add_summary(summary.revivals_pb(layer_tag, units), self._step)
        writer.flush()


def _held(total, count):
    """A new ``[total, count]`` tensor of the variables' values now: their
    own buffers move on with training (on jax, the next step deletes them).
    On jax one compiled call (an eager stack dispatches several ops)."""
    if keras.backend.backend() == "jax":
        return _jax_stack()(total.value, count.value)
    return keras.ops.stack([total.value, count.value])


@functools.cache
def _jax_stack():
    import jax

    return jax.jit(lambda *values: jax.numpy.stack(values))


def _mean_value(held) -> float | None:
    """The loss a ``_running_loss`` function reads: None before any batch."""
    total, count = np.asarray(keras.ops.convert_to_numpy(held), np.float32)
    if count == 0:
        return None
    return float(total / count)


def _loss_value(result) -> float:
    """The loss a ``_running_loss`` function reads from a metric without
    ``total`` and ``count``: its ``result()`` at the snapshot's step."""
    return float(keras.ops.convert_to_numpy(result))


def _check_unit_axis(unit_axis) -> dict[str, int]:
    """``unit_axis`` as ``{tag: int}``; ValueError naming it otherwise."""
    if unit_axis is None:
        return {}
    if not isinstance(unit_axis, dict) or not all(
        isinstance(t, str) and isinstance(a, int) and not isinstance(a, bool)
        for t, a in unit_axis.items()
    ):
        raise ValueError(
            f"unit_axis must be a dict of series tag -> int axis; got {unit_axis!r}"
        )
    return dict(unit_axis)


def _is_chief_process(model) -> bool:
    """Whether this process writes: process 0 of a multi-process run.

    jax: ``jax.process_index() == 0``; torch: no ``torch.distributed`` group
    or rank 0; tensorflow: the strategy's chief (``should_checkpoint`` is what
    Keras's own checkpointing asks too).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.process_index() == 0
    if backend == "torch":
        import torch.distributed as dist

        return not (dist.is_available() and dist.is_initialized()) or (
            dist.get_rank() == 0
        )
    strategy = getattr(model, "distribute_strategy", None)
    extended = getattr(strategy, "extended", None)
    return bool(getattr(extended, "should_checkpoint", True))
