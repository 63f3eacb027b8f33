"""Gradient-negligible units and the layer mean |a|, on planted ground truth.

A small numpy MLP (x -> hidden -> 10 logits, softmax cross-entropy) is
trained by hand with plain SGD; every few steps the hidden layer's output and
its exact gradient dL/da are logged with the real numpy writer
(``summary.activations_pb(..., gradients=...)``) into real event files, read
back with TensorBoard's ``EventAccumulator`` and the real codec, and
classified by ``analysis``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tb_deadneurons.analysis import classify
from tests import events
from tests.support import EventWriter

IN, HIDDEN, OUT, BATCH = 8, 16, 10, 128
PRUNED = [2, 9, 13]  # outgoing weights zeroed (and kept zero) from PRUNE_AT
BORN_DEAD = [5]  # bias -1e4: never active, but its outgoing weights live
SATURATED = [1, 11]  # tanh units pinned near +1 by a large bias
PRUNE_AT = 20
STEPS = range(0, 60, 10)


class Mlp:
    """x -> act(x W1 + b1) -> W2 -> softmax; exact gradients by hand."""

    def __init__(self, seed: int, activation: str = "relu"):
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.w1 = rng.normal(0, np.sqrt(2 / IN), (IN, HIDDEN)).astype(np.float32)
        self.b1 = np.full(HIDDEN, 0.1, np.float32)
        self.w2 = rng.normal(0, np.sqrt(1 / HIDDEN), (HIDDEN, OUT)).astype(np.float32)
        self.mask = np.ones((HIDDEN, 1), np.float32)
        self.activation = activation
        self.teacher = rng.normal(size=(IN, OUT)).astype(np.float32)

    def batch(self):
        x = self.rng.normal(size=(BATCH, IN)).astype(np.float32)
        return x, np.argmax(x @ self.teacher, axis=1)

    def forward_backward(self, x, y):
        """(pre-activation, output, dL/dz, dL/da, dL/dW2)."""
        z = x @ self.w1 + self.b1
        a = np.maximum(z, 0) if self.activation == "relu" else np.tanh(z)
        w2 = self.w2 * self.mask
        logits = a @ w2
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1.0
        dlogits = p / len(y)
        da = dlogits @ w2.T
        dz = da * ((z > 0) if self.activation == "relu" else 1 - a * a)
        return z, a, dz, da, a.T @ dlogits

    def sgd(self, x, y, lr=0.5):
        _, _, dz, _, dw2 = self.forward_backward(x, y)
        self.w2 -= lr * dw2
        self.w2 *= self.mask  # pruned weights stay pruned
        self.w1 -= lr * x.T @ dz
        self.b1 -= lr * dz.sum(axis=0)


def _train(logdir, model, prune=(), series=("hidden",)):
    """Trains 60 steps, logging the chosen series every 10; returns the run dir."""
    run = str(logdir)
    with EventWriter(run) as w:
        for step in range(60):
            if step == PRUNE_AT and prune:
                model.mask[list(prune)] = 0.0
                model.w2 *= model.mask
            x, y = model.batch()
            z, a, dz, da, _ = model.forward_backward(x, y)
            if step in STEPS:
                logged = {"hidden": (a, da), "pre": (z, dz)}
                for tag in series:
                    data, grad = logged[tag]
                    w.snapshot(
                        tag, step, data, gradients=grad, activation=model.activation
                    )
            model.sgd(x, y)
    return run


def _classify(run, tag, **thresholds):
    snaps = events.snapshots(run)[tag]
    steps = [s for s, _ in snaps]
    stats = {k: np.stack([d[k] for _, d in snaps]) for k in snaps[0][1]}
    return stats, classify.classify(stats, steps, classify.Thresholds(**thresholds))


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    model = Mlp(0)
    model.b1[BORN_DEAD] = -1e4
    return _train(tmp_path_factory.mktemp("pruned"), model, prune=PRUNED)


def test_units_with_zero_outgoing_weights_are_exactly_the_tau0_grad_dormant(
    pruned_run,
):
    _, result = _classify(pruned_run, "hidden", tau=0.0)
    assert result.grad_dormant_now == PRUNED
    assert result.dead_now == BORN_DEAD  # alive downstream: it still gets dL/da
    assert not set(PRUNED) & set(result.dead_now)
    assert result.grad_dormant_count == [0, 0] + [len(PRUNED)] * 4
    by_grad = classify.classify(
        _classify(pruned_run, "hidden")[0],
        result.steps,
        classify.Thresholds("grad_dormant", tau=0.0),
    )
    assert [by_grad.died_at()[u] for u in PRUNED] == [PRUNE_AT] * 3
    cells = by_grad.matrix()
    flagged = (cells & classify.GRAD_DORMANT_BIT) > 0
    assert np.flatnonzero(flagged[:, -1]).tolist() == PRUNED
    assert not flagged[:, :2].any()


def test_gradient_starved_hint_names_the_pruned_units_since_pruning(pruned_run):
    _, result = _classify(pruned_run, "hidden", tau=0.0)
    (hint,) = [
        h
        for h in classify.hints(result, "relu", next_layer_dead_share=0.0)
        if h["pattern"] == "gradient_starved"
    ]
    assert hint["units"] == PRUNED
    assert hint["steps"] == [PRUNE_AT, STEPS[-1]]
    assert (
        f"3 of {HIDDEN} units are active but receive no gradient" in (hint["evidence"])
    )
    assert "since step 20" in hint["evidence"]
    assert "next layer has no dead unit" in hint["evidence"]
    assert "outgoing weights are not in the logs" in hint["evidence"]
    assert "pruned" in hint["remedy"] and "detach" in hint["remedy"]
    unknown = classify.hints(result, "relu")[-1]["evidence"]
    assert "dead share is not known" in unknown
    dead_next = classify.hints(result, "relu", next_layer_dead_share=0.25)
    assert "25% of the next layer's units are dead" in dead_next[-1]["evidence"]


def test_saturated_tanh_units_are_dead_by_output_and_grad_dormant_before_it(
    tmp_path,
):
    model = Mlp(1, activation="tanh")
    model.b1[SATURATED] = 6.0
    run = _train(tmp_path, model, series=("hidden", "pre"))
    # The tanh output: constant, so dead -- but dL/da still arrives.
    _, out = _classify(run, "hidden")
    assert out.dead_now == SATURATED
    # Before the tanh (a linear Dense with the tanh as its own layer),
    # dL/dz = dL/da (1 - a^2) vanishes: grad-dormant at the default tau.
    _, pre = _classify(run, "pre")
    assert pre.grad_dormant_now == SATURATED
    assert pre.dead_now == []


@pytest.fixture(scope="module")
def healthy_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("healthy"), Mlp(2))


def test_healthy_layer_has_no_grad_dormant_unit_and_no_hint(healthy_run):
    _, result = _classify(healthy_run, "hidden")
    assert result.grad_dormant_count == [0] * len(STEPS)
    assert result.dead_now == []
    assert classify.hints(result, "relu", next_layer_dead_share=0.0) == []


def test_layer_mean_abs_is_the_count_weighted_mean_of_decoded_mean_abs(tmp_path):
    rng = np.random.default_rng(3)
    a = np.abs(rng.normal(size=(64, 4))).astype(np.float32) * [10, 1, 1, 1]
    a[8:, 1] = np.nan  # unit 1: 8 finite values; the others 64
    a[:, 3] = np.nan  # unit 3: no data at all
    with EventWriter(str(tmp_path)) as w:
        w.snapshot("d", 0, a)
        w.snapshot("d", 1, np.zeros_like(a))
    ((_, stats0), (_, stats1)) = events.snapshots(str(tmp_path))["d"]
    stats = {k: np.stack([stats0[k], stats1[k]]) for k in stats0}
    got = classify.layer_mean_abs(stats)
    weighted = (stats["mean_abs"][0] * stats["count"][0]).sum() / stats["count"][
        0
    ].sum()
    assert got[0] == pytest.approx(weighted)
    # and the decoded numbers are within the codec's precision of the truth
    assert got[0] == pytest.approx(np.nanmean(np.abs(a)), rel=0.1)
    assert got[1] == 0.0


def test_layer_mean_abs_drops_to_zero_when_every_unit_is_killed(tmp_path):
    model = Mlp(4)
    with EventWriter(str(tmp_path)) as w:
        for step in range(3):
            if step == 2:
                model.b1[:] = -1e4
            x, y = model.batch()
            _, a, _, da, _ = model.forward_backward(x, y)
            w.snapshot("hidden", step, a, gradients=da, activation="relu")
    stats, result = _classify(str(tmp_path), "hidden")
    mean = classify.layer_mean_abs(stats)
    assert mean[0] > 0.1 and mean[1] > 0.1 and mean[2] == 0.0
    assert result.dead_count[-1] == HIDDEN
