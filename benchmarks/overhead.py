"""Writer overhead, measured side by side in one run (not a test).

Default: the Keras callback on every Keras 3 backend. For each of
tensorflow, jax and torch (one subprocess each, ``KERAS_BACKEND`` set), on
the seed MLP (784 -> 64 ReLU -> 10 softmax, 60,000 synthetic samples, batch
32, one epoch after a warm-up fit):

- steady overhead: (epoch) / (epoch - time inside the callback's batch and
  epoch hooks), with ``gradients=False`` and ``gradients=True`` (probe labels
  given), at defaults; the time inside our hooks is our cost, measured
  directly and far less noisy than two fit times on a shared machine;
- start-up: seconds inside ``on_train_begin`` of the first fit (probe set-up:
  one eager forward, the one trace of the compiled pass on tf/jax, and the
  step-0 snapshot) and of a second fit (nothing to set up);
- whole training: an epoch of the small CNN (12,000 samples, batch 32) with
  the callback at defaults over one without, the order alternating;
- the floor: one probe pass (forward, statistics, encoding) over the
  compiled forward of the same batch (``predict_on_batch``: a tf.function,
  a jitted call, torch under no_grad), interleaved rounds, min / median, on
  the small CNN (probe 256), EfficientNetB0 (64x64, ``weights=None``, probe
  32), ResNet50 (32x32, probe 16) and a keras-hub GPT-2 backbone (2 layers,
  hidden 256, FFN 1024, probe 8 x 128 tokens).

``--tf-op``: the older TensorFlow-only comparison (fit with
``keras.callbacks.TensorBoard(histogram_freq=1)``, and a custom
``tf.function`` loop with and without the ``summary.activations`` op at
every step) plus on-disk bytes per unit per snapshot.

    python benchmarks/overhead.py [--reps 2] [--backends tensorflow jax torch]
        [--floor-only]
    python benchmarks/overhead.py --tf-op [--reps 3] [--cnn-samples 12000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2

import tb_deadneurons
from tb_deadneurons import summary
from tb_deadneurons.format import metadata
from tb_deadneurons.keras import probe

HOOK_SHARES: list[float] = []


class TimedDeadNeuronCallback(tb_deadneurons.DeadNeuronCallback):
    """Our callback, adding up the seconds spent inside its hooks.

    On CPU, TensorFlow and torch run each train step before the next hook
    is called, so the time inside our hooks is our overhead, measured
    directly and far less noisy than the difference of two fit times. jax
    dispatches train steps asynchronously: the first thing a snapshot reads
    waits for the queued steps, which is training's time, not ours. So on
    jax the queue is drained before a due snapshot, outside the timer; the
    state sync a snapshot forces (Keras's ``jax_state_sync``, as for a
    checkpoint) stays inside it.
    """

    seconds = 0.0
    begin_seconds: list[float] = []

    def _timed(self, hook, *args, **kwargs):
        start = time.perf_counter()
        hook(*args, **kwargs)
        self.seconds += time.perf_counter() - start

    def _advance(self, step, loss):
        due = step // self.every_n_batches > self._step // self.every_n_batches
        if due and keras.backend.backend() == "jax":
            import jax

            # ``self._model``, not ``self.model``: the property would sync.
            start = time.perf_counter()
            jax.block_until_ready(getattr(self._model, "_jax_state", None))
            self.seconds -= time.perf_counter() - start
        super()._advance(step, loss)

    def on_train_begin(self, *args, **kwargs):
        start = time.perf_counter()
        super().on_train_begin(*args, **kwargs)
        self.begin_seconds = [*self.begin_seconds, time.perf_counter() - start]

    def on_train_end(self, *args, **kwargs):
        self._timed(super().on_train_end, *args, **kwargs)

    def on_epoch_begin(self, *args, **kwargs):
        self._timed(super().on_epoch_begin, *args, **kwargs)

    def on_train_batch_begin(self, *args, **kwargs):
        self._timed(super().on_train_batch_begin, *args, **kwargs)

    def on_epoch_end(self, *args, **kwargs):
        self._timed(super().on_epoch_end, *args, **kwargs)


def mlp():
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def cnn():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def data(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.random((n, *shape), dtype=np.float32),
        rng.integers(0, 10, size=n).astype("int32"),
    )


def compiled(build):
    keras.utils.set_random_seed(0)
    model = build()
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def time_fit(build, x, y, make_callbacks):
    """Seconds of one epoch, after a warm-up fit with the same callbacks.

    The warm-up (60 batches) pays every one-off cost -- tracing the train
    function and our probe function, creating writers -- so the timed epoch
    shows the steady per-step overhead; ``setup`` is printed separately.
    """
    model = compiled(build)
    callbacks = make_callbacks()
    start = time.perf_counter()
    model.fit(
        x[:1920], y[:1920], batch_size=32, epochs=1, verbose=0, callbacks=callbacks
    )
    setup = time.perf_counter() - start
    timed = [cb for cb in callbacks if isinstance(cb, TimedDeadNeuronCallback)]
    for cb in timed:
        cb.seconds = 0.0
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - start
    HOOK_SHARES.extend(cb.seconds / (seconds - cb.seconds) for cb in timed)
    return seconds, setup


def time_custom_loop(build, x, y, logdir):
    """A custom tf.function loop, without and with our op at every step.

    Both step functions train the same model; they alternate step by step,
    so slow drifts of the machine hit both alike. Returns the seconds spent
    in each: ``(plain, with_op)``.
    """
    import tensorflow as tf

    model = compiled(build)
    optimizer = model.optimizer
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    watched = [la for la in model.layers[:-1] if getattr(la, "activation", None)]
    watched = [la for la in watched if la.activation.__name__ == "relu"]
    probe = keras.Model(model.inputs, [la.output for la in watched] + model.outputs)
    writer = tf.summary.create_file_writer(logdir)

    def make_step(with_op):
        @tf.function
        def train_step(xb, yb, step):
            with tf.GradientTape() as tape:
                *acts, pred = probe(xb, training=True)
                loss = loss_fn(yb, pred)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(
                zip(grads, model.trainable_variables, strict=True)
            )
            if with_op:
                with writer.as_default(step=step):
                    for layer, a in zip(watched, acts, strict=True):
                        summary.activations(layer.name, a)
            return loss

        return train_step

    steps = {False: make_step(False), True: make_step(True)}
    spent = {False: 0.0, True: 0.0}
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    batches = list(ds)
    for step_fn in steps.values():  # trace both first
        step_fn(*batches[0], tf.constant(0, tf.int64))
    for i, (xb, yb) in enumerate(batches):
        step = tf.constant(i, tf.int64)
        for with_op in (i % 2 == 0, i % 2 != 0):
            start = time.perf_counter()
            steps[with_op](xb, yb, step).numpy()
            spent[with_op] += time.perf_counter() - start
    writer.flush()
    return spent[False], spent[True]


def bytes_per_unit_snapshot(run_dir):
    """(snapshot records only, whole files) bytes per unit per snapshot."""
    snap_bytes = total = unit_snapshots = 0
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        total += os.path.getsize(path)
        for raw in event_file_loader.RawEventFileLoader(path).Load():
            event = event_pb2.Event.FromString(raw)
            for value in event.summary.value:
                # Metadata is only on a series' first event: recognise our
                # snapshots by their uint8 [stats, units] tensor.
                if value.tensor.dtype == 4 and len(value.tensor.tensor_shape.dim) == 2:
                    snap_bytes += len(raw) + 16  # TFRecord framing
                    unit_snapshots += value.tensor.tensor_shape.dim[1].size
    return snap_bytes / unit_snapshots, total / unit_snapshots


def measure(name, build, x, y, reps, tmp):
    """Runs every condition for one model and prints the ratios."""
    probe_x = x[:256]
    conditions = {
        "no callback": lambda: [],
        "TensorBoard(histogram_freq=1)": lambda n=name: [
            keras.callbacks.TensorBoard(
                tempfile.mkdtemp(dir=tmp, prefix=f"{n}-tb-"), histogram_freq=1
            )
        ],
        "DeadNeuronCallback defaults": lambda n=name, p=probe_x: [
            TimedDeadNeuronCallback(tempfile.mkdtemp(dir=tmp, prefix=f"{n}-dn-"), p)
        ],
    }
    runs = {
        **{
            label: (lambda make=make: time_fit(build, x, y, make))
            for label, make in conditions.items()
        },
    }
    HOOK_SHARES.clear()
    op_ratios = []
    times = {k: [] for k in runs}
    setups = {k: [] for k in runs}
    labels = list(runs)
    for rep in range(reps):
        # Rotate the order so no condition always runs first or last.
        for label in labels[rep % len(labels) :] + labels[: rep % len(labels)]:
            seconds, setup = runs[label]()
            times[label].append(seconds)
            setups[label].append(setup)
        plain, with_op = time_custom_loop(build, x, y, tempfile.mkdtemp(dir=tmp))
        op_ratios.append(with_op / plain)
    # The minimum over repetitions: on a shared 2-core machine the noise only
    # ever adds time. Medians are printed alongside.
    base = min(times["no callback"])
    print(f"\n{name}: {len(x)} samples, batch 32, {reps} reps")
    print("  fit, one epoch, min over reps (median in brackets):")
    base_median = statistics.median(times["no callback"])
    for label, ts in times.items():
        med = min(ts)
        line = (
            f"  {label:32s} {med:7.2f} s  {med / base:5.3f}x no callback"
            f"  (median {statistics.median(ts) / base_median:5.3f}x)"
        )
        if statistics.median(setups[label]):
            line += f"  (warm-up fit {statistics.median(setups[label]):.2f} s)"
        print(line)
    print(
        "  DeadNeuronCallback, measured directly: (epoch) / (epoch - time inside "
        "its hooks) = " + ", ".join(f"{1 + share:.4f}x" for share in HOOK_SHARES)
    )
    print(
        "  custom tf.function loop, our op at every step / without, steps "
        "alternating: "
        + ", ".join(f"{r:.3f}x" for r in op_ratios)
        + f"  (median {statistics.median(op_ratios):.3f}x)"
    )
    dn_runs = [
        os.path.join(tmp, d, "train")
        for d in os.listdir(tmp)
        if d.startswith(f"{name}-dn-")
    ]
    snap, whole = bytes_per_unit_snapshot(dn_runs[0])
    print(
        f"  on disk: {snap:.2f} bytes/unit/snapshot (snapshot records), "
        f"{whole:.2f} incl. loss scalars and file header"
    )


def tf_op(args):
    tmp = tempfile.mkdtemp(prefix="overhead-")
    setups = {
        "mlp": (mlp, *data(60000, (784,))),
        "cnn": (cnn, *data(args.cnn_samples, (28, 28, 1))),
    }
    for name, (build, x, y) in setups.items():
        measure(name, build, x, y, args.reps, tmp)


# -- every backend ------------------------------------------------------------


def callback_overhead(x, y, reps, tmp) -> dict:
    """Hook shares (gradients off/on) and start-up seconds on the seed MLP."""
    out = {
        "steady": {},
        "fit_ratio": {},
        "startup_first_fit": [],
        "startup_second_fit": [],
    }
    for _ in range(reps):
        for gradients in (False, True):
            model = compiled(mlp)
            cb = TimedDeadNeuronCallback(
                tempfile.mkdtemp(dir=tmp),
                (x[:256], y[:256]) if gradients else x[:256],
                gradients=gradients,
            )
            model.fit(x[:1920], y[:1920], batch_size=32, verbose=0, callbacks=[cb])
            start = time.perf_counter()
            model.fit(x, y, batch_size=32, verbose=0)
            plain = time.perf_counter() - start
            cb.seconds = 0.0
            start = time.perf_counter()
            model.fit(x, y, batch_size=32, verbose=0, callbacks=[cb])
            seconds = time.perf_counter() - start
            share = cb.seconds / (seconds - cb.seconds)
            out["steady"].setdefault(str(gradients), []).append(1 + share)
            # Noisier, but what a jax user sees: time spent waiting for
            # queued steps inside our hooks is not extra time.
            out["fit_ratio"].setdefault(str(gradients), []).append(seconds / plain)
            out["startup_first_fit"].append(cb.begin_seconds[0])
            out["startup_second_fit"].append(cb.begin_seconds[1])
    return out


def _floor_models() -> dict:
    """name -> (model, probe batch): the issue-18 table's models."""
    import keras_hub

    rng = np.random.default_rng(0)
    gpt2 = keras_hub.models.GPT2Backbone(
        vocabulary_size=1000,
        num_layers=2,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=1024,
        max_sequence_length=128,
    )
    tokens = {
        "token_ids": rng.integers(1, 1000, (8, 128)),
        "padding_mask": np.ones((8, 128), bool),
    }

    def images(n, side):
        return rng.random((n, side, side, 3), dtype=np.float32)

    return {
        "small CNN, probe 256": (compiled(cnn), data(256, (28, 28, 1))[0]),
        "EfficientNetB0 64x64, probe 32": (
            keras.applications.EfficientNetB0(
                weights=None, input_shape=(64, 64, 3), classes=10
            ),
            images(32, 64),
        ),
        "ResNet50 32x32, probe 16": (
            keras.applications.ResNet50(
                weights=None, input_shape=(32, 32, 3), classes=10
            ),
            images(16, 32),
        ),
        "GPT-2 tiny (2 x 256), probe 8 x 128": (gpt2, tokens),
    }


