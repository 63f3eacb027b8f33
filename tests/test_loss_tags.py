"""Any loss tag: the common ones are found, the user picks another, odd loss
scalars are skipped with a warning, and a repeated step is not a restart.

Planted truth: every run has a burst of deaths at step 200 and (where a loss
is logged) a loss spike at step 200, so the hints say ``learning_rate`` when
the loss was found and used, ``burst`` when it was not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.util import tensor_util
from werkzeug.test import Client

from tb_deadneurons import api
from tb_deadneurons.board import reader
from tests.support import EventWriter, relu_batch
from tests.test_plugin_routes import get, make_app

STEPS = list(range(0, 400, 20))
BURST = [5, 6, 7, 8]
# Run name -> the loss tag it logs (the spike at step 200).
FRAMEWORK_TAGS = {
    "trainer": "train/loss",  # Hugging Face Trainer
    "tutorial": "Loss/train",  # PyTorch's TensorBoard tutorial
    "lightning": "train_loss",  # Lightning's self.log("train_loss", ...)
}


def _loss(step: int) -> float:
    return 5.0 if step == 200 else 1.0 - step / 1000


def _tensor_scalar(writer: EventWriter, tag: str, step: int, value) -> None:
    """A summary under the scalars plugin whose tensor is ``value`` as is."""
    s = summary_pb2.Summary()
    s.value.add(
        tag=tag,
        metadata=scalar_metadata.create_summary_metadata("", ""),
        tensor=tensor_util.make_tensor_proto(value),
    )
    writer.add(step, s)


def _layer(writer: EventWriter, rng, step: int) -> None:
    dead = BURST if step >= 200 else []
    writer.snapshot("dense", step, relu_batch(rng, 64, 16, dead), activation="relu")


def write_loss_runs(logdir: str) -> None:
    rng = np.random.default_rng(3)
    for run, tag in FRAMEWORK_TAGS.items():
        with EventWriter(os.path.join(logdir, run)) as w:
            for step in STEPS:
                _layer(w, rng, step)
                w.scalar(tag, step, _loss(step))
                w.scalar("other/metric", step, 1.0)  # no spike
            # The Trainer's end-of-training log repeats the last step.
            w.scalar("train/epoch", STEPS[-1], 3.0)
            w.scalar("train/epoch", STEPS[-1], 3.0)
    with EventWriter(os.path.join(logdir, "odd")) as w:
        for step in STEPS:
            _layer(w, rng, step)
            _tensor_scalar(w, "deadneurons/loss", step, np.array("a string"))
            _tensor_scalar(w, "batch_loss", step, np.ones(3, np.float32))
            w.scalar("train/loss", step, _loss(step))
    with EventWriter(os.path.join(logdir, "only_odd")) as w:
        for step in STEPS:
            _layer(w, rng, step)
            _tensor_scalar(w, "loss", step, np.ones(3, np.float32))


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("loss_tags"))
    write_loss_runs(path)
    return path


@pytest.fixture(scope="module")
def client(logdir):
    return Client(make_app(logdir))


def _patterns(body) -> set[str]:
    return {h["pattern"] for h in body["hints"]}


@pytest.mark.parametrize("run", sorted(FRAMEWORK_TAGS))
def test_framework_loss_tags_are_found_and_the_hints_use_them(client, run):
    loss = get(client, f"loss?run={run}")
    assert loss["tag"] == FRAMEWORK_TAGS[run] and loss["step_unit"] == "batch"
    assert loss["steps"] == STEPS and loss["values"][10] == 5.0
    timeline = get(client, f"timeline?run={run}&tag=dense")
    assert timeline["loss_tag"] == FRAMEWORK_TAGS[run]
    assert "learning_rate" in _patterns(timeline)


def test_loss_tag_parameter_picks_the_scalar_the_hints_use(client):
    loss = get(client, "loss?run=trainer&loss_tag=other/metric")
    assert loss["tag"] == "other/metric" and loss["values"] == [1.0] * len(STEPS)
    timeline = get(client, "timeline?run=trainer&tag=dense&loss_tag=other/metric")
    assert timeline["loss_tag"] == "other/metric"
    # A flat "loss": the burst has no spike behind it.
    assert "burst" in _patterns(timeline) and "learning_rate" not in _patterns(timeline)


def test_unknown_loss_tag_is_404_on_loss_and_a_warning_on_timeline(client):
    get(client, "loss?run=trainer&loss_tag=nope", status=404)
    timeline = get(client, "timeline?run=trainer&tag=dense&loss_tag=nope")
    assert timeline["loss_tag"] is None
    assert any("no scalar nope" in w for w in timeline["warnings"])


def test_scalar_tags_lists_every_scalar_and_the_default_loss(client):
    body = get(client, "scalar_tags?run=trainer")
    tags = [t["tag"] for t in body["tags"]]
    assert tags == sorted(["train/loss", "other/metric", "train/epoch"])
    assert body["loss_tag"] == "train/loss"
    assert {t["source"] for t in body["tags"]} == {"scalars"}
    get(client, "scalar_tags?run=nope", status=404)
    get(client, "scalar_tags", status=400)


def test_odd_loss_scalars_are_skipped_with_a_warning_naming_the_tag(client):
    loss = get(client, "loss?run=odd")
    assert loss["tag"] == "train/loss"
    warnings = "\n".join(loss["warnings"])
    assert "tag deadneurons/loss: not a float scalar" in warnings
    assert "tag batch_loss: not a float scalar" in warnings
    timeline = get(client, "timeline?run=odd&tag=dense")
    assert "learning_rate" in _patterns(timeline)
    assert any("tag batch_loss" in w for w in timeline["warnings"])


def test_a_run_with_only_an_odd_loss_has_no_loss_and_no_500(client):
    loss = get(client, "loss?run=only_odd")
    assert loss["tag"] is None and "not a float scalar" in loss["warnings"][0]
    get(client, "loss?run=only_odd&loss_tag=loss")
    timeline = get(client, "timeline?run=only_odd&tag=dense")
    assert "burst" in _patterns(timeline)
    assert any("tag loss: not a float scalar" in w for w in timeline["warnings"])
    assert get(client, "scalar_tags?run=only_odd")["loss_tag"] is None


def test_api_and_report_read_odd_loss_runs_and_take_loss_tag(logdir):
    logs = api.load(logdir)
    assert any("tag batch_loss: not a float scalar" in w for w in logs.warnings)
    hints = {h["pattern"] for h in logs.layers["odd"]["dense"].hints}
    assert "learning_rate" in hints
    flat = api.load(logdir, run="trainer", loss_tag="other/metric")
    assert "learning_rate" not in {
        h["pattern"] for h in flat.layers["trainer"]["dense"].hints
    }
    cmd = [sys.executable, "-m", "tb_deadneurons.cli", "report", logdir, "--json"]
    for extra, expected in (([], "learning_rate"), (["--loss-tag", "nope"], "burst")):
        result = subprocess.run(
            cmd + extra, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and "Traceback" not in result.stderr
        body = json.loads(result.stdout)
        hints = body["runs"]["trainer"]["layers"]["dense"]["hints"]
        assert expected in {h["pattern"] for h in hints}


def test_a_repeated_step_is_not_a_restart_but_going_back_is():
    # A repeat keeps its later point, as the data server does; no restart.
    assert reader.after_restarts([0, 10, 20, 20]).tolist() == [1, 1, 0, 1]
    assert not reader.goes_back([0, 10, 20, 20])
    kept = reader.after_restarts([0, 10, 20, 10, 20])
    assert kept.tolist() == [True, False, False, True, True]
    assert reader.goes_back([0, 10, 20, 10, 20])


def test_trainer_repeating_its_last_step_gives_no_restart_warning(client):
    warnings = "\n".join(get(client, "runs")["warnings"])
    assert "steps go back" not in warnings
    tags = {t["tag"]: t for t in get(client, "scalar_tags?run=trainer")["tags"]}
    assert tags["train/epoch"]["max_step"] == STEPS[-1]
