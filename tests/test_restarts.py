"""A run whose steps go back (a re-run, a resume) is read by TensorBoard's rule.

The planted truth: the first attempt kills unit 0, the re-run kills units 1
and 2. TensorBoard's data server shows only the re-run's points; the Python
loader shows both unless we apply the rule. Every reader here must show the
re-run only, and name what was set aside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from werkzeug.test import Client

from tb_deadneurons import api, summary
from tests.support import EventWriter, relu_batch
from tests.test_plugin_routes import get, make_app

STEPS = list(range(0, 61, 10))
FIRST_DEAD, RERUN_DEAD = [0], [1, 2]
RESUMED = list(range(30, 91, 10))  # a resume from the step-30 checkpoint
RESUME_DEAD = 3  # dead in the resumed part only


def write_restarts(logdir: str) -> None:
    """Runs ``rerun`` (0..60 twice) and ``resume`` (0..60, then 30..90)."""
    import numpy as np

    rng = np.random.default_rng(5)
    for attempt in range(2):
        dead = RERUN_DEAD if attempt else FIRST_DEAD
        with EventWriter(os.path.join(logdir, "rerun")) as w:
            for step in STEPS:
                w.snapshot("dense", step, relu_batch(rng, 32, 8, dead))
                w.scalar("batch_loss", step, attempt + 1.0)
            w.add(30, summary.revivals_pb("dense", [5 + attempt]))
        with EventWriter(os.path.join(logdir, "resume")) as w:
            for step in RESUMED if attempt else STEPS:
                dead = [RESUME_DEAD] if attempt else []
                w.snapshot("dense", step, relu_batch(rng, 32, 8, dead))
        if not attempt:
            time.sleep(1.1)  # event files are read in name (= time) order


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("restarts"))
    write_restarts(path)
    return path


@pytest.fixture(scope="module")
def client(logdir):
    return Client(make_app(logdir))


def test_rerun_shows_only_the_rerun_snapshots_in_every_route(client):
    timeline = get(client, "timeline?run=rerun&tag=dense")
    assert timeline["steps"] == STEPS and timeline["dead_now"] == RERUN_DEAD
    assert timeline["revivals"] == [{"step": 30, "units": [6]}]
    unit = get(client, "unit?run=rerun&tag=dense&unit=1")
    assert unit["steps"] == STEPS and all(unit["dead"])
    loss = get(client, "loss?run=rerun")
    assert loss["steps"] == STEPS and loss["values"] == [2.0] * len(STEPS)


def test_resume_keeps_the_points_before_the_resumed_step(client):
    timeline = get(client, "timeline?run=resume&tag=dense")
    assert timeline["steps"] == STEPS[:3] + RESUMED
    assert timeline["died_at"][RESUME_DEAD] == 30


def test_runs_names_what_the_restart_set_aside(client):
    body = get(client, "runs")
    layers = {r["run"]: r["layers"][0] for r in body["runs"]}
    assert layers["rerun"]["snapshots"] == len(STEPS)
    assert layers["rerun"]["dead_count_now"] == len(RERUN_DEAD)
    warnings = "\n".join(body["warnings"])
    # rerun: 7 snapshots + 7 losses + 1 revival; resume: 4 snapshots (30..60)
    assert "run rerun: steps go back" in warnings
    assert "15 earlier points of 3 tags at steps 0..60 are set aside" in warnings
    assert "run resume: steps go back" in warnings
    assert "4 earlier points of 1 tags at steps 30..60" in warnings


def test_report_and_api_agree_with_the_routes(logdir, client):
    result = subprocess.run(
        [sys.executable, "-m", "tb_deadneurons.cli", "report", logdir, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr
    body = json.loads(result.stdout)
    dense = body["runs"]["rerun"]["layers"]["dense"]
    assert dense["steps"] == STEPS and dense["dead_now"] == RERUN_DEAD
    assert any("run rerun: steps go back" in w for w in body["warnings"])
    logs = api.load(logdir)
    for run in ("rerun", "resume"):
        route = get(client, f"timeline?run={run}&tag=dense")
        layer = logs.layers[run]["dense"]
        assert layer.steps.tolist() == route["steps"]
        assert layer.dead_now == route["dead_now"]
        assert layer.result.dead_count == route["dead_count"]
    assert logs.warnings == body["warnings"]
