"""Diagnosis hints reach the timeline route and the report, with evidence."""

import json
import os

import numpy as np
import pytest
from werkzeug.test import Client

from tb_deadneurons import cli
from tests.support import EventWriter, relu_batch
from tests.test_plugin_routes import get, make_app

BORN_DEAD = [0, 1, 2]
BURST = [5, 6, 7, 8]
STARVED = [3, 4]  # active, but no gradient reaches them from step 200


def _grads(rng, starved=()):
    g = rng.normal(0.0, 1e-3, size=(64, 16)).astype(np.float32)
    g[:, list(starved)] = 0.0
    return g


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("hints"))
    rng = np.random.default_rng(0)
    with EventWriter(os.path.join(logdir, "sick")) as w:
        for step in range(0, 400, 20):
            dead = BORN_DEAD + (BURST if step >= 200 else [])
            w.snapshot("dense", step, relu_batch(rng, 64, 16, dead), activation="relu")
            loss = 5.0 if step == 200 else 1.0 - step / 1000
            w.scalar("deadneurons/loss", step, loss)
    with EventWriter(os.path.join(logdir, "healthy")) as w:
        for step in range(0, 400, 20):
            a, g = relu_batch(rng, 64, 16), _grads(rng)
            w.snapshot("dense", step, a, gradients=g, activation="relu")
            w.scalar("deadneurons/loss", step, 1.0 - step / 1000)
    with EventWriter(os.path.join(logdir, "starved")) as w:
        for step in range(0, 400, 20):
            g = _grads(rng, STARVED if step >= 200 else ())
            w.snapshot("dense", step, relu_batch(rng, 64, 16), gradients=g)
    return logdir


def test_timeline_names_init_and_learning_rate_with_their_evidence(logdir):
    body = get(Client(make_app(logdir)), "timeline?run=sick&tag=dense")
    patterns = {h["pattern"]: h for h in body["hints"]}
    assert {"initialisation", "learning_rate"} <= set(patterns)
    assert set(BORN_DEAD) <= set(patterns["initialisation"]["units"])
    assert "200" in patterns["learning_rate"]["evidence"]
    assert all(h["remedy"] for h in body["hints"])


def test_timeline_names_active_units_without_gradient_since_when(logdir):
    body = get(Client(make_app(logdir)), "timeline?run=starved&tag=dense&tau=0")
    (hint,) = body["hints"]
    assert hint["pattern"] == "gradient_starved"
    assert hint["units"] == STARVED and hint["steps"] == [200, 380]
    assert "2 of 16 units are active but receive no gradient" in hint["evidence"]
    assert body["dead_now"] == []


def test_healthy_run_gets_no_hint(logdir):
    assert (
        get(Client(make_app(logdir)), "timeline?run=healthy&tag=dense")["hints"] == []
    )


def test_report_shows_the_same_hints(logdir, capsys):
    assert cli.main(["report", logdir, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert runs["healthy"]["layers"]["dense"]["hints"] == []
    sick = {h["pattern"] for h in runs["sick"]["layers"]["dense"]["hints"]}
    assert {"initialisation", "learning_rate"} <= sick
    assert cli.main(["report", logdir, "--run", "sick"]) == 0
    text = capsys.readouterr().out
    assert "hint dense: learning_rate" in text and "remedy:" in text
