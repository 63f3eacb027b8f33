"""Planted logs for the compare view: a learning-rate sweep and two runs of
very different lengths, written as real event files with the numpy twin.

``write_sweep(logdir)`` writes runs ``lr_<x>/train`` (snapshots, loss) with
the HParams plugin's session-start summary in ``lr_<x>`` (as Keras's
``hp.KerasCallback`` places it), and returns the ground truth.
"""

from __future__ import annotations

import os

import numpy as np
from tensorboard.plugins.hparams import summary_v2 as hp

from tests.support import EventWriter, relu_batch

UNITS = 20
SWEEP_STEPS = list(range(0, 210, 10))  # 21 snapshots
# learning rate -> (unit -> first step from which it is dead)
SWEEP = {
    0.001: {0: 0},
    0.01: {0: 0, 1: 100, 2: 100, 3: 150},
    0.1: {u: (0 if u < 4 else 50 if u < 8 else 100) for u in range(12)},
}


def sweep_run(lr: float) -> str:
    return f"lr_{lr}/train"


def dead_at(lr: float, step: int) -> list[int]:
    return sorted(u for u, s in SWEEP[lr].items() if step >= s)


def write_sweep(logdir: str, seed: int = 3) -> dict:
    """The sweep; returns {run: {"lr", "dead": {step: count}, "died_at": {u: s}}}."""
    rng = np.random.default_rng(seed)
    truth = {}
    for lr in SWEEP:
        root = os.path.join(logdir, f"lr_{lr}")
        with EventWriter(root) as w:
            w.add(0, hp.hparams_pb({"learning_rate": lr, "optimizer": "adam"}))
        with EventWriter(os.path.join(root, "train")) as w:
            for step in SWEEP_STEPS:
                a = relu_batch(rng, 64, UNITS, dead=dead_at(lr, step))
                w.snapshot("dense", step, a, layer_class="Dense", activation="relu")
                w.snapshot("dense_2", step, relu_batch(rng, 64, 8), activation="relu")
                w.scalar("batch_loss", step, float(1.0 / (1 + lr * step)))
        truth[sweep_run(lr)] = {
            "lr": lr,
            "dead": {s: len(dead_at(lr, s)) for s in SWEEP_STEPS},
            "died_at": dict(SWEEP[lr]),
        }
    return truth


SHORT_STEPS = [0, 1]
LONG_STEPS = list(range(0, 501, 10))


def write_lengths(logdir: str, seed: int = 4) -> None:
    """A 2-step run ``short`` beside a 500-step run ``long``."""
    rng = np.random.default_rng(seed)
    for run, steps in (("short", SHORT_STEPS), ("long", LONG_STEPS)):
        with EventWriter(os.path.join(logdir, run)) as w:
            for step in steps:
                a = relu_batch(rng, 32, 10, dead=[1] if run == "long" else [])
                w.snapshot("dense", step, a, activation="relu")