def _first_value_rows(x, epsilon, unit_axis, masked):
    """A stand-in for the statistics that reads one value of ``x``: the
    probe's pass without them (the activations are still all computed)."""
    first = keras.ops.reshape(keras.ops.cast(x, "float32"), (-1,))[:1]
    return keras.ops.zeros((len(metadata.BASE_STATS), 1)) + first


def floor_costs(reps: int) -> dict:
    """Per model, min and median over interleaved rounds of
    ``predict_on_batch`` of the probe batch (the compiled forward: a
    tf.function, a jitted call, torch no_grad) against one probe pass
    (forward, statistics, encoding: "probe") and the probe's pass with the
    statistics replaced by one read of each watched tensor ("pass"): the
    forward in the mode the probe runs it, BatchNormalization on the batch's
    statistics, as training computes them."""
    out = {}
    for name, (model, x) in _floor_models().items():
        p = probe.Probe(model, x)
        bare = probe.Probe(model, x)
        bare._reducer = dataclasses.replace(bare._reducer, rows=_first_value_rows)
        # Compiled again with the stand-in: tf traces when the probe is made.
        bare._run = bare._compile(bare, masked=False)
        variants = {
            "forward": lambda m=model, x=x: m.predict_on_batch(x),
            "probe": p,
            "pass": lambda b=bare: keras.ops.convert_to_numpy(b.start()),
        }
        for fn in variants.values():
            fn()  # traces and warm-up
        rounds = []
        for r in range(reps):
            names = list(variants)
            order = names[r % 3 :] + names[: r % 3]
            times = {}
            for v in order:
                start = time.perf_counter()
                variants[v]()
                times[v] = time.perf_counter() - start
            rounds.append(times)
        out[name] = {"layers": len(p.watched)}
        for num, den in (("probe", "forward"), ("pass", "forward"), ("probe", "pass")):
            out[name][f"{num}/{den}"] = (
                # min over min: the least disturbed by a loaded machine
                min(t[num] for t in rounds) / min(t[den] for t in rounds),
                statistics.median(t[num] / t[den] for t in rounds),
            )
    return out


