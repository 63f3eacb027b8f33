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
# In "long": unit 1 dead throughout; unit 2 dead, revived at 110, dead from 310 on.
REVIVED_UNIT, REVIVED_AT, DEAD_AGAIN = 2, 110, 310
# In "long"'s tanh layer: unit 0 saturated (constant output), unit 3 never active.
SATURATED, SILENT = 0, 3


def _long_dead(step: int) -> list[int]:
    return [1] + ([REVIVED_UNIT] if step < REVIVED_AT or step >= DEAD_AGAIN else [])


def write_lengths(logdir: str, seed: int = 4) -> None:
    """A 2-step run ``short`` beside a 500-step run ``long`` (which also has
    a revived-then-dead unit, and a tanh layer with a saturated unit)."""
    rng = np.random.default_rng(seed)
    for run, steps in (("short", SHORT_STEPS), ("long", LONG_STEPS)):
        with EventWriter(os.path.join(logdir, run)) as w:
            for step in steps:
                dead = _long_dead(step) if run == "long" else []
                a = relu_batch(rng, 32, 10, dead=dead)
                w.snapshot("dense", step, a, activation="relu")
                if run == "long":
                    pre = rng.normal(0.0, 1.0, (64, 6)).astype(np.float32)
                    pre[:, SATURATED] = 40.0  # tanh(40) == 1.0 exactly: constant
                    pre[:, SILENT] = 0.0
                    w.snapshot("tanh", step, np.tanh(pre), activation="tanh")


HOSTILE_RUNS = ('=HYPERLINK("x")', "@SUM(A1)", "+1+2", "-cmd")
HOSTILE_TAG = "+SUM(1,2)"
LONG_NAME_LENGTH = 2891


def long_run_name() -> str:
    """A 2,891-character run name (path parts of 240 characters: a file
    system takes at most 255 per part)."""
    parts, left = [], LONG_NAME_LENGTH
    while left > 0:
        n = min(240, left)
        parts.append("n" * n)
        left -= n + 1
    name = "/".join(parts)
    return name[:LONG_NAME_LENGTH]


def write_hostile(logdir: str, seed: int = 5) -> str:
    """Runs named like spreadsheet formulas, one with a 2,891-character name,
    each with a dead unit in tag HOSTILE_TAG; returns the long name."""
    rng = np.random.default_rng(seed)
    long_name = long_run_name()
    for run in (*HOSTILE_RUNS, long_name):
        with EventWriter(os.path.join(logdir, *run.split("/"))) as w:
            for step in (0, 1, 2):
                a = relu_batch(rng, 16, 4, dead=[2])
                w.snapshot(HOSTILE_TAG, step, a, activation="relu")
    return long_name
