"""``DeadNeuronCallback``: one line in ``model.fit`` logs dead-unit snapshots.

The callback writes to ``log_dir/train`` -- the run that
``keras.callbacks.TensorBoard(log_dir)`` writes -- at step = global training
batch, so snapshots and the loss share one step axis.
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from tb_deadneurons import analysis, codec, metadata, probe, summary
from tb_deadneurons.metadata import LOSS_TAG
from tb_deadneurons.revive import revive

__all__ = ["DeadNeuronCallback", "LOSS_TAG"]


# A snapshot costs one forward pass of the probe batch (256 samples is ~8
# training batches' worth of forward work) plus the statistics and a small
# write. Measured with benchmarks/overhead.py, every 50 batches cost 2.5 %
# (seed MLP) and 3.6 % (small CNN) of training time; every 100 halves that,
# inside the 3 % budget, and still gives a few hundred snapshots for a
# typical run of 20k-40k batches (e.g. 60k samples, batch 32, 10-20 epochs).
DEFAULT_EVERY_N_BATCHES = 100


class DeadNeuronCallback(keras.callbacks.Callback):
    """Logs per-unit activation statistics of a Keras model while it trains.

    A snapshot is taken before the first training step (units can be born
    dead) and then every ``every_n_batches`` batches, from one compiled
    forward pass of a fixed probe batch in inference mode; training itself is
    unchanged (same weights, same random draws). The training loss is written
    at the same steps as the scalar ``deadneurons/loss``.

    Args:
      log_dir: the directory given to ``keras.callbacks.TensorBoard``; events
        go to ``log_dir/train``.
      probe_data: the probe batch: an array (or dict/list of arrays for
        multi-input models), an ``(x, y)`` tuple, or a batched
        ``tf.data.Dataset`` whose first batch is used. A few hundred samples
        are plenty.
      every_n_batches: snapshot period in training batches (>= 1). The
        default, 100, keeps the cost near 1-2 % of training time with a probe
        of 256 samples, and gives a few hundred snapshots over 20k-40k
        batches; lower it for short runs.
      layers: layer names (``"dense"`` or nested ``"inner/dense"``) or layer
        objects to watch. Default: every layer whose output follows a
        non-linearity (Dense/Conv with a non-linear ``activation``,
        Activation/ReLU/LeakyReLU/ELU/PReLU layers), except the output layer.
      gradients: also log mean |dL/da| per unit; needs labels in
        ``probe_data`` and a compiled loss.
      epsilon: a position counts as active where |a| > epsilon.
      revive_every: if set, every ``revive_every`` batches the units that the
        latest snapshot shows dead -- or tau-dormant, with ``revive_tau`` > 0
        -- are re-initialised with ``tb_deadneurons.revive`` (ReDo) and the
        revival is logged. Layers ``revive`` cannot handle safely are skipped
        with a warning.
      revive_tau: the ReDo threshold for revival; 0 revives dead units only.

    Raises:
      ValueError: at construction for a bad argument, at ``on_train_begin``
        for unknown layer names or a probe batch that does not fit the model.

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

    def __init__(
        self,
        log_dir,
        probe_data,
        every_n_batches: int = DEFAULT_EVERY_N_BATCHES,
        layers=None,
        gradients: bool = False,
        epsilon: float = 0.0,
        revive_every: int | None = None,
        revive_tau: float = 0.0,
    ):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ValueError(f"log_dir must be a non-empty path; got {log_dir!r}")
        if not _positive_int(every_n_batches):
            raise ValueError(
                f"every_n_batches must be an integer >= 1; got {every_n_batches!r}"
            )
        if revive_every is not None and not _positive_int(revive_every):
            raise ValueError(
                f"revive_every must be None or an integer >= 1; got {revive_every!r}"
            )
        if not np.isfinite(revive_tau) or revive_tau < 0:
            raise ValueError(f"revive_tau must be finite and >= 0; got {revive_tau!r}")
        if not np.isfinite(epsilon) or epsilon < 0:
            raise ValueError(f"epsilon must be finite and >= 0; got {epsilon!r}")
        if layers is not None and (isinstance(layers, str) or not list(layers)):
            raise ValueError(
                f"layers must be a non-empty list of names or layers; got {layers!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self.every_n_batches = int(every_n_batches)
        self.layers = None if layers is None else list(layers)
        self.gradients = bool(gradients)
        self.epsilon = float(epsilon)
        self.revive_every = None if revive_every is None else int(revive_every)
        self.revive_tau = float(revive_tau)
        self.revivals: list[tuple[int, str, list[int]]] = []
        self._unrevivable: set[str] = set()
        self._x, self._y = probe.split_probe_data(probe_data)
        if self.gradients and self._y is None:
            raise ValueError(
                "gradients=True needs labels: pass probe_data=(x, y) or a Dataset "
                "of (x, y) batches"
            )
        self._writer = None
        self._probe = None
        self._step = None
        self._epoch_start = 0
        self._last_snapshot_step = None
        self.last_snapshot: dict[str, np.ndarray] = {}

    # -- setup ---------------------------------------------------------------

    def on_train_begin(self, logs=None):
        if self._writer is None:
            # One writer for the callback's life: the probe function is bound
            # to it when traced.
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, "train")
            )
        if self._probe is None:
            self._probe = probe.ProbeFunction(
                self.model,
                self._writer,
                self._x,
                self._y,
                layers=self.layers,
                gradients=self.gradients,
                epsilon=self.epsilon,
            )
        self._step = self._iterations(default=self._step or 0)
        if self._last_snapshot_step != self._step:
            self._snapshot(loss=None)  # before the first step: units born dead

    @property
    def watched(self) -> dict[str, keras.layers.Layer]:
        """Tag → layer of the watched layers (after ``on_train_begin``)."""
        return dict(self._probe.watched) if self._probe else {}

    # -- per batch ---------------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._step

    # Only a batch *begin* hook: overriding ``on_train_batch_end`` makes Keras
    # convert every batch's logs to Python numbers, a device sync per step.
    # The state at the beginning of batch k is the state after k batches.
    def on_train_batch_begin(self, batch, logs=None):
        self._advance(self._epoch_start + int(batch), loss=self._running_loss)

    def on_epoch_end(self, epoch, logs=None):
        loss = logs.get("loss") if isinstance(logs, dict) else None
        steps = (self.params or {}).get("steps") or 0
        self._advance(
            self._iterations(default=self._epoch_start + steps), loss=lambda: loss
        )

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    def _iterations(self, default: int) -> int:
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        return int(iterations.numpy()) if iterations is not None else int(default)

    def _running_loss(self) -> float | None:
        """Keras's running mean of the epoch's loss, as ``logs["loss"]``."""
        for metric in getattr(self.model, "metrics", []):
            if metric.name == "loss":
                count = getattr(metric, "count", None)
                if count is not None and float(count.numpy()) == 0:
                    return None
                return float(metric.result())
        return None

    def _advance(self, step: int, loss) -> None:
        """Moves to ``step``; snapshots / revives when a period was crossed."""
        previous, self._step = self._step, step
        if step // self.every_n_batches > previous // self.every_n_batches:
            self._snapshot(loss=loss())
        if self.revive_every and step // self.revive_every > previous // (
            self.revive_every
        ):
            self._revive()

    # -- work ----------------------------------------------------------------

    def _snapshot(self, loss: float | None) -> None:
        codes = self._probe(self._step, loss)
        # Flushed at once so an interrupted fit keeps every snapshot so far.
        self._writer.flush()
        self._last_snapshot_step = self._step
        self.last_snapshot = {tag: c.numpy() for tag, c in codes.items()}

    def _revive(self) -> None:
        if self._last_snapshot_step != self._step:
            self._snapshot(loss=None)
        layout = metadata.snapshot_plugin_data(with_gradients=self.gradients)
        for tag, codes in self.last_snapshot.items():
            if tag in self._unrevivable:
                continue
            stats = {
                name: values[None, :]
                for name, values in codec.decode_snapshot(codes, layout).items()
            }
            verdict = analysis.classify(
                stats, [self._step], analysis.Thresholds(tau=self.revive_tau)
            )
            mask = verdict.dead[0] | (verdict.dormant[0] if self.revive_tau else False)
            units = np.flatnonzero(mask).tolist()
            if not units:
                continue
            try:
                revived = revive(
                    self.model, self._probe.watched[tag], units, self.model.optimizer
                )
            except ValueError as e:
                self._unrevivable.add(tag)
                warnings.warn(
                    f"DeadNeuronCallback: not reviving {tag!r}: {e}", stacklevel=2
                )
                continue
            self.log_revival(tag, revived)

    def log_revival(self, layer_tag: str, units) -> None:
        """Records that ``units`` of ``layer_tag`` were re-initialised now."""
        self.revivals.append((self._step, layer_tag, list(units)))
        with self._writer.as_default():
            summary.revivals(layer_tag, units, step=self._step)
        self._writer.flush()


def _positive_int(value) -> bool:
    return (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and value >= 1
    )
