"""Does automatic revival help the demo's dying run? Side by side, same seeds.

The demo's dying run (``tb_deadneurons.demo``: a 64-256-128-10 ReLU MLP on
scikit-learn's digits, Adam at a learning rate 30x too high, batch 32) is
trained per seed twice from the same initial weights: with
``DeadNeuronCallback`` alone, and with ``revive_every=--every`` (ReDo-style
``revive`` of the units the latest snapshot shows dead). Printed per seed and
as means: dead share of the hidden units at the end (from the logged
snapshots, through ``tb-deadneurons report``'s reader and classifier), final
training loss, training and validation accuracy, units revived.

Usage: python benchmarks/revival.py [--seeds 3] [--epochs 20] [--every 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import keras
import numpy as np

import tb_deadneurons
from tb_deadneurons import api, demo


def train(seed, data, epochs, every, revive) -> dict:
    (x, y), (x_val, y_val) = data
    net = demo.build_model(keras, demo.RUNS["dying"], seed=seed)
    log_dir = tempfile.mkdtemp(prefix="revival_bench_")
    cb = tb_deadneurons.DeadNeuronCallback(
        log_dir, x_val[:256], every_n_batches=10, revive_every=every if revive else None
    )
    start = time.perf_counter()
    history = net.fit(
        x,
        y,
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=[cb],
        validation_data=(x_val, y_val),
    )
    seconds = time.perf_counter() - start
    layers = api.load(log_dir).layers["train"]
    dead = sum(len(layer.result.dead_now) for layer in layers.values())
    units = sum(layer.result.units for layer in layers.values())
    _, accuracy = net.evaluate(x, y, verbose=0)
    return {
        "dead": dead / units,
        "loss": history.history["loss"][-1],
        "accuracy": accuracy,
        "val_accuracy": history.history["val_accuracy"][-1],
        "revived": sum(len(u) for _, _, u in cb.revivals),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=demo.DEFAULT_EPOCHS)
    parser.add_argument("--every", type=int, default=50)
    args = parser.parse_args()
    data = demo.digits()
    print(
        f"demo 'dying' run: Adam lr={demo.RUNS['dying']}, {args.epochs} epochs, "
        f"revive_every={args.every}"
    )
    print(
        f"{'seed':>4} {'revival':>8} {'dead':>6} {'loss':>8} {'acc':>6} "
        f"{'val acc':>7} {'revived':>8}"
    )
    rows = []
    for seed in range(args.seeds):
        for revive in (False, True):
            r = train(seed, data, args.epochs, args.every, revive)
            rows.append((revive, r))
            print(
                f"{seed:>4} {'yes' if revive else 'no':>8} {r['dead']:>6.1%} "
                f"{r['loss']:>8.4f} {r['accuracy']:>6.3f} {r['val_accuracy']:>7.3f} "
                f"{r['revived']:>8} [{r['seconds']:.1f}s]",
                flush=True,
            )
    for key in ("dead", "loss", "accuracy", "val_accuracy", "seconds"):
        off = np.mean([r[key] for f, r in rows if not f])
        on = np.mean([r[key] for f, r in rows if f])
        print(f"mean {key:>12}: without {off:.4f}  with {on:.4f}")


if __name__ == "__main__":
    main()