def cnn_fit_ratio(reps: int, tmp) -> list[float]:
    """Whole epoch of the small CNN (12,000 samples, batch 32) with the
    callback at defaults / without, the order alternating per round. The
    callback is set up by a short fit first (its one-off start-up, traced
    probe and compile, is the "start-up" line): a 375-step epoch would
    otherwise mostly measure that."""
    x, y = data(12000, (28, 28, 1))
    model = compiled(cnn)
    model.fit(x[:1920], y[:1920], batch_size=32, verbose=0)
    ratios = []
    for r in range(reps):
        cb = tb_deadneurons.DeadNeuronCallback(tempfile.mkdtemp(dir=tmp), x[:256])
        model.fit(x[:320], y[:320], batch_size=32, verbose=0, callbacks=[cb])
        times = {}
        for with_cb in (r % 2 == 0, r % 2 == 1):
            start = time.perf_counter()
            model.fit(x, y, batch_size=32, verbose=0, callbacks=[cb] if with_cb else [])
            times[with_cb] = time.perf_counter() - start
        ratios.append(times[True] / times[False])
    return ratios


def child(args) -> None:
    tmp = tempfile.mkdtemp(prefix="overhead-")
    x, y = data(60000, (784,))
    result = {"backend": keras.backend.backend()}
    if not args.floor_only:
        result.update(callback_overhead(x, y, args.reps, tmp))
        result["cnn_fit_ratio"] = cnn_fit_ratio(args.reps, tmp)
    result["floor"] = floor_costs(max(3, args.reps))
    print(json.dumps(result))


