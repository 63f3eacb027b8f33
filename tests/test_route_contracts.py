"""The JSON bodies of ./unit, ./loss and ./runs as docs/routes.md states them,
including the empty cases (a layer with no readable snapshot, a run without
loss) that the dashboard must draw without a 500 (mutation testing, issue 9
item 7). Real event files, TensorBoard's own WSGI app."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from werkzeug.test import Client

from tb_deadneurons.board import reader
from tb_deadneurons.format import metadata
from tests.support import EventWriter, relu_batch
from tests.test_plugin_routes import REVIVED, STEPS, _raw, get, make_app, write_logs


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("contracts"))
    write_logs(path)
    rng = np.random.default_rng(3)
    good = metadata.create_summary_metadata(None, None).plugin_data.content
    with EventWriter(os.path.join(path, "unreadable")) as w:
        for step in range(3):  # float32, not uint8 codes: every snapshot skipped
            w.add(step, _raw("dense", step, np.zeros((7, 4), np.float32), good))
        w.add(5, _raw("rows", 5, np.zeros((3, 4), np.uint8), good))  # 3 of 7 rows
    with EventWriter(os.path.join(path, "nanloss")) as w:
        for step in range(8):
            w.snapshot("dense", step, relu_batch(rng, 16, 4))
            w.scalar("batch_loss", step, math.nan if step == 3 else 1.0 / (1 + step))
    return path


@pytest.fixture(scope="module")
def client(logdir):
    return Client(make_app(logdir))


def test_unit_body_names_run_tag_unit_and_each_verdict(client):
    body = get(client, f"unit?run=planted/train&tag=dense&unit={REVIVED}")
    assert (body["run"], body["tag"], body["unit"]) == ("planted/train", "dense", 4)
    assert body["revived"] is True and body["died_at"] is None
    dead_then = [50 <= s <= 100 for s in STEPS]
    assert body["dead"] == dead_then
    # A never-active unit has zero output: dormant wherever it is dead.
    assert len(body["dormant"]) == len(STEPS)
    assert all(d for d, dead in zip(body["dormant"], dead_then, strict=True) if dead)
    scores = body["dormant_score"]
    assert len(scores) == len(STEPS)
    assert all(s == 0 for s, dead in zip(scores, dead_then, strict=True) if dead)
    assert all(s > 0.1 for s, dead in zip(scores, dead_then, strict=True) if not dead)
    assert body["warnings"] == []
    alive = get(client, "unit?run=planted/train&tag=dense&unit=0")
    assert alive["revived"] is False and not any(alive["dead"])


def test_unit_beyond_the_layer_is_404_saying_how_many_units_there_are(client):
    response = get(client, "unit?run=planted/train&tag=dense&unit=16", status=404)
    assert "16 units" in response.get_data(as_text=True)


def test_runs_lists_a_layer_without_readable_snapshots_as_empty_not_dead(client):
    body = get(client, "runs")
    runs = {r["run"]: r["layers"] for r in body["runs"]}
    entry, rows = runs["unreadable"]
    assert rows["tag"] == "rows" and rows["snapshots"] == 0
    assert entry["tag"] == "dense" and entry["snapshots"] == 0
    assert entry["first_step"] is None and entry["last_step"] is None
    assert entry["dead_count_now"] == 0 and entry["dead_fraction_now"] == 0.0
    warnings = body["warnings"]
    assert "run unreadable, tag dense, step 0: tensor float32 (7, 4), expected " in (
        "\n".join(warnings)
    )
    assert any("tag rows, step 5: 3 stat rows, metadata names 7" in w for w in warnings)


def test_runs_entries_carry_layer_class_and_activation(client):
    body = get(client, "runs")
    layers = {r["run"]: r["layers"] for r in body["runs"]}["planted/train"]
    dense, tanh = layers
    assert tanh["activation"] == "tanh" and dense["activation"] != "tanh"
    assert "layer_class" in dense and "layer_class" in tanh


def test_loss_without_a_loss_scalar_names_the_tags_it_looked_for(client):
    body = get(client, "loss?run=unreadable")
    message = body.pop("message")
    assert body == {
        "run": "unreadable",
        "tag": None,
        "source": None,
        "step_unit": None,
        "steps": [],
        "values": [],
        "warnings": [],
    }
    assert all(tag in message for tag, _, _ in reader.LOSS_TAGS)


def test_loss_body_names_run_source_and_step_unit_and_nulls_nan(client):
    body = get(client, "loss?run=nanloss")
    assert body["run"] == "nanloss" and body["source"] == "scalars"
    assert body["tag"] == "batch_loss" and body["step_unit"] == "batch"
    assert body["steps"] == list(range(8))
    assert body["values"][3] is None and body["values"][0] == pytest.approx(1.0)


def test_loss_route_keeps_to_the_scalars_sampling_hint(logdir):
    sampled = Client(make_app(logdir, sampling_hints={"scalars": 3}))
    body = get(sampled, "loss?run=nanloss")
    assert len(body["steps"]) == 3 and body["steps"][-1] == 7


@pytest.mark.parametrize(
    "query, says",
    [
        ("tau=-1", "tau must be a number >= 0"),
        ("constant_std=x", "constant_std must be a number >= 0"),
        ("definition=zombie", "definition must be one of dead, dormant"),
    ],
)
def test_bad_threshold_parameter_is_400_naming_it(client, query, says):
    route = f"timeline?run=planted/train&tag=dense&{query}"
    response = get(client, route, status=400)
    assert says in response.get_data(as_text=True)
