"""Layer scalars, verbose lines and alerts (``analysis.progress``) reach users
through every writer: the Scalars plugin's kind (tbparse, HParams metrics),
Keras's console, Python's logging and warnings.

Planted truth: the Keras model of tests/test_callback.py (dense: 3 of 12
units dead, conv: 2 of 8 channels, tanh: 2 of 6 saturated), a torch MLP with
2 of 8 ReLU units dead; every planted unit is dead from step 0 on.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import hparams_plugin
from tensorboard.plugins.hparams import summary_v2 as hp
from werkzeug.test import Client

import tb_deadneurons
from tb_deadneurons.analysis import progress
from tb_deadneurons.format import scalars
from tb_deadneurons.torch import DeadNeuronMonitor
from tests.support import EventWriter
from tests.test_callback import _planted_model, _xy

TORCH_DEAD = [1, 3]  # of 8 units: 25 %


def _torch_run(run_dir: str, steps: int = 6, **kwargs) -> DeadNeuronMonitor:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )
    with torch.no_grad():
        model[0].bias[:] = 1.0
        model[0].bias[TORCH_DEAD] = -1e4
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    with DeadNeuronMonitor(model, run_dir, x, every_n_steps=2, **kwargs) as monitor:
        for _ in range(steps):
            monitor.step(1.0)
    return monitor


def test_torch_scalars_are_read_by_tbparse_at_the_snapshot_steps(tmp_path):
    from tbparse import SummaryReader

    _torch_run(str(tmp_path), scalars=True)
    frame = SummaryReader(str(tmp_path)).scalars
    dead = frame[frame.tag == scalars.scalar_tag("1", scalars.DEAD_FRACTION)]
    assert dead.step.tolist() == [0, 2, 4, 6]
    assert dead.value.tolist() == [0.25] * 4
    dormant = frame[frame.tag == scalars.scalar_tag("1", scalars.DORMANT_FRACTION)]
    assert (dormant.value >= 0.25).all()  # a dead unit is dormant too


def test_scalars_are_off_by_default(tmp_path):
    from tbparse import SummaryReader

    _torch_run(str(tmp_path))
    tags = set(SummaryReader(str(tmp_path)).scalars.tag)
    assert tags == {"deadneurons/loss"}


def test_hparams_plugin_lists_our_scalars_as_metrics_with_their_values(tmp_path):
    for lr, run in ((0.1, "fast"), (0.01, "slow")):
        _torch_run(str(tmp_path / run), scalars=True)
        with EventWriter(str(tmp_path / run)) as w:
            w.add(0, hp.hparams_pb({"lr": lr}))
    multiplexer = pem.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    context = base_plugin.TBContext(
        data_provider=provider, logdir=str(tmp_path), multiplexer=multiplexer
    )
    plugin = hparams_plugin.HParamsPlugin(context)
    client = Client(application.TensorBoardWSGI([plugin], data_provider=provider))
    body = client.post(
        "/data/plugin/hparams/experiment", json={"experimentName": ""}
    ).get_json()
    tag = scalars.scalar_tag("1", scalars.DEAD_FRACTION)
    assert tag in {m["name"]["tag"] for m in body["metricInfos"]}
    groups = client.post(
        "/data/plugin/hparams/session_groups",
        json={
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 10,
        },
    ).get_json()["sessionGroups"]
    assert len(groups) == 2
    for group in groups:
        values = {m["name"]["tag"]: m for m in group["metricValues"]}
        assert values[tag]["value"] == 0.25 and values[tag]["trainingStep"] == 6


def test_keras_scalars_land_in_the_train_run(tmp_path):
    from tbparse import SummaryReader

    x, y = _xy()
    cb = tb_deadneurons.DeadNeuronCallback(
        tmp_path, x[:128], every_n_batches=4, scalars=True
    )
    _planted_model().fit(x, y, batch_size=32, epochs=1, callbacks=[cb], verbose=0)
    frame = SummaryReader(str(tmp_path / "train")).scalars
    dead = frame[frame.tag == "deadneurons/dense/dead_fraction"]
    assert dead.step.tolist() == [0, 4, 8] and dead.value.tolist() == [0.25] * 3


def test_keras_verbose_prints_each_layers_dead_share_at_each_epoch_end(
    tmp_path, capsys
):
    x, y = _xy()
    cb = tb_deadneurons.DeadNeuronCallback(
        tmp_path, x[:128], every_n_batches=4, verbose=1
    )
    _planted_model().fit(x, y, batch_size=32, epochs=2, callbacks=[cb], verbose=0)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ": dense: " in ln]
    assert len(lines) == 2  # one per epoch
    assert "step 8: dense: 25.0% dead (first), mean |a|" in lines[0]
    assert "step 16: dense: 25.0% dead (+0.0 pts), mean |a|" in lines[1]


def test_keras_is_quiet_by_default(tmp_path, capsys):
    x, y = _xy()
    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, x[:64], every_n_batches=4)
    _planted_model().fit(x, y, batch_size=32, epochs=1, callbacks=[cb], verbose=0)
    assert capsys.readouterr().out == ""


def test_alert_above_warns_once_per_layer_with_the_hints_pattern(tmp_path):
    x, y = _xy()
    cb = tb_deadneurons.DeadNeuronCallback(
        tmp_path, x[:128], every_n_batches=4, alert_above=0.3
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _planted_model().fit(x, y, batch_size=32, epochs=2, callbacks=[cb], verbose=0)
    alerts = [str(w.message) for w in caught if "alert_above" in str(w.message)]
    # Only tanh (2 of 6 = 33 %) is above 0.3; dense and conv hold 25 %.
    assert len(alerts) == 1, alerts
    assert "layer 'tanh' has 33.3% of its units dead at step 0" in alerts[0]
    assert "saturation" in alerts[0] and "Remedy:" in alerts[0]


def test_torch_alert_above_warns_once_naming_the_layer(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _torch_run(str(tmp_path), alert_above=0.1)
    alerts = [str(w.message) for w in caught if "alert_above" in str(w.message)]
    assert len(alerts) == 1
    assert "DeadNeuronMonitor: layer '1' has 25.0% of its units dead" in alerts[0]
    assert "initialisation" in alerts[0]


def test_torch_verbose_logs_lines_every_nth_snapshot(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="tb_deadneurons"):
        _torch_run(str(tmp_path), steps=10, verbose=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "tb_deadneurons"]
    # Snapshots at 0, 2, ..., 10: lines at the 1st, 3rd and 5th.
    assert [ln.split(":")[0] for ln in lines] == [
        "DeadNeuronMonitor step 0",
        "DeadNeuronMonitor step 4",
        "DeadNeuronMonitor step 8",
    ]
    assert all("1: 25.0% dead" in ln for ln in lines)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"verbose": -1}, "verbose"),
        ({"verbose": 1.5}, "verbose"),
        ({"alert_above": 1.0}, "alert_above"),
        ({"alert_above": "0.1"}, "alert_above"),
    ],
)
def test_bad_verbose_or_alert_above_is_a_value_error_naming_it(kwargs, match):
    with pytest.raises(ValueError, match=match):
        progress.Progress("DeadNeuronMonitor", **kwargs)


def test_fractions_count_only_units_with_data():
    from tb_deadneurons.format import summary

    a = np.maximum(np.random.default_rng(0).normal(1, 1, (32, 8)), 0)
    a[:, [0, 5]] = 0.0
    pb = summary.activations_pb("dense", a.astype(np.float32))
    from tensorboard.util import tensor_util

    codes = tensor_util.make_ndarray(pb.value[0].tensor)
    shares = progress.fractions(codes, with_gradients=False)
    assert shares.dead_fraction == 0.25