def backends(args) -> None:
    for backend in args.backends:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", "--reps", str(args.reps)]
            + (["--floor-only"] if args.floor_only else []),
            env={**os.environ, "KERAS_BACKEND": backend},
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            print(f"\n{backend}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if not args.floor_only:
            _print_training(r)
        print(
            f"\n{r['backend']}: min / median of probe / predict_on_batch, "
            "pass (the probe's forward without statistics) / predict_on_batch, "
            "probe / pass"
        )
        for name, f in r["floor"].items():
            ratios = "   ".join(
                "{:5.2f} / {:5.2f}".format(*f[k])
                for k in ("probe/forward", "pass/forward", "probe/pass")
            )
            print(f"    {name:38s} {ratios}  ({f['layers']} layers)")


def _print_training(r: dict) -> None:
    print(f"\n{r['backend']}: seed MLP, 60,000 samples, batch 32, defaults")
    for grads, ratios in r["steady"].items():
        print(
            f"  steady, gradients={grads:5s}: epoch / (epoch - our hooks) = "
            + ", ".join(f"{v:.4f}x" for v in ratios)
        )
    for grads, ratios in r["fit_ratio"].items():
        print(
            f"  epoch with / without the callback, gradients={grads:5s}: "
            + ", ".join(f"{v:.3f}x" for v in ratios)
        )
    print(
        "  start-up (on_train_begin): first fit "
        + ", ".join(f"{v:.3f} s" for v in r["startup_first_fit"])
        + "; second fit "
        + ", ".join(f"{v:.3f} s" for v in r["startup_second_fit"])
    )
    print(
        "  small CNN epoch with / without the callback (defaults): "
        + ", ".join(f"{v:.3f}x" for v in r["cnn_fit_ratio"])
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--cnn-samples", type=int, default=12000)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--tf-op", action="store_true")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--floor-only", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args)
    elif args.tf_op:
        tf_op(args)
    else:
        backends(args)


if __name__ == "__main__":
    main()
