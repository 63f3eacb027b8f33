"""Does reviving dead units help the demo's dying run? Side by side, same seeds.

The dying run: a two-layer ReLU MLP (64-64) on scikit-learn's digits, trained
with Adam at a learning rate that is too high (0.05), batch 32. Each seed is
trained twice from the same initial weights: plain, and with dead units of
both hidden layers revived every ``--every`` batches (``revive()``; a unit is
dead when it is never active on the whole training set). Printed per seed and
as the mean: dead share of the hidden units at the end, final training loss
and accuracy (on the full training set, inference mode), units revived.

When ``DeadNeuronCallback`` accepts ``revive_every`` the revival goes through
it (and is logged); otherwise a small callback here calls ``revive`` itself.

Usage: python benchmarks/revival.py [--seeds 3] [--epochs 20] [--every 50]
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time

import keras
import numpy as np
from sklearn.datasets import load_digits

import tb_deadneurons
from tb_deadneurons.revive import revive

HIDDEN = ("hidden1", "hidden2")
LEARNING_RATE = 0.05  # too high for this model: most units die within epochs


class ReviveDeadUnits(keras.callbacks.Callback):
    """Every ``every`` batches, revives units never active on ``probe``."""

    def __init__(self, probe: np.ndarray, every: int):
        super().__init__()
        self.probe, self.every, self.revived, self._batches = probe, every, 0, 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self._batches % self.every:
            return
        dead = dead_units(self.model, self.probe)  # all layers before any change
        for name, units in dead.items():
            self.revived += len(revive(self.model, name, units, self.model.optimizer))


def build(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu", name=HIDDEN[0]),
            keras.layers.Dense(64, activation="relu", name=HIDDEN[1]),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(LEARNING_RATE),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def dead_units(model: keras.Model, x: np.ndarray) -> dict[str, list[int]]:
    layers = [model.get_layer(n) for n in HIDDEN]
    outputs = keras.Model(model.inputs, [layer.output for layer in layers])(x)
    return {
        n: np.flatnonzero(np.max(keras.ops.convert_to_numpy(a), axis=0) <= 0).tolist()
        for n, a in zip(HIDDEN, outputs, strict=True)
    }


def train(seed, x, y, epochs, every, with_revival) -> dict:
    model = build(seed)
    callbacks, counter = [], None
    if with_revival:
        params = inspect.signature(tb_deadneurons.DeadNeuronCallback).parameters
        if "revive_every" in params:
            log_dir = tempfile.mkdtemp(prefix="revival_bench_")
            callbacks.append(
                tb_deadneurons.DeadNeuronCallback(
                    log_dir, x, every_n_batches=every, revive_every=every
                )
            )
        else:
            counter = ReviveDeadUnits(x, every)
            callbacks.append(counter)
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x, y, verbose=0)
    dead = dead_units(model, x)
    return {
        "dead": sum(map(len, dead.values())) / (64 * len(HIDDEN)),
        "loss": loss,
        "accuracy": accuracy,
        "revived": counter.revived if counter else "-",
        "seconds": seconds,
        "via": "-" if not with_revival else "script" if counter else "callback",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--every", type=int, default=50)
    args = parser.parse_args()
    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target
    rows = []
    head = (
        f"{'seed':>4} {'revival':>8} {'dead':>6} {'loss':>8} {'acc':>6} {'revived':>8}"
    )
    print(f"Adam lr={LEARNING_RATE}, {args.epochs} epochs, revive every {args.every}")
    print(head)
    for seed in range(args.seeds):
        for flag in (False, True):
            r = train(seed, x, y, args.epochs, args.every, flag)
            rows.append((flag, r))
            print(
                f"{seed:>4} {'yes' if flag else 'no':>8} {r['dead']:>6.1%} "
                f"{r['loss']:>8.4f} {r['accuracy']:>6.3f} {r['revived']:>8} "
                f"[{r['seconds']:.1f}s, via {r['via']}]",
                flush=True,
            )
    for key in ("dead", "loss", "accuracy", "seconds"):
        off = np.mean([r[key] for f, r in rows if not f])
        on = np.mean([r[key] for f, r in rows if f])
        print(f"mean {key:>8}: without {off:.4f}  with {on:.4f}  ratio {on / off:.3f}")


if __name__ == "__main__":
    main()
