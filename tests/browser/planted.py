"""Planted ground truth for the browser tests, written as real event files.

``write_planted(logdir)`` writes two runs with our numpy twin
(``summary.activations_pb``) through TensorBoard's own event writer, and
returns what a correct dashboard must show.
"""

from __future__ import annotations

import os

import numpy as np

from tb_deadneurons import summary
from tests.support import EventWriter, relu_batch

XSS_RUN = "<img src=x onerror=alert(1)>"
STEPS = list(range(0, 400, 10))  # 40 snapshots
UNITS_A = 32
UNITS_B = 16
DEAD_FROM_START = (3, 7, 11, 19)
# unit -> first step from which it outputs zeros to the end
KILLED_AT = {5: 100, 12: 200, 25: 300}
# units with small but nonzero output: ReDo score ~0.03-0.04 (dormant at tau=0.1,
# not at tau=0.025)
QUIET = (1, 2)
# A logged re-initialisation of dense_b (a marker; the units stay healthy).
REVIVAL_STEP, REVIVED_UNITS = 200, (3, 4)
# dense_b logs the gradient row; these units stay active but get no gradient
# (as if their outgoing weights were zero). dense_a logs no gradients.
GRAD_STARVED = (5, 6)


def _layer_a(rng: np.random.Generator, step: int) -> np.ndarray:
    dead = list(DEAD_FROM_START) + [u for u, s in KILLED_AT.items() if step >= s]
    a = relu_batch(rng, 128, UNITS_A, dead=dead)
    # Keep quiet units always active (no exact zeros) but small.
    a[:, list(QUIET)] = 0.02 * (0.5 + rng.random((128, len(QUIET)), dtype=np.float32))
    return a


def write_planted(logdir: str, seed: int = 0) -> dict:
    """Writes the runs ``planted`` and ``XSS_RUN`` under ``logdir``."""
    rng = np.random.default_rng(seed)
    with EventWriter(os.path.join(logdir, "planted")) as w:
        for step in STEPS:
            w.snapshot(
                "dense_a",
                step,
                _layer_a(rng, step),
                layer_class="Dense",
                activation="relu",
            )
            grads = rng.normal(0.0, 0.1, size=(128, UNITS_B)).astype(np.float32)
            grads[:, list(GRAD_STARVED)] = 0.0
            w.snapshot(
                "dense_b",
                step,
                relu_batch(rng, 128, UNITS_B),
                gradients=grads,
                layer_class="Dense",
                activation="relu",
            )
            w.scalar("deadneurons/loss", step, 2.0 * np.exp(-step / 150) + 0.1)
            if step == REVIVAL_STEP:
                w.add(step, summary.revivals_pb("dense_b", list(REVIVED_UNITS)))
    with EventWriter(os.path.join(logdir, XSS_RUN)) as w:
        for step in STEPS[:5]:
            w.snapshot(
                "dense", step, relu_batch(rng, 64, 8, dead=[0]), activation="relu"
            )
    dead_now = sorted(list(DEAD_FROM_START) + list(KILLED_AT))
    died_at = {u: 0 for u in DEAD_FROM_START} | dict(KILLED_AT)
    return {"run": "planted", "dead_now": dead_now, "died_at": died_at}
