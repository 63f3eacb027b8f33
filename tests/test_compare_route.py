"""./compare: one layer across runs and the runs x layers table, with the
HParams plugin's hyperparameters, over real event files and TensorBoard's
own WSGI app."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from tests.browser.sweep import (
    SWEEP,
    SWEEP_STEPS,
    UNITS,
    sweep_run,
    write_lengths,
    write_sweep,
)
from tests.test_plugin_routes import get, make_app


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("sweep"))
    truth = write_sweep(logdir)
    return Client(make_app(logdir)), truth


def _layer(body, run, tag="dense"):
    entry = next(r for r in body["runs"] if r["run"] == run)
    return entry, next(lay for lay in entry["layers"] if lay["tag"] == tag)


def test_compare_counts_each_runs_dead_units_per_step_and_now(sweep):
    client, truth = sweep
    body = get(client, "compare")
    assert body["thresholds"] == {"definition": "dead", "tau": 0.1}
    for run, t in truth.items():
        _, layer = _layer(body, run)
        assert layer["steps"] == SWEEP_STEPS
        assert layer["count"] == [t["dead"][s] for s in SWEEP_STEPS]
        assert layer["share_now"] == pytest.approx(t["dead"][SWEEP_STEPS[-1]] / UNITS)
        died = {}
        for s in t["died_at"].values():
            died[s] = died.get(s, 0) + 1
        assert {
            s: c
            for s, c in zip(layer["steps"], layer["died_at_counts"], strict=True)
            if c
        } == died


def test_compare_gives_each_run_the_hparams_of_its_parent_directory(sweep):
    client, _ = sweep
    body = get(client, "compare")
    for lr in SWEEP:
        entry, _ = _layer(body, sweep_run(lr))
        assert entry["hparams"] == {"learning_rate": lr, "optimizer": "adam"}


def test_compare_dormant_counts_include_the_dead_at_tau_zero(sweep):
    client, truth = sweep
    body = get(client, "compare?definition=dormant&tau=0")
    for run, t in truth.items():
        _, layer = _layer(body, run)
        assert all(
            c >= t["dead"][s]
            for s, c in zip(layer["steps"], layer["count"], strict=True)
        )


def test_a_unit_dead_by_constant_output_counts_as_dormant_at_any_tau(
    tmp_path_factory,
):
    # "long"/"tanh": one saturated unit (constant output, ReDo score ~1.2)
    # and one never-active unit. Both are dead; at tau 0 only the silent one
    # has score 0, yet the dormant count holds both (dead <= dormant).
    logdir = str(tmp_path_factory.mktemp("lengths"))
    write_lengths(logdir)
    client = Client(make_app(logdir))
    dead = _layer(get(client, "compare"), "long", "tanh")[1]
    dormant = _layer(get(client, "compare?definition=dormant&tau=0"), "long", "tanh")[1]
    assert dead["count_now"] == 2
    assert dormant["count_now"] == 2
    timeline = get(client, "timeline?run=long&tag=tanh&tau=0")
    assert timeline["dormant_count"][-1] == 1  # the rule itself: score <= 0
    assert timeline["dormant_or_dead_count"][-1] == 2


def test_compare_refuses_bad_thresholds(sweep):
    client, _ = sweep
    get(client, "compare?tau=-1", 400)
    get(client, "compare?definition=nope", 400)


def test_compare_leaves_out_layers_without_gradients_under_grad_dormant(sweep):
    client, _ = sweep
    body = get(client, "compare?definition=grad_dormant")
    assert all(not r["layers"] for r in body["runs"])
    assert any("grad_mean_abs" in w for w in body["warnings"])
